"""The ablation samplers: single block, rasterized, random (paper Table 6)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import (
    RandomMaskSampler,
    RasterizedMaskSampler,
    SingleBlockMaskSampler,
    make_sampler,
)
from jepa_components.masks.geometry import box_masks
from jepa_components.testing import check_masks, check_stream, samplers

batch_sizes = st.integers(1, 5)
starts = st.integers(0, 10**6)


def dense(batch):
    ctx, tgt = batch.to_dense()
    b, m = len(batch), batch.num_targets
    return ctx.reshape(b, -1), tgt.reshape(b, m, -1)


@given(samplers("block", ragged="pad"), batch_sizes, starts)
def test_single_block__one_rectangle_and_its_complement(s, b, start):
    batch = s.sample(b, start=start)
    check_masks(batch, s, sample_ids=range(start, start + b))
    ctx, tgt = dense(batch)
    top, left, h, w = np.moveaxis(batch.target_boxes[:, 0], -1, 0)
    box = box_masks(top, left, h, w, s.grid_size)
    if s.target_length >= s.max_counts()[1]:  # nothing cut: the whole box is the target
        assert np.array_equal(tgt[:, 0], box)
    if s.context_length >= s.max_counts()[0]:
        assert np.array_equal(ctx, ~box)


@given(samplers("raster"), batch_sizes, starts)
def test_raster__one_quadrant_context_three_quadrant_targets(s, b, start):
    batch = s.sample(b, start=start)
    check_masks(batch, s, sample_ids=range(start, start + b))
    H, W = s.grid_size
    quadrants = np.array(
        [
            [0, 0, H // 2, W // 2],
            [0, W // 2, H // 2, W - W // 2],
            [H // 2, 0, H - H // 2, W // 2],
            [H // 2, W // 2, H - H // 2, W - W // 2],
        ]
    )
    for i in range(b):
        q = [j for j in range(4) if np.array_equal(quadrants[j], batch.context_boxes[i])]
        assert len(q) == 1
        others = [j for j in range(4) if j != q[0]]
        assert np.array_equal(batch.target_boxes[i], quadrants[others])


@given(samplers("random"), batch_sizes, starts)
def test_random__target_count_and_complement(s, b, start):
    batch = s.sample(b, start=start)
    check_masks(batch, s, sample_ids=range(start, start + b))
    if s.ragged != "truncate" and s.target_length >= s.max_counts()[1]:
        n = s.num_patches
        lo, hi = (min(max(int(np.floor(x * n + 0.5)), 1), n) for x in s.target_scale)
        counts = batch.targets_valid.sum(-1)
        assert ((counts >= lo) & (counts <= hi)).all()
        assert (counts <= n - s.min_context).all()  # larger targets are redrawn


@given(samplers(kind=None), st.integers(1, 4), st.integers(1, 4), starts)
def test_every_sampler__stream_contract(s, b1, b2, start):
    check_stream(s, start=start, batch_sizes=(b1, b2))


def test_random__exact_count_for_a_fixed_scale():
    batch = RandomMaskSampler(
        grid_size=(7, 9), target_scale=(0.3, 0.3), min_context=1, seed=0
    ).sample(50)
    assert (batch.targets_valid.sum(-1) == 19).all()  # round(0.3 * 63) = 19


def test_raster__every_quadrant_is_context_sometimes():
    batch = RasterizedMaskSampler(grid_size=(8, 8), seed=0).sample(400)
    corners = {tuple(c) for c in batch.context_boxes[:, :2].tolist()}
    assert corners == {(0, 0), (0, 4), (4, 0), (4, 4)}


def test_random__patches_are_uniform():
    batch = RandomMaskSampler(grid_size=(6, 6), seed=0).sample(5000)
    _, tgt = batch.to_dense()
    freq = tgt[:, 0].mean(0)
    assert np.allclose(freq, 22 / 36, atol=0.03)  # round(0.6 * 36) = 22 patches


@pytest.mark.parametrize("name", ["multiblock", "block", "raster", "random"])
def test_make_sampler__streams_split_invariant(name):
    s = make_sampler(name, grid_size=(10, 12), seed=5)
    whole = s.sample(12, start=3)
    parts = [s.sample(5, start=3), s.sample(7, start=8)]
    for key, value in whole.as_dict().items():
        assert np.array_equal(value, np.concatenate([p.as_dict()[key] for p in parts]))


def test_make_sampler__unknown_name():
    with pytest.raises(ValueError, match=r"name.*'multiblock'.*Received: name='blocks'"):
        make_sampler("blocks", grid_size=14)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RasterizedMaskSampler(grid_size=(1, 8)), "grid_size"),
        (lambda: RasterizedMaskSampler(grid_size=(4, 4), min_context=5), "min_context"),
        (
            lambda: RandomMaskSampler(grid_size=(4, 4), target_scale=(0.9, 0.9), min_context=5),
            r"min_context must be <= 2",
        ),
        (lambda: RandomMaskSampler(grid_size=(4, 4), target_scale=(0.0, 0.5)), "target_scale"),
        (lambda: RandomMaskSampler(grid_size=(4, 4), target_scale=(0.5, 1.5)), "target_scale"),
        (lambda: SingleBlockMaskSampler(grid_size=(4, 4), target_scale=(0.9, 0.9)), "min_context"),
        (lambda: SingleBlockMaskSampler(target_aspect_ratio=(2.0, 1.0)), "target_aspect_ratio"),
        (lambda: SingleBlockMaskSampler(grid_size=(5, 5), max_attempts=10), "probe draws"),
        (lambda: SingleBlockMaskSampler(ragged="ragged"), "ragged"),
        (lambda: RandomMaskSampler(seed=-1), "seed"),
        (lambda: RandomMaskSampler(context_length=0), "context_length"),
    ],
)
def test_init__rejects_bad_or_infeasible_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
