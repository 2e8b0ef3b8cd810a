"""Checks of fixed-ratio samplers: exact counts, complement, clones (NumPy only).

For samplers whose every mask row keeps exactly ``max_counts()`` patches
(:class:`~jepa_components.masks.MAEMaskSampler`,
:class:`~jepa_components.masks.InverseBlockMaskSampler`): see
:func:`check_ratio_masks`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from jepa_components.masks import MaskBatch, MaskSampler
from jepa_components.testing.checks import check_masks

__all__ = ["check_ratio_masks"]


def _fail(message):
    raise AssertionError(f"check_ratio_masks: {message}")


def _where(row, clones, ids):
    if ids is None:
        return f"row {row}"
    image, clone = divmod(row, clones)
    return f"row {row} (sample {int(ids[image])}, clone {clone})"


def check_ratio_masks(
    batch: MaskBatch, sampler: MaskSampler, sample_ids: Iterable[int] | None = None
) -> None:
    """Assert the invariants of a batch from a fixed-ratio sampler.

    On top of :func:`~jepa_components.testing.check_masks` (every generic
    invariant): every row has exactly the sampler's ``max_counts()`` visible
    (context) and masked (target) patches, or the padded length where
    ``context_length`` / ``target_length`` cut them; context and target are
    disjoint, and complementary (together the whole grid) when nothing is
    cut. With ``num_clones = C`` (data2vec 2.0's several masks per image) the
    batch has ``C`` rows per sample, image-major.

    ``sample_ids`` (``(B,)`` ints, one per *image*: ``range(k, k + B)`` for
    ``sampler.sample(B, start=k)``, which returns ``B * C`` rows): then the
    batch must be drawn again identically by ``sampler.sample_at``; rows
    ``i * C .. i * C + C - 1`` must be the masks of ``sampler.sample(1,
    start=sample_ids[i])``; and clone ``c`` of sample ``k`` must be the
    independent draw ``k * C + c`` of the same sampler with one clone (the
    stream contract of :class:`~jepa_components.masks.sampler.MaskSampler`).
    Clones that are all identical throughout a batch fail when the grid has
    at least 2**20 possible masks. Raises ``AssertionError``.

    Example:
        >>> from jepa_components.masks import InverseBlockMaskSampler
        >>> sampler = InverseBlockMaskSampler(grid_size=(6, 6), num_clones=4, seed=0)
        >>> check_ratio_masks(sampler.sample(3, start=7), sampler, sample_ids=range(7, 10))
    """
    if not isinstance(batch, MaskBatch):
        _fail(f"expected a MaskBatch, got {type(batch).__name__}")
    clones = int(getattr(sampler, "num_clones", 1))
    rows = batch.batch_size
    ids = None if sample_ids is None else np.asarray(list(sample_ids), dtype=np.int64)
    if rows % clones:
        _fail(f"{rows} rows is not a multiple of num_clones={clones}")
    if ids is not None and ids.shape != (rows // clones,):
        _fail(
            f"sample_ids must hold one number per image: {ids.shape[0]} numbers for "
            f"{rows} rows of num_clones={clones}"
        )
    check_masks(batch, sampler, sample_ids=ids)  # determinism and batch independence too
    if batch.num_targets != 1:
        _fail(f"a ratio sampler draws one target, the batch has {batch.num_targets}")
    _check_counts(batch, sampler, clones, ids)
    if ids is not None and clones > 1:
        _check_clones(batch, sampler, clones, ids)


def _dense(batch, n):
    """Dense ``(rows, N)`` context and target masks."""
    ctx, tgt = batch.to_dense()
    return ctx.reshape(-1, n), tgt[:, 0].reshape(-1, n)


def _expected_counts(sampler):
    visible, masked = sampler.max_counts()
    # every row has the same counts, so "truncate" cuts only to the caps, as "pad"
    kc, kt = min(visible, sampler.context_length), min(masked, sampler.target_length)
    return kc, kt, (kc, kt) == (visible, masked)


def _check_counts(batch, sampler, clones, ids):
    kc, kt, full = _expected_counts(sampler)
    counts_c = batch.context_valid.sum(axis=1)
    counts_t = batch.targets_valid[:, 0].sum(axis=1)
    for what, counts, k in (("context", counts_c, kc), ("target", counts_t, kt)):
        bad = np.nonzero(counts != k)[0]
        if bad.size:
            r = int(bad[0])
            _fail(
                f"{_where(r, clones, ids)}: {int(counts[r])} {what} patches, expected exactly "
                f"{k} (max_counts()={sampler.max_counts()}, context_length="
                f"{sampler.context_length}, target_length={sampler.target_length}, "
                f"ragged={sampler.ragged!r})"
            )
    ctx, tgt = _dense(batch, sampler.num_patches)
    bad = np.nonzero((ctx & tgt).any(axis=1))[0]
    if bad.size:
        r = int(bad[0])
        p = int(np.argmax(ctx[r] & tgt[r]))
        _fail(f"{_where(r, clones, ids)}: patch {p} is both visible (context) and masked (target)")
    if full:
        bad = np.nonzero(~(ctx | tgt).all(axis=1))[0]
        if bad.size:
            r = int(bad[0])
            p = int(np.argmax(~(ctx[r] | tgt[r])))
            _fail(
                f"{_where(r, clones, ids)}: patch {p} is neither visible nor masked: context "
                "and target must split the grid"
            )


def _check_clones(batch, sampler, clones, ids):
    """Clone ``c`` of sample ``k`` is draw ``k * C + c``; not every clone group identical."""
    n = sampler.num_patches
    ctx, tgt = _dense(batch, n)
    config = sampler.get_config()
    if "num_clones" in config:
        single = type(sampler)(**{**config, "num_clones": 1})
        draws = (ids[:, None] * clones + np.arange(clones)).reshape(-1)
        one_c, one_t = _dense(single.sample_at(draws), n)
        if sampler.ragged == "truncate":
            wrong = (ctx & ~one_c).any(axis=1) | (tgt & ~one_t).any(axis=1)
        else:
            wrong = (ctx != one_c).any(axis=1) | (tgt != one_t).any(axis=1)
        bad = np.nonzero(wrong)[0]
        if bad.size:
            r = int(bad[0])
            _fail(
                f"{_where(r, clones, ids)} is not draw {int(draws[r])} (= sample * num_clones "
                "+ clone) of the same sampler with num_clones=1: clones must be independent "
                "draws, image-major (the order of repeat_interleave)"
            )
    if math.comb(n, sampler.max_counts()[0]) >= 2**20:
        groups = ctx.reshape(len(ids), clones, n)
        if (groups == groups[:, :1]).all():
            _fail(
                f"the {clones} clones of every sample are identical: clones must be "
                "independent masks of the same image"
            )
