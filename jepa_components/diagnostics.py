"""Collapse metrics and frozen-feature probes for JEPA encoders.

A falling JEPA loss is only a proxy: an encoder that maps every input to
the same vector predicts its own targets perfectly. Two cheap figures watch
for that (collapse metrics), and two probes say what the features are worth
(frozen-feature evaluation):

- :func:`per_dimension_std` / :func:`collapse_metrics`: the standard
  deviation of each feature dimension across samples. It goes to zero when
  the representations collapse to a constant (complete collapse).
- :func:`effective_rank`: RankMe (Garrido et al., "RankMe: Assessing the
  downstream performance of pretrained self-supervised representations by
  their rank", ICML 2023): ``exp`` of the entropy of the normalized singular
  values of the ``(N, D)`` feature matrix. It falls when the features
  span only a few directions (dimensional collapse), even if their std
  stays large.
- :func:`linear_probe_accuracy`: standardized features, scikit-learn
  logistic regression, accuracy on a held-out split (the I-JEPA paper's
  linear evaluation, Assran et al. 2023, in its simplest form).
- :func:`knn_accuracy`: cosine k-nearest-neighbour vote (no training),
  on features standardized with the train split's statistics (see there
  for why raw cosine misleads).
- :func:`probe_accuracies`: both probes on one set of cached features (read
  the encoder once, probe many times); :data:`PROBE_PROTOCOLS` says in words
  what each figure is, for reports. The attentive probe over patch tokens
  (V-JEPA's evaluation) needs training with a framework: it lives in
  ``jepa_components.backends.keras.evaluation.probes``.
- :func:`mean_pool`: I-JEPA's ViT has no class token, so image-level
  features are the mean over patch tokens (taking token 0 is a known
  mistake of probes written for class-token models).

Everything here is NumPy; scikit-learn is imported only inside
:func:`linear_probe_accuracy`. :func:`per_dimension_std`,
:func:`mean_pool` takes ``xp`` (``numpy`` by
default, ``keras.ops`` works) so they can run on framework tensors.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> features = rng.normal(size=(500, 16))
>>> round(float(effective_rank(features)), 1) > 14
True
>>> collapse_metrics(np.ones((500, 16)))["feature_std_mean"]
0.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "mean_pool",
    "per_dimension_std",
    "effective_rank",
    "collapse_metrics",
    "is_collapsed",
    "standardize",
    "linear_probe_accuracy",
    "knn_accuracy",
    "probe_accuracies",
    "PROBE_PROTOCOLS",
    "KNN_PREPROCESSING",
]

KNN_PREPROCESSING = ("standardize", "center", "none")

PROBE_PROTOCOLS = {
    "linear": "linear probe: features standardized with the train split's mean/std, "
    "multinomial logistic regression (L-BFGS, C=1, 2000 iterations), "
    "test accuracy",
    "knn": "k-NN: features standardized with the train split's mean/std, cosine "
    "similarity, majority vote of the k nearest train samples (k=20 unless "
    "stated), test accuracy",
    "attentive": "attentive probe (V-JEPA): last-layer patch tokens standardized with "
    "the train split's mean/std, one learned query cross-attending to them, "
    "residual MLP, LayerNorm, linear classifier; AdamW (lr 1e-2, 1 warmup "
    "epoch then "
    "cosine, weight decay 0.01), 10 epochs of batch 256, test accuracy",
}


def _as_2d(features: npt.ArrayLike, name: str = "features") -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 2-D array "
            f"(num_samples, num_dims). Received: {name}.shape={features.shape}"
        )
    if features.shape[0] < 2 or features.shape[1] < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected at least 2 samples "
            f"and 1 dimension. Received: {name}.shape={features.shape}"
        )
    return features


def mean_pool(tokens: Any, valid: Any = None, *, xp: Any = np) -> Any:
    """Mean over the token axis: ``(B, N, D)`` -> ``(B, D)``.

    I-JEPA's encoder has no class token (Assran et al. 2023, Sec. 5 linear
    evaluation averages the patch tokens), so this is the image feature.
    ``valid`` (``(B, N)`` bool, e.g. ``MaskBatch.context_valid``) leaves the
    padded tokens out: selected away, so NaN or inf there do not propagate;
    a row without a valid token gives 0.

    >>> mean_pool(np.arange(12.0).reshape(1, 3, 4)).tolist()
    [[4.0, 5.0, 6.0, 7.0]]
    >>> mean_pool(np.arange(12.0).reshape(1, 3, 4), np.array([[True, True, False]])).tolist()
    [[2.0, 3.0, 4.0, 5.0]]
    """
    if len(tokens.shape) != 3:
        raise ValueError(
            "Invalid value for argument `tokens`. Expected shape (B, N, D). "
            f"Received: tokens.shape={tuple(tokens.shape)}"
        )
    if valid is None:
        return xp.mean(tokens, axis=1)
    keep = xp.expand_dims(valid, -1)  # (B, N, 1)
    total = xp.sum(xp.where(keep, tokens, xp.zeros_like(tokens)), axis=1)
    ones = xp.ones_like(tokens[..., :1])
    count = xp.sum(xp.where(keep, ones, xp.zeros_like(ones)), axis=1)  # (B, 1)
    return total / xp.maximum(count, 1.0)


def per_dimension_std(features: Any, *, xp: Any = np) -> Any:
    """Standard deviation of each feature dimension across samples.

    Args:
        features: ``(N, D)`` float array, one row per sample (or per token).
        xp: array namespace (``numpy`` or ``keras.ops``).

    Returns:
        ``(D,)`` float array. All zeros for a completely collapsed encoder.

    >>> per_dimension_std(np.array([[0.0, 1.0], [2.0, 1.0]])).tolist()
    [1.0, 0.0]
    """
    if len(features.shape) != 2:
        raise ValueError(
            "Invalid value for argument `features`. Expected shape (N, D). "
            f"Received: features.shape={tuple(features.shape)}"
        )
    return xp.sqrt(xp.var(features, axis=0))


def effective_rank(features: npt.ArrayLike) -> float:
    """RankMe effective rank of a ``(N, D)`` feature matrix.

    ``exp(-sum_k p_k log p_k)`` with ``p_k = s_k / sum(s)`` over the singular
    values ``s`` of the (uncentered) feature matrix, as defined by Garrido
    et al. 2023 (RankMe, eq. 1). It lies in ``[1, min(N, D)]``: 1 when all
    rows are multiples of one vector, ``min(N, D)`` when all singular values
    are equal. Returns 0.0 for an all-zero matrix.

    >>> round(effective_rank(np.eye(4)), 6)
    4.0
    >>> round(effective_rank(np.ones((10, 3))), 6)
    1.0
    """
    matrix = _as_2d(features)
    singular_values = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    total = singular_values.sum()
    if total <= 0:
        return 0.0
    p = singular_values / total
    p = p[p > 0]
    entropy = -np.sum(p * np.log(p))
    return float(np.exp(entropy))


def collapse_metrics(
    features: npt.ArrayLike, *, max_rank_samples: int = 8192, seed: int = 0
) -> dict[str, float]:
    """Per-dimension std summary and effective rank of ``(N, D)`` features.

    Args:
        features: ``(N, D)`` float array (image features, or tokens flattened
            to rows).
        max_rank_samples: the effective rank is computed on at most this many
            rows (a fixed random subset) to bound the SVD cost.
        seed: seed of that subset.

    Returns:
        dict with ``feature_std_mean``, ``feature_std_min``,
        ``feature_std_max`` (over dimensions), ``effective_rank`` and
        ``num_dims``; plain Python floats/ints, JSON-ready.

    >>> m = collapse_metrics(np.random.default_rng(0).normal(size=(256, 8)))
    >>> 0.8 < m["feature_std_mean"] < 1.2 and m["num_dims"] == 8
    True
    """
    matrix = _as_2d(features).astype(np.float64)
    if max_rank_samples < 2:
        raise ValueError(
            "Invalid value for argument `max_rank_samples`. Expected an integer "
            f">= 2. Received: max_rank_samples={max_rank_samples}"
        )
    std = per_dimension_std(matrix)
    rows = matrix
    if matrix.shape[0] > max_rank_samples:
        keep = np.random.default_rng(seed).choice(
            matrix.shape[0], size=max_rank_samples, replace=False
        )
        rows = matrix[np.sort(keep)]
    return {
        "feature_std_mean": float(std.mean()),
        "feature_std_min": float(std.min()),
        "feature_std_max": float(std.max()),
        "effective_rank": effective_rank(rows),
        "num_dims": int(matrix.shape[1]),
    }


def is_collapsed(metrics: Mapping[str, float], *, std_threshold: float = 1e-2) -> bool:
    """Whether collapse metrics show (near-)complete collapse.

    True when the mean per-dimension std is below ``std_threshold``. The
    default suits layer-normalized features (the I-JEPA targets), whose
    per-dimension std is of order 1 for a healthy encoder.

    >>> is_collapsed({"feature_std_mean": 1e-4})
    True
    """
    if std_threshold <= 0:
        raise ValueError(
            "Invalid value for argument `std_threshold`. Expected a value > 0. "
            f"Received: std_threshold={std_threshold}"
        )
    value = float(metrics["feature_std_mean"])
    return not np.isfinite(value) or value < std_threshold


def standardize(
    train: npt.ArrayLike, test: npt.ArrayLike, *, eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Standardize both splits with the train split's per-dimension mean/std.

    >>> tr, te = standardize(np.array([[0.0], [2.0]]), np.array([[4.0]]))
    >>> tr.ravel().tolist(), te.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    train = np.asarray(train, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std < eps, 1.0, std)
    return (train - mean) / std, (test - mean) / std


def _check_split(train_x, train_y, test_x, test_y):
    train_x = _as_2d(train_x, "train_features")
    test_x = np.asarray(test_x)
    if test_x.ndim != 2 or test_x.shape[1] != train_x.shape[1] or len(test_x) < 1:
        raise ValueError(
            "Invalid value for argument `test_features`. Expected shape "
            f"(M, {train_x.shape[1]}) with M >= 1. "
            f"Received: test_features.shape={test_x.shape}"
        )
    train_y = np.asarray(train_y).reshape(-1)
    test_y = np.asarray(test_y).reshape(-1)
    if len(train_y) != len(train_x):
        raise ValueError(
            "Invalid value for argument `train_labels`. Expected one label per "
            f"train sample ({len(train_x)}). Received: {len(train_y)} labels"
        )
    if len(test_y) != len(test_x):
        raise ValueError(
            "Invalid value for argument `test_labels`. Expected one label per "
            f"test sample ({len(test_x)}). Received: {len(test_y)} labels"
        )
    if len(np.unique(train_y)) < 2:
        raise ValueError(
            "Invalid value for argument `train_labels`. Expected at least 2 "
            f"classes. Received: {len(np.unique(train_y))} class(es)"
        )
    return train_x, train_y, test_x, test_y


def linear_probe_accuracy(
    train_features: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    test_features: npt.ArrayLike,
    test_labels: npt.ArrayLike,
    *,
    regularization: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> float:
    """Held-out accuracy of a logistic-regression probe on frozen features.

    Features are standardized with the train split's statistics, then a
    multinomial :class:`sklearn.linear_model.LogisticRegression` (L-BFGS,
    inverse regularization strength ``regularization``) is fit on the train
    split. The same fixed settings are used for every encoder compared, so
    the numbers are comparable; nothing is tuned on the test split.

    Args:
        train_features: ``(N, D)`` float array.
        train_labels: ``(N,)`` int array.
        test_features: ``(M, D)`` float array.
        test_labels: ``(M,)`` int array.
        regularization: ``C`` of scikit-learn's logistic regression, > 0.
        max_iter: L-BFGS iterations, >= 1.
        seed: ``random_state`` of the solver.

    Returns:
        float in ``[0, 1]``.

    Example (needs scikit-learn):

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> x = rng.normal(size=(200, 4)) + 3 * y[:, None]
    >>> linear_probe_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
    True
    """
    train_x, train_y, test_x, test_y = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    if not regularization > 0:
        raise ValueError(
            "Invalid value for argument `regularization`. Expected a value > 0. "
            f"Received: regularization={regularization}"
        )
    if int(max_iter) < 1:
        raise ValueError(
            "Invalid value for argument `max_iter`. Expected an integer >= 1. "
            f"Received: max_iter={max_iter}"
        )
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:  # pragma: no cover - depends on the env
        raise ImportError(
            "linear_probe_accuracy needs scikit-learn: pip install 'jepa-components[examples]'"
        ) from error
    import warnings

    train_x, test_x = standardize(train_x, test_x)
    classifier = LogisticRegression(
        C=float(regularization), max_iter=int(max_iter), random_state=seed
    )
    with warnings.catch_warnings():
        # An unconverged L-BFGS still gives a valid probe; the accuracy is
        # what we report, so the warning is noise here.
        warnings.simplefilter("ignore")
        classifier.fit(train_x, train_y)
    return float(np.mean(classifier.predict(test_x) == test_y))


def knn_accuracy(
    train_features: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    test_features: npt.ArrayLike,
    test_labels: npt.ArrayLike,
    *,
    k: int = 20,
    batch_size: int = 1024,
    preprocess: str = "standardize",
) -> float:
    """Held-out accuracy of a cosine k-nearest-neighbour majority vote.

    Each test sample takes the most common label among the ``k`` train
    samples with the highest cosine similarity; ties go to the class whose
    tied neighbours have the larger summed similarity.

    Before the cosine, both splits are standardized with the *train*
    split's per-dimension mean and std (``preprocess="standardize"``, the
    same preprocessing as :func:`linear_probe_accuracy`). Raw cosine on
    mean-pooled ViT features is dominated by one direction shared by every
    image (their mean; RankMe of such features can be ~1.2): all
    similarities are close to 1 and the neighbours are decided by noise.
    Centring removes that shared direction; scaling keeps one large-variance
    dimension from deciding alone. ``"center"`` only centres, ``"none"``
    gives the raw cosine of the usual SSL k-NN monitor (DINO's, on
    class-token features where the mean is small).

    Args:
        train_features: ``(N, D)`` float array.
        train_labels: ``(N,)`` int array.
        test_features: ``(M, D)`` float array.
        test_labels: ``(M,)`` int array.
        k: neighbours, ``1 <= k <= N``.
        batch_size: test rows processed at a time (memory bound).
        preprocess: ``"standardize"`` (default), ``"center"`` or ``"none"``,
            always with the train split's statistics.

    Returns:
        float in ``[0, 1]``.

    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> y = np.array([0, 0, 1, 1])
    >>> knn_accuracy(x, y, np.array([[1.0, 0.2], [0.2, 1.0]]), [0, 1], k=2)
    1.0
    >>> shared = 100.0 + x  # a large direction common to every sample
    >>> knn_accuracy(shared, y, 100.0 + np.array([[1.0, 0.2], [0.2, 1.0]]), [0, 1], k=2)
    1.0
    """
    train_x, train_y, test_x, test_y = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    if not 1 <= int(k) <= len(train_x):
        raise ValueError(
            "Invalid value for argument `k`. Expected 1 <= k <= number of train "
            f"samples ({len(train_x)}). Received: k={k}"
        )
    if int(batch_size) < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an integer >= 1. "
            f"Received: batch_size={batch_size}"
        )
    if preprocess not in KNN_PREPROCESSING:
        raise ValueError(
            f"Invalid value for argument `preprocess`. Expected one of {KNN_PREPROCESSING}. "
            f"Received: preprocess={preprocess!r}"
        )
    if preprocess == "standardize":
        train_x, test_x = standardize(train_x, test_x)
    elif preprocess == "center":
        mean = np.asarray(train_x, np.float64).mean(axis=0)
        train_x, test_x = train_x - mean, test_x - mean
    k = int(k)
    classes, train_codes = np.unique(train_y, return_inverse=True)

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    train_x = unit(train_x)
    correct = 0
    for start in range(0, len(test_x), int(batch_size)):
        chunk = unit(test_x[start : start + int(batch_size)])
        similarity = chunk @ train_x.T  # (b, N)
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        neighbour_sim = np.take_along_axis(similarity, neighbours, axis=1)
        neighbour_class = train_codes[neighbours]  # (b, k)
        one_hot = neighbour_class[..., None] == np.arange(len(classes))
        votes = one_hot.sum(axis=1).astype(np.float64)  # (b, C)
        # Tie-break by summed similarity, scaled below one vote.
        sim_sum = (one_hot * neighbour_sim[..., None]).sum(axis=1)
        votes += (sim_sum + k) / (2.0 * k + 1.0) * 0.5
        predicted = classes[np.argmax(votes, axis=1)]
        correct += int(np.sum(predicted == test_y[start : start + len(chunk)]))
    return correct / len(test_x)


def probe_accuracies(
    train_features: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    test_features: npt.ArrayLike,
    test_labels: npt.ArrayLike,
    *,
    probes: Iterable[str] = ("linear", "knn"),
    knn_k: int = 20,
    regularization: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Linear and k-NN probe accuracies on one set of cached features.

    Encode the images once (e.g. ``backends.keras.probes.encode_images``),
    keep the arrays, and call this for every feature view (last layer,
    last 4 layers...): no probe reads the encoder again. The settings are
    fixed in advance and identical for every encoder compared;
    :data:`PROBE_PROTOCOLS` describes them for a report.

    Args:
        train_features, train_labels, test_features, test_labels: as
            :func:`linear_probe_accuracy`.
        probes: names among ``"linear"`` and ``"knn"``.
        knn_k: ``k`` of :func:`knn_accuracy`, clipped to the train size.
        regularization, max_iter, seed: of :func:`linear_probe_accuracy`.

    Returns:
        dict ``{probe name: accuracy}``, plain floats.

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 100)
    >>> x = rng.normal(size=(100, 4)) + 4 * y[:, None]
    >>> probe_accuracies(x[:80], y[:80], x[80:], y[80:])
    {'linear': 1.0, 'knn': 1.0}
    """
    probes = tuple(probes)
    unknown = [p for p in probes if p not in ("linear", "knn")]
    if unknown or not probes:
        raise ValueError(
            "Invalid value for argument `probes`. Expected a non-empty subset of "
            f"('linear', 'knn'). Received: probes={probes!r}"
        )
    split = _check_split(train_features, train_labels, test_features, test_labels)
    result = {}
    for name in probes:
        if name == "linear":
            result[name] = linear_probe_accuracy(
                *split, regularization=regularization, max_iter=max_iter, seed=seed
            )
        else:
            result[name] = knn_accuracy(*split, k=min(int(knn_k), len(split[0])))
    return result
