"""One weight-mapping framework for every checkpoint format.

A format is a table of rows ``(source key(s), Keras weight path,
transform)``: :func:`table_entries` locates each path in a model (attributes
and list indices, e.g. ``blocks.0.attn.qkv.kernel``) and makes it an
:class:`Entry`; rows whose path holds ``{i}`` repeat for every block. A
:class:`Transform` turns the source arrays into the Keras one and back
(identity, transpose, convolution layout, q/k/v split and merge). The
positional table a layer adds is its learned weight or a :class:`FixedTable`
(the 2-D sin-cos table, in the file but not a weight): :func:`position_entry`.

:func:`load_entries` is the one strict loader: every key present, none
unexpected, every shape checked against its Keras variable, every problem
(key, received and expected shape, file) gathered into one ``ValueError``
before the first weight is written. :func:`export_entries` is the one
exporter. The formats' tables live in
:mod:`~jepa_components.backends.keras.convert.official` and
:mod:`~jepa_components.backends.keras.convert.huggingface`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
from keras import ops

from jepa_components.positional import sincos_2d_positions

__all__ = [
    "CONV",
    "QKV_BIAS",
    "QKV_KERNEL",
    "SAME",
    "SINCOS_TOLERANCE",
    "TRANSPOSE",
    "Entry",
    "FixedTable",
    "Transform",
    "export_entries",
    "is_learned_table",
    "linear",
    "load_entries",
    "locate",
    "mlp_ratio",
    "norm",
    "position_entry",
    "sincos_difference",
    "table_entries",
    "to_numpy",
]

# A position table within this max abs difference of the 2-D sin-cos one is that
# table (float32 rounding and float32-vs-float64 evaluation stay below 1e-6).
SINCOS_TOLERANCE = 1e-5


class Transform(NamedTuple):
    """Source arrays (one per key) -> the Keras array, and the Keras array -> source arrays."""

    to_keras: Callable[..., np.ndarray]
    to_source: Callable[[np.ndarray], tuple]


def _one(
    forward: Callable[[np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Transform:
    return Transform(forward, lambda value: ((backward or forward)(value),))


SAME = _one(lambda a: a)
TRANSPOSE = _one(lambda a: a.T)  # torch Linear (out, in) <-> Dense kernel (in, out)
CONV = _one(
    lambda a: a.transpose(2, 3, 1, 0),  # torch Conv2d (D, C, p, p) <-> (p, p, C, D)
    lambda a: a.transpose(3, 2, 0, 1),
)
# Separate q, k, v Linears <-> one fused Dense whose columns are [q | k | v].
QKV_KERNEL = Transform(
    lambda q, k, v: np.concatenate([q, k, v]).T, lambda kernel: tuple(np.split(kernel.T, 3))
)
QKV_BIAS = Transform(
    lambda q, k, v: np.concatenate([q, k, v]), lambda bias: tuple(np.split(bias, 3))
)


class Entry(NamedTuple):
    """Source key(s) <-> one Keras variable, through a :class:`Transform`."""

    keys: tuple
    variable: Any
    transform: Transform = SAME
    hint: str = ""  # added to a shape mismatch

    def check(
        self, arrays: Sequence[np.ndarray]
    ) -> tuple[list[str], list[tuple[Any, np.ndarray]], list[str]]:
        """``(problems, [(variable, value)], notes)`` for the arrays of ``keys``."""
        # The source shapes the variable needs, from a zero-byte stand-in.
        stand_in = np.broadcast_to(np.zeros((), np.bool_), tuple(self.variable.shape))
        wants = [tuple(a.shape) for a in self.transform.to_source(stand_in)]
        wrong = [
            f"shape mismatch for `{key}`: {tuple(a.shape)} in the checkpoint, {want} "
            f"expected{self.hint}"
            for key, a, want in zip(self.keys, arrays, wants)
            if tuple(a.shape) != want
        ]
        if wrong:
            return wrong, [], []
        return [], [(self.variable, self.transform.to_keras(*arrays))], []

    def export(self) -> dict[str, np.ndarray]:
        """``{key: array}`` of the variable's value in the source layout."""
        value = ops.convert_to_numpy(ops.cast(self.variable, "float32"))
        return dict(zip(self.keys, self.transform.to_source(value)))


class FixedTable(NamedTuple):
    """A fixed 2-D sin-cos positional table ``(1, N, width)``: in the file, not a weight.

    The file's table must be the sin-cos table of ``grid`` or, with
    ``other_grids``, of any square grid (the model then uses its own grid's
    positions; a warning says so). ``fix`` says what to do when it is not.
    """

    key: str
    grid: tuple
    width: int
    other_grids: bool
    fix: str

    @property
    def keys(self) -> tuple[str]:
        """The one source key, as :attr:`Entry.keys`."""
        return (self.key,)

    def check(
        self, arrays: Sequence[np.ndarray]
    ) -> tuple[list[str], list[tuple[Any, np.ndarray]], list[str]]:
        """``(problems, [], notes)``: the table is checked, never assigned."""
        (value,) = arrays
        shape, want = tuple(value.shape), (1, int(np.prod(self.grid)), self.width)
        side = int(round(np.sqrt(shape[1]))) if len(shape) == 3 else 0
        if shape != want and not (
            self.other_grids and side > 0 and shape == (1, side * side, self.width)
        ):
            return (
                [
                    f"shape mismatch for `{self.key}`: {shape} in the checkpoint, {want} "
                    f"expected ({self.grid} patch grid)"
                ],
                [],
                [],
            )
        grid = self.grid if shape == want else (side, side)
        error = sincos_difference(value, grid)
        if error > SINCOS_TOLERANCE:
            return (
                [
                    f"`{self.key}` is not the official fixed 2-D sin-cos table (max abs "
                    f"difference {error:.3g}): {self.fix}"
                ],
                [],
                [],
            )
        return (
            [],
            [],
            []
            if grid == self.grid
            else [
                f"trained on {shape[1]} patches, the model uses a {self.grid} grid: its fixed "
                "sin-cos positions are used."
            ],
        )

    def export(self) -> dict[str, np.ndarray]:
        """``{key: the sin-cos table (1, N, width)}``."""
        return {self.key: sincos_2d_positions(self.width, self.grid)[None]}


def position_entry(
    key: str, layer: Any, grid: Sequence[int], width: int, other_grids: bool = False
) -> Entry | FixedTable:
    """The positional table ``layer`` adds: its learned weight, or a :class:`FixedTable`."""
    if getattr(layer, "pos_embed", None) == "learned":
        if not layer.built:
            layer.build()
        return Entry((key,), layer.pos_embed_weight, SAME, "; tables are not interpolated")
    fix = (
        'build the encoder with pos_embed="learned" to load it (the loaders do when '
        "they build the model)"
        if hasattr(layer, "pos_embed")
        else "the predictor only has fixed sin-cos positions"
    )
    return FixedTable(key, tuple(grid), width, other_grids, fix)


# ------------------------------------------------------------------ tables
def linear(source: str, keras: str | None = None, transform: Transform = TRANSPOSE) -> list:
    """Rows of a torch Linear or Conv2d (``weight``, ``bias``) <-> ``kernel``, ``bias``."""
    keras = keras or source
    return [
        (f"{source}.weight", f"{keras}.kernel", transform),
        (f"{source}.bias", f"{keras}.bias", SAME),
    ]


def norm(source: str, keras: str | None = None) -> list:
    """Rows of a torch LayerNorm ``source`` (``weight``, ``bias``) <-> ``gamma``, ``beta``."""
    keras = keras or source
    return [(f"{source}.weight", f"{keras}.gamma", SAME), (f"{source}.bias", f"{keras}.beta", SAME)]


def locate(layer: Any, path: str) -> Any:
    """The Keras variable at ``path`` under ``layer``; None for an absent bias.

    Example:
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                         num_heads=2, qkv_bias=False)
        >>> vit.build()
        >>> kernel = locate(vit, "blocks.0.mlp.fc1.kernel")
        >>> tuple(kernel.shape), locate(vit, "blocks.0.attn.qkv.bias")
        ((32, 128), None)
    """
    *parents, name = path.split(".")
    for part in parents:
        layer = layer[int(part)] if part.isdigit() else getattr(layer, part)
    if getattr(layer, "lora_enabled", False):
        raise ValueError(f"Layer `{layer.path}` has LoRA enabled; merge or disable it first.")
    variable = getattr(layer, name, None)
    if variable is None and name != "bias":  # a Dense without bias has `bias = None`
        raise ValueError(f"Layer `{getattr(layer, 'path', layer)}` has no weight `{name}`.")
    return variable


def table_entries(layer: Any, rows: Sequence, extra: Sequence = ()) -> list:
    """The :class:`Entry` of every row (``{i}`` rows once per block), then ``extra``.

    A block run of rows repeats for every element of the list their path
    starts with (``blocks.{i}...``). Every weight of ``layer`` must be covered,
    so a table never leaves a weight at its initial value in silence.
    """
    if not layer.built:
        layer.build()
    entries = []
    for repeated, run in itertools.groupby(rows, key=lambda row: "{i}" in row[1]):
        group = list(run)
        count = len(getattr(layer, group[0][1].split(".")[0])) if repeated else 1
        for i, (keys, path, transform) in itertools.product(range(count), group):
            keys = (keys,) if isinstance(keys, str) else keys
            variable = locate(layer, path.format(i=i))
            if variable is not None:
                entries.append(Entry(tuple(k.format(i=i) for k in keys), variable, transform))
    entries += extra
    covered = {entry.variable.path for entry in entries if isinstance(entry, Entry)}
    left = sorted(v.path for v in layer.weights if v.path not in covered)
    if left:
        raise ValueError(f"The conversion table leaves weights of `{layer.path}` out: {left}.")
    return entries


# ------------------------------------------------------------------ load, export
def load_entries(
    groups: Iterable[tuple[str, Sequence, Mapping]],
    source: str,
    hints: Mapping[str, str] | None = None,
) -> None:
    """Check whole states against their tables; assign only when everything fits.

    Args:
        groups: ``(label, entries, state)`` triples: ``label`` prefixes the
            problems of that part (e.g. ``"checkpoint['encoder']: "``),
            ``state`` is ``{key: np.ndarray}``.
        source: what was read (a file, "the state dict"), named in the error.
        hints: ``{key prefix: explanation}`` added when unexpected keys
            start with the prefix.

    Raises:
        ValueError: missing keys, unexpected keys, shape mismatches (key,
            received and expected shape), tables that do not fit: all of
            them, and no weight written.
    """
    plan, problems, notes = [], [], []
    for label, entries, state in groups:
        found = key_problems({key for entry in entries for key in entry.keys}, state, hints)
        for entry in entries:
            if all(key in state for key in entry.keys):
                wrong, assignments, entry_notes = entry.check([state[k] for k in entry.keys])
                found += wrong
                plan += assignments
                notes += [label + note for note in entry_notes]
        problems += [label + problem for problem in found]
    if problems:
        raise ValueError(
            f"{source} does not match the model; nothing was loaded.\n  " + "\n  ".join(problems)
        )
    for note in notes:
        warnings.warn(note, stacklevel=3)
    for variable, value in plan:
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _some(keys: list, shown: int = 20) -> str:
    """``keys`` as a list, the first ``shown`` of them when there are more."""
    return str(keys) if len(keys) <= shown else f"{keys[:shown]} and {len(keys) - shown} more"


def key_problems(keys: set, state: Mapping, hints: Mapping[str, str] | None) -> list[str]:
    """The missing and unexpected keys of ``state``, in the words of :func:`load_entries`."""
    missing, unexpected = sorted(keys - set(state)), sorted(set(state) - keys)
    found = [f"missing keys {_some(missing)}"] if missing else []
    if unexpected:
        known = [
            hint
            for prefix, hint in (hints or {}).items()
            if any(key.startswith(prefix) for key in unexpected)
        ]
        found.append(
            f"unexpected keys {_some(unexpected)}"
            + (
                f"; {', '.join(known)} ha{'s' if len(known) == 1 else 've'} no counterpart in "
                "the model: remove them from the state dict to load the rest"
                if known
                else ""
            )
        )
    return found


def export_entries(entries: Iterable, rename: Callable[[str], str] = str) -> dict:
    """``{rename(key): float32 np.ndarray}`` of every entry, in the source layout."""
    return {
        rename(key): np.ascontiguousarray(value, dtype=np.float32)
        for entry in entries
        for key, value in entry.export().items()
    }


# ------------------------------------------------------------------ shared helpers
def to_numpy(value: Any, where: str) -> np.ndarray:
    """A numeric tensor (torch, NumPy, ...) as a NumPy array; bfloat16 torch -> float32."""
    if hasattr(value, "detach"):  # a torch tensor; bfloat16 has no numpy dtype
        value = value.detach().cpu()
        value = (value.float() if value.is_floating_point() else value).numpy()
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(
            f"{where} is not a numeric tensor. Received: {type(value).__name__} "
            f"with dtype {array.dtype}"
        )
    return array


def mlp_ratio(dim: int, hidden: int) -> float:
    """A float ``r`` with ``int(dim * r) == hidden`` (vit_giant: 48/11).

    Example:
        >>> int(1408 * mlp_ratio(1408, 6144))
        6144
    """
    if dim < 1 or hidden < 1:
        raise ValueError(f"No MLP ratio gives {hidden} hidden units for width {dim}.")
    ratio = hidden / dim
    for _ in range(8):
        if int(dim * ratio) == hidden:
            return ratio
        ratio = float(np.nextafter(ratio, np.inf))
    raise ValueError(f"No MLP ratio gives {hidden} hidden units for width {dim}.")


def sincos_difference(table: Any, grid: Sequence[int]) -> float:
    """Max abs difference between a ``(1, N, D)`` table and the 2-D sin-cos one of ``grid``.

    ``inf`` when the shape is not ``(1, H * W, D)`` with ``D`` divisible by 4.
    A difference ``<= SINCOS_TOLERANCE`` means the table *is* the fixed one.

    Example:
        >>> fixed = sincos_2d_positions(32, (4, 4))[None].astype("float32")
        >>> sincos_difference(fixed, (4, 4)) <= SINCOS_TOLERANCE, sincos_difference(fixed, (3, 5))
        (True, inf)
    """
    table = np.asarray(table)
    grid = tuple(int(g) for g in grid)
    if (
        table.ndim != 3
        or table.shape[0] != 1
        or table.shape[1] != grid[0] * grid[1]
        or table.shape[2] % 4
    ):
        return float("inf")
    fixed = sincos_2d_positions(table.shape[2], cast("tuple[int, int]", grid))
    return float(np.max(np.abs(table[0].astype(np.float64) - fixed), initial=0.0))


def is_learned_table(table: Any, grid: Sequence[int] | None = None) -> bool:
    """True when a ``(1, N, D)`` table is not the fixed sin-cos one of ``grid``.

    ``grid`` None: the square grid of ``N`` patches (the official code's).
    A table of another shape is not "learned": the loader reports its shape.

    Example:
        >>> fixed = sincos_2d_positions(32, 4)[None].astype("float32")
        >>> is_learned_table(fixed), is_learned_table(fixed + 1e-3)
        (False, True)
    """
    table = np.asarray(table)
    if table.ndim != 3 or table.shape[0] != 1:
        return False
    side = int(round(np.sqrt(table.shape[1])))
    return sincos_difference(table, grid or (side, side)) > SINCOS_TOLERANCE
