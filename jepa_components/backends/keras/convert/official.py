"""Official I-JEPA checkpoints (facebookresearch/ijepa ``.pth`` / ``.pth.tar``) <-> Keras ``IJEPA``.

Read a checkpoint (no torch needed, see
:mod:`~jepa_components.backends.keras.convert.torch_save`), split it into
encoder / predictor / target-encoder state dicts (with or without DDP's
``module.`` prefix), infer the architecture from the tensor shapes, load it
strictly, and export a model back. The Keras layers mirror the official
modules name for name (``src/models/vision_transformer.py``), so the table
(:data:`ENCODER_ROWS`, :data:`PREDICTOR_ROWS`) maps keys one to one:

- ``patch_embed.proj.weight`` ``(D, C, p, p)`` -> Conv2D kernel ``(p, p, C, D)``;
- every Linear ``*.weight`` ``(out, in)`` -> Dense kernel ``(in, out)``
  (``attn.qkv`` is one Linear of width ``3 D``, as the official one);
- LayerNorm ``weight`` / ``bias`` -> ``gamma`` / ``beta``; biases and
  ``mask_token`` ``(1, 1, d)`` unchanged;
- ``pos_embed`` and ``predictor_pos_embed``: fixed buffers in the official
  code. A table equal to the 2-D sin-cos one (max abs difference <=
  ``SINCOS_TOLERANCE`` = 1e-5, float32 rounding) is the fixed table, a
  function of the grid here. An encoder table that differs (a fork that
  trained its positions, a model converted from elsewhere) is never dropped
  or replaced: the loader builds the encoders with ``pos_embed="learned"``
  and loads the table into that weight; a given model with fixed positions
  refuses it. The predictor has fixed positions only. Export writes the
  table each encoder adds (learned or fixed).

Loading is strict and all-or-nothing (see
:func:`~jepa_components.backends.keras.convert.mapping.load_entries`). The
optimizer state (``opt``) is not converted in either direction. Writing a
``.pth`` file needs torch, on any Keras backend; state dicts in memory
(torch tensors or numpy arrays) need nothing beyond Keras.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from jepa_components._validation import check_seed, invalid
from jepa_components.backends.keras.convert.checks import check_architecture, check_shapes
from jepa_components.backends.keras.convert.mapping import (
    CONV,
    SAME,
    Transform,
    export_entries,
    is_learned_table,
    linear,
    load_entries,
    norm,
    position_entry,
    table_entries,
)
from jepa_components.backends.keras.convert.official_reader import (
    DDP_PREFIX,
    PARTS,
    infer_official_architecture,
    official_shapes,
    read_official_checkpoint,
    split_checkpoint,
)
from jepa_components.backends.keras.convert.torch_save import import_torch
from jepa_components.backends.keras.layers import derive_seed
from jepa_components.backends.keras.models.ijepa import IJEPA
from jepa_components.backends.keras.models.predictor import Predictor
from jepa_components.backends.keras.models.vit import VisionTransformer

__all__ = [
    "ENCODER_ROWS",
    "PREDICTOR_ROWS",
    "export_official_checkpoint",
    "infer_official_architecture",
    "load_official_checkpoint",
    "official_shapes",
    "official_state_dicts",
    "official_tables",
    "read_official_checkpoint",
]


def _block_rows(prefix: str) -> list[tuple[str, str, Transform]]:
    """One pre-norm block: the Keras sublayers carry the official names."""
    block = f"{prefix}.{{i}}"
    return [
        *norm(f"{block}.norm1"),
        *linear(f"{block}.attn.qkv"),
        *linear(f"{block}.attn.proj"),
        *norm(f"{block}.norm2"),
        *linear(f"{block}.mlp.fc1"),
        *linear(f"{block}.mlp.fc2"),
    ]


# (official key, Keras weight path, transform); `{i}` rows repeat per block.
ENCODER_ROWS = [*linear("patch_embed.proj", transform=CONV), *_block_rows("blocks"), *norm("norm")]
PREDICTOR_ROWS = [
    ("mask_token", "mask_token", SAME),
    *linear("predictor_embed"),
    *_block_rows("predictor_blocks"),
    *norm("predictor_norm"),
    *linear("predictor_proj"),
]


def _grid(layer: Any) -> tuple[int, ...]:
    grid = getattr(layer, "grid_size", None)
    if grid is None:  # a square predictor
        side = int(round(np.sqrt(layer.num_patches)))
        grid = (side, side)
    return tuple(int(g) for g in grid)


def official_tables(model: Any) -> dict[str, list]:
    """``{part: entries}`` of an ``IJEPA`` in the official layout (see the module docstring)."""
    try:
        tables: dict[str, list] = {}
        for part in PARTS:
            layer = getattr(model, part)
            rows, pos_key, width = (
                (PREDICTOR_ROWS, "predictor_pos_embed", layer.predictor_embed_dim)
                if part == "predictor"
                else (ENCODER_ROWS, "pos_embed", layer.embed_dim)
            )
            position = position_entry(pos_key, layer, _grid(layer), width, other_grids=True)
            tables[part] = table_entries(layer, rows, [position])
        return tables
    except AttributeError as error:
        raise invalid(
            "model",
            "an IJEPA whose encoder is a VisionTransformer and whose predictor is a Predictor",
            f"{model!r} ({error})",
        ) from error


# ------------------------------------------------------------------ load, export
def load_official_checkpoint(
    path_or_state: str | os.PathLike | Mapping,
    model: IJEPA | None = None,
    *,
    model_name: str | None = None,
    image_size: int | None = None,
    num_heads: int | None = None,
    predictor_embed_dim: int | None = None,
    predictor_depth: int | None = None,
    predictor_num_heads: int | None = None,
    weights_only: bool = True,
    seed: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> IJEPA:
    """Build (or fill) an :class:`IJEPA` from an official I-JEPA checkpoint.

    Numerically the same network as the official PyTorch modules
    (facebookresearch/ijepa ``src/models/vision_transformer.py``; float32
    parity on jax, torch and tensorflow is tested in
    ``tests/backends/keras/test_checkpoints.py``). Images are channels last
    here: ``(B, H, W, C)``, the official NCHW transposed.

    Args:
        path_or_state: a ``.pth`` / ``.pth.tar`` file (no torch needed), or a dict:
            an official training checkpoint (``encoder``, ``predictor``,
            ``target_encoder``; other keys such as ``opt`` and ``epoch`` are
            ignored), or a bare encoder state dict, which then fills both the
            encoder and the target encoder, with a new predictor. Keys may
            carry the DDP ``module.`` prefix; values are torch tensors or
            numpy arrays.
        model: None (build from the checkpoint) or an ``IJEPA`` to fill; its
            architecture must match (checked key by key).
        model_name, image_size, num_heads, predictor_embed_dim,
        predictor_depth, predictor_num_heads: architecture given explicitly,
            see :func:`infer_official_architecture` (only without ``model``).
            An ``image_size`` other than the checkpoint's uses the fixed
            sin-cos positions of the new grid (refused for a learned table:
            tables are not interpolated).
        weights_only: True refuses pickled code (read without torch); False
            trusts the file and reads it with ``torch.load`` (needs torch).
        seed: None or int, seeds the initializers of weights the checkpoint
            does not hold (a new predictor).
        model_kwargs: dict of extra ``IJEPA`` arguments (``loss``,
            ``momentum``...), only without ``model``.

    Returns:
        The ``IJEPA``. ``opt`` (the optimizer state) is not converted. Its
        encoders have ``pos_embed="learned"`` when a file's encoder table is
        not the fixed sin-cos one (see the module docstring).

    Raises:
        ValueError: not a checkpoint, a truncated file, missing or
            unexpected keys, shape mismatches (key and both shapes named),
            a learned table for a given model with fixed positions, a
            predictor table that is not sin-cos. Nothing is loaded when any
            check fails.
        ImportError: reading a file with ``torch.load`` without torch installed.
        FileNotFoundError: no such file.

    Example (a tiny model through its official state dicts):

        >>> from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                             num_heads=2, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16,
        ...                       depth=1, num_heads=2, seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> loaded = load_official_checkpoint(official_state_dicts(model), num_heads=2)
        >>> loaded.encoder.depth, loaded.encoder.pos_embed, loaded.predictor.predictor_embed_dim
        (1, 'sincos', 16)

    ViT-H/14 of the paper (``IN1K-vit.h.14-300e.pth.tar`` of the official
    README; architecture inferred, images channels last)::

        import keras
        import numpy as np
        from jepa_components.backends.keras import (
            MaskedImageDataset, TargetEMA, load_official_checkpoint, make_adamw)
        from jepa_components.backends.keras.convert import read_official_checkpoint
        from jepa_components.masks import MultiBlockMaskSampler

        path = "IN1K-vit.h.14-300e.pth.tar"
        model = load_official_checkpoint(path)
        images = np.random.rand(8, 224, 224, 3).astype("float32")  # normalized, NHWC
        patch_features = model.target_encoder(images)  # (8, 256, 1280), no class token
        image_features = model.features(images)        # (8, 1280), mean over patches

        # Fine-tune: the encoder is an ordinary Keras layer.
        encoder = model.target_encoder
        encoder.trainable = True
        inputs = keras.Input((224, 224, 3))
        pooled = keras.layers.GlobalAveragePooling1D()(encoder(inputs))
        classifier = keras.Model(inputs, keras.layers.Dense(1000)(pooled))

        # Or continue pretraining where the official run stopped.
        model = load_official_checkpoint(path)
        done = read_official_checkpoint(path)["epoch"]  # epochs completed
        data = MaskedImageDataset(images, MultiBlockMaskSampler(grid_size=(16, 16)),
                                  batch_size=4)
        steps, epochs = len(data), 300
        model.compile(optimizer=make_adamw(steps_per_epoch=steps, epochs=epochs))
        model.optimizer.iterations.assign(done * steps)  # resume the LR / WD schedules
        model.ema_updates.assign(done * steps)           # resume the momentum schedule
        model.fit(data, epochs=epochs, initial_epoch=done,
                  callbacks=[TargetEMA(total_steps=steps * epochs)])
    """
    arch: dict[str, Any] = dict(
        model_name=model_name,
        image_size=image_size,
        num_heads=num_heads,
        predictor_embed_dim=predictor_embed_dim,
        predictor_depth=predictor_depth,
        predictor_num_heads=predictor_num_heads,
    )
    if model is not None and (any(v is not None for v in arch.values()) or model_kwargs):
        given = sorted(k for k, v in arch.items() if v is not None) + (
            ["model_kwargs"] if model_kwargs else []
        )
        raise ValueError(
            "Invalid arguments: pass either `model` or architecture arguments, "
            f"not both. Received: model and {given}"
        )
    if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
        raise invalid("model_kwargs", "None or a dict", model_kwargs)
    check_seed(seed)
    if model is not None and not isinstance(model, IJEPA):
        raise invalid("model", "None or an IJEPA", type(model).__name__)
    checkpoint: Mapping[str, Any]
    if isinstance(path_or_state, (str, os.PathLike)):
        checkpoint = read_official_checkpoint(path_or_state, weights_only=weights_only)
        source = f"The checkpoint {os.fspath(path_or_state)!r}"
    elif isinstance(path_or_state, Mapping):
        checkpoint, source = path_or_state, "The checkpoint"
    else:
        raise invalid(
            "path_or_state", "a file path or a checkpoint dict", type(path_or_state).__name__
        )
    states = split_checkpoint(checkpoint)
    if model is None:
        encoder_kwargs, predictor_kwargs = infer_official_architecture(checkpoint, **arch)
        check_architecture(
            {
                "embed_dim": encoder_kwargs["embed_dim"],
                "depth": encoder_kwargs["depth"],
                "patch_size": encoder_kwargs["patch_size"],
                "in_channels": encoder_kwargs["in_channels"],
                **(
                    {}
                    if isinstance(encoder_kwargs["image_size"], (tuple, list))
                    else {"image_size": encoder_kwargs["image_size"]}
                ),
                "predictor_embed_dim": predictor_kwargs["predictor_embed_dim"],
                "predictor_depth": predictor_kwargs["depth"],
            },
            source,
        )
        # Every declared shape against the inferred architecture, before building it.
        shapes = official_shapes(encoder_kwargs, predictor_kwargs)
        check_shapes(
            [(f"checkpoint[{part!r}]: ", shapes[part], state) for part, state in states.items()],
            source,
            refuse_broadcast=isinstance(path_or_state, (str, os.PathLike)),
        )
        if any(is_learned_table(states[p].get("pos_embed")) for p in ("encoder", "target_encoder")):
            encoder_kwargs["pos_embed"] = "learned"
        encoder = VisionTransformer(**encoder_kwargs, seed=seed)
        grid = encoder.grid_size
        predictor = Predictor(
            num_patches=encoder.num_patches,
            grid_size=None if grid[0] == grid[1] else grid,
            seed=derive_seed(seed, 1),
            **predictor_kwargs,
        )
        model = IJEPA(encoder=encoder, predictor=predictor, **(model_kwargs or {}))
    tables = official_tables(model)
    load_entries(
        [(f"checkpoint[{part!r}]: ", tables[part], state) for part, state in states.items()], source
    )
    if "predictor" not in states:
        warnings.warn(
            "The checkpoint holds an encoder only: encoder and target encoder were "
            "loaded, the predictor keeps its initial weights.",
            stacklevel=2,
        )
    return model


def official_state_dicts(model: IJEPA, ddp_prefix: bool = False) -> dict[str, dict]:
    """The official state dicts of an ``IJEPA``, as float32 numpy arrays.

    Returns ``{"encoder": {...}, "predictor": {...}, "target_encoder":
    {...}}`` with the official keys (``pos_embed`` and
    ``predictor_pos_embed`` included) and layouts; ``ddp_prefix=True``
    prefixes every key with ``module.`` (the official ``train.py`` saves
    DDP-wrapped modules). Needs no torch.

    Example:
        >>> from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                             num_heads=2, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16,
        ...                       depth=1, num_heads=2, seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> states = official_state_dicts(model)
        >>> sorted(states), states["encoder"]["blocks.0.attn.qkv.weight"].shape  # (3 D, D)
        (['encoder', 'predictor', 'target_encoder'], (96, 32))
    """
    prefix = DDP_PREFIX if ddp_prefix else ""
    states = {}
    for part, entries in official_tables(model).items():
        grid = _grid(getattr(model, part))
        if grid[0] != grid[1]:
            raise ValueError(
                f"The {part} uses a non-square {grid} patch grid; the official "
                "code only builds square ones."
            )
        states[part] = export_entries(entries, rename=lambda key: prefix + key)
    return states


def export_official_checkpoint(
    model: IJEPA,
    path: str | os.PathLike,
    *,
    epoch: int = 0,
    ddp_prefix: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write an ``IJEPA`` as an official training checkpoint (needs torch).

    The file is a ``torch.save`` dict ``{"encoder", "predictor",
    "target_encoder": state dicts, "opt": None, "scaler": None, "epoch"}``
    that the official code loads without missing or unexpected keys:
    ``encoder, predictor = init_model(device, patch_size, model_name,
    crop_size, pred_depth, pred_emb_dim)`` then
    ``encoder.load_state_dict(ckpt["encoder"])`` (strict). ``init_model``
    builds the predictor with the encoder's heads and MLP ratio 4; other
    predictors load into ``vit_predictor`` built by hand. The official
    ``load_checkpoint`` (DDP-wrapped modules: ``ddp_prefix=True``) loads the
    weights, then fails on ``opt=None`` and restarts its schedules at epoch
    0: the Keras optimizer state is not converted.

    Args:
        model: an ``IJEPA`` with a ``VisionTransformer`` encoder (square
            grid) and a ``Predictor``.
        path: str or path-like of the file to write.
        epoch: int >= 0, stored as ``epoch``.
        ddp_prefix: bool, prefix keys with ``module.``.
        extra: None or a dict of more entries (e.g. ``{"lr": 1e-3}``).

    Example:
        >>> from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
        >>> encoder = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                             num_heads=2, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16,
        ...                       depth=1, num_heads=2, seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "ijepa-keras.pth.tar")
        >>> export_official_checkpoint(model, path, epoch=10)
        >>> read_official_checkpoint(path)["epoch"]
        10
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise invalid("epoch", "an integer >= 0", epoch)
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("path", "a str or path-like", path)
    if extra is not None and not isinstance(extra, Mapping):
        raise invalid("extra", "None or a dict", type(extra).__name__)
    states = official_state_dicts(model, ddp_prefix=ddp_prefix)
    torch = import_torch("Writing a PyTorch checkpoint file")
    checkpoint: dict[str, Any] = {
        part: {key: torch.from_numpy(value) for key, value in state.items()}
        for part, state in states.items()
    }
    checkpoint.update(opt=None, scaler=None, epoch=int(epoch))
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)
