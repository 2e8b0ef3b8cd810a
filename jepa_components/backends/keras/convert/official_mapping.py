"""Official I-JEPA state dict keys <-> Keras weights: the mapping and the load plan.

Used by :mod:`jepa_components.backends.keras.convert.checkpoints` (the public
load / export functions; see its docstring for the conventions). Each
official key maps to one Keras variable and a layout change; :func:`load_plan`
validates a whole checkpoint against a model (missing, unexpected and
mis-shaped keys, positional tables) before anything is written.
"""

import warnings

import numpy as np

from jepa_components.backends.keras.convert.official_format import (
    SINCOS_TOLERANCE,
    sincos_difference,
    square_side,
)

__all__ = ["LAYOUTS", "is_learned_table", "keras_variable", "load_plan", "model_parts"]


def keras_variable(layer, name):
    """The weight ``name`` (``kernel``, ``bias``, ``gamma``...) of a Keras layer."""
    if getattr(layer, "lora_enabled", False):
        raise ValueError(f"Layer `{layer.path}` has LoRA enabled; merge or disable it first.")
    for variable in layer.weights:
        if variable.name == name:
            return variable
    raise ValueError(f"Layer `{layer.path}` has no weight `{name}`.")


def _linear(key, layer):
    yield f"{key}.weight", keras_variable(layer, "kernel"), "linear"
    if layer.use_bias:
        yield f"{key}.bias", keras_variable(layer, "bias"), "same"


def _norm(key, layer):
    yield f"{key}.weight", keras_variable(layer, "gamma"), "same"
    yield f"{key}.bias", keras_variable(layer, "beta"), "same"


def _blocks(prefix, blocks):
    for i, block in enumerate(blocks):
        key = f"{prefix}.{i}"
        yield from _norm(f"{key}.norm1", block.norm1)
        yield from _linear(f"{key}.attn.qkv", block.attn.qkv)
        yield from _linear(f"{key}.attn.proj", block.attn.proj)
        yield from _norm(f"{key}.norm2", block.norm2)
        yield from _linear(f"{key}.mlp.fc1", block.mlp.fc1)
        yield from _linear(f"{key}.mlp.fc2", block.mlp.fc2)


def _encoder_entries(vit):
    yield "patch_embed.proj.weight", keras_variable(vit.patch_embed.proj, "kernel"), "conv"
    yield "patch_embed.proj.bias", keras_variable(vit.patch_embed.proj, "bias"), "same"
    yield from _blocks("blocks", vit.blocks)
    yield from _norm("norm", vit.norm)


def _predictor_entries(predictor):
    yield "mask_token", predictor.mask_token, "same"
    yield from _linear("predictor_embed", predictor.predictor_embed)
    yield from _blocks("predictor_blocks", predictor.predictor_blocks)
    yield from _norm("predictor_norm", predictor.predictor_norm)
    yield from _linear("predictor_proj", predictor.predictor_proj)


# (official layout -> Keras layout, Keras layout -> official layout)
LAYOUTS = {
    "same": (lambda a: a, lambda a: a),
    "linear": (lambda a: a.T, lambda a: a.T),
    "conv": (lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)),
}


def _grid(layer):
    grid = getattr(layer, "grid_size", None)
    if grid is None:  # the official square grid
        side = square_side(layer.num_patches, "The predictor")
        grid = (side, side)
    return tuple(grid)


def model_parts(model):
    """``{part: (entries, pos_embed_key, width, layer)}`` of an IJEPA-like model."""
    try:
        encoder, target, predictor = model.encoder, model.target_encoder, model.predictor
        return {
            "encoder": (list(_encoder_entries(encoder)), "pos_embed", encoder.embed_dim, encoder),
            "target_encoder": (list(_encoder_entries(target)), "pos_embed", target.embed_dim,
                               target),
            "predictor": (list(_predictor_entries(predictor)), "predictor_pos_embed",
                          predictor.predictor_embed_dim, predictor),
            "_grids": {"encoder": _grid(encoder), "target_encoder": _grid(target),
                       "predictor": _grid(predictor)},
        }
    except AttributeError as error:
        raise ValueError(
            "Invalid value for argument `model`. Expected an IJEPA whose encoder is a "
            f"VisionTransformer and whose predictor is a Predictor. Received: {model!r} "
            f"({error})") from error


def _official_shape(variable, layout):
    return tuple(LAYOUTS[layout][1](np.zeros(tuple(variable.shape), dtype=np.bool_)).shape)


def _learned(layer):
    return getattr(layer, "pos_embed", "sincos") == "learned"


def is_learned_table(value):
    """True when a ``(1, N, D)`` official table is not the fixed sin-cos one.

    "Fixed" means within ``SINCOS_TOLERANCE`` (1e-5, max abs) of the 2-D
    sin-cos table of the square grid of ``N`` patches.

    Example:
        >>> from jepa_components.positional import sincos_2d_positions
        >>> fixed = sincos_2d_positions(32, 4)[None].astype("float32")
        >>> is_learned_table(fixed), is_learned_table(fixed + 1e-3)
        (False, True)
    """
    value = np.asarray(value)
    if value.ndim != 3 or value.shape[0] != 1:
        return False  # a shape problem, reported by the plan
    side = int(round(np.sqrt(value.shape[1])))
    return sincos_difference(value, (side, side)) > SINCOS_TOLERANCE


def _plan_pos_embed(value, key, width, layer, grid):
    """``(problems, [(variable, value)])`` for one positional table.

    A learned-table encoder takes the table as it is (shape checked); a
    fixed-table layer only accepts the sin-cos table (of any square grid).
    """
    if value.ndim != 3 or value.shape[0] != 1 or value.shape[2] != width:
        return [f"`{key}`: shape {value.shape} in the checkpoint, (1, N, {width}) expected "
                "by the model"], []
    if _learned(layer):
        want = (1, int(np.prod(grid)), width)
        if value.shape != want:
            return [f"`{key}`: a table of {value.shape[1]} patches in the checkpoint, the "
                    f"model's learned table has {want[1]} ({grid} grid); tables are not "
                    "interpolated"], []
        return [], [(layer.pos_embed_weight, value)]
    side = int(round(np.sqrt(value.shape[1])))
    if side * side != value.shape[1]:
        return [f"`{key}`: {value.shape[1]} patches, not a square grid as the official code "
                "builds"], []
    error = sincos_difference(value, (side, side))
    if error > SINCOS_TOLERANCE:
        fix = ("build the encoder with pos_embed=\"learned\" to load it (load_official_"
               "checkpoint does when it builds the model)" if key == "pos_embed" else
               "the predictor only has fixed sin-cos positions")
        return [f"`{key}` is not the official fixed 2-D sin-cos table (max abs difference "
                f"{error:.3g}): {fix}"], []
    return [], []


def load_plan(model, states):
    """Validate every part fully; return ``[(variable, keras_array)]`` to assign."""
    parts, plan, problems, notes = model_parts(model), [], [], []
    grids = parts.pop("_grids")
    for part, state in states.items():
        entries, pos_key, width, layer = parts[part]
        expected = {key: (variable, layout) for key, variable, layout in entries}
        missing = sorted(set(expected) - set(state) | ({pos_key} - set(state)))
        unexpected = sorted(set(state) - set(expected) - {pos_key})
        found = []
        if missing:
            found.append(f"missing keys {missing}")
        if unexpected:
            found.append(f"unexpected keys {unexpected}")
        for key in sorted(set(expected) & set(state)):
            variable, layout = expected[key]
            want, got = _official_shape(variable, layout), tuple(state[key].shape)
            if got != want:
                found.append(f"shape mismatch for `{key}`: {got} in the checkpoint, {want} "
                             f"expected by the model (official layout)")
            else:
                plan.append((variable, LAYOUTS[layout][0](state[key])))
        if pos_key in state:
            table_problems, table_plan = _plan_pos_embed(
                state[pos_key], pos_key, width, layer, grids[part])
            found.extend(table_problems)
            plan.extend(table_plan)
            if not found and state[pos_key].shape[1] != np.prod(grids[part]):
                notes.append(
                    f"checkpoint[{part!r}] was trained on {state[pos_key].shape[1]} patches, "
                    f"the model uses a {grids[part]} grid: its fixed sin-cos positions are "
                    "used.")
        problems.extend(f"checkpoint[{part!r}]: {p}" for p in found)
    if problems:
        raise ValueError("The checkpoint does not match the model; nothing was loaded.\n  "
                         + "\n  ".join(problems))
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return plan


