"""MAEMaskSampler: exact counts, uniform subsets, parity with the official MAE masking."""

import importlib.util
import math
import os
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import InverseBlockMaskSampler, MAEMaskSampler, make_sampler
from jepa_components.masks.mae import keep_smallest, ratio_count
from jepa_components.testing import check_ratio_masks, check_stream, samplers

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
STATS = os.path.join(FIXTURES, "mae_mask_stats.npz")

batch_sizes = st.integers(1, 5)
starts = st.integers(0, 10**6)


def _fixture_script():
    """tests/fixtures/make_mae_mask_stats.py as a module (its stats function, no torch)."""
    path = os.path.join(FIXTURES, "make_mae_mask_stats.py")
    spec = importlib.util.spec_from_file_location("make_mae_mask_stats", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def visible(batch, n):
    return batch.to_dense()[0].reshape(len(batch), n)


# -- exact examples ----------------------------------------------------------------


def test_mae__the_smallest_noise_values_are_kept():
    s = MAEMaskSampler(grid_size=(2, 3), mask_ratio=0.5, seed=0)
    u = np.array([[0.5, 0.1, 0.9, 0.3, 0.7, 0.2], [0.0, 0.9, 0.8, 0.7, 0.1, 0.2]])
    ctx, tgt, _, _ = s._draw(np.arange(2), u)
    assert ctx.astype(int).tolist() == [[0, 1, 0, 1, 0, 1], [1, 0, 0, 0, 1, 1]]
    assert np.array_equal(tgt[:, 0], ~ctx)


def test_mae__paper_shapes_every_slot_valid():
    s = MAEMaskSampler(seed=0)  # 14x14, 0.75: 49 visible, 147 masked
    batch = s.sample(16)
    assert (s.num_visible, s.num_masked, s.min_context) == (49, 147, 49)
    assert batch.context.shape == (16, 49) and batch.targets.shape == (16, 1, 147)
    assert batch.context_valid.all() and batch.targets_valid.all()
    assert batch.context_boxes is None and batch.target_boxes is None


def test_mae__golden_masks_for_fixed_seeds():
    """Counter-based uint64 streams: the same indices on every platform and numpy."""
    batch = MAEMaskSampler(grid_size=(4, 4), mask_ratio=0.75, seed=0).sample(3)
    assert batch.context.tolist() == [[1, 3, 5, 6], [1, 5, 6, 7], [4, 7, 10, 14]]
    assert batch.targets[:, 0].tolist() == [
        [0, 2, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [0, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15],
        [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 13, 15],
    ]
    far = MAEMaskSampler(grid_size=(3, 5), mask_ratio=0.6, seed=2024).sample(2, start=10**9)
    assert far.context.tolist() == [[0, 1, 2, 6, 8, 13], [4, 6, 7, 9, 12, 13]]


def test_ratio_count__decimal_not_float_rounding():
    """Reference defect: int(L * (1 - mask_ratio)) loses a patch to float rounding."""
    assert int(100 * (1 - 0.8)) == 19 and int(100 * (1 - 0.9)) == 9  # the reference formula
    assert MAEMaskSampler(grid_size=(10, 10), mask_ratio=0.8, seed=0).num_visible == 20
    assert MAEMaskSampler(grid_size=(10, 10), mask_ratio=0.9, seed=0).num_visible == 10
    # the paper grids and ratios: both formulas agree
    for n in (196, 256, 64, 49):
        for ratio in (0.75, 0.8, 0.6, 0.5, 0.9):
            assert ratio_count(n, 1 - Fraction(repr(ratio))) == int(n * (1 - ratio))
    assert ratio_count(7, 0.5) == 3 and ratio_count(7, Fraction(3, 7)) == 3


def test_keep_smallest__exact_count_edge_cases():
    keys = np.array([[0.2, 0.2, 0.1]])
    assert keep_smallest(keys, 2).sum() == 2  # a tie still gives exactly k
    assert not keep_smallest(keys, 0).any() and keep_smallest(keys, 3).all()


# -- properties -------------------------------------------------------------------


@given(samplers("mae"), batch_sizes, starts)
def test_mae__ratio_invariants(s, b, start):
    check_ratio_masks(s.sample(b, start=start), s, sample_ids=range(start, start + b))
    n = s.num_patches
    k = math.floor(n * (1 - Fraction(repr(s.mask_ratio))))
    assert s.max_counts() == (k, n - k)


@given(samplers("mae"), st.integers(1, 4), st.integers(1, 4), starts)
def test_mae__stream_contract(s, b1, b2, start):
    check_stream(s, start=start, batch_sizes=(b1, b2))


@pytest.mark.parametrize("ragged", ["pad", "bucket", "truncate"])
def test_mae__ragged_modes_give_the_same_masks(ragged):
    base = MAEMaskSampler(grid_size=(5, 6), mask_ratio=0.7, seed=3).sample(6, start=4)
    other = MAEMaskSampler(grid_size=(5, 6), mask_ratio=0.7, seed=3, ragged=ragged)
    batch = other.sample(6, start=4)
    check_ratio_masks(batch, other, sample_ids=range(4, 10))
    assert np.array_equal(batch.to_dense()[0], base.to_dense()[0])


def test_mae__lengths_pad_or_cut_exactly():
    s = MAEMaskSampler(grid_size=(4, 4), mask_ratio=0.75, seed=1, context_length=6, target_length=5)
    batch = s.sample(7)
    check_ratio_masks(batch, s, sample_ids=range(7))
    assert batch.context_valid.sum(1).tolist() == [4] * 7  # padded to 6, 4 valid
    assert batch.targets_valid.sum(-1).ravel().tolist() == [5] * 7  # 12 masked, 5 kept


def test_mae__config_round_trip_and_registry():
    s = MAEMaskSampler(grid_size=(6, 8), mask_ratio=0.6, seed=5, ragged="bucket")
    config = s.get_config()
    assert config == {
        "grid_size": (6, 8),
        "mask_ratio": 0.6,
        "seed": 5,
        "ragged": "bucket",
        "context_length": None,
        "target_length": None,
    }
    twin = MAEMaskSampler(**config)
    assert repr(twin) == repr(s) and repr(s).startswith("MAEMaskSampler(grid_size=(6, 8)")
    assert np.array_equal(twin.sample(4).context, s.sample(4).context)
    built = make_sampler("mae", grid_size=(6, 8), seed=5, mask_ratio=0.6, ragged="bucket")
    assert isinstance(built, MAEMaskSampler) and built.get_config() == config


def test_mae__refusals_name_the_argument():
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan"), "0.75", True):
        with pytest.raises(ValueError, match=r"Invalid value for argument `mask_ratio`"):
            MAEMaskSampler(mask_ratio=bad)
    with pytest.raises(
        ValueError, match=r"keeps at least one .* floor\(4 \* \(1 - mask_ratio\)\) in \[1, 3\]"
    ):
        MAEMaskSampler(grid_size=(2, 2), mask_ratio=0.8)  # would keep 0 of 4
    with pytest.raises(ValueError, match=r"`context_length`. Expected an integer in \[49, 196\]"):
        MAEMaskSampler(context_length=48)  # the encoder always sees all 49
    with pytest.raises(ValueError, match="`grid_size`"):
        MAEMaskSampler(grid_size=(0, 4))
    with pytest.raises(ValueError, match="`ragged`"):
        MAEMaskSampler(ragged="cut")
    with pytest.raises(TypeError):
        MAEMaskSampler(min_context=3)  # the count is exact: no such argument


# -- uniformity over subsets ---------------------------------------------------------


def test_mae__uniform_over_all_subsets_of_a_tiny_grid():
    scipy_stats = pytest.importorskip("scipy.stats")
    s = MAEMaskSampler(grid_size=(2, 3), mask_ratio=0.6, seed=11)  # keep 2 of 6: 15 subsets
    kept = visible(s.sample(15_000), 6)
    codes = (kept * (1 << np.arange(6))).sum(1)
    subsets = [sum(1 << i for i in c) for c in combinations(range(6), 2)]
    counts = np.array([(codes == c).sum() for c in subsets])
    assert counts.sum() == 15_000  # every sample is one of the 2-subsets
    assert scipy_stats.chisquare(counts).pvalue > 1e-3


def test_mae__cell_and_pair_frequencies_match_the_exact_values():
    chi2 = pytest.importorskip("scipy.stats").chi2
    s = MAEMaskSampler(seed=7)
    S, n, k = 10_000, 196, 49
    kept = visible(s.sample(S), n).astype(np.float64)
    p = k / n
    cells = kept.sum(0)
    # fixed-size subsets: cells are negatively correlated, statistic * (n-1)/n ~ chi2(n-1)
    t = ((cells - S * p) ** 2).sum() / (S * p * (1 - p)) * (n - 1) / n
    assert chi2.sf(t, n - 1) > 1e-3
    pairs = kept.T @ kept
    q = k * (k - 1) / (n * (n - 1))
    off = pairs[~np.eye(n, dtype=bool)]
    assert off.sum() == S * k * (k - 1)  # exact: every sample has k (k - 1) ordered pairs
    z = (off - S * q) / np.sqrt(S * q * (1 - q))
    assert np.abs(z).max() < 5.5  # Bonferroni over 19,110 pairs at ~1e-3


# -- distribution vs the official MAE code -------------------------------------------


def _merged(h1, h2, min_count=20):
    """Contingency table of two histograms with sparse bins merged (each column >= min_count)."""
    cols, acc = [], np.zeros(2)
    for a, b in zip(h1, h2):
        acc = acc + (a, b)
        if acc.sum() >= min_count:
            cols.append(acc)
            acc = np.zeros(2)
    if acc.sum():
        cols[-1] = cols[-1] + acc
    return np.array(cols).T


def _two_sample_pvalues(ref, ours, s1, s2, p):
    """p-values: per-cell frequencies, first-row histogram, adjacent-pair histogram."""
    scipy_stats = pytest.importorskip("scipy.stats")
    n = len(ref["cell_counts"])
    diff = ref["cell_counts"] / s1 - ours["cell_counts"] / s2
    t = (diff**2).sum() / (p * (1 - p) * (1 / s1 + 1 / s2)) * (n - 1) / n
    out = {"cells": scipy_stats.chi2.sf(t, n - 1)}
    for key in ("first_row_hist", "adjacent_hist"):
        table = _merged(ref[key], ours[key])
        out[key] = scipy_stats.chi2_contingency(table)[1]
    return out


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("scipy.stats")
    data = np.load(STATS)
    grid, ratio = tuple(data["grid"].tolist()), float(data["mask_ratio"])
    assert data["keep_counts"].tolist() == [int(np.prod(grid) * (1 - ratio))]
    return data, grid, ratio, int(data["samples"])


def test_mae__distribution_matches_the_official_random_masking(reference):
    data, grid, ratio, s1 = reference
    stats = _fixture_script().mask_stats
    n, s2 = int(np.prod(grid)), 10_000
    ours = MAEMaskSampler(grid_size=grid, mask_ratio=ratio, seed=1).sample(s2)
    kept = visible(ours, n)
    mine = stats(kept, grid)
    assert mine["keep_counts"].tolist() == data["keep_counts"].tolist()
    pvalues = _two_sample_pvalues(data, mine, s1, s2, data["keep_counts"][0] / n)
    assert min(pvalues.values()) > 1e-3, pvalues


def test_mae__distribution_test_rejects_wrong_samplers(reference):
    """Power check: two plausible-looking wrong samplers with the right count fail."""
    data, grid, ratio, s1 = reference
    stats = _fixture_script().mask_stats
    n, s2, k = int(np.prod(grid)), 10_000, int(data["keep_counts"][0])
    noise = np.random.default_rng(0).random((s2, n))
    noise[:, : grid[1]] *= 0.9  # the first row slightly favoured
    favoured = keep_smallest(noise, k)
    clumped = visible(
        InverseBlockMaskSampler(grid_size=grid, mask_ratio=ratio, seed=0).sample(s2), n
    )
    for wrong in (favoured, clumped):
        assert (wrong.sum(1) == k).all()
        pvalues = _two_sample_pvalues(data, stats(wrong, grid), s1, s2, k / n)
        assert min(pvalues.values()) < 1e-6, pvalues
