"""Framework-specific parts of jepa_components.

``jepa_components.backends.keras`` holds the Keras 3 layers; ``torch``,
``tensorflow`` and ``jax`` hold thin glue for users of one framework. Nothing
here is imported by the NumPy core.
"""
