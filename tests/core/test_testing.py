"""jepa_components.testing: each check catches its broken invariant; strategies draw samplers."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_components.masks import MultiBlockMaskSampler, RandomMaskSampler, SingleBlockMaskSampler
from jepa_components.testing import (
    SAMPLER_KINDS,
    check_masks,
    check_stream,
    mask_batches,
    sampler_configs,
    samplers,
)


@pytest.fixture
def drawn():
    sampler = MultiBlockMaskSampler(grid_size=(8, 8), min_context=4, seed=0)
    return sampler, sampler.sample(4, start=10)


def broken(batch, **arrays):
    return dataclasses.replace(batch, **{k: np.array(v) for k, v in arrays.items()})


def first_valid_slot(valid):
    return tuple(np.argwhere(valid)[0])


def test_check_masks__accepts_a_real_batch(drawn):
    sampler, batch = drawn
    check_masks(batch, sampler, sample_ids=range(10, 14))


def test_check_masks__index_outside_the_grid(drawn):
    sampler, batch = drawn
    ctx = batch.context.copy()
    ctx[0, int(batch.context_valid[0].sum()) - 1] = 64
    with pytest.raises(AssertionError, match=r"context row 0: index 64 .* outside the grid's 64"):
        check_masks(broken(batch, context=ctx), sampler)


def test_check_masks__not_ascending(drawn):
    sampler, batch = drawn
    ctx = batch.context.copy()
    ctx[1, :2] = ctx[1, 1], ctx[1, 0]
    with pytest.raises(AssertionError, match=r"context row 1 .* ascending and unique"):
        check_masks(broken(batch, context=ctx), sampler, sample_ids=range(10, 14))


def test_check_masks__valid_flags_not_a_prefix(drawn):
    sampler, batch = drawn
    valid = batch.context_valid.copy()
    valid[2, 0] = False
    with pytest.raises(AssertionError, match="context row 2: valid flags are not a prefix"):
        check_masks(broken(batch, context_valid=valid), sampler)


def test_check_masks__padding_not_zero(drawn):
    sampler, batch = drawn
    tgt = batch.targets.copy()
    r, m, slot = np.argwhere(~batch.targets_valid)[0]
    tgt[r, m, slot] = 3
    with pytest.raises(AssertionError, match=rf"targets row {r} block {m}: padding slot {slot}"):
        check_masks(broken(batch, targets=tgt), sampler)


def test_check_masks__context_overlaps_a_target(drawn):
    sampler, batch = drawn
    valid = batch.context_valid.copy()
    ctx = batch.context.copy()
    k = int(valid[0].sum())
    patch = int(batch.targets[0, 0, 0])
    keep = np.setdiff1d(ctx[0, :k], [patch])[: k - 1]
    ctx[0, :k] = np.sort(np.append(keep, patch))
    with pytest.raises(AssertionError, match=rf"share patch {patch} \(row {patch // 8}"):
        check_masks(broken(batch, context=ctx), sampler)


def test_check_masks__fewer_than_min_context(drawn):
    sampler, batch = drawn
    valid = batch.context_valid.copy()
    ctx = batch.context.copy()
    valid[3, 3:] = False
    ctx[3, 3:] = 0
    with pytest.raises(AssertionError, match="row 3 keeps 3 patches, fewer than min_context=4"):
        check_masks(broken(batch, context=ctx, context_valid=valid), sampler)


def test_check_masks__wrong_padded_length(drawn):
    sampler, batch = drawn
    b = broken(batch, context=batch.context[:, :-1], context_valid=batch.context_valid[:, :-1])
    with pytest.raises(AssertionError, match=r'ragged="pad": lengths'):
        check_masks(b, sampler)


def test_check_masks__bucket_larger_than_needed():
    sampler = MultiBlockMaskSampler(grid_size=(14, 14), seed=0, ragged="bucket")
    batch = sampler.sample(8)
    pad = np.zeros((8, 171 - batch.context.shape[1]))
    b = broken(
        batch,
        context=np.concatenate([batch.context, pad], 1).astype(np.int32),
        context_valid=np.concatenate([batch.context_valid, pad.astype(bool)], 1),
    )
    with pytest.raises(AssertionError, match=r'ragged="bucket": context length 171, expected'):
        check_masks(b, sampler)


def test_check_masks__truncate_with_padding():
    sampler = MultiBlockMaskSampler(grid_size=(8, 8), min_context=4, seed=0, ragged="truncate")
    batch = sampler.sample(4)
    valid = batch.targets_valid.copy()
    valid[0, 0, -1] = False
    tgt = batch.targets.copy()
    tgt[0, 0, -1] = 0
    with pytest.raises(AssertionError, match="every slot must be valid"):
        check_masks(broken(batch, targets=tgt, targets_valid=valid), sampler)


def test_check_masks__box_outside_the_grid_or_the_ranges(drawn):
    sampler, batch = drawn
    boxes = batch.target_boxes.copy()
    boxes[1, 2, 0] = 8 - boxes[1, 2, 2] + 1  # one row too low
    with pytest.raises(AssertionError, match=r"target row 1: box 2 .* not inside the 8x8 grid"):
        check_masks(broken(batch, target_boxes=boxes), sampler)
    boxes = batch.context_boxes.copy()
    boxes[0] = (0, 0, 2, 2)  # far below context_scale 0.85
    with pytest.raises(AssertionError, match=r"context row 0: box 0 of size 2x2 is outside scale"):
        check_masks(broken(batch, context_boxes=boxes), sampler)


def test_check_masks__targets_differ_from_their_boxes(drawn):
    sampler, batch = drawn
    boxes = batch.target_boxes.copy()
    left = boxes[0, 1, 1]
    boxes[0, 1, 1] = left - 1 if left > 0 else left + 1  # same size, shifted
    with pytest.raises(AssertionError, match="targets row 0 block 1: patches differ from its box"):
        check_masks(broken(batch, target_boxes=boxes), sampler)


def test_check_masks__context_not_its_block_minus_targets(drawn):
    sampler, batch = drawn
    valid = batch.context_valid.copy()
    ctx = batch.context.copy()
    k = int(valid[1].sum())
    valid[1, k - 1] = False  # drop one patch: still disjoint, still >= min_context
    ctx[1, k - 1] = 0
    with pytest.raises(AssertionError, match="context row 1 is not its context box minus"):
        check_masks(broken(batch, context=ctx, context_valid=valid), sampler)


def test_check_masks__complement_rule():
    sampler = RandomMaskSampler(grid_size=(6, 6), min_context=2, seed=0)
    batch = sampler.sample(3)
    valid = batch.context_valid.copy()
    ctx = batch.context.copy()
    k = int(valid[2].sum())
    valid[2, k - 1] = False
    ctx[2, k - 1] = 0
    with pytest.raises(AssertionError, match="context row 2 is not the complement"):
        check_masks(broken(batch, context=ctx, context_valid=valid), sampler)


def test_check_masks__determinism_against_the_stream(drawn):
    sampler, batch = drawn
    with pytest.raises(AssertionError, match="differs when the same sample numbers are drawn"):
        check_masks(batch, sampler, sample_ids=range(11, 15))
    with pytest.raises(AssertionError, match="one number per row"):
        check_masks(batch, sampler, sample_ids=range(3))


def test_check_masks__wrong_dtype_or_sampler(drawn):
    sampler, batch = drawn
    with pytest.raises(AssertionError, match="`context` must be a int32 array, got int64"):
        check_masks(broken(batch, context=batch.context.astype(np.int64)), sampler)
    other = SingleBlockMaskSampler(grid_size=(8, 8), seed=0)
    with pytest.raises(AssertionError, match="4 target blocks, the sampler draws 1"):
        check_masks(batch, other)
    with pytest.raises(AssertionError, match="expected a MaskBatch"):
        check_masks(batch.as_dict(), sampler)


def test_check_stream__catches_a_sampler_that_depends_on_its_batch():
    class Leaky(MultiBlockMaskSampler):  # rows keyed by position in the batch, not sample number
        def _draw_with_retries(self, ids):
            return super()._draw_with_retries(np.arange(len(ids)))

    sampler = Leaky(grid_size=(8, 8), min_context=4, seed=0)
    with pytest.raises(AssertionError, match="must not depend on its batch"):
        check_stream(sampler, start=5)


def test_check_stream__catches_a_sampler_that_ignores_its_seed():
    class Unseeded(MultiBlockMaskSampler):  # draws fresh OS entropy whatever the seed
        def __init__(self, **kwargs):
            super().__init__(**{**kwargs, "seed": None})

    with pytest.raises(AssertionError, match="same configuration and seed"):
        check_stream(Unseeded(grid_size=(8, 8), min_context=4), start=0)


# -- strategies ----------------------------------------------------------------


@settings(max_examples=30)
@given(st.sampled_from(SAMPLER_KINDS).flatmap(lambda k: st.tuples(st.just(k), sampler_configs(k))))
def test_sampler_configs__are_accepted(kind_and_config):
    from jepa_components.masks import make_sampler

    kind, cfg = kind_and_config
    make_sampler(kind, **cfg).sample(2)


@settings(max_examples=30)
@given(samplers(grid_size=(5, 7), ragged="bucket"))
def test_samplers__fixed_grid_and_mode(sampler):
    assert sampler.grid_size == (5, 7) and sampler.ragged == "bucket"
    assert repr(sampler).startswith(type(sampler).__name__ + "(grid_size=(5, 7)")


@settings(max_examples=30)
@given(mask_batches(grid_size=(6, 6), max_batch_size=3))
def test_mask_batches__valid_batches(batch):
    assert batch.grid_size == (6, 6) and 1 <= len(batch) <= 3
    assert batch.context.dtype == np.int32 and batch.targets_valid.dtype == bool
    assert (batch.context < 36).all() and (batch.targets < 36).all()  # may be empty


def test_strategies__reject_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        sampler_configs("blocks")
    with pytest.raises(ValueError, match="ragged"):
        samplers("random", ragged="cut")
    with pytest.raises(ValueError, match="grid_size"):
        samplers("random", grid_size=0)
