"""Invariant checks of mask batches and sampler streams (NumPy only).

Each check raises ``AssertionError`` with a message naming the row, the
sample number (when known) and the broken invariant; see
:mod:`jepa_components.testing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from jepa_components.masks import MaskBatch, MaskSampler
from jepa_components.masks.geometry import box_masks

__all__ = ["check_masks", "check_stream"]


def _fail(message):
    raise AssertionError(f"check_masks: {message}")


def _row_name(kind, row, sample_ids, m=None):
    where = f"{kind} row {row}" if m is None else f"{kind} row {row} block {m}"
    if sample_ids is not None:
        where += f" (sample {int(sample_ids[row])})"
    return where


def check_masks(
    batch: MaskBatch, sampler: MaskSampler, *, sample_ids: Iterable[int] | None = None
) -> None:
    """Assert every invariant of ``batch`` drawn from ``sampler`` (see the module doc).

    ``sample_ids`` (``(B,)`` ints): the stream numbers of the rows (``range(k,
    k + B)`` for ``sampler.sample(B, start=k)``); then the batch is drawn again
    with :meth:`~MaskSampler.sample_at` and must be identical, and every row
    must equal ``sampler.sample(1, start=id)`` (its valid entries; with
    ``ragged="truncate"`` a subset of them, or a superset for targets that
    complement the cut context). With ``num_clones = C`` the batch holds ``C``
    rows per sample number and ``sample_ids`` one number per sample.
    Grids may be ``(H, W)`` or ``(T, H, W)``. Raises ``AssertionError``.
    """
    if not isinstance(batch, MaskBatch):
        _fail(f"expected a MaskBatch, got {type(batch).__name__}")
    ids = None if sample_ids is None else np.asarray(list(sample_ids), dtype=np.int64)
    clones = int(getattr(sampler, "num_clones", 1))
    if ids is not None and ids.shape != (batch.batch_size // clones,):
        _fail(
            f"sample_ids must hold one number per row (per sample of num_clones={clones} "
            f"rows): {ids.shape} for {batch.batch_size} rows"
        )
    if batch.batch_size % clones:
        _fail(f"{batch.batch_size} rows is not a multiple of num_clones={clones}")
    sample_ids_of_rows = ids
    ids = None if ids is None else np.repeat(ids, clones)  # one number per row
    _check_structure(batch, sampler)
    n = sampler.num_patches
    b, m = batch.batch_size, batch.num_targets
    _check_rows("context", batch.context, batch.context_valid, n, ids)
    _check_rows(
        "targets",
        batch.targets.reshape(b * m, -1),
        batch.targets_valid.reshape(b * m, -1),
        n,
        ids,
        m,
    )
    ctx, tgt = batch.to_dense()
    ctx, tgt = ctx.reshape(b, n), tgt.reshape(b, m, n)
    if not np.array_equal(ctx.sum(1), batch.context_valid.sum(1)) or not np.array_equal(
        tgt.sum(-1), batch.targets_valid.sum(-1)
    ):
        _fail("to_dense() does not mark exactly the valid indices")
    _check_lengths(batch, sampler)
    _check_context(batch, sampler, ctx, tgt, ids)
    _check_boxes(batch, sampler, ctx, tgt, ids)
    if sample_ids_of_rows is not None:
        _check_redraw(batch, sampler, sample_ids_of_rows, ctx, tgt)


def _check_structure(batch, sampler):
    if tuple(batch.grid_size) != tuple(sampler.grid_size):
        _fail(f"batch grid_size {batch.grid_size} differs from the sampler's {sampler.grid_size}")
    if batch.num_targets != sampler.num_targets:
        _fail(f"{batch.num_targets} target blocks, the sampler draws {sampler.num_targets}")
    for key, dtype in (
        ("context", np.int32),
        ("targets", np.int32),
        ("context_valid", np.bool_),
        ("targets_valid", np.bool_),
    ):
        value = getattr(batch, key)
        if not isinstance(value, np.ndarray) or value.dtype != dtype:
            _fail(
                f"`{key}` must be a {np.dtype(dtype).name} array, got "
                f"{getattr(value, 'dtype', type(value).__name__)}"
            )


def _check_rows(kind, idx, valid, n, ids, m=None):
    """Packed rows: valid flags a prefix, padding 0, indices in range, ascending, unique."""

    def name(r):
        return _row_name(kind, r if m is None else r // m, ids, None if m is None else r % m)

    count = valid.sum(axis=1)
    prefix = np.arange(valid.shape[1]) < count[:, None]
    bad: np.ndarray = np.nonzero((valid != prefix).any(axis=1))[0]
    if bad.size:
        r = bad[0]
        slot = int(np.argmax(valid[r] != prefix[r]))
        _fail(
            f"{name(r)}: valid flags are not a prefix of the row (slot {slot} is "
            f"{'valid after padding' if valid[r, slot] else 'padding before a valid slot'})"
        )
    bad = np.argwhere(~valid & (idx != 0))
    if bad.size:
        r, slot = bad[0]
        _fail(f"{name(r)}: padding slot {slot} holds {idx[r, slot]}, expected 0")
    bad = np.argwhere(valid & ((idx < 0) | (idx >= n)))
    if bad.size:
        r, slot = bad[0]
        _fail(f"{name(r)}: index {idx[r, slot]} at slot {slot} is outside the grid's {n} patches")
    step = np.diff(idx.astype(np.int64), axis=1)
    bad = np.argwhere(valid[:, 1:] & (step <= 0))
    if bad.size:
        r, slot = bad[0]
        _fail(
            f"{name(r)}: index {idx[r, slot + 1]} at slot {slot + 1} follows {idx[r, slot]}: "
            "indices must be ascending and unique (row-major order)"
        )


def _check_lengths(batch, sampler):
    kc, kt = batch.context.shape[1], batch.targets.shape[2]
    counts_c, counts_t = batch.context_valid.sum(1), batch.targets_valid.sum(-1)
    big_c, big_t = sampler.max_counts()
    if counts_c.max(initial=0) > big_c or counts_t.max(initial=0) > big_t:
        _fail(f"more valid patches than the sampler's largest counts {(big_c, big_t)}")
    mode = sampler.ragged
    if mode == "pad":
        if (kc, kt) != (sampler.context_length, sampler.target_length):
            _fail(
                f'ragged="pad": lengths (Kc, Kt) = {(kc, kt)}, expected '
                f"{(sampler.context_length, sampler.target_length)}"
            )
    elif mode == "bucket":
        for what, k, counts, allowed in (
            ("context", kc, counts_c, sampler.padded_lengths()[0]),
            ("target", kt, counts_t, sampler.padded_lengths()[1]),
        ):
            need = int(counts.max(initial=0))
            smallest = next(v for v in allowed if v >= need)
            if k != smallest:
                _fail(
                    f'ragged="bucket": {what} length {k}, expected {smallest}, the smallest '
                    f"of {allowed} that holds the batch maximum {need}"
                )
    elif mode == "truncate":
        if not (batch.context_valid.all() and batch.targets_valid.all()):
            _fail('ragged="truncate": every slot must be valid (rows cut to the batch minimum)')
        if kc > sampler.context_length or kt > sampler.target_length:
            _fail(
                f'ragged="truncate": lengths (Kc, Kt) = {(kc, kt)} above the caps '
                f"{(sampler.context_length, sampler.target_length)}"
            )


def _complete(sampler):
    """Whether rows hold all their patches (no cut): (context, targets)."""
    if sampler.ragged == "truncate":
        return False, False
    big_c, big_t = sampler.max_counts()
    return sampler.context_length >= big_c, sampler.target_length >= big_t


def _check_context(batch, sampler, ctx, tgt, ids):
    counts = batch.context_valid.sum(1)
    bad = np.nonzero(counts < sampler.min_context)[0]
    if bad.size:
        r = bad[0]
        _fail(
            f"{_row_name('context', r, ids)} keeps {counts[r]} patches, fewer than "
            f"min_context={sampler.min_context}"
        )
    overlap = getattr(sampler, "allow_overlap", False)
    if not overlap:
        shared = np.argwhere(ctx[:, None, :] & tgt)
        if shared.size:
            r, mm, p = shared[0]
            where = zip(("frame", "row", "col")[-len(sampler.grid_size) :], _coords(p, sampler))
            _fail(
                f"{_row_name('context', r, ids)} and target block {mm} share patch {p} "
                f"({', '.join(f'{a} {int(v)}' for a, v in where)}), but target patches are "
                "removed from the context (allow_overlap=False)"
            )
    full_c, full_t = _complete(sampler)
    if sampler.context_rule == "complement" and full_c:
        union = _target_union(batch, sampler, tgt, full_t)
        if union is not None:
            bad = np.nonzero((ctx != ~union).any(axis=1))[0]
            if bad.size:
                _fail(f"{_row_name('context', bad[0], ids)} is not the complement of the targets")


def _coords(p, sampler):
    return np.unravel_index(p, tuple(sampler.grid_size))


def _target_union(batch, sampler, tgt, full_t):
    """``(B, N)`` union of the target blocks (from boxes when rows may be cut)."""
    if full_t:
        return tgt.any(axis=1)
    if batch.target_boxes is None:
        return None
    top, left, h, w = np.moveaxis(batch.target_boxes, -1, 0)
    return box_masks(top, left, h, w, sampler.grid_size).any(axis=1)


def _box_sizes_ok(h, w, grid, scale, aspect):
    """(h, w) can come from a scale / aspect in the ranges, up to rounding.

    With x = H sqrt(s a), y = W sqrt(s / a): x y = s H W and (x / H) / (y / W) = a;
    rounding moves x and y by at most 0.5 each; clipped sides (h == H, h == 1)
    may have been larger or smaller before clipping. Independent of the
    sampler's own size tables.
    """
    H, W = grid
    x_lo, x_hi = (0.0 if h == 1 else h - 0.5), (np.inf if h == H else h + 0.5)
    y_lo, y_hi = (0.0 if w == 1 else w - 0.5), (np.inf if w == W else w + 0.5)
    n = H * W
    area_ok = x_lo * y_lo <= scale[1] * n + 1e-9 and x_hi * y_hi >= scale[0] * n - 1e-9
    a_lo = (x_lo / H) / (y_hi / W) if np.isfinite(y_hi) else 0.0
    a_hi = (x_hi / H) / (y_lo / W) if y_lo > 0 else np.inf
    return area_ok and a_lo <= aspect[1] + 1e-9 and a_hi >= aspect[0] - 1e-9


def _check_box_array(kind, boxes, grid, ids, ranges):
    """Boxes ``(B, K, 4)`` inside the grid and of an allowed size."""
    H, W = grid
    top, left, h, w = np.moveaxis(boxes, -1, 0)
    bad = np.argwhere((top < 0) | (left < 0) | (h < 1) | (w < 1) | (top + h > H) | (left + w > W))
    if bad.size:
        r, k = bad[0]
        _fail(
            f"{_row_name(kind, r, ids)}: box {k} {tuple(boxes[r, k].tolist())} "
            f"(top, left, h, w) is not inside the {H}x{W} grid"
        )
    if ranges is not None:
        for hh, ww in np.unique(boxes[..., 2:].reshape(-1, 2), axis=0).tolist():
            if not _box_sizes_ok(hh, ww, grid, *ranges):
                r, k = np.argwhere((h == hh) & (w == ww))[0]
                _fail(
                    f"{_row_name(kind, r, ids)}: box {k} of size {hh}x{ww} is outside "
                    f"scale {ranges[0]} / aspect ratio {ranges[1]}"
                )


def _ranges(sampler, prefix):
    scale = getattr(sampler, f"{prefix}_scale", None)
    aspect = getattr(sampler, f"{prefix}_aspect_ratio", None)
    return None if scale is None or aspect is None else (scale, aspect)


def _check_boxes(batch, sampler, ctx, tgt, ids):
    grid = sampler.grid_size
    full_c, full_t = _complete(sampler)
    if batch.target_boxes is not None:
        boxes = batch.target_boxes
        _check_box_array("target", boxes, grid, ids, _ranges(sampler, "target"))
        allowed = {tuple(s) for s in np.asarray(sampler.target_sizes()).tolist()}
        for size in np.unique(boxes[..., 2:].reshape(-1, 2), axis=0).tolist():
            if tuple(size) not in allowed:
                r, k = np.argwhere((boxes[..., 2:] == size).all(-1))[0]
                _fail(
                    f"{_row_name('target', r, ids)}: block {k} has size {tuple(size)}, not "
                    "one of sampler.target_sizes()"
                )
        dense = box_masks(boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3], grid)
        wrong = (tgt != dense) if full_t else (tgt & ~dense)
        bad: np.ndarray = np.argwhere(wrong.any(axis=-1))
        if bad.size:
            r, k = bad[0]
            _fail(
                f"{_row_name('targets', r, ids, k)}: patches differ from its box "
                f"{tuple(boxes[r, k].tolist())}"
            )
    if batch.context_boxes is not None:
        boxes = batch.context_boxes[:, None, :]
        _check_box_array("context", boxes, grid, ids, _ranges(sampler, "context"))
        cbox = batch.context_boxes
        block = box_masks(cbox[..., 0], cbox[..., 1], cbox[..., 2], cbox[..., 3], grid)
        bad = np.nonzero((ctx & ~block).any(axis=1))[0]
        if bad.size:
            _fail(f"{_row_name('context', bad[0], ids)} has patches outside its context box")
        if sampler.context_rule == "block" and full_c:
            expected = block
            if not getattr(sampler, "allow_overlap", False):
                union = _target_union(batch, sampler, tgt, full_t)
                expected = block if union is None else block & ~union
            bad = np.nonzero((ctx != expected).any(axis=1))[0]
            if bad.size:
                _fail(
                    f"{_row_name('context', bad[0], ids)} is not its context box minus "
                    "the target blocks"
                )


def _check_redraw(batch, sampler, ids, ctx, tgt):
    again = sampler.sample_at(ids)
    for key, value in batch.as_dict().items():
        if not np.array_equal(value, again.as_dict()[key]):
            _fail(
                f"`{key}` differs when the same sample numbers are drawn again: not "
                "deterministic (or sample_ids do not match the batch)"
            )
    c = int(getattr(sampler, "num_clones", 1))
    grown = getattr(sampler, "targets_complement_context", False)  # targets grow with a cut
    for i, k in enumerate(ids.tolist()):
        one_c, one_t = sampler.sample(1, start=k).to_dense()
        one_c, one_t = one_c.reshape(c, -1), one_t.reshape((c,) + tgt.shape[1:])
        rows = slice(i * c, i * c + c)
        if sampler.ragged == "truncate":
            # full_complement: the batch target grows with the cut context, unless capped
            cap = sampler.target_length
            capped = batch.targets.shape[2] == cap < sampler.max_counts()[1]
            if grown and capped:
                extra_t = np.zeros_like(tgt[rows])  # a random subset of a grown target
            else:
                extra_t = (one_t & ~tgt[rows]) if grown else (tgt[rows] & ~one_t)
            same = not (ctx[rows] & ~one_c).any() and not extra_t.any()
        else:
            same = np.array_equal(ctx[rows], one_c) and np.array_equal(tgt[rows], one_t)
        if not same:
            _fail(
                f"{_row_name('context', i * c, np.repeat(ids, c))}: masks differ from "
                f"sample(1, start={k}): sample k must not depend on its batch"
            )


def check_stream(sampler: MaskSampler, start: int = 0, batch_sizes: Sequence[int] = (3, 5)) -> None:
    """Assert the stream contract on ``sampler`` and :func:`check_masks` on what it draws.

    Draws samples ``start .. start + sum(batch_sizes) - 1`` in one batch and in
    consecutive batches of ``batch_sizes``: the same masks (identical arrays
    with ``ragged="pad"``; equal valid entries with ``"bucket"``; with
    ``"truncate"`` rows are cut per batch, so only each batch is checked).
    Drawing with ``start`` must leave ``sampler.state()`` alone, and a sampler
    rebuilt from ``sampler.get_config()`` (same seed) must draw the same masks.

    Example:
        >>> from jepa_components.masks import RandomMaskSampler
        >>> check_stream(RandomMaskSampler(grid_size=(6, 6), seed=0), start=10)
    """
    state = sampler.state()
    total = int(sum(batch_sizes))
    whole = sampler.sample(total, start=start)
    check_masks(whole, sampler, sample_ids=range(start, start + total))
    twin = type(sampler)(**sampler.get_config())  # a new sampler with the same seed
    for key, value in twin.sample(total, start=start).as_dict().items():
        if not np.array_equal(value, whole.as_dict()[key]):
            _fail(
                f"`{key}` differs between two samplers built with the same configuration "
                f"and seed={sampler.seed}"
            )
    ctx, tgt = whole.to_dense()
    first = start
    c = int(getattr(sampler, "num_clones", 1))
    for size in batch_sizes:
        part = sampler.sample(size, start=first)
        check_masks(part, sampler)
        rows = slice((first - start) * c, (first - start + size) * c)  # C rows per sample
        if sampler.ragged == "pad":
            for key, value in part.as_dict().items():
                if not np.array_equal(value, whole.as_dict()[key][rows]):
                    _fail(
                        f"`{key}` of samples {first}..{first + size - 1} differs when drawn "
                        f"in a batch of {size} instead of {total}"
                    )
        elif sampler.ragged == "bucket":
            p_ctx, p_tgt = part.to_dense()
            if not (np.array_equal(p_ctx, ctx[rows]) and np.array_equal(p_tgt, tgt[rows])):
                _fail(
                    f"samples {first}..{first + size - 1} differ when drawn in a batch of "
                    f"{size} instead of {total}"
                )
        first += size
    if sampler.state() != state:
        _fail("sample(..., start=k) moved the sampler's own stream position")
