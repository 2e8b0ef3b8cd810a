"""Keras 3 I-JEPA: ViT encoder, predictor, model, EMA callback, optimizer, data.

Runs unchanged on ``KERAS_BACKEND=jax|torch|tensorflow``::

    from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, vit_tiny
"""

from jepa_components.backends.keras.convert import (
    export_hf_checkpoint,
    export_official_checkpoint,
    load_hf_checkpoint,
    load_official_checkpoint,
)
from jepa_components.backends.keras.data import FitHooks, MaskedImageDataset, MultiViewDataset
from jepa_components.backends.keras.evaluation.attentive_probe import (
    AttentivePooler,
    AttentiveProbe,
    attentive_probe_accuracy,
    train_attentive_probe,
)
from jepa_components.backends.keras.evaluation.probes import encode_images, probe_encoder
from jepa_components.backends.keras.layers import (
    ACTIVATIONS,
    MLP,
    Attention,
    PatchEmbed,
    TransformerBlock,
)
from jepa_components.backends.keras.layers.patch_embed import TubeletEmbed
from jepa_components.backends.keras.layers.sigreg import SIGReg
from jepa_components.backends.keras.models.base import JEPAModel
from jepa_components.backends.keras.models.ijepa import IJEPA
from jepa_components.backends.keras.models.lejepa import LeJEPA, make_projector
from jepa_components.backends.keras.models.pixel_baseline import PixelBaseline
from jepa_components.backends.keras.models.predictor import Predictor
from jepa_components.backends.keras.models.vit import (
    POS_EMBEDS,
    VIT_SIZES,
    VisionTransformer,
    vit_base,
    vit_giant,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from jepa_components.backends.keras.models.vjepa import VJEPA
from jepa_components.backends.keras.training.ema import EMATarget
from jepa_components.backends.keras.training.health import HealthMonitor
from jepa_components.backends.keras.training.optimizers import (
    CosineWeightDecay,
    ScheduledAdamW,
    WarmupCosine,
    make_adamw,
    total_optimizer_steps,
)
from jepa_components.backends.keras.training.target_ema import TargetEMA

__all__ = [
    "ACTIVATIONS",
    "Attention",
    "AttentivePooler",
    "AttentiveProbe",
    "CosineWeightDecay",
    "EMATarget",
    "FitHooks",
    "HealthMonitor",
    "IJEPA",
    "JEPAModel",
    "LeJEPA",
    "MLP",
    "MaskedImageDataset",
    "MultiViewDataset",
    "PatchEmbed",
    "PixelBaseline",
    "Predictor",
    "SIGReg",
    "ScheduledAdamW",
    "TargetEMA",
    "TransformerBlock",
    "TubeletEmbed",
    "VJEPA",
    "WarmupCosine",
    "export_hf_checkpoint",
    "export_official_checkpoint",
    "load_hf_checkpoint",
    "load_official_checkpoint",
    "POS_EMBEDS",
    "VIT_SIZES",
    "VisionTransformer",
    "attentive_probe_accuracy",
    "encode_images",
    "make_adamw",
    "make_projector",
    "probe_encoder",
    "total_optimizer_steps",
    "train_attentive_probe",
    "vit_base",
    "vit_giant",
    "vit_huge",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
