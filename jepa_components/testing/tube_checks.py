"""Checks of V-JEPA's video masks on ``(T, H, W)`` grids (NumPy only).

For :class:`~jepa_components.masks.MultiBlock3DMaskSampler` and
:class:`~jepa_components.masks.RandomTubeMaskSampler`: see
:func:`check_tube_masks`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from jepa_components.masks import MaskBatch, MaskSampler
from jepa_components.masks.tube import MultiBlock3DMaskSampler, RandomTubeMaskSampler
from jepa_components.testing.checks import check_masks

__all__ = ["check_tube_masks"]


def _fail(message):
    raise AssertionError(f"check_tube_masks: {message}")


def _where(row, ids):
    return f"row {row}" if ids is None else f"row {row} (sample {int(ids[row])})"


def _first(bad, ids, message):
    rows = np.nonzero(bad)[0]
    if rows.size:
        _fail(f"{_where(int(rows[0]), ids)}: {message}")


def check_tube_masks(
    batch: MaskBatch, sampler: MaskSampler, sample_ids: Iterable[int] | None = None
) -> None:
    """Assert the invariants of a batch from a V-JEPA tube sampler.

    First every generic invariant (:func:`~jepa_components.testing.check_masks`,
    determinism included when ``sample_ids`` are given), then the family's:

    * **Random tube**: the context holds exactly ``K = num_keep_spatial``
      positions in every frame, the same positions in all ``T`` frames; the
      target is the rest (all of it unless ``target_length`` cuts it).
    * **Multi-block 3D**: frames from ``context_frames`` on are never in the
      context (they are target); context and target are disjoint; without
      a cut the context is the complement of the target, and with
      ``full_complement`` the target is the complement of the (possibly
      cut) context. Where every reachable tube spans all ``T`` frames
      (``temporal_scale`` 1), the target is the same in every context frame.
      With ``sample_ids``, the tubes of :meth:`~MultiBlock3DMaskSampler.blocks`
      are checked too: inside the grid, one size ``(t, h, w)`` per sample
      that the ranges allow (recomputed here from V-JEPA's size rule, not
      the sampler's table), and their union (with the frames past the
      context's) is exactly the uncut target.

    ``sample_ids``: ``(B,)`` ints, ``range(k, k + B)`` for
    ``sampler.sample(B, start=k)``. Raises ``AssertionError``.

    Example:
        >>> from jepa_components.masks import MultiBlock3DMaskSampler, RandomTubeMaskSampler
        >>> tube = MultiBlock3DMaskSampler(grid_size=(4, 8, 8), num_blocks=3, seed=0)
        >>> check_tube_masks(tube.sample(3, start=5), tube, sample_ids=range(5, 8))
        >>> random_tube = RandomTubeMaskSampler(grid_size=(4, 8, 8), seed=0)
        >>> check_tube_masks(random_tube.sample(2), random_tube)
    """
    if not isinstance(batch, MaskBatch):
        _fail(f"expected a MaskBatch, got {type(batch).__name__}")
    if not isinstance(sampler, (MultiBlock3DMaskSampler, RandomTubeMaskSampler)):
        _fail(f"expected a V-JEPA tube sampler, got {type(sampler).__name__}")
    ids = None if sample_ids is None else np.asarray(list(sample_ids), dtype=np.int64)
    check_masks(batch, sampler, sample_ids=ids)
    ctx, tgt = batch.to_dense()
    tgt = tgt[:, 0]  # one target: (B, T, H, W)
    if isinstance(sampler, RandomTubeMaskSampler):
        _check_random_tube(batch, sampler, ctx, tgt, ids)
    else:
        _check_multiblock3d(batch, sampler, ctx, tgt, ids)


def _uncut(sampler):
    """Whether rows hold all their patches: (context, target)."""
    if sampler.ragged == "truncate":
        return False, False
    big_c, big_t = sampler.max_counts()
    return sampler.context_length >= big_c, sampler.target_length >= big_t


def _check_random_tube(batch, sampler, ctx, tgt, ids):
    T, H, W = sampler.grid_size
    k = sampler.num_keep_spatial
    per_frame = ctx.reshape(len(ctx), T, H * W).sum(-1)
    bad = (per_frame != k).any(axis=1)
    if bad.any():
        r = int(np.nonzero(bad)[0][0])
        _fail(
            f"{_where(r, ids)}: the context keeps {per_frame[r].tolist()} positions per "
            f"frame, expected exactly int({H * W} * (1 - ratio)) = {k} in each of the {T} frames"
        )
    _first(
        (ctx != ctx[:, :1]).any(axis=(1, 2, 3)),
        ids,
        "the context positions differ between frames: a random tube keeps the same "
        "spatial positions in every frame",
    )
    full = T * (H * W - k)
    expected = min(full, sampler.target_length)  # "truncate" cuts within the caps too
    counts = tgt.sum(axis=(1, 2, 3))
    _first(
        counts != expected,
        ids,
        f"the target holds {counts.tolist()} patches, expected {expected} (the {full} "
        "masked patches, cut to the target length)",
    )
    if expected == full:
        _first((tgt == ctx).any(axis=(1, 2, 3)), ids, "the target is not the context's complement")


def _size_allowed(size, sampler) -> bool:
    """``(t, h, w)`` can come from V-JEPA's size rule for the sampler's ranges.

    Recomputed from the rule (``t = max(1, int(T s_t))``; ``keep = int(H W
    s)``, ``h = round(sqrt(keep a))``, ``w = round(sqrt(keep / a))``,
    clipped to ``[1, H]``, ``[1, W]``), independent of the sampler's table:
    for each ``keep`` the aspects giving ``h`` and those giving ``w`` are
    intervals; the size is allowed if they meet inside the aspect range.
    """
    T, H, W = sampler.grid_size
    t, h, w = size
    t_lo, t_hi = (max(1, int(T * s)) for s in sampler.temporal_scale)
    if not t_lo <= t <= t_hi:
        return False
    a_lo, a_hi = sampler.aspect_ratio
    eps = 1e-9
    for keep in range(*(int(H * W * s) + j for s, j in zip(sampler.spatial_scale, (0, 1)))):
        if keep == 0:
            if h == 1 and w == 1:
                return True
            continue
        # h = round(sqrt(keep a)): a in [(h - 1/2)^2, (h + 1/2)^2] / keep, open at clipped ends
        lo_h = 0.0 if h == 1 else (h - 0.5) ** 2 / keep
        hi_h = math.inf if h == H else (h + 0.5) ** 2 / keep
        lo_w = 0.0 if w == W else keep / (w + 0.5) ** 2
        hi_w = math.inf if w == 1 else keep / (w - 0.5) ** 2
        if max(lo_h, lo_w, a_lo) <= min(hi_h, hi_w, a_hi) + eps:
            return True
    return False


def _check_multiblock3d(batch, sampler, ctx, tgt, ids):
    T, H, W = sampler.grid_size
    tc = sampler.context_frames
    full_c, full_t = _uncut(sampler)
    _first(
        ctx[:, tc:].any(axis=(1, 2, 3)),
        ids,
        f"context patches in frames >= {tc} = max(1, int(T * max_temporal_keep)), which "
        "belong to the target",
    )
    if full_t:
        _first(
            ~tgt[:, tc:].all(axis=(1, 2, 3)),
            ids,
            f"frames >= {tc} (past max_temporal_keep) are not all in the target",
        )
        if sampler.full_complement:
            _first(
                (tgt == ctx).any(axis=(1, 2, 3)),
                ids,
                "full_complement: the target is not the complement of the (cut) context",
            )
    uncut_target = full_t and (full_c or not sampler.full_complement)
    if uncut_target and (sampler.block_sizes()[:, 0] == T).all():
        _first(
            (tgt[:, :tc] != tgt[:, :1]).any(axis=(1, 2, 3)),
            ids,
            "the target differs between context frames, but every tube spans all "
            f"T={T} frames (temporal_scale {sampler.temporal_scale})",
        )
    if ids is None:
        return
    blocks = sampler.blocks(ids)
    expected = (len(ids), sampler.num_blocks, 6)
    if blocks.shape != expected:
        _fail(f"blocks(sample_ids) has shape {blocks.shape}, expected {expected}")
    start, top, left, t, h, w = np.moveaxis(blocks, -1, 0)
    sizes = blocks[..., 3:]
    _first(
        (sizes != sizes[:, :1]).any(axis=(1, 2)),
        ids,
        "the tubes of one sample differ in size (V-JEPA draws one size per mask)",
    )
    outside = (start < 0) | (top < 0) | (left < 0) | (start + t > T) | (top + h > H)
    _first(
        (outside | (left + w > W) | (t < 1) | (h < 1) | (w < 1)).any(axis=1),
        ids,
        "a tube is not inside the grid",
    )
    table = {tuple(s) for s in sampler.block_sizes().tolist()}
    for size in {tuple(s) for s in sizes[:, 0].tolist()}:
        row = int(np.nonzero((sizes[:, 0] == size).all(axis=1))[0][0])
        if size not in table:
            _fail(f"{_where(row, ids)}: tube size {size} is not one of sampler.block_sizes()")
        if not _size_allowed(size, sampler):
            _fail(
                f"{_where(row, ids)}: tube size (t, h, w) = {size} is outside temporal_scale "
                f"{sampler.temporal_scale} / spatial_scale {sampler.spatial_scale} / "
                f"aspect_ratio {sampler.aspect_ratio} under V-JEPA's size rule"
            )
    frames, rows, cols = np.arange(T), np.arange(H), np.arange(W)
    s, tp, lf, tt, hh, ww = (v[..., None] for v in (start, top, left, t, h, w))
    in_t = (frames >= s) & (frames < s + tt)
    in_r = (rows >= tp) & (rows < tp + hh)
    in_c = (cols >= lf) & (cols < lf + ww)
    union = (in_t[..., :, None, None] & in_r[..., None, :, None] & in_c[..., None, None, :]).any(1)
    union[:, tc:] = True
    if full_c:
        _first(
            (ctx != ~union).any(axis=(1, 2, 3)),
            ids,
            "the context is not the complement of its tubes",
        )
    else:
        _first((ctx & union).any(axis=(1, 2, 3)), ids, "the context overlaps its tubes")
    if uncut_target:
        _first((tgt != union).any(axis=(1, 2, 3)), ids, "the target is not the union of its tubes")
    elif full_t:  # full_complement after a cut: the tubes and what the cut dropped
        _first((union & ~tgt).any(axis=(1, 2, 3)), ids, "the target misses patches of its tubes")
