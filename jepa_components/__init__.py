"""jepa_components: JEPA-family building blocks (I-JEPA, V-JEPA, LeJEPA, and the masks of MAE,
BEiT/iBOT/DINOv2 and data2vec 2.0).

The NumPy core (this package) never imports a deep-learning framework; import
the parts you need directly, e.g.::

    from jepa_components.masks import MultiBlockMaskSampler
    from jepa_components.regularizers import sigreg

Keras 3 layers live in ``jepa_components.backends.keras`` (needs the
``jax``, ``torch`` or ``tensorflow`` extra).
"""

__version__ = "0.1.0"
