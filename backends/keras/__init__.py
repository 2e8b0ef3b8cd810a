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
from jepa_components.backends.keras.callbacks import TargetEMA
from jepa_components.backends.keras.checkpoints import (
    export_official_checkpoint,
    load_official_checkpoint,
)
from jepa_components.backends.keras.data import MaskedImageDataset
from jepa_components.backends.keras.optimizers import (
    CosineWeightDecay,
    ScheduledAdamW,
    WarmupCosine,
    make_adamw,
)

__all__ = [
    "Attention",
    "CosineWeightDecay",
    "IJEPA",
    "MLP",
    "MaskedImageDataset",
    "PatchEmbed",
    "Predictor",
    "ScheduledAdamW",
    "TargetEMA",
    "TransformerBlock",
    "WarmupCosine",
    "export_official_checkpoint",
    "load_official_checkpoint",
    "VIT_SIZES",
    "VisionTransformer",
    "make_adamw",
    "vit_base",
    "vit_giant",
    "vit_huge",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
