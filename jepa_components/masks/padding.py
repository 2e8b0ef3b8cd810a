"""Padded lengths of a batch: fixed, bucketed to the batch maximum, or cut to the minimum.

Rows are packed index arrays (valid entries first, ascending, padding 0).
:func:`fit_length` pads or cuts them to a length; the ``ragged`` modes of
:class:`~jepa_components.masks.sampler.MaskSampler` pick the length:

* ``"pad"``: always the upper bound ``L`` (the largest count the sampler
  can produce, or the ``context_length`` / ``target_length`` cap).
* ``"bucket"``: the batch maximum rounded up to the next of at most eight
  :func:`bucket_lengths`: the multiples of ``step = 8 * ceil(L / 64)`` below
  ``L`` (``step >= L / 8``, a multiple of 8 for accelerator-friendly shapes),
  and ``L`` itself. 14x14 defaults: context ``24, 48, ..., 168, 171``,
  targets ``8, 16, 24, 32, 40, 42``.
* ``"truncate"``: the batch minimum (every slot valid, rows cut).

Example:
    >>> bucket_lengths(171)
    (24, 48, 72, 96, 120, 144, 168, 171)
    >>> bucket_lengths(42), bucket_lengths(5)
    ((8, 16, 24, 32, 40, 42), (5,))
    >>> bucket_length(130, bucket_lengths(171))
    144
"""

from __future__ import annotations

import bisect

import numpy as np

from jepa_components.masks import _stream


def bucket_lengths(upper: int) -> tuple[int, ...]:
    """The bucket ladder for an upper bound ``upper``: at most 8 lengths, ending at ``upper``."""
    step = 8 * max(1, -(-upper // 64))  # (upper may be 0: a target covering the grid)
    return tuple(range(step, upper, step)) + (upper,)


def bucket_length(needed: int, lengths: tuple[int, ...]) -> int:
    """Smallest of the ascending ``lengths`` that is ``>= needed`` (``needed <= lengths[-1]``)."""
    return lengths[bisect.bisect_left(lengths, needed)]


def fitting_bucket(valid: np.ndarray, lengths: tuple[int, ...]) -> int:
    """:func:`bucket_length` of the longest row of packed ``valid`` ``(R, lengths[-1])``.

    Valid entries come first in a row, so the rows fit in ``L`` columns iff
    column ``L`` holds no valid entry: one column read per bucket tried,
    instead of counting every row.
    """
    for length in lengths[:-1]:
        if not valid[:, length].any():
            return length
    return lengths[-1]


def fit_length(idx, valid, length, key, row_ids):
    """Pad or cut packed rows ``(R, K)`` to ``length`` columns.

    Rows with more than ``length`` valid entries keep a uniformly random subset
    of them (keyed by sample number and slot, so it is reproducible and does
    not depend on the batch), still in ascending order: no positional bias.
    ``row_ids()`` returns the rows' ``(sample_ids, slot)``; it is only called
    when a row is cut.
    """
    r, k = idx.shape
    if length == k:
        return idx, valid
    if length > k:
        pad = ((0, 0), (0, length - k))
        return np.pad(idx, pad), np.pad(valid, pad)
    if length == 0:  # truncate with an empty row (min_context=0)
        return idx[:, :0].copy(), valid[:, :0].copy()
    sample_ids, slot = row_ids()
    over = np.nonzero(valid[:, length])[0]  # valid entries come first in a row
    out_idx, out_valid = idx[:, :length].copy(), valid[:, :length].copy()
    if over.size:
        # Keys only for the columns that hold valid entries (they come first): the
        # key of slot j is the same whatever the width, so the subset is too.
        width = int(np.count_nonzero(valid[over].any(axis=0)))
        slot = np.broadcast_to(np.asarray(slot), (r,))[over]
        draw_ids = slot[:, None].astype(np.int64) * k + np.arange(width)
        keys = _stream.uniform(key, np.asarray(sample_ids)[over, None], draw_ids)
        rows = idx[over, :width]
        keys[~valid[over, :width]] = np.inf
        kth = np.partition(keys, length - 1, axis=1)[:, length - 1 : length]
        keep = keys <= kth  # the `length` smallest keys of a row, in slot (= index) order
        if np.count_nonzero(keep) == keep.shape[0] * length:  # no tie at the k-th key
            out_idx[over] = rows[keep].reshape(-1, length)
        else:  # equal keys (52 random bits each: practically never)
            order = np.argsort(keys > kth, axis=1, kind="stable")[:, :length]
            out_idx[over] = np.take_along_axis(rows, order, axis=1)
        out_valid[over] = True
    return out_idx, out_valid


def first_columns(idx, valid, length):
    """The first ``length`` columns of packed rows (every valid entry must fit), contiguous."""
    if length == idx.shape[1]:
        return idx, valid
    return np.ascontiguousarray(idx[:, :length]), np.ascontiguousarray(valid[:, :length])
