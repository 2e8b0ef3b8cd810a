"""Feasibility at construction: exact bounds, the probe, its statistics and its rule."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import (
    MultiBlockMaskSampler,
    RandomMaskSampler,
    RasterizedMaskSampler,
    SingleBlockMaskSampler,
    feasibility,
)

# -- the rule on real configurations ------------------------------------------


def test_init__refuses_the_issue_example():
    # used to construct, then raise RuntimeError from sample() after 100 redraws
    with pytest.raises(ValueError, match=r"min_context=1 context patches in \d+ of 256 probe"):
        MultiBlockMaskSampler(
            grid_size=(2, 2), num_targets=8, target_scale=(0.5, 0.5), min_context=1, seed=0
        )


def test_init__refuses_the_flaky_property_test_configuration():
    # the falsifying example of `pytest tests/core --hypothesis-seed=2` before the fix
    with pytest.raises(ValueError, match="min_context"):
        MultiBlockMaskSampler(
            grid_size=(2, 2),
            num_targets=7,
            target_scale=(0.5, 0.5),
            target_aspect_ratio=(1.0, 3.0),
            context_scale=(0.375, 1.0),
            context_aspect_ratio=(1.0, 1.0),
            min_context=1,
            seed=0,
        )


def test_init__paper_default_accepted_by_a_short_probe():
    s = MultiBlockMaskSampler(seed=0)
    assert s.feasibility.method == "probe"
    assert (s.feasibility.draws, s.feasibility.failures) == (256, 0)
    assert s.feasibility.failure_bound <= s.feasibility.threshold


def test_probe__is_independent_of_the_seed_and_of_global_state():
    np.random.seed(1)  # noqa: NPY002 - the legacy global state must not matter
    a = SingleBlockMaskSampler(grid_size=(5, 5), seed=0).feasibility
    np.random.seed(2)  # noqa: NPY002
    b = SingleBlockMaskSampler(grid_size=(5, 5), seed=12345).feasibility
    c = SingleBlockMaskSampler(grid_size=(5, 5), seed=None).feasibility
    assert a == b == c and a.method == "probe" and a.failures > 0


def test_init__exact_bound_skips_the_probe():
    # every draw keeps >= min_context patches: no probe, any max_attempts
    s = MultiBlockMaskSampler(
        grid_size=(8, 8),
        num_targets=1,
        target_scale=(0.1, 0.1),
        min_context=10,
        max_attempts=1,
        seed=0,
    )
    assert s.feasibility == feasibility.Feasibility("exact", 0, 0, 0.0, 1.0)
    overlap = MultiBlockMaskSampler(grid_size=(8, 8), allow_overlap=True, min_context=40, seed=0)
    assert overlap.feasibility.method == "exact"  # the context block alone has >= 49
    raster = RasterizedMaskSampler(grid_size=(5, 7), min_context=6, seed=0)
    assert raster.feasibility.method == "exact"


def test_init__frequent_redraws_accepted_only_with_enough_attempts():
    # 5x5, one 60% block: about half of the draws leave < 10 patches
    s = SingleBlockMaskSampler(grid_size=(5, 5), seed=0)
    assert 0.3 < s.feasibility.failures / s.feasibility.draws < s.feasibility.threshold
    batch = s.sample(20000)  # p**100 per sample: never fails
    assert (batch.context_valid.sum(1) >= 10).all()
    with pytest.raises(ValueError, match=r"more than the 0.0158 that max_attempts=10"):
        SingleBlockMaskSampler(grid_size=(5, 5), max_attempts=10, seed=0)


def test_init__too_few_attempts_for_any_probe():
    with pytest.raises(ValueError, match=r"max_attempts=6 .* needs max_attempts >= 7"):
        MultiBlockMaskSampler(grid_size=(14, 14), max_attempts=6, seed=0)
    assert MultiBlockMaskSampler(grid_size=(14, 14), max_attempts=7, seed=0).feasibility.draws > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: MultiBlockMaskSampler(grid_size=(3, 3), min_context=9),
        lambda: SingleBlockMaskSampler(grid_size=(4, 4), min_context=8),
        lambda: RandomMaskSampler(grid_size=(4, 4), target_scale=(0.9, 0.9), min_context=5),
        lambda: RasterizedMaskSampler(grid_size=(3, 3), min_context=2),
    ],
)
def test_init__refuses_when_no_draw_can_keep_min_context(make):
    with pytest.raises(ValueError, match=r"min_context must be <= \d+. Received: min_context"):
        make()


def test_init__random_refuses_a_scale_range_that_mostly_fails():
    # 4x4, 3..14 target patches, min_context=12: only targets of <= 4 patches pass
    with pytest.raises(ValueError, match="probe draws"):
        RandomMaskSampler(grid_size=(4, 4), target_scale=(0.2, 0.9), min_context=12, seed=0)
    ok = RandomMaskSampler(grid_size=(4, 4), target_scale=(0.2, 0.9), min_context=8, seed=0)
    assert ok.feasibility.method == "probe" and ok.feasibility.failures > 0
    assert (ok.sample(5000).targets_valid.sum(-1) <= 8).all()


# -- the statistics --------------------------------------------------------------


def test_failure_threshold__bounds_a_run_of_1e12_samples():
    for attempts in (1, 7, 10, 100, 1000):
        p = feasibility.failure_threshold(attempts)
        assert math.isclose(
            p**attempts * feasibility.RUN_SAMPLES, feasibility.RUN_FAILURE, rel_tol=1e-9
        )


def _binomial(n, p, values):
    """P(X in values) for X ~ Binomial(n, p), summed term by term (no 1 - cdf cancellation)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in values)


@given(st.integers(1, 300), st.data(), st.sampled_from([1e-2, 1e-4, 1e-9]))
def test_chernoff_interval__contains_the_estimate_and_is_conservative(n, data, delta):
    k = data.draw(st.integers(0, n))
    lo, hi = feasibility.chernoff_interval(k, n, delta)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    # a true rate at either end would produce k or more extreme with probability <= delta
    if hi < 1.0:
        assert _binomial(n, hi, range(k + 1)) <= delta * (1 + 1e-6)
    if lo > 0.0:
        assert _binomial(n, lo, range(k, n + 1)) <= delta * (1 + 1e-6)


def test_chernoff_interval__closed_form_without_failures():
    lo, hi = feasibility.chernoff_interval(0, 256, 1e-9)
    assert lo == 0.0 and math.isclose(hi, 1 - 1e-9 ** (1 / 256), rel_tol=1e-9)


def test_probe__stops_as_soon_as_decided():
    calls = []

    def failing(fraction):
        def count(start, n):
            calls.append(n)
            return int(round(fraction * n))

        return count

    accepted, result = feasibility.probe(failing(0.0), 100)
    assert accepted and calls == [256] and result.draws == 256
    calls.clear()
    accepted, result = feasibility.probe(failing(1.0), 100)
    assert not accepted and calls == [256] and result.failures == 256
    calls.clear()
    accepted, result = feasibility.probe(failing(0.62), 100)  # near the 0.66 threshold
    assert accepted and len(calls) > 1 and result.failure_bound <= result.threshold
    calls.clear()
    accepted, result = feasibility.probe(failing(0.66), 100)  # undecidable: refused
    assert not accepted and sum(calls) == feasibility.PROBE_ROUNDS[-1]
    calls.clear()
    accepted, _ = feasibility.probe(failing(0.0), 6)  # no probe could accept: no draws
    assert not accepted and calls == []
