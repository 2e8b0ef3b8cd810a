"""Hugging Face ``IJepaModel`` weights <-> Keras ``IJEPA``.

The hub's I-JEPA models (``facebook/ijepa_vith14_1k`` and siblings) are the
official checkpoints' encoders in transformers' ``IJepaModel`` layout (see
:mod:`~jepa_components.backends.keras.convert.hf_format` for the two key layouts).
Mapped onto :class:`VisionTransformer`:

- ``embeddings.patch_embeddings.projection`` -> ``patch_embed.proj`` (Conv2D
  kernel ``(p, p, C, D)`` from ``(D, C, p, p)``);
- ``embeddings.position_embeddings`` ``(1, N, D)`` -> the position table:
  the fixed sin-cos one when the file holds it (max abs difference <= 1e-5,
  float32 rounding), else a learned ``pos_embed`` weight holding the file's
  table (HF trains it; a random-init or fine-tuned model holds any table);
- per block: ``q_proj``, ``k_proj``, ``v_proj`` fused into ``attn.qkv``
  (``[q; k; v]``, the official layout), ``o_proj`` -> ``attn.proj``,
  ``layernorm_before`` / ``layernorm_after`` -> ``norm1`` / ``norm2``,
  ``mlp.fc1`` / ``mlp.fc2`` -> ``mlp.fc1`` / ``mlp.fc2``;
- the final ``layernorm`` -> ``norm``.

Same network: pre-norm blocks, no class token, attention scaled by
``head_dim ** -0.5``, the activation, epsilon, qkv bias, image and patch
size of ``config.json``. Loading is strict and all-or-nothing, like
:func:`~jepa_components.backends.keras.convert.checkpoints.load_official_checkpoint`:
every tensor is used exactly once; missing, unexpected (e.g. ``pooler.*``)
or mis-shaped tensors are errors naming the keys, raised before any weight
is written.
"""

import json
import os
from collections.abc import Mapping

import numpy as np
from keras import ops

from jepa_components._validation import (
    check_choice,
    check_int,
    check_pair,
    check_seed,
    invalid,
)
from jepa_components.backends.keras.convert.hf_format import (
    BIN_FILE,
    BIN_INDEX,
    CONFIG_FILE,
    KERAS_TO_HF_ACTIVATION,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX,
    canonical_state,
    config_dict,
    encoder_kwargs_from_config,
    model_config_and_state,
    read_hf_checkpoint,
    to_v4_key,
    write_safetensors,
)
from jepa_components.backends.keras.models.ijepa import IJEPA
from jepa_components.backends.keras.layers import derive_seed
from jepa_components.backends.keras.convert.official_format import SINCOS_TOLERANCE, sincos_difference
from jepa_components.backends.keras.convert.official_mapping import keras_variable
from jepa_components.backends.keras.models.predictor import Predictor
from jepa_components.backends.keras.models.vit import VisionTransformer

__all__ = ["export_hf_checkpoint", "hf_state_dict", "load_hf_checkpoint"]

POSITION_KEY = "embeddings.position_embeddings"
ENCODERS = {"target": "target_encoder", "context": "encoder"}


# ----------------------------------------------------------------- mapping
# An entry: (HF keys, Keras variable, HF arrays -> Keras array, Keras array -> HF arrays).
def _single(key, variable, to_keras, to_hf):
    return (key,), variable, lambda a: to_keras(a), lambda v: (to_hf(v),)


def _same(a):
    return a


def _transpose(a):
    return a.T


def _linear(key, layer):
    yield _single(f"{key}.weight", keras_variable(layer, "kernel"), _transpose, _transpose)
    if layer.use_bias:
        yield _single(f"{key}.bias", keras_variable(layer, "bias"), _same, _same)


def _norm(key, layer):
    yield _single(f"{key}.weight", keras_variable(layer, "gamma"), _same, _same)
    yield _single(f"{key}.bias", keras_variable(layer, "beta"), _same, _same)


def _qkv(key, layer):
    """q, k, v projections of HF <-> the fused ``qkv`` Dense (columns ``[q | k | v]``)."""
    keys = tuple(f"{key}.{p}_proj.weight" for p in "qkv")
    yield (keys, keras_variable(layer, "kernel"), lambda q, k, v: np.concatenate([q, k, v]).T,
           lambda kernel: tuple(np.split(kernel.T, 3)))
    if layer.use_bias:
        keys = tuple(f"{key}.{p}_proj.bias" for p in "qkv")
        yield (keys, keras_variable(layer, "bias"), lambda q, k, v: np.concatenate([q, k, v]),
               lambda bias: tuple(np.split(bias, 3)))


def _entries(vit):
    """Every weight of ``vit`` but the position table, in HF (5.x) names."""
    yield _single("embeddings.patch_embeddings.projection.weight",
                  keras_variable(vit.patch_embed.proj, "kernel"),
                  lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))
    yield _single("embeddings.patch_embeddings.projection.bias",
                  keras_variable(vit.patch_embed.proj, "bias"), _same, _same)
    for i, block in enumerate(vit.blocks):
        key = f"layers.{i}"
        yield from _norm(f"{key}.layernorm_before", block.norm1)
        yield from _qkv(f"{key}.attention", block.attn.qkv)
        yield from _linear(f"{key}.attention.o_proj", block.attn.proj)
        yield from _norm(f"{key}.layernorm_after", block.norm2)
        yield from _linear(f"{key}.mlp.fc1", block.mlp.fc1)
        yield from _linear(f"{key}.mlp.fc2", block.mlp.fc2)
    yield from _norm("layernorm", vit.norm)


def _hf_shapes(variable, to_hf):
    return [tuple(a.shape) for a in to_hf(np.zeros(tuple(variable.shape), dtype=np.bool_))]


_HINTS = {
    "pooler.": "`pooler.*` (IJepaModel(add_pooling_layer=True); it pools the first token, "
               "which I-JEPA does not have)",
    "embeddings.mask_token": "`embeddings.mask_token` (IJepaModel(use_mask_token=True))",
    "classifier.": "`classifier.*` (an IJepaForImageClassification head)",
}


def _plan(vit, state):
    """Validate everything; ``[(variable, array)]`` to assign, or one ValueError."""
    plan, used, problems = [], set(), []
    missing, mismatched = [], []
    for keys, variable, to_keras, to_hf in _entries(vit):
        absent = [key for key in keys if key not in state]
        used.update(keys)
        if absent:
            missing.extend(absent)
            continue
        wrong = [f"`{key}`: {tuple(state[key].shape)} in the checkpoint, {want} expected"
                 for key, want in zip(keys, _hf_shapes(variable, to_hf))
                 if tuple(state[key].shape) != want]
        if wrong:
            mismatched.extend(wrong)
        else:
            plan.append((variable, to_keras(*(state[key] for key in keys))))
    want = (1, vit.num_patches, vit.embed_dim)
    if POSITION_KEY not in state:
        missing.append(POSITION_KEY)
    elif tuple(state[POSITION_KEY].shape) != want:
        mismatched.append(f"`{POSITION_KEY}`: {tuple(state[POSITION_KEY].shape)} in the "
                          f"checkpoint, {want} expected ({vit.grid_size} patch grid)")
    elif vit.pos_embed == "learned":
        plan.append((vit.pos_embed_weight, state[POSITION_KEY]))
    else:
        error = sincos_difference(state[POSITION_KEY], vit.grid_size)
        if error > SINCOS_TOLERANCE:
            problems.append(f"`{POSITION_KEY}` is not the fixed 2-D sin-cos table (max abs "
                            f"difference {error:.3g}): the encoder needs pos_embed=\"learned\"")
    used.add(POSITION_KEY)
    unexpected = sorted(set(state) - used)
    if missing:
        problems.append(f"missing keys {sorted(missing)}")
    if unexpected:
        hints = [hint for prefix, hint in _HINTS.items()
                 if any(key.startswith(prefix) for key in unexpected)]
        problems.append(f"unexpected keys {unexpected}" + (
            f"; {', '.join(hints)} ha{'s' if len(hints) == 1 else 've'} no counterpart in the "
            "I-JEPA encoder: remove them from the state dict to load the rest" if hints else ""))
    problems.extend(f"shape mismatch for {m}" for m in mismatched)
    if problems:
        raise ValueError("The Hugging Face checkpoint does not match its config (or the "
                         "model); nothing was loaded.\n  " + "\n  ".join(problems))
    return plan


def _source_config_and_state(source, config, weights_only):
    if isinstance(source, (str, os.PathLike)):
        if config is not None:
            raise ValueError("Invalid arguments: `config` goes with a state dict; a folder "
                             f"has its own {CONFIG_FILE}.")
        return read_hf_checkpoint(source, weights_only=weights_only)
    if isinstance(source, Mapping):
        if config is None:
            raise ValueError("Invalid arguments: a state dict needs `config=` (the model's "
                             "IJepaConfig or config.json dict): the number of heads, the "
                             "activation and the epsilon are not in the tensors.")
        return config_dict(config), source
    if config is not None:
        raise ValueError("Invalid arguments: `config` goes with a state dict; a model has its "
                         "own.")
    return model_config_and_state(source)


# ------------------------------------------------------------------ public
def load_hf_checkpoint(source, *, config=None, predictor_embed_dim=384, predictor_depth=6,
                       predictor_num_heads=None, seed=None, weights_only=True,
                       model_kwargs=None):
    """Build an :class:`IJEPA` from Hugging Face ``IJepaModel`` weights (never downloads).

    Both the encoder and the target encoder hold the weights (the hub models
    are the official checkpoints' context encoder); the predictor is new,
    as :func:`load_official_checkpoint` builds one for a bare encoder. Same
    features as ``IJepaModel(pixel_values).last_hidden_state`` (max abs
    difference < 1e-4 in float32 on jax, torch and tensorflow, see
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
    if not isinstance(source, (str, os.PathLike, Mapping)) and not hasattr(source, "state_dict"):
        raise invalid("source", "a save_pretrained folder, an IJepaModel or a state dict",
                      type(source).__name__)
    config, raw_state = _source_config_and_state(source, config, weights_only)
    state = canonical_state(raw_state, "the Hugging Face state dict")
    kwargs = encoder_kwargs_from_config(config)
    table = state.get(POSITION_KEY)
    grid = tuple(side // kwargs["patch_size"] for side in check_pair("image_size",
                                                                     kwargs["image_size"]))
    if table is not None and sincos_difference(table, grid) > SINCOS_TOLERANCE:
        kwargs["pos_embed"] = "learned"
    encoder = VisionTransformer(**kwargs, seed=seed)
    encoder.build()
    plan = _plan(encoder, state)
    heads = predictor_num_heads or encoder.num_heads
    if predictor_embed_dim % heads:
        raise invalid("predictor_num_heads", f"a divisor of predictor_embed_dim="
                      f"{predictor_embed_dim} (None uses the encoder's {encoder.num_heads})",
                      predictor_num_heads)
    for variable, value in plan:
        variable.assign(np.asarray(value, dtype=variable.dtype))
    square = encoder.grid_size[0] == encoder.grid_size[1]
    predictor = Predictor(
        num_patches=encoder.num_patches, embed_dim=encoder.embed_dim,
        predictor_embed_dim=predictor_embed_dim, depth=predictor_depth, num_heads=heads,
        grid_size=None if square else encoder.grid_size, seed=derive_seed(seed, 1))
    return IJEPA(encoder=encoder, predictor=predictor, **(model_kwargs or {}))


def _encoder_of(model, encoder):
    check_choice("encoder", encoder, tuple(ENCODERS))
    if isinstance(model, VisionTransformer):
        return model
    if isinstance(model, IJEPA) and isinstance(getattr(model, ENCODERS[encoder]),
                                               VisionTransformer):
        return getattr(model, ENCODERS[encoder])
    raise invalid("model", "an IJEPA with a VisionTransformer encoder, or a VisionTransformer",
                  type(model).__name__)


def hf_state_dict(model, encoder="target"):
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
    if not vit.built:
        vit.build()
    state = {}
    for keys, variable, _, to_hf in _entries(vit):
        value = ops.convert_to_numpy(ops.cast(variable, "float32"))
        for key, array in zip(keys, to_hf(value)):
            state[to_v4_key(key)] = np.ascontiguousarray(array, dtype=np.float32)
    state[POSITION_KEY] = np.ascontiguousarray(
        ops.convert_to_numpy(ops.cast(vit.position_table(), "float32")))
    image = vit.image_size
    config = {
        "architectures": ["IJepaModel"], "model_type": "ijepa",
        "hidden_size": vit.embed_dim, "num_hidden_layers": vit.depth,
        "num_attention_heads": vit.num_heads, "intermediate_size": vit.blocks[0].mlp.hidden_dim,
        "hidden_act": KERAS_TO_HF_ACTIVATION[vit.activation],
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": vit.init_std, "layer_norm_eps": vit.layer_norm_epsilon,
        "image_size": list(image) if isinstance(image, tuple) else image,
        "patch_size": vit.patch_size, "num_channels": vit.in_channels, "qkv_bias": vit.qkv_bias,
        "torch_dtype": "float32",
    }
    return config, state


def export_hf_checkpoint(model, folder, *, encoder="target"):
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
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise invalid("folder", "a folder (this is a file)", os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    stale = sorted(set(os.listdir(folder)) & {SAFETENSORS_INDEX, BIN_FILE, BIN_INDEX})
    if stale:
        raise ValueError(f"{os.fspath(folder)!r} already holds {stale}, which transformers "
                         "could load instead of the export: remove them or pick another folder.")
    write_safetensors(os.path.join(folder, SAFETENSORS_FILE), state, metadata={"format": "pt"})
    with open(os.path.join(folder, CONFIG_FILE), "w") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
    return folder
