"""Keras 3 I-JEPA: ViT encoder, predictor, model, EMA callback, optimizer, data.

Runs unchanged on ``KERAS_BACKEND=jax|torch|tensorflow``::

    from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, vit_tiny
"""

from jepa_components.backends.keras.layers import MLP, Attention, PatchEmbed, TransformerBlock
from jepa_components.backends.keras.predictor import Predictor
from jepa_components.backends.keras.vit import (
    VIT_SIZES,
    VisionTransformer,
    vit_base,
    vit_giant,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from jepa_components.backends.keras.ijepa import IJEPA

__all__ = [
    "Attention",
    "IJEPA",
    "MLP",
    "PatchEmbed",
    "Predictor",
    "TransformerBlock",
    "VIT_SIZES",
    "VisionTransformer",
    "vit_base",
    "vit_giant",
    "vit_huge",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
