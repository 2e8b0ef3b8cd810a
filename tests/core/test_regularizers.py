"""SIGReg, its directions and the LeJEPA invariance term (jepa_components.regularizers)."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_components.regularizers import (
    epps_pulley_weights,
    lejepa_invariance,
    sigreg,
    sigreg_directions,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sigreg_reference.npz")
CASES = ("gaussian", "shifted", "anisotropic", "collapsed", "views")


@pytest.mark.parametrize("name", CASES)
def test_sigreg__equals_the_reference_on_its_directions(name):
    # values of rbalestr-lab/lejepa SlicingUnivariateTest(EppsPulley(...)),
    # written by tests/fixtures/make_sigreg_fixture.py
    f = np.load(FIXTURE)
    value = sigreg(
        f[f"{name}/x"].astype(np.float64),
        f[f"{name}/directions"].astype(np.float64),
        t_max=float(f[f"{name}/t_max"]),
        num_knots=int(f[f"{name}/num_knots"]),
    )
    np.testing.assert_allclose(value, f[f"{name}/value"], rtol=1e-5)


def test_epps_pulley_weights__trapezoid_with_doubled_inner_knots():
    t, w, phi = epps_pulley_weights(t_max=3.0, num_knots=4)
    np.testing.assert_allclose(t, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(phi, np.exp(-0.5 * t**2))
    np.testing.assert_allclose(w, [1.0, 2.0, 2.0, 1.0] * phi)
    # the doubled trapezoid integrates exp(-t^2/2) * 1 over [-3, 3] ~ sqrt(2 pi)
    t, w, _ = epps_pulley_weights(t_max=6.0, num_knots=601)
    np.testing.assert_allclose(w.sum(), np.sqrt(2 * np.pi), rtol=1e-6)


def test_sigreg__exact_small_example():
    # one direction, two samples at +-1: mean cos(t x) = cos t, mean sin = 0
    x = np.array([[1.0], [-1.0]])
    a = np.ones((1, 1))
    t, w, phi = epps_pulley_weights(3.0, 17)
    expected = 2 * np.sum(w * (np.cos(t) - phi) ** 2)
    np.testing.assert_allclose(sigreg(x, a), expected, rtol=1e-12)


def _gauss(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d))


def test_sigreg__gaussian_is_order_one_and_its_integral_shrinks_like_one_over_n():
    a = sigreg_directions(8, 128, seed=0, dtype=np.float64)
    means = {n: np.mean([sigreg(_gauss(n, 8, s), a) for s in range(8)]) for n in (64, 1024)}
    for n, m in means.items():  # the statistic is N * integral: O(1) under the null
        assert 0.2 < m < 3.0, (n, m)
    ratio = (means[1024] / 1024) / (means[64] / 64)  # the integral alone
    assert 1 / 32 < ratio < 1 / 8, ratio  # ~1/16


@pytest.mark.parametrize(
    "make",
    [
        lambda x: np.zeros_like(x) + x[:1],  # collapsed to one point
        lambda x: x @ np.diag([1.0] * 2 + [0.0] * 6),  # rank 2
        lambda x: x + 1.0,  # shifted
        lambda x: x * np.linspace(0.2, 3.0, 8),  # anisotropic
    ],
    ids=["collapsed", "low_rank", "shifted", "anisotropic"],
)
def test_sigreg__large_off_the_gaussian_and_growing_with_n(make):
    a = sigreg_directions(8, 128, seed=1, dtype=np.float64)
    small = sigreg(make(_gauss(128, 8, 0)), a)
    large = sigreg(make(_gauss(1024, 8, 0)), a)
    assert small > 5.0 * sigreg(_gauss(128, 8, 0), a)
    assert large > 4.0 * small  # ~8x: the statistic is N times a fixed distance


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 64),
    d=st.integers(1, 12),
    k=st.integers(1, 16),
    seed=st.integers(0, 2**31),
    scale=st.floats(0.01, 10.0),
)
def test_sigreg__unchanged_by_a_joint_rotation(n, d, k, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * scale + rng.standard_normal(d)
    a = sigreg_directions(d, k, seed=seed % 1000, dtype=np.float64)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    np.testing.assert_allclose(sigreg(x @ q, q.T @ a), sigreg(x, a), rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 32), d=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_sigreg__finite_with_finite_gradient_at_collapse(n, d, seed):
    rng = np.random.default_rng(seed)
    x = np.tile(rng.standard_normal((1, d)), (n, 1))  # every embedding equal
    a = sigreg_directions(d, 8, seed=0, dtype=np.float64)
    value = sigreg(x, a)
    eps = 1e-6
    grad = np.empty_like(x)
    for i in np.ndindex(*x.shape):  # central differences
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (sigreg(x + step, a) - sigreg(x - step, a)) / (2 * eps)
    assert np.isfinite(value) and np.isfinite(grad).all()


def test_sigreg__views_average_their_statistics():
    x = _gauss(3 * 50, 6, 3).reshape(3, 50, 6)
    a = sigreg_directions(6, 16, seed=2, dtype=np.float64)
    np.testing.assert_allclose(sigreg(x, a), np.mean([sigreg(v, a) for v in x]), rtol=1e-12)


def test_sigreg__refuses_directions_of_another_width():
    with pytest.raises(ValueError, match=r"directions.*\(D, K\).*Received: directions"):
        sigreg(np.zeros((4, 8)), np.zeros((6, 3)))


def test_sigreg_directions__a_pure_function_of_seed_and_step():
    a = sigreg_directions(32, 64, step=5, seed=3)
    assert a.shape == (32, 64) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a.astype(np.float64), axis=0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, sigreg_directions(32, 64, step=5, seed=3))
    assert not np.allclose(a, sigreg_directions(32, 64, step=6, seed=3))
    assert not np.allclose(a, sigreg_directions(32, 64, step=5, seed=4))


def test_sigreg_directions__isotropic():
    a = sigreg_directions(4, 20000, seed=0, dtype=np.float64)
    np.testing.assert_allclose(a.mean(axis=1), 0.0, atol=0.02)
    np.testing.assert_allclose(a @ a.T / a.shape[1], np.eye(4) / 4, atol=0.01)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0, "num_slices": 4}, "dim"),
        ({"dim": 4, "num_slices": 0}, "num_slices"),
        ({"dim": 4, "num_slices": 4, "step": -1}, "step"),
        ({"dim": 4, "num_slices": 4, "seed": None}, "seed"),
    ],
)
def test_sigreg_directions__refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sigreg_directions(**kwargs)


def test_epps_pulley_weights__refuses_bad_arguments():
    with pytest.raises(ValueError, match="t_max"):
        epps_pulley_weights(t_max=0.0)
    with pytest.raises(ValueError, match="num_knots"):
        epps_pulley_weights(num_knots=1)


def test_lejepa_invariance__pulls_every_view_to_the_global_mean():
    p = np.arange(2 * 3 * 2, dtype=np.float64).reshape(3, 2, 2)  # 3 views
    centre = p[:2].mean(axis=0)
    np.testing.assert_allclose(lejepa_invariance(p, num_global=2), np.mean((p - centre) ** 2))
    np.testing.assert_allclose(lejepa_invariance(p), np.mean((p - p.mean(axis=0)) ** 2))
    assert lejepa_invariance(np.ones((4, 3, 5))) == 0.0
    with pytest.raises(ValueError, match="num_global"):
        lejepa_invariance(p, num_global=4)
    with pytest.raises(ValueError, match="rank-3"):
        lejepa_invariance(p[0])
