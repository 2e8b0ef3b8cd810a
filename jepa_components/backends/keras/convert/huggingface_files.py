"""Hugging Face ``IJepaModel`` files: folders, key layouts, ``config.json``.

The file side of :mod:`~jepa_components.backends.keras.convert.huggingface`:
read a folder written by ``save_pretrained`` (``config.json`` plus
``model.safetensors``, sharded safetensors, or ``pytorch_model.bin``), a
live ``transformers.IJepaModel`` or a state dict, and bring the keys to one
layout; write a folder (``config.json`` <-> ``VisionTransformer`` arguments
lives in :mod:`~jepa_components.backends.keras.convert.huggingface_config`).
Nothing here touches Keras weights and nothing is ever downloaded.

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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jepa_components._images import is_inside, open_regular_file
from jepa_components._validation import invalid
from jepa_components.backends.keras.convert.huggingface_config import (
    encoder_config,
    encoder_kwargs_from_config,
)
from jepa_components.backends.keras.convert.mapping import to_numpy
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
        if not isinstance(key, str):
            raise ValueError(f"{where} has a key of type {type(key).__name__}; keys are names.")
        name = _rename(key.removeprefix(CLASSIFIER_PREFIX), 0, 1)
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


MAX_JSON_BYTES = 64 << 20  # config.json and shard indexes


def read_json_file(path: str, folder: str) -> Any:
    """The JSON value of a file in ``folder``: a regular file, bounded, parsed strictly.

    Refused with a ``ValueError`` naming the file: not a regular file (a
    FIFO, a device), more than :data:`MAX_JSON_BYTES`, invalid JSON (the
    position is named), nesting deep enough to exhaust the recursion limit,
    ``NaN`` / ``Infinity`` (not JSON).
    """
    with open_regular_file(path) as handle:
        text = handle.read(MAX_JSON_BYTES + 1)
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{path!r} holds more than {MAX_JSON_BYTES} bytes: not a config file.")

    def constant(name):
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=constant)
    except RecursionError:
        raise ValueError(f"{path!r}: its JSON nests too deeply: refused.") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path!r} is not valid JSON: {error}.") from None


def _inside_folder(path: str, folder: str) -> bool:
    """``path`` resolves inside ``folder`` (or, for a Hugging Face cache snapshot, its blobs)."""
    if is_inside(path, folder):
        return True
    real = os.path.realpath(folder)
    cache = os.path.dirname(os.path.dirname(real))
    return os.path.basename(os.path.dirname(real)) == "snapshots" and is_inside(
        path, os.path.join(cache, "blobs")
    )


def _member(folder: str, name: str, named_by: str) -> str:
    """``folder/name``, refused unless it resolves inside ``folder`` (checked before any stat)."""
    path = os.path.join(folder, name)
    if os.path.isabs(name) or not _inside_folder(path, folder):
        raise ValueError(
            f"{named_by} names {name!r}, which resolves outside the folder {folder!r}: "
            "refused (files are never read outside the folder you name)."
        )
    if not os.path.lexists(path):
        raise ValueError(f"{named_by} names {name!r}, which is not in {folder!r}.")
    return path


def _read_sharded(
    folder: str, index_file: str, read_one: Callable[[str], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    index_path = _member(folder, index_file, "The folder")
    index = read_json_file(index_path, folder)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, Mapping) or not weight_map:
        raise ValueError(f"{index_path!r} has no `weight_map`.")
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not shard:
            raise ValueError(
                f"{index_path!r}: `weight_map[{key!r}]` must be a file name. Received: "
                f"{type(shard).__name__}"
            )
    shards = {}
    for shard in sorted(set(weight_map.values())):
        shards[shard] = _member(folder, shard, repr(index_path))
    state: dict[str, np.ndarray] = {}
    for shard, path in shards.items():
        part = read_one(path)
        wrong = sorted(k for k in part if weight_map.get(k) != shard)
        if wrong:
            raise ValueError(
                f"Shard {path!r} holds {wrong[:5]}, which {index_file} does not place there."
            )
        state.update(part)
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise ValueError(f"{index_path!r} lists tensors no shard holds: {absent[:5]}")
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
    config = read_json_file(_member(folder, CONFIG_FILE, "The folder"), folder)
    if not isinstance(config, dict):
        raise ValueError(
            f"{os.path.join(folder, CONFIG_FILE)!r} holds a JSON {type(config).__name__}, "
            "not an object (a config dict)."
        )
    if SAFETENSORS_FILE in present:
        state = read_safetensors(_member(folder, SAFETENSORS_FILE, "The folder"))
    elif SAFETENSORS_INDEX in present:
        state = _read_sharded(folder, SAFETENSORS_INDEX, read_safetensors)
    elif BIN_FILE in present:
        state = _read_bin(_member(folder, BIN_FILE, "The folder"), weights_only)
    elif BIN_INDEX in present:
        state = _read_sharded(folder, BIN_INDEX, lambda p: _read_bin(p, weights_only))
    else:
        raise FileNotFoundError(
            f"No weights in {folder!r}: expected one of {list(WEIGHT_FILES)}. "
            f"Found: {sorted(present)}"
        )
    return config, state


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
