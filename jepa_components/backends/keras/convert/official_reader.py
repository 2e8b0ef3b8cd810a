"""Reading official I-JEPA checkpoints: the file, its parts, the architecture they imply.

The file side of :mod:`~jepa_components.backends.keras.convert.official`:
open a facebookresearch/ijepa ``.pth`` / ``.pth.tar`` (no torch needed, see
:mod:`~jepa_components.backends.keras.convert.torch_save`), split it into
encoder / predictor / target-encoder state dicts (with or without DDP's
``module.`` prefix), and read the model sizes off the tensor shapes. Nothing
here touches Keras weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jepa_components._validation import invalid
from jepa_components.backends.keras.convert.mapping import mlp_ratio, to_numpy
from jepa_components.backends.keras.convert.torch_save import load_torch_file
from jepa_components.backends.keras.models.vit import VIT_SIZES

__all__ = [
    "infer_official_architecture",
    "official_shapes",
    "read_official_checkpoint",
    "split_checkpoint",
]

PARTS = ("encoder", "predictor", "target_encoder")
DDP_PREFIX = "module."
# num_heads cannot be read from tensor shapes: the official sizes (embed_dim -> heads).
OFFICIAL_NUM_HEADS = {dim: heads for dim, _, heads, _ in VIT_SIZES.values()}
# Defaults of the official ``helper.init_model`` for a predictor built from scratch.
DEFAULT_PREDICTOR_EMBED_DIM, DEFAULT_PREDICTOR_DEPTH = 384, 6


def _state_dict(value, where):
    """``{key: np.ndarray}`` with the DDP ``module.`` prefix removed."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{where} must be a state dict (a mapping of names to tensors). "
            f"Received: {type(value).__name__}"
        )
    state = {}
    for key, tensor in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} has a key of type {type(key).__name__}; keys are names.")
        name = key.removeprefix(DDP_PREFIX)
        if name in state:
            raise ValueError(
                f"{where} holds `{name}` both with and without the `{DDP_PREFIX}` prefix."
            )
        state[name] = to_numpy(tensor, f"{where}[{key!r}]")
    return state


def _looks_like_encoder(mapping):
    return any(str(k).removeprefix(DDP_PREFIX) == "patch_embed.proj.weight" for k in mapping)


def split_checkpoint(checkpoint: Any) -> dict[str, dict[str, np.ndarray]]:
    """``{part: state}``: a training checkpoint, or a bare encoder (also the target)."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            "Expected an official I-JEPA checkpoint: a dict with keys "
            f"{PARTS}, or an encoder state dict. "
            f"Received: {type(checkpoint).__name__}"
        )
    if any(part in checkpoint for part in PARTS):
        missing = [part for part in PARTS if part not in checkpoint]
        if missing:
            raise ValueError(
                f"The checkpoint misses the key(s) {missing}: an official training checkpoint "
                f"holds {list(PARTS)}. Found keys: {sorted(map(str, checkpoint))}. To load "
                "an encoder alone, pass its state dict, e.g. checkpoint['target_encoder']."
            )
        return {part: _state_dict(checkpoint[part], f"checkpoint[{part!r}]") for part in PARTS}
    if _looks_like_encoder(checkpoint):
        state = _state_dict(checkpoint, "the encoder state dict")
        return {"encoder": state, "target_encoder": state}
    keys = sorted(map(str, checkpoint))
    raise ValueError(
        f"Not an official I-JEPA checkpoint: expected the keys {list(PARTS)} (a training "
        "checkpoint) or `patch_embed.proj.weight` (an encoder state dict). Found keys: "
        f"{keys[:10]}{' ...' if len(keys) > 10 else ''}"
    )


def read_official_checkpoint(path: str | os.PathLike, weights_only: bool = True) -> dict:
    """Read an official ``.pth`` / ``.pth.tar`` file; no torch needed.

    Files ``torch.save`` wrote (torch >= 1.6, as every official checkpoint)
    are read by :func:`~jepa_components.backends.keras.convert.torch_save.read_torch_save`,
    so torch is never imported: on ``KERAS_BACKEND=tensorflow`` that matters,
    as torch imported after tensorflow can crash it.

    Args:
        path: str or path-like.
        weights_only: True (default) refuses files that would run arbitrary
            code when unpickled. Official checkpoints read with True. False
            trusts the file and reads it with ``torch.load`` (torch needed),
            as do files from torch < 1.6.

    Returns:
        The checkpoint dict; the state dicts (``encoder``, ``predictor``,
        ``target_encoder`` or a bare encoder) as ``{key: np.ndarray}``, other
        entries (``epoch``, ``opt``, ...) as stored (their tensors as NumPy
        arrays, or as torch tensors when ``torch.load`` read the file).

    Example (a file as the official ``train.py`` saves it; torch writes it):
        >>> import tempfile, torch
        >>> path = os.path.join(tempfile.mkdtemp(), "latest.pth.tar")
        >>> encoder = {"module.patch_embed.proj.weight": torch.zeros(8, 3, 4, 4)}
        >>> torch.save({"encoder": encoder, "predictor": {}, "target_encoder": encoder,
        ...             "opt": None, "epoch": 3}, path)
        >>> checkpoint = read_official_checkpoint(path)
        >>> checkpoint["epoch"], checkpoint["encoder"]["patch_embed.proj.weight"].shape
        (3, (8, 3, 4, 4))
    """
    checkpoint = load_torch_file(path, weights_only)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"{os.fspath(path)!r} holds a {type(checkpoint).__name__}, not an "
            "official I-JEPA checkpoint dict."
        )
    checkpoint = dict(checkpoint)
    if any(part in checkpoint for part in PARTS):
        for part in PARTS:
            if isinstance(checkpoint.get(part), Mapping):
                checkpoint[part] = _state_dict(checkpoint[part], f"checkpoint[{part!r}]")
        return checkpoint
    return (
        _state_dict(checkpoint, "the encoder state dict")
        if _looks_like_encoder(checkpoint)
        else checkpoint
    )


# ------------------------------------------------------------ architecture
def _shape(state, key, where, ndim):
    if key not in state:
        raise ValueError(f"{where} misses the key `{key}`, needed to infer the architecture.")
    shape = tuple(int(s) for s in np.shape(state[key]))
    if len(shape) != ndim:
        raise ValueError(f"{where}[{key!r}] has shape {shape}; expected {ndim} dimensions.")
    return shape


def _depth(state, prefix, where):
    found = {int(m.group(1)) for k in state for m in [re.match(rf"{prefix}\.(\d+)\.", k)] if m}
    if not found or found != set(range(len(found))):
        raise ValueError(
            f"{where} must hold blocks `{prefix}.0` ... `{prefix}.<depth-1>`. "
            f"Found block numbers: {sorted(found)}"
        )
    return len(found)


def _block_config(state, prefix, dim):
    hidden = _shape(state, f"{prefix}.0.mlp.fc1.weight", prefix, 2)[0]
    return dict(mlp_ratio=mlp_ratio(dim, hidden), qkv_bias=f"{prefix}.0.attn.qkv.bias" in state)


def infer_official_architecture(
    checkpoint: Mapping,
    *,
    model_name: str | None = None,
    image_size: int | None = None,
    num_heads: int | None = None,
    predictor_embed_dim: int | None = None,
    predictor_depth: int | None = None,
    predictor_num_heads: int | None = None,
) -> tuple[dict, dict]:
    """Encoder and predictor arguments of an official checkpoint, from tensor shapes.

    Read from shapes: ``embed_dim`` and ``in_channels`` and ``patch_size``
    (``patch_embed.proj.weight``), ``depth`` (number of ``blocks.i``),
    ``mlp_ratio`` (``fc1``), ``qkv_bias``, the image size
    (``sqrt(N) * patch_size`` from ``pos_embed``), and the predictor's
    width, depth and MLP ratio. ``num_heads`` is not in the shapes: it comes
    from ``num_heads``, else ``model_name`` (a key of ``VIT_SIZES``), else the
    official size with that width (192: 3, 384: 6, 768: 12, 1024/1280/1408:
    16). The predictor uses the encoder's heads (official ``init_model``)
    unless ``predictor_num_heads`` is given.

    Args:
        checkpoint: a training checkpoint dict or an encoder state dict
            (values: anything with a ``.shape``).
        model_name, image_size, num_heads, predictor_embed_dim,
        predictor_depth, predictor_num_heads: explicit values (None: infer).
            ``predictor_*`` size a new predictor when the checkpoint has
            none (default 384 wide, 6 deep, as ``init_model``).

    Returns:
        ``(encoder_kwargs, predictor_kwargs)``: arguments of
        :class:`VisionTransformer` and :class:`Predictor`.

    Example:
        >>> shapes = {"patch_embed.proj.weight": (192, 3, 16, 16), "pos_embed": (1, 196, 192),
        ...           "blocks.0.mlp.fc1.weight": (768, 192)}
        >>> state = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}
        >>> encoder_kwargs, _ = infer_official_architecture(state)
        >>> encoder_kwargs["num_heads"], encoder_kwargs["image_size"]
        (3, 224)
    """
    states = split_checkpoint(checkpoint)
    if model_name is not None and model_name not in VIT_SIZES:
        raise invalid("model_name", f"one of {sorted(VIT_SIZES)}", model_name)
    encoder, where = states["encoder"], "The encoder state dict"
    dim, channels, patch, patch_w = _shape(encoder, "patch_embed.proj.weight", where, 4)
    if patch != patch_w:
        raise ValueError(f"{where}: non-square patches {(patch, patch_w)} are not supported.")
    num_patches = _shape(encoder, "pos_embed", where, 3)[1]
    side = int(round(np.sqrt(num_patches)))
    if side * side != num_patches:
        raise ValueError(
            f"`pos_embed` has {num_patches} patches, not a square grid as the official code builds."
        )
    if num_heads is None:
        if model_name is not None:
            num_heads = VIT_SIZES[model_name][2]
        elif dim in OFFICIAL_NUM_HEADS:
            num_heads = OFFICIAL_NUM_HEADS[dim]
        else:
            raise ValueError(
                f"Cannot infer `num_heads` for embed_dim={dim}: not an official size "
                f"({sorted(OFFICIAL_NUM_HEADS)}). Pass num_heads=... (or model_name=...)."
            )
    if model_name is not None and VIT_SIZES[model_name][0] != dim:
        raise ValueError(
            f"Invalid value for argument `model_name`: {model_name} has "
            f"embed_dim {VIT_SIZES[model_name][0]}, the checkpoint {dim}."
        )
    encoder_kwargs = dict(
        image_size=side * patch if image_size is None else image_size,
        patch_size=patch,
        in_channels=channels,
        embed_dim=dim,
        depth=_depth(encoder, "blocks", where),
        num_heads=int(num_heads),
        **_block_config(encoder, "blocks", dim),
    )

    predictor = states.get("predictor")
    predictor_kwargs = dict(embed_dim=dim, num_heads=int(predictor_num_heads or num_heads))
    if predictor is None:
        predictor_kwargs.update(
            predictor_embed_dim=predictor_embed_dim or DEFAULT_PREDICTOR_EMBED_DIM,
            depth=predictor_depth or DEFAULT_PREDICTOR_DEPTH,
        )
    else:
        where = "checkpoint['predictor']"
        width = _shape(predictor, "predictor_embed.weight", where, 2)[0]
        predictor_kwargs.update(
            predictor_embed_dim=predictor_embed_dim or width,
            depth=predictor_depth or _depth(predictor, "predictor_blocks", where),
            **_block_config(predictor, "predictor_blocks", width),
        )
    if predictor_kwargs["predictor_embed_dim"] % predictor_kwargs["num_heads"]:
        raise ValueError(
            f"The predictor width {predictor_kwargs['predictor_embed_dim']} is not divisible by "
            f"{predictor_kwargs['num_heads']} heads (the encoder's, as official init_model). "
            "Pass predictor_num_heads=..."
        )
    return encoder_kwargs, predictor_kwargs


def _block_shapes(prefix: str, depth: int, dim: int, hidden: int, qkv_bias: bool) -> dict:
    shapes = {}
    for i in range(depth):
        block = {
            "norm1.weight": (dim,),
            "norm1.bias": (dim,),
            "attn.qkv.weight": (3 * dim, dim),
            **({"attn.qkv.bias": (3 * dim,)} if qkv_bias else {}),
            "attn.proj.weight": (dim, dim),
            "attn.proj.bias": (dim,),
            "norm2.weight": (dim,),
            "norm2.bias": (dim,),
            "mlp.fc1.weight": (hidden, dim),
            "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (dim, hidden),
            "mlp.fc2.bias": (dim,),
        }
        shapes.update({f"{prefix}.{i}.{key}": shape for key, shape in block.items()})
    return shapes


def official_shapes(encoder_kwargs: Mapping, predictor_kwargs: Mapping) -> dict[str, dict]:
    """``{part: {official key: shape}}`` of the model these arguments build, unbuilt.

    A ``-1`` stands for the number of patches of a position table (another
    grid may be accepted, see the module docstring).
    """
    dim, patch = encoder_kwargs["embed_dim"], encoder_kwargs["patch_size"]
    encoder = {
        "patch_embed.proj.weight": (dim, encoder_kwargs.get("in_channels", 3), patch, patch),
        "patch_embed.proj.bias": (dim,),
        "pos_embed": (1, -1, dim),
        **_block_shapes(
            "blocks",
            encoder_kwargs["depth"],
            dim,
            int(dim * encoder_kwargs.get("mlp_ratio", 4.0)),
            encoder_kwargs.get("qkv_bias", True),
        ),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    width = predictor_kwargs["predictor_embed_dim"]
    predictor = {
        "mask_token": (1, 1, width),
        "predictor_embed.weight": (width, dim),
        "predictor_embed.bias": (width,),
        "predictor_pos_embed": (1, -1, width),
        **_block_shapes(
            "predictor_blocks",
            predictor_kwargs["depth"],
            width,
            int(width * predictor_kwargs.get("mlp_ratio", 4.0)),
            predictor_kwargs.get("qkv_bias", True),
        ),
        "predictor_norm.weight": (width,),
        "predictor_norm.bias": (width,),
        "predictor_proj.weight": (dim, width),
        "predictor_proj.bias": (dim,),
    }
    return {"encoder": encoder, "predictor": predictor, "target_encoder": encoder}
