"""Hugging Face ``IJepaModel`` files: folders, key layouts, ``config.json``.

The file side of :mod:`~jepa_components.backends.keras.convert.huggingface`:
read a folder written by ``save_pretrained`` (``config.json`` plus
``model.safetensors``, sharded safetensors, or ``pytorch_model.bin``), a
live ``transformers.IJepaModel`` or a state dict, and bring the keys to one
layout; translate ``config.json`` to and from ``VisionTransformer``
arguments; write a folder. Nothing here touches Keras weights and nothing is
ever downloaded.

Two key layouts name the same tensors (:data:`BLOCK_NAMES_V4_V5`, per block
``N``): transformers 4.x (``encoder.layer.N.attention.attention.query``...,
the hub files; what ``save_pretrained`` writes in 5.x too) and 5.x
(``layers.N.attention.q_proj``..., its ``state_dict()``).
``embeddings.patch_embeddings.projection``, ``embeddings.position_embeddings``
and the final ``layernorm`` are the same in both; an ``IJepaForImageClassification``
prefixes everything with ``ijepa.``. transformers 5.x reads both layouts
(``conversion_mapping.py`` maps ``IJepaModel`` to the ViT renames) and writes
the 4.x one to disk, which is also the only one 4.x reads.

safetensors files need neither torch nor the ``safetensors`` package (see
:mod:`~jepa_components.backends.keras.convert.safetensors`), nor do
``pytorch_model.bin`` files (see
:mod:`~jepa_components.backends.keras.convert.torch_save`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jepa_components._validation import invalid
from jepa_components.backends.keras.convert.mapping import mlp_ratio, to_numpy
from jepa_components.backends.keras.convert.safetensors import read_safetensors, write_safetensors
from jepa_components.backends.keras.convert.torch_save import load_torch_file

__all__ = [
    "canonical_state",
    "config_and_state",
    "encoder_config",
    "encoder_kwargs_from_config",
    "read_hf_checkpoint",
    "to_v4_key",
    "write_hf_folder",
]

CONFIG_FILE = "config.json"
SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN_FILE, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, BIN_FILE, BIN_INDEX)
CLASSIFIER_PREFIX = "ijepa."

# The names inside block N (``encoder.layer.N.`` in 4.x, ``layers.N.`` in 5.x).
BLOCK_NAMES_V4_V5 = (
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
    ("layernorm_before", "layernorm_before"),
    ("layernorm_after", "layernorm_after"),
)
_BLOCK_KEYS = (re.compile(r"encoder\.layer\.(\d+)\.(.+)"), re.compile(r"layers\.(\d+)\.(.+)"))
_BLOCK_PREFIXES = ("encoder.layer.{}.", "layers.{}.")

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


def _rename(key: str, source: int, target: int) -> str:
    """``key`` from layout ``source`` to ``target`` (0: 4.x, 1: 5.x); other keys unchanged."""
    match = _BLOCK_KEYS[source].fullmatch(key)
    if match is None:
        return key
    for names in BLOCK_NAMES_V4_V5:
        if match[2].startswith(names[source] + "."):
            return (
                _BLOCK_PREFIXES[target].format(match[1])
                + names[target]
                + match[2][len(names[source]) :]
            )
    return key


def to_v4_key(key: str) -> str:
    """A 5.x key in the 4.x (hub, ``save_pretrained``) layout.

    Example:
        >>> to_v4_key("layers.3.attention.q_proj.weight"), to_v4_key("layernorm.bias")
        ('encoder.layer.3.attention.attention.query.weight', 'layernorm.bias')
    """
    return _rename(key, 1, 0)


def canonical_state(state: Mapping, where: str = "the state dict") -> dict[str, Any]:
    """``{5.x key: np.ndarray}``: ``ijepa.`` prefix removed, 4.x names renamed.

    Both layouts (or a mix) are accepted; two keys naming one tensor are an
    error.
    """
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{where} must be a mapping of names to tensors. Received: {type(state).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    origin: dict[str, Any] = {}
    for key, value in state.items():
        name = _rename(str(key).removeprefix(CLASSIFIER_PREFIX), 0, 1)
        if name in out:
            raise ValueError(
                f"{where} holds `{origin[name]}` and `{key}`, two names of the "
                f"same tensor `{name}`."
            )
        out[name], origin[name] = to_numpy(value, f"{where}[{key!r}]"), key
    return out


# ---------------------------------------------------------------------- folders
def _hub_hint(source: str | os.PathLike) -> str:
    name = os.fspath(source)
    local = os.path.basename(name.rstrip("/\\")) or "model"
    return (
        f"No local folder {name!r}. load_hf_checkpoint never downloads: fetch the model "
        f"first, e.g. `hf download {name} --local-dir ./{local}` (`huggingface-cli download` "
        f"with older huggingface_hub) or, in Python, `huggingface_hub.snapshot_download("
        f"{name!r}, local_dir='./{local}')`, then pass that folder."
    )


def _read_bin(path: str | os.PathLike, weights_only: bool) -> dict[str, np.ndarray]:
    state = load_torch_file(path, weights_only)
    if not isinstance(state, Mapping):
        raise ValueError(f"{os.fspath(path)!r} holds a {type(state).__name__}, not a state dict.")
    return {k: to_numpy(v, f"{os.fspath(path)}[{k!r}]") for k, v in state.items()}


def _read_sharded(
    folder: str, index_file: str, read_one: Callable[[str], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    with open(os.path.join(folder, index_file)) as handle:
        weight_map = json.load(handle).get("weight_map")
    if not isinstance(weight_map, Mapping) or not weight_map:
        raise ValueError(f"{index_file} in {folder!r} has no `weight_map`.")
    state: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        part = read_one(os.path.join(folder, shard))
        wrong = sorted(k for k in part if weight_map.get(k) != shard)
        if wrong:
            raise ValueError(
                f"Shard {shard!r} holds {wrong[:5]}, which {index_file} does not place there."
            )
        state.update(part)
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise ValueError(f"{index_file} lists tensors no shard holds: {absent[:5]}")
    return state


def read_hf_checkpoint(
    folder: str | os.PathLike, weights_only: bool = True
) -> tuple[dict, dict[str, Any]]:
    """``(config, state)`` of a folder written by ``save_pretrained``.

    Args:
        folder: str or path-like of a local folder with ``config.json`` and
            ``model.safetensors`` (or ``model.safetensors.index.json`` and its
            shards, or ``pytorch_model.bin`` / its index, read without torch).
            safetensors are preferred when both are present.
        weights_only: for ``.bin`` files: True refuses pickled code (read
            without torch), False reads with ``torch.load`` (needs torch).

    Returns:
        ``config``: the ``config.json`` dict; ``state``: ``{key: np.ndarray}``
        with the keys as stored (any layout, see the module docstring).

    Raises:
        FileNotFoundError: not a local folder (e.g. a hub name: the message
            says how to download it), or no config / weights in it.

    Example:
        >>> try:
        ...     read_hf_checkpoint("facebook/ijepa_vith14_1k")
        ... except FileNotFoundError as error:
        ...     print(str(error)[:60])
        No local folder 'facebook/ijepa_vith14_1k'. load_hf_checkpoi
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise ValueError(
            "Invalid value for argument `folder`. Expected a str or path-like. "
            f"Received: folder={folder!r}"
        )
    if os.path.isfile(folder):
        raise FileNotFoundError(
            f"{os.fspath(folder)!r} is a file: pass the folder that holds {CONFIG_FILE} and "
            "the weights (what save_pretrained writes)."
        )
    if not os.path.isdir(folder):
        raise FileNotFoundError(_hub_hint(folder))
    folder = os.fspath(folder)
    present = set(os.listdir(folder))
    if CONFIG_FILE not in present:
        raise FileNotFoundError(f"No {CONFIG_FILE} in {folder!r}: not a save_pretrained folder.")
    with open(os.path.join(folder, CONFIG_FILE)) as handle:
        config = json.load(handle)
    if SAFETENSORS_FILE in present:
        state = read_safetensors(os.path.join(folder, SAFETENSORS_FILE))
    elif SAFETENSORS_INDEX in present:
        state = _read_sharded(folder, SAFETENSORS_INDEX, read_safetensors)
    elif BIN_FILE in present:
        state = _read_bin(os.path.join(folder, BIN_FILE), weights_only)
    elif BIN_INDEX in present:
        state = _read_sharded(folder, BIN_INDEX, lambda p: _read_bin(p, weights_only))
    else:
        raise FileNotFoundError(
            f"No weights in {folder!r}: expected one of {list(WEIGHT_FILES)}. "
            f"Found: {sorted(present)}"
        )
    return config, state


def _square(name: str, value: Any) -> int | tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"config `{name}`={value!r}: expected an int or a pair.")
        return (int(value[0]), int(value[1])) if value[0] != value[1] else int(value[0])
    return int(value)


def encoder_kwargs_from_config(config: Mapping) -> dict:
    """``VisionTransformer`` keyword arguments of an IJepa ``config.json`` dict.

    Reads ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size`` (-> ``mlp_ratio``), ``hidden_act`` (->
    ``activation``), ``layer_norm_eps``, ``qkv_bias``, ``image_size``,
    ``patch_size``, ``num_channels``, ``initializer_range``; a field left
    out takes the ``IJepaConfig`` default. Dropout probabilities above 0 are
    not carried over (the Keras ViT has no dropout; a warning says so).
    """
    model_type = config.get("model_type", "ijepa")
    if model_type != "ijepa":
        raise ValueError(f"The config is for model_type={model_type!r}, not 'ijepa'.")
    get = {**HF_CONFIG_DEFAULTS, **config}.__getitem__
    kwargs = {arg: cast(get(field)) for field, (arg, cast) in CONFIG_FIELDS.items()}
    dim, heads = kwargs["embed_dim"], kwargs["num_heads"]
    head_dim = config.get("head_dim")
    if head_dim is not None and int(head_dim) * heads != dim:
        raise ValueError(
            f"config head_dim={head_dim} with {heads} heads does not cover "
            f"hidden_size={dim}; only head_dim = hidden_size / heads is supported."
        )
    act = get("hidden_act")
    if act not in HF_ACTIVATIONS:
        raise ValueError(
            f"config hidden_act={act!r} is not supported. Supported: {sorted(HF_ACTIVATIONS)}"
        )
    patch = _square("patch_size", get("patch_size"))
    if isinstance(patch, tuple):
        raise ValueError(
            f"config patch_size={get('patch_size')!r}: only square patches are supported."
        )
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if float(get(name)) > 0:
            warnings.warn(
                f"config {name}={get(name)} is not carried over: the Keras "
                "VisionTransformer has no dropout.",
                stacklevel=3,
            )
    return dict(
        kwargs,
        image_size=_square("image_size", get("image_size")),
        patch_size=patch,
        mlp_ratio=mlp_ratio(dim, int(get("intermediate_size"))),
        activation=HF_ACTIVATIONS[act],
    )


def config_and_state(
    source: Any, config: Any = None, weights_only: bool = True
) -> tuple[dict, dict[str, Any]]:
    """``(config dict, {5.x key: np.ndarray})`` of a folder, an ``IJepaModel`` or a state dict.

    ``config`` (an ``IJepaConfig`` or ``config.json`` dict) goes with a state
    dict only: a folder and a model have their own.
    """
    state: Mapping[str, Any]
    if isinstance(source, (str, os.PathLike)):
        if config is not None:
            raise ValueError(
                "Invalid arguments: `config` goes with a state dict; a folder "
                f"has its own {CONFIG_FILE}."
            )
        config, state = read_hf_checkpoint(source, weights_only=weights_only)
    elif isinstance(source, Mapping):
        if config is None:
            raise ValueError(
                "Invalid arguments: a state dict needs `config=` (the model's "
                "IJepaConfig or config.json dict): the number of heads, the "
                "activation and the epsilon are not in the tensors."
            )
        state = source
    elif hasattr(source, "state_dict"):  # a live transformers IJepaModel (5.x or 4.x)
        if config is not None:
            raise ValueError(
                "Invalid arguments: `config` goes with a state dict; a model has its own."
            )
        if hasattr(source, "ijepa") and hasattr(source, "classifier"):
            raise ValueError(
                f"Received a {type(source).__name__}: pass its `.ijepa` (the "
                "IJepaModel); the classification head has no counterpart here."
            )
        if getattr(source, "config", None) is None:
            raise ValueError(
                "Expected a transformers IJepaModel (with `.config` and "
                f"`.state_dict()`). Received: {type(source).__name__}"
            )
        config, state = source.config, dict(source.state_dict())
    else:
        raise invalid(
            "source",
            "a save_pretrained folder, an IJepaModel or a state dict",
            type(source).__name__,
        )
    if hasattr(config, "to_dict"):  # an IJepaConfig
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise invalid("config", "a dict (config.json) or an IJepaConfig", type(config).__name__)
    return dict(config), canonical_state(state, "the Hugging Face state dict")


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


def write_hf_folder(folder: str | os.PathLike, config: Mapping, state: Mapping) -> None:
    """Write ``config.json`` and ``model.safetensors`` (``state`` as it is) into ``folder``."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise invalid("folder", "a folder (this is a file)", os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    stale = sorted(set(os.listdir(folder)) & {SAFETENSORS_INDEX, BIN_FILE, BIN_INDEX})
    if stale:
        raise ValueError(
            f"{os.fspath(folder)!r} already holds {stale}, which transformers "
            "could load instead of the export: remove them or pick another folder."
        )
    write_safetensors(os.path.join(folder, SAFETENSORS_FILE), state, metadata={"format": "pt"})
    with open(os.path.join(folder, CONFIG_FILE), "w") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
