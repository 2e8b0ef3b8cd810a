"""Padded lengths: the bucket ladder, ragged="bucket" against "pad", padded_lengths()."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import MultiBlockMaskSampler, make_sampler
from jepa_components.masks.padding import bucket_length, bucket_lengths
from jepa_components.testing import check_masks, samplers


def test_bucket_lengths__paper_grid():
    assert bucket_lengths(171) == (24, 48, 72, 96, 120, 144, 168, 171)
    assert bucket_lengths(42) == (8, 16, 24, 32, 40, 42)
    assert bucket_lengths(64) == (8, 16, 24, 32, 40, 48, 56, 64)
    assert bucket_lengths(8) == (8,) and bucket_lengths(1) == (1,)
    assert bucket_lengths(0) == (0,)  # a single-block target may cover the whole grid


@given(st.integers(1, 100000))
def test_bucket_lengths__at_most_eight_steps_of_a_multiple_of_eight(upper):
    lengths = bucket_lengths(upper)
    assert 1 <= len(lengths) <= 8 and lengths[-1] == upper
    assert all(a < b for a, b in itertools.pairwise(lengths))
    step = lengths[0] if len(lengths) > 1 else 8
    assert step % 8 == 0 and step * 8 >= upper
    assert all(v == (i + 1) * step for i, v in enumerate(lengths[:-1]))
    needed = np.arange(0, upper + 1)
    chosen = np.array([bucket_length(int(k), lengths) for k in needed])
    assert (chosen >= needed).all() and (chosen - needed < max(step, 1) + 1).all()


def pad_twin(sampler):
    return type(sampler)(**{**sampler.get_config(), "ragged": "pad"})


@given(samplers(ragged="bucket", max_grid=(16, 20)), st.integers(1, 12), st.integers(0, 10**6))
def test_bucket__valid_entries_equal_pad_mode(sampler, batch_size, start):
    bucket = sampler.sample(batch_size, start=start)
    check_masks(bucket, sampler, sample_ids=range(start, start + batch_size))
    lc, lt = sampler.padded_lengths()
    kc, kt = bucket.context.shape[1], bucket.targets.shape[2]
    assert kc in lc and kt in lt
    padded = pad_twin(sampler).sample(batch_size, start=start)
    # same entries, same order; "pad" only has more padding columns
    assert np.array_equal(bucket.context, padded.context[:, :kc])
    assert np.array_equal(bucket.context_valid, padded.context_valid[:, :kc])
    assert not padded.context_valid[:, kc:].any()
    assert np.array_equal(bucket.targets, padded.targets[..., :kt])
    assert np.array_equal(bucket.targets_valid, padded.targets_valid[..., :kt])
    assert not padded.targets_valid[..., kt:].any()
    for key in ("context_boxes", "target_boxes"):
        a, b = getattr(bucket, key), getattr(padded, key)
        assert (a is None and b is None) or np.array_equal(a, b)


def test_bucket__few_shapes_and_less_padding_over_a_run():
    s = MultiBlockMaskSampler(seed=0, ragged="bucket")
    pad = MultiBlockMaskSampler(seed=0)
    shapes = {s.sample(64).context.shape[1] for _ in range(100)}
    assert shapes <= set(s.padded_lengths()[0]) and len(shapes) <= 4
    assert max(shapes) < pad.context_length  # 171 slots are never needed at 14x14
    batch = s.sample(64, start=0)
    assert batch.context_valid.mean() > pad.sample(64, start=0).context_valid.mean()


@pytest.mark.parametrize("name", ["multiblock", "block", "raster", "random"])
def test_padded_lengths__per_mode(name):
    pad = make_sampler(name, grid_size=(8, 8), min_context=2, seed=0)
    assert pad.padded_lengths() == ((pad.context_length,), (pad.target_length,))
    bucket = make_sampler(name, grid_size=(8, 8), min_context=2, seed=0, ragged="bucket")
    assert bucket.padded_lengths() == (
        bucket_lengths(pad.context_length),
        bucket_lengths(pad.target_length),
    )
    cut = make_sampler(name, grid_size=(8, 8), min_context=2, seed=0, ragged="truncate")
    lc, lt = cut.padded_lengths()
    batch = cut.sample(16)
    assert batch.context.shape[1] in lc and batch.targets.shape[2] in lt


def test_bucket__respects_a_length_cap():
    s = MultiBlockMaskSampler(seed=0, ragged="bucket", context_length=40, target_length=20)
    assert s.padded_lengths() == ((8, 16, 24, 32, 40), (8, 16, 20))
    batch = s.sample(32)
    assert batch.context.shape[1] == 40 and batch.targets.shape[2] == 20  # rows are cut
    check_masks(batch, s, sample_ids=range(32))
