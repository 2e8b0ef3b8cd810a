"""Hugging Face ``IJepaModel`` weights: folders, safetensors, key layouts, config.

The file side of :mod:`jepa_components.backends.keras.convert.hf_checkpoints`:
read a folder written by ``save_pretrained`` (``config.json`` plus
``model.safetensors``, sharded safetensors, or ``pytorch_model.bin``), a
live ``transformers.IJepaModel`` or a state dict, and bring the keys to one
layout. Nothing here touches Keras weights and nothing is ever downloaded.

Two key layouts name the same tensors (``N`` a block number):

=======================================================  ==============================
transformers 4.x (hub files; ``save_pretrained`` of 5.x)   transformers 5.x (``state_dict()``)
=======================================================  ==============================
``encoder.layer.N.attention.attention.query``             ``layers.N.attention.q_proj``
``encoder.layer.N.attention.attention.key`` / ``value``   ``layers.N.attention.k_proj`` / ``v_proj``
``encoder.layer.N.attention.output.dense``                ``layers.N.attention.o_proj``
``encoder.layer.N.intermediate.dense``                    ``layers.N.mlp.fc1``
``encoder.layer.N.output.dense``                          ``layers.N.mlp.fc2``
``encoder.layer.N.layernorm_before`` / ``_after``          ``layers.N.layernorm_before`` / ``_after``
=======================================================  ==============================

``embeddings.patch_embeddings.projection``, ``embeddings.position_embeddings``
and the final ``layernorm`` are the same in both; an ``IJepaForImageClassification``
prefixes everything with ``ijepa.``. transformers 5.x reads both layouts
(``conversion_mapping.py`` maps ``IJepaModel`` to the ViT renames) and writes
the 4.x one to disk, which is also the only one 4.x reads.

safetensors files are read and written here directly (the format is a
JSON header and raw little-endian arrays), so neither torch nor the
``safetensors`` package is needed, and ``bfloat16`` files read as float32.
``pytorch_model.bin`` files need no torch either (see
:mod:`~jepa_components.backends.keras.convert.torch_save`).
"""

import json
import os
import re
import warnings
from collections.abc import Mapping

import numpy as np

from jepa_components.backends.keras.convert.official_format import _mlp_ratio, _to_numpy
from jepa_components.backends.keras.convert.torch_save import load_torch_file

__all__ = ["read_hf_checkpoint", "read_safetensors", "write_safetensors"]

CONFIG_FILE = "config.json"
SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN_FILE, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, BIN_FILE, BIN_INDEX)
CLASSIFIER_PREFIX = "ijepa."

# transformers 4.x -> 5.x names (the 5.x names are the canonical ones here).
_V4_TO_V5 = [
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\."),
     lambda m: f"layers.{m[1]}.attention.{m[2][0]}_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\."),
     lambda m: f"layers.{m[1]}.attention.o_proj."),
    (re.compile(r"^encoder\.layer\.(\d+)\.intermediate\.dense\."),
     lambda m: f"layers.{m[1]}.mlp.fc1."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.dense\."), lambda m: f"layers.{m[1]}.mlp.fc2."),
    (re.compile(r"^encoder\.layer\.(\d+)\.(layernorm_before|layernorm_after)\."),
     lambda m: f"layers.{m[1]}.{m[2]}."),
]
_V5_TO_V4 = [
    (re.compile(r"^layers\.(\d+)\.attention\.([qkv])_proj\."),
     lambda m: f"encoder.layer.{m[1]}.attention.attention."
               f"{dict(q='query', k='key', v='value')[m[2]]}."),
    (re.compile(r"^layers\.(\d+)\.attention\.o_proj\."),
     lambda m: f"encoder.layer.{m[1]}.attention.output.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc1\."), lambda m: f"encoder.layer.{m[1]}.intermediate.dense."),
    (re.compile(r"^layers\.(\d+)\.mlp\.fc2\."), lambda m: f"encoder.layer.{m[1]}.output.dense."),
    (re.compile(r"^layers\.(\d+)\.(layernorm_before|layernorm_after)\."),
     lambda m: f"encoder.layer.{m[1]}.{m[2]}."),
]

# transformers ``ACT2FN`` names -> ``layers.ACTIVATIONS`` names (same function).
HF_ACTIVATIONS = {
    "gelu": "gelu", "gelu_python": "gelu",  # exact erf GELU
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
    "quick_gelu": "quick_gelu", "relu": "relu", "silu": "silu", "swish": "silu",
}
# and back, for export (names every transformers version knows)
KERAS_TO_HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new", "quick_gelu": "quick_gelu",
                          "relu": "relu", "silu": "silu", "swish": "silu"}
# ``IJepaConfig`` defaults, for config.json files that leave a field out.
HF_CONFIG_DEFAULTS = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    initializer_range=0.02, layer_norm_eps=1e-12, image_size=224, patch_size=16,
    num_channels=3, qkv_bias=True)


def _rename(key, rules):
    for pattern, replace in rules:
        match = pattern.match(key)
        if match:
            return replace(match) + key[match.end():]
    return key


def to_v4_key(key):
    """A 5.x key in the 4.x (hub, ``save_pretrained``) layout."""
    return _rename(key, _V5_TO_V4)


def canonical_state(state, where="the state dict"):
    """``{5.x key: np.ndarray}``: ``ijepa.`` prefix removed, 4.x names renamed.

    Both layouts (or a mix) are accepted; two keys naming one tensor are an
    error.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"{where} must be a mapping of names to tensors. "
                         f"Received: {type(state).__name__}")
    out, origin = {}, {}
    for key, value in state.items():
        name = _rename(str(key).removeprefix(CLASSIFIER_PREFIX), _V4_TO_V5)
        if name in out:
            raise ValueError(f"{where} holds `{origin[name]}` and `{key}`, two names of the "
                             f"same tensor `{name}`.")
        out[name], origin[name] = _to_numpy(value, f"{where}[{key!r}]"), key
    return out


# ------------------------------------------------------------------ safetensors
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
              "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_NP_TO_ST = {np.dtype(v).str: k for k, v in _ST_DTYPES.items() if k != "BF16"}
_MAX_HEADER = 100 << 20


def read_safetensors(path):
    """``{name: np.ndarray}`` of a ``.safetensors`` file (memory-mapped).

    bfloat16 tensors come back as float32 (exactly); other dtypes as stored.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.safetensors")
        >>> write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
        >>> read_safetensors(path)["w"].tolist()
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    where = repr(os.fspath(path))
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little") if size >= 8 else -1
        if not 2 <= length <= min(size - 8, _MAX_HEADER):
            raise ValueError(f"{where} is not a safetensors file, or it is truncated "
                             f"({size} bytes).")
        try:
            header = json.loads(handle.read(length))
        except ValueError as error:
            raise ValueError(f"{where} is not a safetensors file: its header is not "
                             f"JSON ({error}).") from None
    data = (np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
            if size > 8 + length else np.zeros(0, np.uint8))
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            kind, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            dtype = np.dtype(_ST_DTYPES[kind])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: tensor `{name}` has an unsupported or malformed "
                             f"header entry {info!r}.") from None
        if end - begin != int(np.prod(shape)) * dtype.itemsize or not 0 <= begin <= end <= len(data):
            raise ValueError(f"{where}: tensor `{name}` lies outside the file (offsets "
                             f"{begin}..{end} of {len(data)} data bytes): truncated file?")
        array = data[begin:end].view(dtype).reshape(shape)
        if kind == "BF16":  # the top half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
    return tensors


def write_safetensors(path, tensors, metadata=None):
    """Write ``{name: np.ndarray}`` as a ``.safetensors`` file.

    Args:
        path: str or path-like.
        tensors: mapping of names to numpy arrays (float16/32/64, ints, bool).
        metadata: None or ``{str: str}`` (transformers wants
            ``{"format": "pt"}``).
    """
    header, arrays, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        array = np.ascontiguousarray(value)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        kind = _NP_TO_ST.get(array.dtype.str)
        if kind is None:
            raise ValueError(f"Cannot write `{name}` of dtype {array.dtype} as safetensors.")
        header[name] = {"dtype": kind, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little"))
        handle.write(text)
        for array in arrays:
            handle.write(array.tobytes())


# ---------------------------------------------------------------------- folders
def _hub_hint(source):
    name = os.fspath(source)
    local = os.path.basename(name.rstrip("/\\")) or "model"
    return (
        f"No local folder {name!r}. load_hf_checkpoint never downloads: fetch the model "
        f"first, e.g. `hf download {name} --local-dir ./{local}` (`huggingface-cli download` "
        f"with older huggingface_hub) or, in Python, `huggingface_hub.snapshot_download("
        f"{name!r}, local_dir='./{local}')`, then pass that folder.")


def _read_bin(path, weights_only):
    state = load_torch_file(path, weights_only)
    if not isinstance(state, Mapping):
        raise ValueError(f"{os.fspath(path)!r} holds a {type(state).__name__}, not a state dict.")
    return {k: _to_numpy(v, f"{os.fspath(path)}[{k!r}]") for k, v in state.items()}


def _read_sharded(folder, index_file, read_one):
    with open(os.path.join(folder, index_file)) as handle:
        weight_map = json.load(handle).get("weight_map")
    if not isinstance(weight_map, Mapping) or not weight_map:
        raise ValueError(f"{index_file} in {folder!r} has no `weight_map`.")
    state = {}
    for shard in sorted(set(weight_map.values())):
        part = read_one(os.path.join(folder, shard))
        wrong = sorted(k for k in part if weight_map.get(k) != shard)
        if wrong:
            raise ValueError(f"Shard {shard!r} holds {wrong[:5]}, which {index_file} does not "
                             "place there.")
        state.update(part)
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise ValueError(f"{index_file} lists tensors no shard holds: {absent[:5]}")
    return state


def read_hf_checkpoint(folder, weights_only=True):
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
        raise ValueError("Invalid value for argument `folder`. Expected a str or path-like. "
                         f"Received: folder={folder!r}")
    if os.path.isfile(folder):
        raise FileNotFoundError(
            f"{os.fspath(folder)!r} is a file: pass the folder that holds {CONFIG_FILE} and "
            "the weights (what save_pretrained writes).")
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
        raise FileNotFoundError(f"No weights in {folder!r}: expected one of {list(WEIGHT_FILES)}. "
                                f"Found: {sorted(present)}")
    return config, state


def config_dict(config):
    """A config given as a dict, an ``IJepaConfig`` (``to_dict()``) -> dict."""
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise ValueError("Invalid value for argument `config`. Expected a dict (config.json) or an "
                     f"IJepaConfig. Received: {type(config).__name__}")


def model_config_and_state(model):
    """``(config, state)`` of a live ``transformers.IJepaModel`` (5.x or 4.x)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "state_dict"):
        raise ValueError("Expected a transformers IJepaModel (with `.config` and "
                         f"`.state_dict()`). Received: {type(model).__name__}")
    if hasattr(model, "ijepa") and hasattr(model, "classifier"):
        raise ValueError(f"Received a {type(model).__name__}: pass its `.ijepa` (the "
                         "IJepaModel); the classification head has no counterpart here.")
    return config_dict(config), dict(model.state_dict())


def _square(name, value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"config `{name}`={value!r}: expected an int or a pair.")
        return (int(value[0]), int(value[1])) if value[0] != value[1] else int(value[0])
    return int(value)


def encoder_kwargs_from_config(config):
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
    dim, heads = int(get("hidden_size")), int(get("num_attention_heads"))
    head_dim = config.get("head_dim")
    if head_dim is not None and int(head_dim) * heads != dim:
        raise ValueError(f"config head_dim={head_dim} with {heads} heads does not cover "
                         f"hidden_size={dim}; only head_dim = hidden_size / heads is supported.")
    act = get("hidden_act")
    if act not in HF_ACTIVATIONS:
        raise ValueError(f"config hidden_act={act!r} is not supported. Supported: "
                         f"{sorted(HF_ACTIVATIONS)}")
    patch = _square("patch_size", get("patch_size"))
    if isinstance(patch, tuple):
        raise ValueError(f"config patch_size={get('patch_size')!r}: only square patches are "
                         "supported.")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if float(get(name)) > 0:
            warnings.warn(f"config {name}={get(name)} is not carried over: the Keras "
                          "VisionTransformer has no dropout.", stacklevel=3)
    return dict(
        image_size=_square("image_size", get("image_size")), patch_size=patch,
        in_channels=int(get("num_channels")), embed_dim=dim,
        depth=int(get("num_hidden_layers")), num_heads=heads,
        mlp_ratio=_mlp_ratio(dim, int(get("intermediate_size"))),
        qkv_bias=bool(get("qkv_bias")), layer_norm_epsilon=float(get("layer_norm_eps")),
        init_std=float(get("initializer_range")), activation=HF_ACTIVATIONS[act])
