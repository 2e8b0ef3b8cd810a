"""Argument checks shared by every public constructor of the project.

One message format everywhere, after Keras': ``Invalid value for argument
`name`. Expected <what is allowed>. Received: name=<value>``. Each check
returns the normalised value (python ``int`` / ``float`` / tuple), so a
constructor validates and converts in one line. NumPy only (the core never
imports a deep-learning framework); the Keras layers use the same helpers.

Example:
    >>> check_int("depth", 12, low=1)
    12
    >>> check_float("momentum", 0.996, low=0.0, high=1.0)
    0.996
    >>> check_pair("image_size", 224)
    (224, 224)
    >>> check_int("depth", 0, low=1)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for argument `depth`. Expected an integer >= 1. Received: depth=0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_pair",
    "check_range_pair",
    "check_seed",
    "invalid",
    "is_int",
    "is_real",
]


def invalid(name: str, expected: str, value: object) -> ValueError:
    """The project's ``ValueError`` for argument ``name`` (raise it)."""
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
    )


def is_int(value: object) -> bool:
    """True for python / NumPy integers, False for bools and everything else."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_real(value: object) -> bool:
    """True for finite-or-not real numbers (ints included), False for bools."""
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _bounds_text(low, high, low_open=False, high_open=False):
    parts = []
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f" in {left}{low:g}, {high:g}{right}"
    if low is not None:
        parts.append(f" {'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f" {'<' if high_open else '<='} {high:g}")
    return "".join(parts)


def check_int(name, value, *, low=None, high=None, allow_none=False):
    """An integer in ``[low, high]`` (either bound optional) -> ``int``."""
    if value is None and allow_none:
        return None
    if (
        not is_int(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        bounds = _bounds_text(low, high)
        expected = f"an integer{bounds}" + (" or None" if allow_none else "")
        raise invalid(name, expected, value)
    return int(value)


def check_float(
    name, value, *, low=None, high=None, low_open=False, high_open=False, allow_none=False
):
    """A finite real number in the given interval -> ``float``.

    ``low_open=True`` excludes ``low`` (e.g. ``low=0, low_open=True`` for a
    strictly positive value); likewise ``high_open``.
    """
    if value is None and allow_none:
        return None
    ok = is_real(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        expected = f"a finite number{_bounds_text(low, high, low_open, high_open)}"
        raise invalid(name, expected + (" or None" if allow_none else ""), value)
    return float(value)


def check_bool(name: str, value: object) -> bool:
    """A python or NumPy bool -> ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, "True or False", value)
    return bool(value)


def check_choice(name, value, choices):
    """One of ``choices`` (compared with ``==``) -> the value."""
    if value not in tuple(choices):
        raise invalid(name, f"one of {tuple(choices)}", value)
    return value


def check_seed(value, name="seed"):
    """None or an integer >= 0 -> ``None`` / ``int``."""
    if value is not None and (not is_int(value) or value < 0):
        raise invalid(name, "None or an integer >= 0", value)
    return None if value is None else int(value)


def check_pair(name: str, value: Any, *, low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``low`` -> ``(a, b)``.

    For sizes given as ``224`` or ``(224, 160)`` (image size, grid size,
    patch size).
    """
    if is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        pair = None
    if pair is None or min(pair) < low:
        raise invalid(name, f"an integer >= {low} or a pair of them", value)
    return pair


def check_grid(name: str, value: Any, ndim: int, *, low: int = 1) -> tuple[int, ...]:
    """An int or ``ndim`` ints (a tuple, list or 1-D array), each >= ``low`` -> a tuple.

    For patch grids: ``(H, W)`` with ``ndim=2``, ``(T, H, W)`` with ``ndim=3``;
    an int repeats, ``14`` -> ``(14, 14)``.
    """
    if hasattr(value, "tolist") and getattr(value, "ndim", None) == 1:
        value = value.tolist()
    if is_int(value):
        grid: tuple[int, ...] | None = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(is_int(v) for v in value):
        grid = tuple(int(v) for v in value)
    else:
        grid = None
    if grid is None or min(grid) < low:
        raise invalid(name, f"an integer >= {low} or {ndim} of them", value)
    return grid


def check_range_pair(
    name: str, value: Any, *, low: float = 0.0, high: float | None = None, low_open: bool = True
) -> tuple[float, float]:
    """A ``(min, max)`` pair of finite numbers with ``low < min <= max <= high``.

    ``low_open=False`` allows ``min == low``. Returns ``(float, float)``.
    """
    try:
        lo, hi = (float(v) for v in value)
        ok = (
            all(is_real(v) for v in value)
            and math.isfinite(lo)
            and math.isfinite(hi)
            and lo <= hi
            and (lo > low if low_open else lo >= low)
            and (high is None or hi <= high)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        bound = f" <= {high:g}" if high is not None else ""
        op = "<" if low_open else "<="
        raise invalid(name, f"a pair (min, max) with {low:g} {op} min <= max{bound}", value)
    return lo, hi
