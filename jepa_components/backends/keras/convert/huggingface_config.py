"""Hugging Face ``config.json`` <-> ``VisionTransformer`` arguments, read strictly.

The config side of :mod:`~jepa_components.backends.keras.convert.huggingface_files`:
:func:`encoder_kwargs_from_config` turns an ``IJepaConfig`` dict into
``VisionTransformer`` arguments without coercing anything (a config file
may be hostile: see "Files you did not write" in the design notes), and
:func:`encoder_config` writes one back.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from jepa_components._validation import is_int
from jepa_components.backends.keras.convert.checks import MAX_SIZE
from jepa_components.backends.keras.convert.mapping import mlp_ratio

__all__ = [
    "CONFIG_FIELDS",
    "HF_ACTIVATIONS",
    "HF_CONFIG_DEFAULTS",
    "KERAS_TO_HF_ACTIVATION",
    "encoder_config",
    "encoder_kwargs_from_config",
]

# transformers ``ACT2FN`` names -> ``layers.ACTIVATIONS`` names (same function).
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",  # exact erf GELU
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "quick_gelu": "quick_gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# and back, for export (names every transformers version knows)
KERAS_TO_HF_ACTIVATION = {
    "gelu": "gelu",
    "gelu_tanh": "gelu_new",
    "quick_gelu": "quick_gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# config.json fields that are VisionTransformer arguments: field -> (argument, type).
CONFIG_FIELDS = {
    "hidden_size": ("embed_dim", int),
    "num_hidden_layers": ("depth", int),
    "num_attention_heads": ("num_heads", int),
    "num_channels": ("in_channels", int),
    "qkv_bias": ("qkv_bias", bool),
    "layer_norm_eps": ("layer_norm_epsilon", float),
    "initializer_range": ("init_std", float),
}
# ``IJepaConfig`` defaults, for config.json files that leave a field out.
HF_CONFIG_DEFAULTS = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    image_size=224,
    patch_size=16,
    num_channels=3,
    qkv_bias=True,
)


def _field(where: str, name: str, value: Any, kind: type) -> Any:
    """``value`` of config field ``name`` if it is a ``kind`` as JSON writes it; no coercion.

    ``int``: an integer in ``[1, MAX_SIZE]`` (not a bool, float or string);
    ``bool``: true or false; ``float``: a finite number (an integer too).
    """
    if kind is bool:
        ok = isinstance(value, bool)
        expected = "true or false"
    elif kind is int:
        ok = is_int(value) and 1 <= value <= MAX_SIZE
        expected = f"an integer from 1 to {MAX_SIZE}"
    else:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
        expected = "a finite number >= 0"
    if not ok:
        raise ValueError(
            f"{where}: `{name}` must be {expected}. Received: {name}={value!r} "
            f"({type(value).__name__}); nothing is coerced."
        )
    return kind(value)


def _square(where: str, name: str, value: Any) -> int | tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{where}: config `{name}`={value!r}: expected an int or a pair.")
        pair = (_field(where, name, value[0], int), _field(where, name, value[1], int))
        return pair if pair[0] != pair[1] else pair[0]
    return _field(where, name, value, int)


def encoder_kwargs_from_config(config: Mapping, where: str = "The config") -> dict:
    """``VisionTransformer`` keyword arguments of an IJepa ``config.json`` dict.

    Reads ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size`` (-> ``mlp_ratio``), ``hidden_act`` (->
    ``activation``), ``layer_norm_eps``, ``qkv_bias``, ``image_size``,
    ``patch_size``, ``num_channels``, ``initializer_range``; a field left
    out takes the ``IJepaConfig`` default. Dropout probabilities above 0 are
    not carried over (the Keras ViT has no dropout; a warning says so).

    Nothing is coerced: a size must be a JSON integer from 1 to ``MAX_SIZE``
    (``"16"``, ``16.9`` and ``true`` are errors), ``qkv_bias`` true or
    false, ``layer_norm_eps`` a finite number > 0; each error is a
    ``ValueError`` that names ``where`` (the file) and the field.
    """
    model_type = config.get("model_type", "ijepa")
    if model_type != "ijepa":
        raise ValueError(f"{where} is for model_type={model_type!r}, not 'ijepa'.")
    get = {**HF_CONFIG_DEFAULTS, **config}.__getitem__
    kwargs = {
        arg: _field(where, field, get(field), kind) for field, (arg, kind) in CONFIG_FIELDS.items()
    }
    if kwargs["layer_norm_epsilon"] <= 0:
        raise ValueError(
            f"{where}: `layer_norm_eps` must be > 0. Received: {get('layer_norm_eps')!r}"
        )
    dim, heads = kwargs["embed_dim"], kwargs["num_heads"]
    head_dim = config.get("head_dim")
    if head_dim is not None and _field(where, "head_dim", head_dim, int) * heads != dim:
        raise ValueError(
            f"{where}: config head_dim={head_dim} with {heads} heads does not cover "
            f"hidden_size={dim}; only head_dim = hidden_size / heads is supported."
        )
    if dim % heads:
        raise ValueError(
            f"{where}: hidden_size={dim} is not divisible by num_attention_heads={heads}."
        )
    act = get("hidden_act")
    if not isinstance(act, str) or act not in HF_ACTIVATIONS:
        raise ValueError(
            f"{where}: config hidden_act={act!r} is not supported. "
            f"Supported: {sorted(HF_ACTIVATIONS)}"
        )
    patch = _square(where, "patch_size", get("patch_size"))
    if isinstance(patch, tuple):
        raise ValueError(
            f"{where}: config patch_size={get('patch_size')!r}: only square patches are supported."
        )
    image = _square(where, "image_size", get("image_size"))
    if min(image if isinstance(image, tuple) else (image,)) < patch:
        raise ValueError(
            f"{where}: image_size={get('image_size')!r} is smaller than patch_size={patch}."
        )
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if _field(where, name, get(name), float) > 1:
            raise ValueError(f"{where}: `{name}` must be in [0, 1]. Received: {get(name)!r}")
        if get(name) > 0:
            warnings.warn(
                f"config {name}={get(name)} is not carried over: the Keras "
                "VisionTransformer has no dropout.",
                stacklevel=3,
            )
    hidden = _field(where, "intermediate_size", get("intermediate_size"), int)
    return dict(
        kwargs,
        image_size=image,
        patch_size=patch,
        mlp_ratio=mlp_ratio(dim, hidden),
        activation=HF_ACTIVATIONS[act],
    )


def encoder_config(vit: Any) -> dict:
    """The ``config.json`` dict (``IJepaConfig``) of a ``VisionTransformer``."""
    image = vit.image_size
    return {
        "architectures": ["IJepaModel"],
        "model_type": "ijepa",
        "torch_dtype": "float32",
        **{field: getattr(vit, arg) for field, (arg, _) in CONFIG_FIELDS.items()},
        "intermediate_size": vit.blocks[0].mlp.hidden_dim,
        "patch_size": vit.patch_size,
        "hidden_act": KERAS_TO_HF_ACTIVATION[vit.activation],
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "image_size": list(image) if isinstance(image, tuple) else image,
    }
