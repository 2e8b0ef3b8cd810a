"""Checks made before a model is built from a file: sizes, shapes, broadcast tensors.

A checkpoint's config or key names say how big a model to build; the
tensors say how big it really is. :func:`check_architecture` refuses zero
or absurd sizes, :func:`check_shapes` compares every tensor's declared shape
(a safetensors header, pickle metadata: no data read) with the shape the
architecture needs, in the words of
:func:`~jepa_components.backends.keras.convert.mapping.load_entries`, so a
small hostile file cannot make the loaders allocate a huge model (see
"Files you did not write" in the design notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from jepa_components.backends.keras.convert.mapping import key_problems

__all__ = ["MAX_PATCHES", "MAX_SIZE", "check_architecture", "check_shapes", "is_broadcast"]

# Sizes a model built from a file may have (any one dimension; patches of a grid).
MAX_SIZE = 1 << 20
MAX_PATCHES = 1 << 18


def is_broadcast(array: Any) -> bool:
    """True when an array's elements are not all distinct memory (stride 0, overlapping).

    Such an array (``np.broadcast_to``, a saved ``expand()``) declares more
    elements than it holds: a small file can declare a huge one.

    Example:
        >>> is_broadcast(np.zeros((2, 3))), is_broadcast(np.broadcast_to(np.zeros(3), (4, 3)))
        (False, True)
    """
    array = np.asarray(array)
    if array.size <= 1:
        return False
    extent = sum((n - 1) * abs(s) for n, s in zip(array.shape, array.strides) if n > 1)
    return extent + array.itemsize < array.size * array.itemsize


def check_shapes(
    groups: Iterable[tuple[str, Mapping[str, tuple], Mapping]],
    source: str,
    hints: Mapping[str, str] | None = None,
    *,
    refuse_broadcast: bool = False,
) -> None:
    """Check states against the shapes an architecture needs, before any model is built.

    The same problems, in the same words, as :func:`load_entries` (missing
    and unexpected keys, shape mismatches), from shapes alone: a file whose
    sizes disagree with its config or key names is refused before a model
    of those sizes is allocated. A ``-1`` in an expected shape matches any
    size from 1 to :data:`MAX_PATCHES` (a position table of another grid).

    Args:
        groups: ``(label, {key: expected shape}, state)`` triples.
        source: what was read, named in the error.
        hints: as :func:`load_entries`.
        refuse_broadcast: also refuse tensors whose elements are not all in
            the file (:func:`is_broadcast`: stride 0 or overlapping).
    """
    problems = []
    for label, shapes, state in groups:
        found = key_problems(set(shapes), state, hints)
        for key, want in shapes.items():
            if key not in state:
                continue
            got = tuple(np.shape(state[key]))
            if len(got) != len(want) or any(
                (not 1 <= g <= MAX_PATCHES) if w == -1 else g != w for g, w in zip(got, want)
            ):
                shown = str(tuple(want)).replace("-1", "N")
                found.append(
                    f"shape mismatch for `{key}`: {got} in the checkpoint, {shown} expected"
                )
            elif refuse_broadcast and is_broadcast(state[key]):
                found.append(
                    f"`{key}` {got} is a broadcast tensor (stride 0 or overlapping): its "
                    "elements are not in the file"
                )
        problems += [label + problem for problem in found]
    if problems:
        raise ValueError(
            f"{source} does not match the model; nothing was loaded.\n  " + "\n  ".join(problems)
        )


def check_architecture(values: Mapping[str, Any], where: str) -> None:
    """Refuse zero or absurd sizes (every value an integer in ``[1, MAX_SIZE]``)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{where}: `{name}` must be an integer. Received: {value!r}")
        if not 1 <= value <= MAX_SIZE:
            raise ValueError(
                f"{where}: `{name}`={value} is out of range: expected 1 to {MAX_SIZE}."
            )
