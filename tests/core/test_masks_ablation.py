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

from masks_helpers import check_dense_consistent, check_packed, size_matches_ranges

grids = st.tuples(st.integers(2, 32), st.integers(2, 48))


def check_complement(batch, n):
    check_packed(batch.context, batch.context_valid, n)
    check_packed(batch.targets, batch.targets_valid, n)
    ctx, tgt = check_dense_consistent(batch)
    ctx, tgt = ctx.reshape(len(batch), n), tgt.reshape(len(batch), batch.num_targets, n)
    union = tgt.any(axis=1)
    assert not (ctx & union).any()
    assert (ctx | union).all(), "context must be the complement of the targets"
    return ctx, tgt


@given(grids, st.floats(0.05, 0.8), st.integers(0, 2**31), st.integers(1, 5))
def test_single_block__one_rectangle_and_its_complement(grid, scale, seed, b):
    n = grid[0] * grid[1]
    try:
        s = SingleBlockMaskSampler(grid_size=grid, target_scale=(scale, scale), min_context=1, seed=seed)
    except ValueError:
        return
    batch = s.sample(b)
    ctx, tgt = check_complement(batch, n)
    top, left, h, w = np.moveaxis(batch.target_boxes[:, 0], -1, 0)
    assert np.array_equal(tgt[:, 0], box_masks(top, left, h, w, grid))
    for hh, ww in zip(h, w):
        assert size_matches_ranges(hh, ww, grid, (scale, scale), s.target_aspect_ratio)


@given(grids, st.integers(0, 2**31), st.integers(1, 5))
def test_raster__one_quadrant_context_three_quadrant_targets(grid, seed, b):
    n = grid[0] * grid[1]
    batch = RasterizedMaskSampler(grid_size=grid, seed=seed).sample(b)
    ctx, tgt = check_complement(batch, n)
    H, W = grid
    quadrants = box_masks(*np.array(
        [[0, 0, H // 2, W // 2], [0, W // 2, H // 2, W - W // 2],
         [H // 2, 0, H - H // 2, W // 2], [H // 2, W // 2, H - H // 2, W - W // 2]]).T, grid)
    for i in range(b):
        q = [j for j in range(4) if np.array_equal(quadrants[j], ctx[i])]
        assert len(q) == 1
        others = [j for j in range(4) if j != q[0]]
        assert np.array_equal(tgt[i], quadrants[others])


def test_raster__every_quadrant_is_context_sometimes():
    batch = RasterizedMaskSampler(grid_size=(8, 8), seed=0).sample(400)
    corners = {tuple(c) for c in batch.context_boxes[:, :2].tolist()}
    assert corners == {(0, 0), (0, 4), (4, 0), (4, 4)}


@given(grids, st.floats(0.05, 0.8), st.integers(0, 2**31), st.integers(1, 5))
def test_random__target_count_and_complement(grid, scale, seed, b):
    n = grid[0] * grid[1]
    try:
        s = RandomMaskSampler(grid_size=grid, target_scale=(scale, scale), min_context=1, seed=seed)
    except ValueError:
        return
    batch = s.sample(b)
    check_complement(batch, n)
    expected = min(max(int(np.floor(scale * n + 0.5)), 1), n)
    assert (batch.targets_valid.sum(-1) == expected).all()


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


def test_raster__needs_two_by_two():
    with pytest.raises(ValueError, match="grid_size"):
        RasterizedMaskSampler(grid_size=(1, 8))


def test_random__rejects_too_few_context_patches():
    with pytest.raises(ValueError, match="min_context"):
        RandomMaskSampler(grid_size=(4, 4), target_scale=(0.9, 0.9), min_context=5)
