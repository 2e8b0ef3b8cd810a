"""Checks of blockwise (BEiT / iBOT / DINOv2) mask batches (NumPy only).

See :func:`check_blockwise_masks`, for batches of
:class:`~jepa_components.masks.BlockwiseMaskSampler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from jepa_components.masks import BlockwiseMaskSampler, MaskBatch
from jepa_components.testing.checks import check_masks

__all__ = ["admissible_block_sizes", "check_blockwise_masks"]


def _fail(message):
    raise AssertionError(f"check_blockwise_masks: {message}")


def _where(row, ids):
    return f"row {row}" if ids is None else f"row {row} (sample {int(ids[row])})"


def admissible_block_sizes(sampler: BlockwiseMaskSampler) -> np.ndarray:
    """``(n, 2)`` sizes ``(h, w)`` of the blocks drawn while the budget left is large.

    A block has ``h = round(x)``, ``w = round(y)`` with ``x y = A`` the drawn
    area and ``x / y = a`` the drawn aspect ratio, ``a`` in ``aspect_ratio``,
    and ``h < H``, ``w < W``. While the budget left is at least
    ``min_block_patches``, ``A`` lies in ``[min_block_patches,
    max_block_patches]``: these are the sizes returned. (Later blocks draw
    ``A`` between the budget left and ``min_block_patches``, down to 1x1, but
    add fewer than ``min_block_patches`` patches in all.) In log
    coordinates the rounding cell of ``(h, w)`` is a rectangle and the
    ``(A, a)`` range a rectangle rotated by 45 degrees, so (separating axes)
    they meet iff their projections on ``log x``, ``log y``, ``log x + log
    y`` and ``log x - log y`` overlap: an exact test (closed intervals).

    Example:
        >>> from jepa_components.masks import BlockwiseMaskSampler
        >>> sizes = admissible_block_sizes(BlockwiseMaskSampler(grid_size=(4, 4)))
        >>> sorted(map(tuple, sizes.tolist()))
        [(1, 3), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]
    """
    H, W = sampler.grid_size
    big = 0.5 * H * W if sampler.max_block_patches is None else sampler.max_block_patches
    s_lo, s_hi = math.log(sampler.min_block_patches), math.log(big)  # log area
    d_lo, d_hi = (math.log(a) for a in sampler.aspect_ratio)  # log aspect
    hh, ww = np.meshgrid(np.arange(1, H), np.arange(1, W), indexing="ij")
    h, w = hh.ravel(), ww.ravel()
    x_lo, x_hi = np.log(h - 0.5), np.log(h + 0.5)
    y_lo, y_hi = np.log(w - 0.5), np.log(w + 0.5)
    eps = 1e-9

    def meet(lo1, hi1, lo2, hi2):
        return (lo1 <= hi2 + eps) & (lo2 <= hi1 + eps)

    ok = (
        meet(x_lo + y_lo, x_hi + y_hi, s_lo, s_hi)
        & meet(x_lo - y_hi, x_hi - y_lo, d_lo, d_hi)
        & meet(x_lo, x_hi, (s_lo + d_lo) / 2, (s_hi + d_hi) / 2)
        & meet(y_lo, y_hi, (s_lo - d_hi) / 2, (s_hi - d_lo) / 2)
    )
    return np.stack([h[ok], w[ok]], axis=1)


def _covered(mask: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(B, H, W)`` bool: patches of ``mask`` inside a box of one of ``sizes`` inside ``mask``."""
    b, H, W = mask.shape
    table = np.zeros((b, H + 1, W + 1), np.int64)  # summed-area table
    table[:, 1:, 1:] = mask.cumsum(1).cumsum(2)
    covered = np.zeros((b, H + 1, W + 1), np.int64)  # 2-D difference array of the boxes
    for h, w in sizes.tolist():
        inside = (
            table[:, h:, w:] - table[:, :-h, w:] - table[:, h:, :-w] + table[:, :-h, :-w]
        ) == h * w  # (B, H - h + 1, W - w + 1): the box at (top, left) lies in the mask
        covered[:, : H - h + 1, : W - w + 1] += inside
        covered[:, h:, : W - w + 1] -= inside
        covered[:, : H - h + 1, w:] -= inside
        covered[:, h:, w:] += inside
    return covered.cumsum(1).cumsum(2)[:, :H, :W] > 0


def check_blockwise_masks(
    batch: MaskBatch, sampler: BlockwiseMaskSampler, sample_ids: Iterable[int] | None = None
) -> None:
    """Assert the invariants of a batch of :class:`~jepa_components.masks.BlockwiseMaskSampler`.

    On top of :func:`~jepa_components.testing.check_masks` (every generic
    invariant, the stream contract when ``sample_ids`` is given):

    * one target per image; at most ``int(N * max ratio)`` masked patches;
    * context and target disjoint, and together the whole grid when no row
      is cut (``ragged != "truncate"`` and the default lengths);
    * the mask is a union of blocks: all but at most ``min_block_patches -
      1`` of its patches lie in a rectangle of an admissible size
      (:func:`admissible_block_sizes`: ``h < H``, ``w < W``, area in
      ``[min_block_patches, max_block_patches]`` and aspect ratio in range,
      up to rounding) lying entirely inside the mask (blocks only grow the
      mask; smaller blocks come only once the budget left is below
      ``min_block_patches``, and add no more than that; checked when rows
      are not cut);
    * given ``sample_ids`` (``(B,)`` ints, ``range(k, k + B)`` for
      ``sampler.sample(B, start=k)``): no image masks more than its budget
      ``sampler.target_counts(sample_ids)`` (it may mask fewer: a block that
      fails every try ends the image, as in DINOv2), and an image whose
      budget is 0 (not masked) has an empty target and sees the whole grid
      when nothing is cut.

    Raises ``AssertionError``.

    Example:
        >>> from jepa_components.masks import BlockwiseMaskSampler
        >>> sampler = BlockwiseMaskSampler(grid_size=(8, 8), seed=0)
        >>> check_blockwise_masks(sampler.sample(4, start=3), sampler, sample_ids=range(3, 7))
    """
    if not isinstance(batch, MaskBatch):
        _fail(f"expected a MaskBatch, got {type(batch).__name__}")
    if not isinstance(sampler, BlockwiseMaskSampler):
        _fail(f"expected a BlockwiseMaskSampler, got {type(sampler).__name__}")
    ids = None if sample_ids is None else np.asarray(list(sample_ids), dtype=np.int64)
    if ids is not None and ids.shape != (batch.batch_size,):
        _fail(f"sample_ids must hold one number per row: {ids.shape} for {batch.batch_size} rows")
    check_masks(batch, sampler)  # the stream part (with sample_ids) comes last
    if batch.num_targets != 1:
        _fail(f"a blockwise sampler draws one target, the batch has {batch.num_targets}")
    n, (H, W) = sampler.num_patches, sampler.grid_size
    cap = sampler.max_counts()[1]
    counts = batch.targets_valid[:, 0].sum(axis=1)
    bad = np.nonzero(counts > cap)[0]
    if bad.size:
        r = int(bad[0])
        _fail(
            f"{_where(r, ids)}: {int(counts[r])} masked patches, more than int(N * max ratio) "
            f"= {cap} (mask_ratio={sampler.mask_ratio})"
        )
    ctx, tgt = batch.to_dense()
    ctx, tgt = ctx.reshape(-1, n), tgt[:, 0].reshape(-1, n)
    bad = np.nonzero((ctx & tgt).any(axis=1))[0]
    if bad.size:
        r = int(bad[0])
        _fail(f"{_where(r, ids)}: patch {int(np.argmax(ctx[r] & tgt[r]))} is context and target")
    cut = sampler.ragged == "truncate"
    full_c = not cut and sampler.context_length >= n
    full_t = not cut and sampler.target_length >= cap
    if full_c and full_t:
        bad = np.nonzero(~(ctx | tgt).all(axis=1))[0]
        if bad.size:
            r = int(bad[0])
            p = int(np.argmax(~(ctx[r] | tgt[r])))
            _fail(f"{_where(r, ids)}: patch {p} is neither context nor target (complement rule)")
    if full_t:
        mask = tgt.reshape(-1, H, W)
        loose = mask & ~_covered(mask, admissible_block_sizes(sampler))
        small = sampler.min_block_patches
        bad = np.nonzero(loose.sum(axis=(1, 2)) >= small)[0]
        if bad.size:
            r = int(bad[0])
            where = [(int(i), int(j)) for i, j in np.argwhere(loose[r])[:small]]
            _fail(
                f"{_where(r, ids)}: masked patches {where} (row, col) lie in no block of an "
                f"admissible size inside the mask (h < {H}, w < {W}, area in "
                f"[{small}, max_block_patches], aspect ratio in {sampler.aspect_ratio}); at "
                f"most min_block_patches - 1 = {small - 1} may (the last, small blocks)"
            )
    if ids is None:
        return
    budget = sampler.target_counts(ids)
    bad = np.nonzero(counts > budget)[0]
    if bad.size:
        r = int(bad[0])
        _fail(
            f"{_where(r, ids)}: {int(counts[r])} masked patches, more than its budget "
            f"{int(budget[r])} (int(N * ratio), 0 when the image is not masked)"
        )
    if full_c:
        bad = np.nonzero((budget == 0) & (ctx.sum(axis=1) != n))[0]
        if bad.size:
            _fail(f"{_where(int(bad[0]), ids)}: an image that is not masked must see every patch")
    check_masks(batch, sampler, sample_ids=ids)  # now the stream part: redraws
