"""Hugging Face ``IJepaModel`` folders, models and state dicts <-> Keras ``IJEPA``.

The hub's I-JEPA models (``facebook/ijepa_vith14_1k`` and siblings) are the
official checkpoints' encoders in transformers' ``IJepaModel`` layout (two
key layouts, see :mod:`~jepa_components.backends.keras.convert.huggingface_files`).
:data:`ENCODER_ROWS` maps them onto :class:`VisionTransformer`: ``q_proj``,
``k_proj``, ``v_proj`` fused into ``attn.qkv`` (``[q; k; v]``, the official
layout), Linear weights transposed, the patch convolution ``(D, C, p, p)``
-> ``(p, p, C, D)``. ``embeddings.position_embeddings`` is the fixed sin-cos
table when the file holds it (max abs difference <= 1e-5, float32
rounding), else a learned ``pos_embed`` weight holding the file's table (HF
trains it; a random-init or fine-tuned model holds any table).

Same network: pre-norm blocks, no class token, attention scaled by
``head_dim ** -0.5``, the activation, epsilon, qkv bias, image and patch
size of ``config.json``. Loading is strict and all-or-nothing (see
:func:`~jepa_components.backends.keras.convert.mapping.load_entries`): every
tensor is used exactly once; missing, unexpected (e.g. ``pooler.*``) or
mis-shaped tensors are errors naming the keys, raised before any weight is
written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jepa_components._validation import check_choice, check_int, check_pair, check_seed, invalid
from jepa_components.backends.keras.convert.checks import MAX_PATCHES, check_shapes
from jepa_components.backends.keras.convert.huggingface_files import (
    config_and_state,
    encoder_config,
    encoder_kwargs_from_config,
    read_hf_checkpoint,
    to_v4_key,
    write_hf_folder,
)
from jepa_components.backends.keras.convert.mapping import (
    CONV,
    QKV_BIAS,
    QKV_KERNEL,
    export_entries,
    is_learned_table,
    linear,
    load_entries,
    norm,
    position_entry,
    table_entries,
)
from jepa_components.backends.keras.layers import derive_seed
from jepa_components.backends.keras.models.ijepa import IJEPA
from jepa_components.backends.keras.models.predictor import Predictor
from jepa_components.backends.keras.models.vit import VisionTransformer

__all__ = [
    "ENCODER_ROWS",
    "export_hf_checkpoint",
    "hf_state_dict",
    "hf_shapes",
    "hf_table",
    "load_hf_checkpoint",
    "read_hf_checkpoint",
]

POSITION_KEY = "embeddings.position_embeddings"
ENCODERS = {"target": "target_encoder", "context": "encoder"}


def _qkv_keys(part):
    return tuple(f"layers.{{i}}.attention.{p}_proj.{part}" for p in "qkv")


# (Hugging Face 5.x key(s), Keras weight path, transform); `{i}` rows repeat per block.
ENCODER_ROWS = [
    *linear("embeddings.patch_embeddings.projection", "patch_embed.proj", CONV),
    *norm("layers.{i}.layernorm_before", "blocks.{i}.norm1"),
    (_qkv_keys("weight"), "blocks.{i}.attn.qkv.kernel", QKV_KERNEL),
    (_qkv_keys("bias"), "blocks.{i}.attn.qkv.bias", QKV_BIAS),
    *linear("layers.{i}.attention.o_proj", "blocks.{i}.attn.proj"),
    *norm("layers.{i}.layernorm_after", "blocks.{i}.norm2"),
    *linear("layers.{i}.mlp.fc1", "blocks.{i}.mlp.fc1"),
    *linear("layers.{i}.mlp.fc2", "blocks.{i}.mlp.fc2"),
    *norm("layernorm", "norm"),
]


def hf_shapes(kwargs: Mapping[str, Any], grid: tuple[int, int]) -> dict[str, tuple]:
    """``{5.x key: shape}`` of the encoder ``VisionTransformer(**kwargs)`` would be, unbuilt."""
    dim, patch, channels = kwargs["embed_dim"], kwargs["patch_size"], kwargs["in_channels"]
    hidden = int(dim * kwargs["mlp_ratio"])
    shapes: dict[str, tuple] = {
        "embeddings.patch_embeddings.projection.weight": (dim, channels, patch, patch),
        "embeddings.patch_embeddings.projection.bias": (dim,),
        POSITION_KEY: (1, grid[0] * grid[1], dim),
        "layernorm.weight": (dim,),
        "layernorm.bias": (dim,),
    }
    for i in range(kwargs["depth"]):
        block = {
            "layernorm_before.weight": (dim,),
            "layernorm_before.bias": (dim,),
            **{f"attention.{p}_proj.weight": (dim, dim) for p in "qkv"},
            **({f"attention.{p}_proj.bias": (dim,) for p in "qkv"} if kwargs["qkv_bias"] else {}),
            "attention.o_proj.weight": (dim, dim),
            "attention.o_proj.bias": (dim,),
            "layernorm_after.weight": (dim,),
            "layernorm_after.bias": (dim,),
            "mlp.fc1.weight": (hidden, dim),
            "mlp.fc1.bias": (hidden,),
            "mlp.fc2.weight": (dim, hidden),
            "mlp.fc2.bias": (dim,),
        }
        shapes.update({f"layers.{i}.{key}": shape for key, shape in block.items()})
    return shapes


def hf_table(vit: VisionTransformer) -> list:
    """The entries of a ``VisionTransformer`` in Hugging Face (5.x) names."""
    return table_entries(
        vit, ENCODER_ROWS, [position_entry(POSITION_KEY, vit, vit.grid_size, vit.embed_dim)]
    )


_HINTS = {
    "pooler.": "`pooler.*` (IJepaModel(add_pooling_layer=True); it pools the first token, "
    "which I-JEPA does not have)",
    "embeddings.mask_token": "`embeddings.mask_token` (IJepaModel(use_mask_token=True))",
    "classifier.": "`classifier.*` (an IJepaForImageClassification head)",
}


# ------------------------------------------------------------------ public
def load_hf_checkpoint(
    source: str | os.PathLike | Mapping | Any,
    *,
    config: Mapping | Any | None = None,
    predictor_embed_dim: int = 384,
    predictor_depth: int = 6,
    predictor_num_heads: int | None = None,
    seed: int | None = None,
    weights_only: bool = True,
    model_kwargs: Mapping[str, Any] | None = None,
) -> IJEPA:
    """Build an :class:`IJEPA` from Hugging Face ``IJepaModel`` weights (never downloads).

    Both the encoder and the target encoder hold the weights (the hub models
    are the official checkpoints' context encoder); the predictor is new,
    as :func:`load_official_checkpoint` builds one for a bare encoder. Same
    features as ``IJepaModel(pixel_values).last_hidden_state`` (max abs
    float32 parity on jax, torch and tensorflow is tested in
    ``tests/backends/keras/test_hf_checkpoints.py``), with images channels
    last: ``(B, H, W, C)``, the NCHW ``pixel_values`` transposed, prepared
    as the folder's ``preprocessor_config.json`` says (resize, rescale to
    [0, 1], normalize with its ``image_mean`` / ``image_std``).

    Args:
        source: a local folder written by ``save_pretrained``
            (``config.json`` plus ``model.safetensors``, its shards, or
            ``pytorch_model.bin``, read without torch); a
            ``transformers.IJepaModel``; or a state dict (tensors or numpy
            arrays, either key layout, optionally ``ijepa.``-prefixed) with
            ``config``. A hub name is not a folder: the error says how to
            download it.
        config: with a state dict only: its ``IJepaConfig`` or
            ``config.json`` dict.
        predictor_embed_dim, predictor_depth: size of the new predictor
            (384 and 6, the official ``init_model`` defaults; the paper's
            ViT-H/14 used depth 12).
        predictor_num_heads: None (the encoder's, as ``init_model``) or an
            int dividing ``predictor_embed_dim``.
        seed: None or int, seeds the new predictor's initializers.
        weights_only: for ``.bin`` files: True refuses pickled code (read
            without torch), False reads with ``torch.load`` (needs torch).
        model_kwargs: dict of extra ``IJEPA`` arguments (``loss``, ...).

    Returns:
        The ``IJEPA``. Its encoders use ``pos_embed="learned"`` when the
        file's position table is not the fixed sin-cos one; config fields
        map to ``VisionTransformer`` arguments (``hidden_act`` "gelu" ->
        ``activation="gelu"``, "gelu_new" / "gelu_pytorch_tanh" ->
        ``"gelu_tanh"``, ...).

    Raises:
        FileNotFoundError: no such folder (hub names included), or no
            config / weights in it.
        ValueError: a config this ViT cannot express (non-square patches,
            an unknown activation), missing or unexpected keys, shape
            mismatches; nothing is loaded then.

    Example (the hub's ViT-H/14, downloaded once with ``hf download
    facebook/ijepa_vith14_1k --local-dir ijepa_vith14_1k``)::

        model = load_hf_checkpoint("ijepa_vith14_1k")
        features = model.features(images)  # (B, 1280): mean over the 256 patches

    A tiny, offline round trip:

        >>> import tempfile
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                         num_heads=2, seed=0)
        >>> folder = export_hf_checkpoint(vit, tempfile.mkdtemp())
        >>> model = load_hf_checkpoint(folder, predictor_embed_dim=16, predictor_depth=1, seed=0)
        >>> from keras import ops
        >>> images = np.random.default_rng(0).random((1, 32, 32, 3), dtype="float32")
        >>> float(np.abs(ops.convert_to_numpy(model.encoder(images) - vit(images))).max()) < 1e-6
        True
        >>> model.encoder.pos_embed, tuple(model.features(images).shape)
        ('sincos', (1, 32))
    """
    check_seed(seed)
    check_int("predictor_embed_dim", predictor_embed_dim, low=1)
    check_int("predictor_depth", predictor_depth, low=1)
    check_int("predictor_num_heads", predictor_num_heads, low=1, allow_none=True)
    if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
        raise invalid("model_kwargs", "None or a dict", model_kwargs)
    config, state = config_and_state(source, config, weights_only)
    folder = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    from_file = folder is not None
    where = (
        "The Hugging Face state dict"
        if folder is None
        else f"The Hugging Face checkpoint {folder!r}"
    )
    kwargs = encoder_kwargs_from_config(
        config, "The config" if folder is None else repr(os.path.join(folder, "config.json"))
    )
    heads = predictor_num_heads or kwargs["num_heads"]
    if predictor_embed_dim % heads:
        raise invalid(
            "predictor_num_heads",
            f"a divisor of predictor_embed_dim="
            f"{predictor_embed_dim} (None uses the encoder's {kwargs['num_heads']})",
            predictor_num_heads,
        )
    height, width = (
        side // kwargs["patch_size"] for side in check_pair("image_size", kwargs["image_size"])
    )
    if height * width > MAX_PATCHES:
        raise ValueError(
            f"{where}: image_size {kwargs['image_size']} / patch_size {kwargs['patch_size']} "
            f"makes {height * width} patches, more than {MAX_PATCHES}."
        )
    held = {int(m[1]) for key in state for m in [re.match(r"layers\.(\d+)\.", key)] if m}
    if kwargs["depth"] > len(held):
        raise ValueError(
            f"{where} does not match the model; nothing was loaded: its config says "
            f"num_hidden_layers={kwargs['depth']}, its weights hold {len(held)} blocks."
        )
    # Every declared shape against the config, before a model of the config's size exists.
    check_shapes(
        [("", hf_shapes(kwargs, (height, width)), state)],
        where,
        hints=_HINTS,
        refuse_broadcast=from_file,
    )
    if is_learned_table(state.get(POSITION_KEY), (height, width)):
        kwargs["pos_embed"] = "learned"
    encoder = VisionTransformer(**kwargs, seed=seed)
    load_entries([("", hf_table(encoder), state)], where, hints=_HINTS)
    square = encoder.grid_size[0] == encoder.grid_size[1]
    predictor = Predictor(
        num_patches=encoder.num_patches,
        embed_dim=encoder.embed_dim,
        predictor_embed_dim=predictor_embed_dim,
        depth=predictor_depth,
        num_heads=heads,
        grid_size=None if square else encoder.grid_size,
        seed=derive_seed(seed, 1),
    )
    return IJEPA(encoder=encoder, predictor=predictor, **(model_kwargs or {}))


def _encoder_of(model, encoder):
    check_choice("encoder", encoder, tuple(ENCODERS))
    if isinstance(model, VisionTransformer):
        return model
    if isinstance(model, IJEPA) and isinstance(
        getattr(model, ENCODERS[encoder]), VisionTransformer
    ):
        return getattr(model, ENCODERS[encoder])
    raise invalid(
        "model",
        "an IJEPA with a VisionTransformer encoder, or a VisionTransformer",
        type(model).__name__,
    )


def hf_state_dict(
    model: IJEPA | VisionTransformer, encoder: str = "target"
) -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, state)`` of one encoder in the Hugging Face ``IJepaModel`` format.

    Args:
        model: an ``IJEPA`` (with ``VisionTransformer`` encoders) or a
            ``VisionTransformer``.
        encoder: ``"target"`` (default) or ``"context"``: which encoder of
            an ``IJEPA`` (ignored for a ``VisionTransformer``).

    Returns:
        ``config``: a ``config.json`` dict for ``IJepaConfig``; ``state``:
        ``{key: float32 np.ndarray}`` in the transformers 4.x key layout,
        the one the hub files hold and every transformers version reads.

    Example:
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                         num_heads=2)
        >>> config, state = hf_state_dict(vit)
        >>> config["hidden_size"], state["encoder.layer.0.attention.attention.query.weight"].shape
        (32, (32, 32))
    """
    vit = _encoder_of(model, encoder)
    state = export_entries(hf_table(vit), rename=to_v4_key)
    return encoder_config(vit), state


def export_hf_checkpoint(
    model: IJEPA | VisionTransformer, folder: str | os.PathLike, *, encoder: str = "target"
) -> str | os.PathLike:
    """Write one encoder as a folder that ``transformers.IJepaModel.from_pretrained`` loads.

    ``config.json`` plus ``model.safetensors`` (float32, the transformers
    4.x key layout of the hub files): ``IJepaModel.from_pretrained(folder)``
    loads it with no missing or unexpected keys, and
    ``IJepaModel(pixel_values).last_hidden_state`` equals the encoder's
    output (NCHW inputs there) to float tolerance. Needs neither torch nor
    transformers. The position table written is the one the encoder adds
    (fixed sin-cos or learned).

    Which encoder: ``"target"`` (default), the EMA encoder the paper
    evaluates (Assran et al. 2023, Sec. 5); ``"context"``, the trained
    encoder, which is what the hub files hold (they were converted from the
    ``encoder`` entry of the official checkpoints). The predictor is not
    exported (transformers has no I-JEPA predictor).

    Args:
        model: an ``IJEPA`` or a ``VisionTransformer``.
        folder: str or path-like; created if needed. It must not hold other
            weight files (``pytorch_model.bin``, shard indices) that
            transformers could read instead.
        encoder: ``"target"`` or ``"context"`` (see above).

    Returns:
        ``folder``.

    Example:
        >>> import tempfile
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                         num_heads=2)
        >>> folder = export_hf_checkpoint(vit, tempfile.mkdtemp())
        >>> sorted(os.listdir(folder))
        ['config.json', 'model.safetensors']
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise invalid("folder", "a str or path-like", folder)
    config, state = hf_state_dict(model, encoder=encoder)
    write_hf_folder(folder, config, state)
    return folder
