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
from collections.abc import Sequence

import numpy as np

from jepa_components._validation import check_grid


def check_grid_size(grid_size: int | tuple[int, int]) -> tuple[int, int]:
    """Validate ``grid_size`` (an int, or a pair of ints ``(H, W)``, e.g. a tuple or
    array) and return ``(H, W)``: :func:`~jepa_components._validation.check_grid`."""
    return check_grid("grid_size", grid_size, 2)  # type: ignore[return-value]


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(np.int64)


def block_sizes(scale: np.ndarray, aspect: np.ndarray, grid: tuple[int, ...]):
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


def box_masks(top, left, h, w, grid: tuple[int, ...]) -> np.ndarray:
    """Dense boolean masks ``(..., H * W)`` of axis-aligned boxes."""
    H, W = grid
    rows = np.arange(H)
    cols = np.arange(W)
    top, left, h, w = (np.asarray(v)[..., None] for v in (top, left, h, w))
    in_rows = (rows >= top) & (rows < top + h)  # (..., H)
    in_cols = (cols >= left) & (cols < left + w)  # (..., W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).reshape(in_rows.shape[:-1] + (H * W,))


def feasible_sizes(
    scale: Sequence[float], aspect: Sequence[float], grid: tuple[int, ...]
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


def max_block_area(scale, aspect, grid: tuple[int, ...]) -> int:
    """Largest ``h * w`` the size rule can produce for these ranges."""
    sizes = feasible_sizes(scale, aspect, grid)
    return int((sizes[:, 0] * sizes[:, 1]).max())


def min_block_area(scale, aspect, grid: tuple[int, ...]) -> int:
    """Smallest ``h * w`` the size rule can produce for these ranges."""
    sizes = feasible_sizes(scale, aspect, grid)
    return int((sizes[:, 0] * sizes[:, 1]).min())


def _key_dtype(n: int):
    """Smallest signed dtype for sort keys ``< n`` plus a power-of-two sentinel above them."""
    return (np.int16, 1 << 14) if n < 1 << 14 else (np.int32, 1 << 30)


class BoxBits:
    """Boxes as one bit mask word per grid row (grids up to 64 columns).

    ``bits(top, left, h, w)`` returns ``(..., H)`` words (the smallest unsigned
    dtype with ``W`` bits) with bit ``c`` of row ``r`` set iff patch
    ``(r, c)`` is in the box, from two table look-ups: a handful of numpy
    calls on ``(..., H)`` words instead of ``(..., H * W)`` booleans, which is
    what makes the samplers fast. :meth:`pack` turns such words straight into
    padded ascending indices.
    """

    def __init__(self, grid: tuple[int, ...]):
        H, W = grid
        if W > 64:
            raise ValueError(f"BoxBits needs at most 64 columns. Received: grid={grid}")
        self.grid = (H, W)
        self.dtype = np.dtype(f"<u{next(b for b in (1, 2, 4, 8) if 8 * b >= W)}")
        full = np.array((1 << W) - 1, dtype=self.dtype)
        rows = np.arange(H)
        tops, heights = np.meshgrid(np.arange(H + 1), np.arange(H + 1), indexing="ij")
        covered = (rows >= tops[..., None]) & (rows < (tops + heights)[..., None])
        # tables indexed by row_key = top * (H + 1) + h and col_key = left * (W + 1) + w
        self._rows = np.where(covered, full, self.dtype.type(0)).reshape(-1, H)
        cols = np.zeros((W + 1, W + 1), dtype=self.dtype)
        for left in range(W + 1):
            for w in range(W + 1 - left):
                cols[left, w] = ((1 << w) - 1) << left
        self._cols = cols.reshape(-1)
        # built on first pack(): (offsets, keys table, sentinel)
        self._pack_tables: tuple[np.ndarray, np.ndarray, int] | None = None

    def bits(self, top, left, h, w) -> np.ndarray:
        H, W = self.grid
        return self.bits_from_keys(top * (H + 1) + h, left * (W + 1) + w)

    def bits_from_keys(self, row_keys, col_keys) -> np.ndarray:
        """:meth:`bits` from ``row_keys = top * (H + 1) + h``, ``col_keys = left * (W + 1) + w``."""
        rows = np.take(self._rows, row_keys, axis=0)
        rows &= np.take(self._cols, col_keys)[..., None]
        return rows

    def pack(self, bits: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``(R, H)`` words -> ascending set-bit indices ``(R, length) int32`` + valid.

        Same result as :func:`pack_dense` on the dense masks, without building
        them: a table built once maps every (row, byte of the row word, byte
        value) to the byte's 8 sort keys (patch index where the bit is set, a
        sentinel above every index where not), so a byte view of the words and
        one ``take`` give the keys of :func:`pack_dense`.
        """
        if self._pack_tables is None:
            self._pack_tables = self._build_pack_tables()
        offsets, keys_table, sentinel = self._pack_tables
        words = np.ascontiguousarray(bits, dtype=self.dtype)
        row_bytes = words.view(np.uint8).reshape(len(words), -1, self.dtype.itemsize)
        keys = np.take(keys_table, row_bytes[..., : offsets.shape[1]] + offsets, axis=0)
        return _sorted_keys_to_indices(keys.reshape(len(words), -1), length, sentinel)

    def _build_pack_tables(self):
        H, W = self.grid
        n_bytes = -(-W // 8)
        key_dtype, sentinel = _key_dtype(H * W)
        cols = np.arange(n_bytes)[:, None] * 8 + np.arange(8)  # (n_bytes, 8) column of each bit
        is_set = (np.arange(256)[:, None] >> np.arange(8)) & 1 == 1  # (256, 8)
        index = np.arange(H)[:, None, None, None] * W + cols[None, :, None, :]
        table = np.where(is_set & (cols[None, :, None, :] < W), index, sentinel)
        offsets = (np.arange(H)[:, None] * n_bytes + np.arange(n_bytes)) * 256  # (H, n_bytes)
        return offsets, table.reshape(-1, 8).astype(key_dtype), sentinel


def _sorted_keys_to_indices(keys: np.ndarray, length: int, sentinel: int):
    """Sort ``(R, n)`` keys (patch index, or ``sentinel`` for "not selected") in place
    and return the first ``length`` as ascending ``int32`` indices (padding 0) + valid.

    ``sentinel`` is a power of two above every index, so ``& (sentinel - 1)``
    turns it into the padding 0 without a mixed-type multiply or ``where``.
    """
    keys.sort(axis=1)
    idx = keys[:, :length].astype(np.int32)
    valid = idx < sentinel
    idx &= sentinel - 1
    return idx, valid


def pack_dense(dense: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``(R, N)`` bool rows -> ascending indices ``(R, length) int32`` + valid.

    Every row must hold at most ``length`` True entries. Padding slots hold 0.
    A stable partition by one small integer sort of the keys ``index`` (True)
    or a power-of-two sentinel above every index (False); ``key & (sentinel -
    1)`` then turns sentinels into the padding 0.
    """
    n = dense.shape[1]
    dtype, sentinel = _key_dtype(n)
    keys = np.where(dense, np.arange(n, dtype=dtype), dtype(sentinel))
    return _sorted_keys_to_indices(keys, length, sentinel)


class BoxIndexer:
    """Row-major patch indices of boxes, padded to a fixed length.

    Built once per sampler from the ``(h, w)`` sizes it can draw; turns
    ``(top, left, h, w)`` arrays into ``(..., length) int32`` indices (padding
    slots hold 0) and ``(..., length)`` bool valid flags with table look-ups.
    While it fits in ``max_table_bytes`` the indices of every box (every size
    at every top-left corner) are one table, so a batch costs one ``take``
    each for indices and flags; otherwise a table of per-size offsets is
    shifted to the corner.
    """

    def __init__(self, sizes: np.ndarray, grid: tuple[int, ...], max_table_bytes: int = 4 << 20):
        H, W = grid
        sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        self.length = int((sizes[:, 0] * sizes[:, 1]).max())
        self._width = W
        # patch offsets of each size from its top-left corner; padding offsets
        # are so negative that corner + offset < 0, clipped to 0
        offsets = np.full((len(sizes), self.length), -2 * H * W, dtype=np.int32)
        for i, (h, w) in enumerate(sizes):
            j = np.arange(h * w)
            offsets[i, : h * w] = (j // w) * W + j % w
        # table row of a box: self._row[h * (W + 1) + w] (+ corner for whole-box tables)
        whole_boxes = len(sizes) * H * W * self.length * 5 <= max_table_bytes  # int32 + bool
        self._boxes_per_size = H * W if whole_boxes else 1
        self._row = np.zeros((H + 1) * (W + 1), dtype=np.intp)
        first_row = np.arange(len(sizes)) * self._boxes_per_size
        self._row[sizes[:, 0] * (W + 1) + sizes[:, 1]] = first_row
        if self._boxes_per_size > 1:  # one row per (size, corner = top * W + left)
            corner = np.arange(H * W, dtype=np.int32)[:, None]
            self._idx = np.maximum(offsets[:, None, :] + corner, 0).reshape(-1, self.length)
            self._valid = np.repeat(offsets >= 0, H * W, axis=0)
        else:
            self._idx, self._valid = offsets, offsets >= 0

    def __call__(self, top, left, h, w):
        row = np.take(self._row, h * (self._width + 1) + w)
        corner = top * self._width + left
        if self._boxes_per_size > 1:
            row += corner
            return np.take(self._idx, row, axis=0), np.take(self._valid, row, axis=0)
        idx = np.take(self._idx, row, axis=0)
        idx += np.asarray(corner, dtype=np.int32)[..., None]
        np.maximum(idx, 0, out=idx)  # in place: fresh large temporaries cost page faults
        return idx, np.take(self._valid, row, axis=0)
