"""jepa_components: I-JEPA building blocks.

The NumPy core (this package) never imports a deep-learning framework; import
the parts you need directly, e.g.::

    from jepa_components.masks import MultiBlockMaskSampler

Keras 3 layers live in ``jepa_components.backends.keras`` (needs the
``jax``, ``torch`` or ``tensorflow`` extra).
"""

__version__ = "0.1.0"
