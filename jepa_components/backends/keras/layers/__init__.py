"""Transformer building blocks of the I-JEPA ViT: patch embedding, attention, MLP, block.

One module per layer (``patch_embed``, ``attention``, ``mlp``, ``block``), the
official initialization in ``initializers`` and the MLP activations in
``activations``.

Each layer mirrors one module of the official code
(facebookresearch/ijepa ``src/models/vision_transformer.py``) and keeps its
sublayer names (``proj``, ``qkv``, ``fc1``, ``fc2``, ``norm1``, ``attn``,
``norm2``, ``mlp``) so that official state dicts map onto them one to one.

Initialization follows the official code: linear and patch-embedding
weights from a normal with std ``init_std`` (0.02), biases zero, LayerNorm
scale one and offset zero (the model's ``_init_weights``, and ``init_model``
of ``src/helper.py``). The official ``trunc_normal_(std=0.02)`` cuts at the
*absolute* bounds ``a=-2, b=2``, i.e. at 100 standard deviations, so it is
a plain normal in practice; Keras' ``TruncatedNormal`` would cut at 2 std
(std ~0.88 of the requested one), hence ``RandomNormal`` here.

The MLP activation is the official exact (erf) GELU by default; other
activations (``ACTIVATIONS``) exist for weights trained elsewhere, e.g. a
Hugging Face ``IJepaConfig.hidden_act``.

Dropout and stochastic depth of the official code default to 0 and I-JEPA
training never enables them; they are left out.
"""

from jepa_components.backends.keras.layers.activations import ACTIVATIONS
from jepa_components.backends.keras.layers.attention import Attention
from jepa_components.backends.keras.layers.block import TransformerBlock
from jepa_components.backends.keras.layers.initializers import (
    dense,
    derive_seed,
    normal_init,
    output_init_stds,
)
from jepa_components.backends.keras.layers.mlp import MLP
from jepa_components.backends.keras.layers.patch_embed import PatchEmbed

__all__ = [
    "ACTIVATIONS",
    "Attention",
    "MLP",
    "PatchEmbed",
    "TransformerBlock",
    "dense",
    "derive_seed",
    "normal_init",
    "output_init_stds",
]
