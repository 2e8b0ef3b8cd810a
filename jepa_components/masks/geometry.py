"""Block geometry on a patch grid: sizes from (scale, aspect), placement, packing.

Conventions (shared by every sampler in :mod:`jepa_components.masks`):

* A grid has ``H`` rows and ``W`` columns of patches; patch ``(row, col)`` has
  index ``row * W + col`` (row-major, as in facebookresearch/ijepa).
* A block of *scale* ``s`` and *aspect ratio* ``a`` has
  ``h = round(H * sqrt(s * a))`` rows and ``w = round(W * sqrt(s / a))``
  columns, clipped to ``[1, H]`` and ``[1, W]``. So ``h * w ~= s * H * W`` and
  ``(h / H) / (w / W) ~= a``. On a square grid this is the official
  ``h = round(sqrt(H*W*s*a))``; measuring the aspect ratio relative to the grid
  keeps ``scale=1.0, aspect=1.0`` meaning "the whole image" on non-square grids.
* A block's top-left corner is uniform over all ``(H - h + 1) * (W - w + 1)``
  positions, so blocks touch the last row and column (the official
  ``randint(0, H - h)`` never does) and may span the full height or width.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np


def check_grid_size(grid_size) -> Tuple[int, int]:
    """Validate ``grid_size`` (int or ``(H, W)``) and return ``(H, W)``."""
    if isinstance(grid_size, (int, np.integer)) and not isinstance(grid_size, bool):
        grid_size = (int(grid_size), int(grid_size))
    try:
        h, w = (int(v) for v in grid_size)
        ok = all(float(v) == int(v) for v in grid_size) and h >= 1 and w >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            "Invalid value for argument `grid_size`. Expected a positive int or a "
            f"pair of positive ints (rows, cols). Received: grid_size={grid_size!r}"
        )
    return h, w


def check_range(name: str, value, *, upper: float | None = None) -> Tuple[float, float]:
    """Validate a ``(min, max)`` pair with ``0 < min <= max [<= upper]``."""
    try:
        lo, hi = (float(v) for v in value)
        ok = 0.0 < lo <= hi and math.isfinite(hi) and (upper is None or hi <= upper)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        bound = f" <= {upper:g}" if upper is not None else ""
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a pair (min, max) with "
            f"0 < min <= max{bound}. Received: {name}={value!r}"
        )
    return lo, hi


def check_int(name: str, value, *, low: int, high: int | None = None) -> int:
    """Validate an integer argument in ``[low, high]``."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        rng = f"{low} <= {name}" + (f" <= {high}" if high is not None else "")
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer with {rng}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def block_sizes(scale: np.ndarray, aspect: np.ndarray, grid: Tuple[int, int]):
    """Block heights and widths (int64 arrays) for scales and aspect ratios."""
    H, W = grid
    h = np.minimum(np.maximum(_round_half_up(H * np.sqrt(scale * aspect)), 1), H)
    w = np.minimum(np.maximum(_round_half_up(W * np.sqrt(scale / aspect)), 1), W)
    return h, w


def lerp(lo: float, hi: float, u: np.ndarray) -> np.ndarray:
    """Map uniforms ``u`` in [0, 1) to ``[lo, hi)`` (exactly ``lo`` if equal)."""
    return lo + u * (hi - lo)


def place(size: np.ndarray, extent: int, u: np.ndarray) -> np.ndarray:
    """Uniform start positions in ``[0, extent - size]`` for uniforms ``u``."""
    return np.minimum((u * (extent - size + 1)).astype(np.int64), extent - size)


def box_masks(top, left, h, w, grid: Tuple[int, int]) -> np.ndarray:
    """Dense boolean masks ``(..., H * W)`` of axis-aligned boxes."""
    H, W = grid
    rows = np.arange(H)
    cols = np.arange(W)
    top, left, h, w = (np.asarray(v)[..., None] for v in (top, left, h, w))
    in_rows = (rows >= top) & (rows < top + h)  # (..., H)
    in_cols = (cols >= left) & (cols < left + w)  # (..., W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).reshape(in_rows.shape[:-1] + (H * W,))


def feasible_sizes(
    scale: Sequence[float], aspect: Sequence[float], grid: Tuple[int, int]
) -> np.ndarray:
    """All ``(h, w)`` that :func:`block_sizes` can return for the ranges.

    Returns an ``(n, 2)`` int array (a superset only at measure-zero rounding
    boundaries). Used to size the padded index arrays exactly: the largest
    block the sampler can ever draw, not a loose ``scale * aspect`` bound.

    Writing ``x = log(s a)`` and ``y = log(s / a)``, a size ``(h, w)`` is
    reachable iff the box ``x in X_h, y in Y_w`` meets the slab
    ``x + y in 2 log S, x - y in 2 log A``; for a fixed ``q = x - y`` the
    admissible ``p = x + y`` form an interval whose length is concave in ``q``,
    so checking its breakpoints decides feasibility exactly.
    """
    H, W = grid
    big = 1e9

    def log_interval(n, extent):
        # values v with round(extent * sqrt(v)) == n after clipping to [1, extent]
        lo = -big if n == 1 else 2 * math.log((n - 0.5) / extent)
        hi = big if n == extent else 2 * math.log((n + 0.5) / extent)
        return lo, hi

    p0, p1 = 2 * math.log(scale[0]), 2 * math.log(scale[1])
    q0, q1 = 2 * math.log(aspect[0]), 2 * math.log(aspect[1])
    out = []
    for h in range(1, H + 1):
        x0, x1 = log_interval(h, H)
        for w in range(1, W + 1):
            y0, y1 = log_interval(w, W)
            qa, qb = max(q0, x0 - y1), min(q1, x1 - y0)
            if qa > qb:
                continue
            cands = [qa, qb, x0 - y0, x1 - y1, 2 * x0 - p0, p0 - 2 * y0, 2 * x1 - p1, p1 - 2 * y1]
            best = -np.inf
            for q in cands:
                q = min(max(q, qa), qb)
                lo = max(2 * x0 - q, 2 * y0 + q, p0)
                hi = min(2 * x1 - q, 2 * y1 + q, p1)
                best = max(best, hi - lo)
            if best >= -1e-9:
                out.append((h, w))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def max_block_area(scale, aspect, grid: Tuple[int, int]) -> int:
    """Largest ``h * w`` the size rule can produce for these ranges."""
    sizes = feasible_sizes(scale, aspect, grid)
    return int((sizes[:, 0] * sizes[:, 1]).max())


def min_block_area(scale, aspect, grid: Tuple[int, int]) -> int:
    """Smallest ``h * w`` the size rule can produce for these ranges."""
    sizes = feasible_sizes(scale, aspect, grid)
    return int((sizes[:, 0] * sizes[:, 1]).min())


class BoxBits:
    """Boxes as one ``uint64`` bit mask per grid row (grids up to 64 columns).

    ``bits(top, left, h, w)`` returns ``(..., H) uint64`` with bit ``c`` of row
    ``r`` set iff patch ``(r, c)`` is in the box, from two table look-ups: a
    handful of numpy calls on ``(..., H)`` words instead of ``(..., H * W)``
    booleans, which is what makes the samplers fast.
    """

    def __init__(self, grid: Tuple[int, int]):
        H, W = grid
        if W > 64:
            raise ValueError(f"BoxBits needs at most 64 columns. Received: grid={grid}")
        self.grid = (H, W)
        rows = np.arange(H)
        tops, heights = np.meshgrid(np.arange(H + 1), np.arange(H + 1), indexing="ij")
        covered = (rows >= tops[..., None]) & (rows < (tops + heights)[..., None])
        # tables indexed by top * (H + 1) + h and left * (W + 1) + w
        self._rows = np.where(covered, np.uint64(2**64 - 1), np.uint64(0)).reshape(-1, H)
        cols = np.zeros((W + 1, W + 1), dtype=np.uint64)
        for left in range(W + 1):
            for w in range(W + 1 - left):
                cols[left, w] = ((1 << w) - 1) << left
        self._cols = cols.reshape(-1)

    def bits(self, top, left, h, w) -> np.ndarray:
        H, W = self.grid
        rows = np.take(self._rows, top * (H + 1) + h, axis=0)
        rows &= np.take(self._cols, left * (W + 1) + w)[..., None]
        return rows

    def to_dense(self, bits: np.ndarray) -> np.ndarray:
        """``(R, H) uint64`` -> ``(R, H * W)`` uint8 0/1."""
        H, W = self.grid
        words = np.ascontiguousarray(bits, dtype="<u8").view(np.uint8).reshape(-1, H, 8)
        return np.unpackbits(words, axis=-1, count=W, bitorder="little").reshape(-1, H * W)


def context_minus_targets(boxes, grid: Tuple[int, int], box_bits=None) -> np.ndarray:
    """Dense ``(R, H * W)`` bool: the context box with every target box removed.

    ``boxes`` is ``(top, left, h, w)``, each an ``(R, M + 1)`` array: blocks
    ``0..M-1`` are the targets, block ``M`` the context. With a
    :class:`BoxBits` for the grid (at most 64 columns) the work happens on row
    bit masks; otherwise on boolean boxes.
    """
    if box_bits is None:
        dense = box_masks(*boxes, grid)
        return dense[:, -1] & ~dense[:, :-1].any(axis=1)
    bits = box_bits.bits(*boxes)  # (R, M + 1, H)
    union = np.bitwise_or.reduce(bits[:, :-1], axis=1)
    return box_bits.to_dense(bits[:, -1] & ~union).view(bool)


def pack_dense(dense: np.ndarray, length: int) -> Tuple[np.ndarray, np.ndarray]:
    """Dense ``(R, N)`` bool rows -> ascending indices ``(R, length) int32`` + valid.

    Every row must hold at most ``length`` True entries. Padding slots hold 0.
    A stable partition by sorting ``index + N * (not selected)``: one small
    integer sort instead of a scatter.
    """
    n = dense.shape[1]
    dtype = np.int16 if 2 * n < 2**15 else np.int32
    key = np.arange(n, dtype=dtype) + (dense.view(np.uint8) ^ 1) * dtype(n)
    key = np.sort(key, axis=1)[:, :length]
    valid = key < n
    return (key * valid.view(np.int8)).astype(np.int32), valid


class BoxIndexer:
    """Row-major patch indices of boxes, padded to a fixed length.

    Built once per sampler from the ``(h, w)`` sizes it can draw; turns
    ``(top, left, h, w)`` arrays into ``(..., length) int32`` indices (padding
    slots hold 0) and ``(..., length)`` bool valid flags with table look-ups.
    """

    def __init__(self, sizes: np.ndarray, grid: Tuple[int, int]):
        H, W = grid
        sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        self.length = int((sizes[:, 0] * sizes[:, 1]).max())
        self._lut = np.zeros((H + 1, W + 1), dtype=np.int64)
        # padding offsets are so negative that start + offset < 0, clipped to 0
        self._offsets = np.full((len(sizes), self.length), -2 * H * W, dtype=np.int32)
        for i, (h, w) in enumerate(sizes):
            j = np.arange(h * w)
            self._offsets[i, : h * w] = (j // w) * W + j % w
            self._lut[h, w] = i
        self._valid = self._offsets >= 0
        self._width = W

    def __call__(self, top, left, h, w):
        size_id = self._lut[h, w]
        idx = np.take(self._offsets, size_id, axis=0)
        idx += (np.asarray(top) * self._width + np.asarray(left)).astype(np.int32)[..., None]
        np.maximum(idx, 0, out=idx)  # in place: fresh large temporaries cost page faults
        return idx, np.take(self._valid, size_id, axis=0)
