import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jepa_components import diagnostics as dg

finite = st.floats(-100, 100, allow_nan=False, width=64)


# --- mean_pool -------------------------------------------


def test_mean_pool__averages_tokens_not_token_zero():
    tokens = np.zeros((2, 4, 3))
    tokens[:, 1:] = 4.0  # token 0 differs from the rest
    np.testing.assert_allclose(dg.mean_pool(tokens), np.full((2, 3), 3.0))


def test_mean_pool__leaves_padded_tokens_out():
    tokens = np.array(
        [[[1.0, 2.0], [3.0, 4.0], [np.nan, np.inf]], [[5.0, 6.0], [0.0, 0.0], [9, 9]]]
    )
    valid = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(dg.mean_pool(tokens, valid), [[2.0, 3.0], [0.0, 0.0]])


def test_mean_pool__rejects_2d():
    with pytest.raises(ValueError, match="`tokens`"):
        dg.mean_pool(np.zeros((2, 3)))


# --- per-dimension std -------------------------------------------------------


def test_per_dimension_std__exact():
    x = np.array([[0.0, 1.0, -3.0], [2.0, 1.0, 3.0]])
    np.testing.assert_allclose(dg.per_dimension_std(x), [1.0, 0.0, 3.0])


def test_per_dimension_std__rejects_3d():
    with pytest.raises(ValueError, match="`features`"):
        dg.per_dimension_std(np.zeros((2, 3, 4)))


# --- effective rank (RankMe) -------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 7])
def test_effective_rank__identity_is_full(n):
    features = np.eye(max(n, 2))[:, :n] if n > 1 else np.ones((2, 1))
    assert dg.effective_rank(features) == pytest.approx(n)


def test_effective_rank__rank_one_is_one():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 1)) @ rng.normal(size=(1, 8))
    assert dg.effective_rank(features) == pytest.approx(1.0, abs=1e-6)


def test_effective_rank__known_singular_values():
    # Singular values 3 and 1: p = (0.75, 0.25).
    features = np.diag([3.0, 1.0])
    p = np.array([0.75, 0.25])
    assert dg.effective_rank(features) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_effective_rank__zero_matrix_is_zero():
    assert dg.effective_rank(np.zeros((4, 3))) == 0.0


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 6)), elements=finite),
    st.floats(0.01, 100),
)
def test_effective_rank__bounded_and_scale_invariant(features, scale):
    rank = dg.effective_rank(features)
    if np.abs(features).sum() == 0:
        assert rank == 0.0
        return
    assert 1.0 - 1e-9 <= rank <= min(features.shape) + 1e-9
    if np.abs(features).max() < 1e-150:
        return  # scaling could underflow to subnormal numbers or zero
    assert dg.effective_rank(features * scale) == pytest.approx(rank, rel=1e-6, abs=1e-6)


def test_effective_rank__rejects_one_sample():
    with pytest.raises(ValueError, match="at least 2 samples"):
        dg.effective_rank(np.ones((1, 4)))


# --- collapse metrics ----------------------------------------------------------


def test_collapse_metrics__constant_features_collapsed():
    metrics = dg.collapse_metrics(np.ones((100, 16)))
    assert metrics["feature_std_mean"] == 0.0
    assert metrics["effective_rank"] == pytest.approx(1.0)
    assert dg.is_collapsed(metrics)


def test_collapse_metrics__gaussian_features_healthy():
    metrics = dg.collapse_metrics(np.random.default_rng(0).normal(size=(2000, 16)))
    assert metrics["feature_std_mean"] == pytest.approx(1.0, abs=0.05)
    assert metrics["effective_rank"] > 15
    assert metrics["num_dims"] == 16
    assert not dg.is_collapsed(metrics)


def test_collapse_metrics__subsamples_for_rank_only():
    features = np.random.default_rng(1).normal(size=(300, 4))
    small = dg.collapse_metrics(features, max_rank_samples=50)
    full = dg.collapse_metrics(features)
    assert small["feature_std_mean"] == full["feature_std_mean"]
    assert small["effective_rank"] != full["effective_rank"]
    assert small == dg.collapse_metrics(features, max_rank_samples=50)  # fixed subset


def test_collapse_metrics__rejects_bad_sample_cap():
    with pytest.raises(ValueError, match="`max_rank_samples`"):
        dg.collapse_metrics(np.ones((4, 2)), max_rank_samples=1)


def test_is_collapsed__nan_counts_as_collapsed_and_threshold_validated():
    assert dg.is_collapsed({"feature_std_mean": float("nan")})
    assert not dg.is_collapsed({"feature_std_mean": 0.5})
    with pytest.raises(ValueError, match="`std_threshold`"):
        dg.is_collapsed({"feature_std_mean": 0.5}, std_threshold=0)


# --- probes ----------------------------------------------------------------------


def _blobs(n=300, dims=6, classes=3, spread=4.0, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, dims)) * spread
    return centers[labels] + rng.normal(size=(n, dims)), labels


def test_standardize__uses_train_statistics_only():
    train, test = dg.standardize(np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[5.0, 6.0]]))
    np.testing.assert_allclose(train, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(test, [[3.0, 1.0]])  # constant dim: std treated as 1


def test_linear_probe__separable_blobs():
    x, y = _blobs()
    assert dg.linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95


def test_linear_probe__random_labels_near_chance():
    x, _ = _blobs(n=600)
    y = np.random.default_rng(5).integers(0, 2, 600)
    accuracy = dg.linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:])
    assert 0.35 < accuracy < 0.65


def test_linear_probe__scale_of_features_does_not_matter():
    x, y = _blobs()
    a = dg.linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:])
    b = dg.linear_probe_accuracy(1e3 * x[:200], y[:200], 1e3 * x[200:], y[200:])
    assert a == b


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"regularization": 0}, "`regularization`"),
        ({"max_iter": 0}, "`max_iter`"),
    ],
)
def test_linear_probe__validates_arguments(kwargs, match):
    x, y = _blobs(n=20)
    with pytest.raises(ValueError, match=match):
        dg.linear_probe_accuracy(x[:10], y[:10], x[10:], y[10:], **kwargs)


def test_probes__validate_split_shapes():
    x, y = _blobs(n=20)
    with pytest.raises(ValueError, match="`test_features`"):
        dg.knn_accuracy(x[:10], y[:10], x[10:, :2], y[10:])
    with pytest.raises(ValueError, match="`train_labels`"):
        dg.knn_accuracy(x[:10], y[:9], x[10:], y[10:])
    with pytest.raises(ValueError, match="`test_labels`"):
        dg.linear_probe_accuracy(x[:10], y[:10], x[10:], y[10:15])
    with pytest.raises(ValueError, match="at least 2 classes"):
        dg.linear_probe_accuracy(x[:10], np.zeros(10), x[10:], y[10:])


def test_knn__exact_small_example():
    train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    test = np.array([[2.0, 0.1], [0.0, 3.0]])
    assert dg.knn_accuracy(train, labels, test, [0, 1], k=2) == 1.0
    # With k=5 every query sees 3 votes for class 1.
    assert dg.knn_accuracy(train, labels, test, [0, 1], k=5) == 0.5


def test_knn__tie_goes_to_more_similar_class():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    labels = np.array([7, 3])
    test = np.array([[1.0, 0.2], [0.2, 1.0]])
    assert dg.knn_accuracy(train, labels, test, [7, 3], k=2) == 1.0


def test_knn__k1_on_train_set_is_perfect_and_batching_does_not_matter():
    x, y = _blobs(n=120, spread=0.5)
    assert dg.knn_accuracy(x, y, x, y, k=1) == 1.0
    a = dg.knn_accuracy(x[:80], y[:80], x[80:], y[80:], k=5, batch_size=7)
    b = dg.knn_accuracy(x[:80], y[:80], x[80:], y[80:], k=5, batch_size=1000)
    assert a == b


def test_knn__validates_k_and_batch_size():
    x, y = _blobs(n=20)
    with pytest.raises(ValueError, match="`k`"):
        dg.knn_accuracy(x[:10], y[:10], x[10:], y[10:], k=11)
    with pytest.raises(ValueError, match="`batch_size`"):
        dg.knn_accuracy(x[:10], y[:10], x[10:], y[10:], k=3, batch_size=0)


def test_knn__raw_cosine_is_the_none_option_and_exact():
    train = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    test = np.array([[2.0, 0.1], [0.0, 3.0]])
    assert dg.knn_accuracy(train, labels, test, [0, 1], k=2, preprocess="none") == 1.0
    assert dg.knn_accuracy(train, labels, test, [0, 1], k=5, preprocess="none") == 0.5


def test_knn__standardizes_with_train_statistics_before_the_cosine():
    """Equal to raw cosine on features standardized by hand with the train split's stats."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 6)) * rng.uniform(0.1, 5, 6) + rng.normal(size=6) * 10
    y = rng.integers(0, 3, 90)
    train, test = dg.standardize(x[:60], x[60:])
    expected = dg.knn_accuracy(train, y[:60], test, y[60:], k=5, preprocess="none")
    assert dg.knn_accuracy(x[:60], y[:60], x[60:], y[60:], k=5) == expected
    centered = dg.knn_accuracy(
        x[:60] - x[:60].mean(0), y[:60], x[60:] - x[:60].mean(0), y[60:], k=5, preprocess="none"
    )
    assert dg.knn_accuracy(x[:60], y[:60], x[60:], y[60:], k=5, preprocess="center") == centered


def test_knn__shared_offset_and_nuisance_scale_fool_raw_cosine_not_the_default():
    """A large mean shared by all samples (low effective rank) and large-variance
    dimensions that carry no class: raw cosine is near chance, standardized k-NN is not."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    signal = 0.3 * (rng.normal(size=(400, 2)) + 3.0 * (2 * y[:, None] - 1))
    nuisance = rng.normal(size=(400, 6)) * 5.0
    x = np.concatenate([signal, nuisance], axis=1) + 100.0
    assert dg.effective_rank(x) < 1.7
    raw = dg.knn_accuracy(x[:300], y[:300], x[300:], y[300:], preprocess="none")
    fixed = dg.knn_accuracy(x[:300], y[:300], x[300:], y[300:])
    assert raw < 0.7 and fixed > 0.95


def test_knn__validates_preprocess():
    x, y = _blobs(n=20)
    with pytest.raises(ValueError, match="Invalid value for argument `preprocess`"):
        dg.knn_accuracy(x[:10], y[:10], x[10:], y[10:], k=3, preprocess="whiten")


def test_probe_accuracies__same_numbers_as_each_probe():
    x, y = _blobs(n=120, spread=2.0)
    got = dg.probe_accuracies(x[:90], y[:90], x[90:], y[90:], knn_k=7, seed=1)
    assert got == {
        "linear": dg.linear_probe_accuracy(x[:90], y[:90], x[90:], y[90:], seed=1),
        "knn": dg.knn_accuracy(x[:90], y[:90], x[90:], y[90:], k=7),
    }
    assert dg.probe_accuracies(x[:5], y[:5], x[90:], y[90:], probes=["knn"]).keys() == {"knn"}
    assert set(dg.PROBE_PROTOCOLS) >= {"linear", "knn", "attentive"}


def test_probe_accuracies__validates_probes():
    x, y = _blobs(n=20)
    with pytest.raises(ValueError, match="Invalid value for argument `probes`"):
        dg.probe_accuracies(x[:10], y[:10], x[10:], y[10:], probes=("linear", "svm"))
    with pytest.raises(ValueError, match="Invalid value for argument `probes`"):
        dg.probe_accuracies(x[:10], y[:10], x[10:], y[10:], probes=())
