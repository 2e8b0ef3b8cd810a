"""Frozen-feature evaluation of benchmarks/paper_claims.py: one protocol for every arm.

The probe split is fixed before any training: ``num_train`` training images
drawn once (``default_rng(0)``, without replacement) from the 60,000 official
training images, and the first ``num_test`` of the 10,000 official test
images (all of them by default). Images are scaled to [0, 1] and
standardized with Fashion-MNIST's training mean and std, as for training.

Every encoder is read once (``encode_images``: the mean-pooled last layer,
the mean-pooled last 4 blocks concatenated, and the last layer's patch
tokens, for both splits in one pass); every figure reuses those arrays:

- ``linear`` / ``linear_last4``: the library's linear probe
  (``diagnostics.probe_accuracies``: standardized features, L-BFGS logistic
  regression, C=1, 2,000 iterations) on the pooled last layer / last 4 layers;
- ``knn`` / ``knn_last4``: k-NN (k=20, cosine on standardized features);
- ``attentive``: the library's attentive probe on the last layer's tokens
  (fixed settings, seed 0, ``diagnostics.PROBE_PROTOCOLS``);
- ``feature_std`` / ``effective_rank``: collapse figures of the pooled
  last-layer features of the test images (``diagnostics.collapse_metrics``).

Raw pixels get the same linear and k-NN probes on the 784 standardized
pixels, and the attentive probe on the 49 raw 4x4 patches as tokens.

BLAS runs one thread during the probes: on this 2-core machine, with another
process busy, OpenBLAS' second thread spin-waits and the L-BFGS probe ran
~100x slower (15 s instead of 0.13 s for 50 iterations on 10,000 x 96).
"""

from __future__ import annotations

import time

import numpy as np

from jepa_components import diagnostics
from jepa_components.augment import Normalize
from jepa_components.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from jepa_components.pixels import patchify

LAST_N = 4


# [0, 1] images -> standardized float32 (Fashion-MNIST train mean / std), as for training.
normalize = Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)


class ProbeData:
    """The fixed probe split: normalized images and labels, train rows first."""

    def __init__(self, split, num_train=10_000, num_test=10_000):
        rows = np.sort(
            np.random.default_rng(0).choice(len(split.train_images), num_train, replace=False)
        )
        self.num_train, self.num_test = int(num_train), int(min(num_test, len(split.test_images)))
        self.images = np.concatenate(
            [normalize(split.train_images[rows]), normalize(split.test_images[: self.num_test])]
        )
        self.train_labels = np.asarray(split.train_labels[rows])
        self.test_labels = np.asarray(split.test_labels[: self.num_test])

    def split(self, values):
        """(train values, train labels, test values, test labels) of row-aligned values."""
        return (
            values[: self.num_train],
            self.train_labels,
            values[self.num_train :],
            self.test_labels,
        )


def _blas_one_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _pooled_probes(values, data, probes=("linear", "knn")):
    with _blas_one_thread():
        return diagnostics.probe_accuracies(*data.split(values), probes=probes)


def _attentive(tokens, data, attentive):
    from jepa_components.backends.keras import attentive_probe_accuracy

    train, train_y, test, test_y = data.split(tokens)
    return attentive_probe_accuracy(train, train_y, test, test_y, **dict(attentive or {}))


def _collapse(pooled, data):
    metrics = diagnostics.collapse_metrics(pooled[data.num_train :])
    return {"feature_std": metrics["feature_std_mean"], "effective_rank": metrics["effective_rank"]}


def evaluate_encoder(encoder, data, *, attentive=None, with_attentive=True):
    """Every figure of one frozen encoder (see the module docstring).

    Args:
        encoder: a ``VisionTransformer`` (the I-JEPA target encoder, the
            pixel baseline's encoder, or a random init).
        data: :class:`ProbeData`.
        attentive: keyword arguments of ``attentive_probe_accuracy`` (the
            same for every arm).
        with_attentive: False skips the attentive probe (and the tokens).

    Returns:
        dict of plain floats, plus ``eval_seconds``.
    """
    from jepa_components.backends.keras import encode_images

    started = time.perf_counter()
    features = encode_images(encoder, data.images, last_n=LAST_N, tokens=with_attentive)
    pooled = features["pooled"]
    stacked = features.get("pooled_last_layers", pooled)
    result = dict(_pooled_probes(pooled, data))
    last4 = _pooled_probes(stacked, data)
    result.update(linear_last4=last4["linear"], knn_last4=last4["knn"])
    result.update(_collapse(pooled, data))
    if with_attentive:
        result["attentive"] = _attentive(features["tokens"], data, attentive)
    result["eval_seconds"] = round(time.perf_counter() - started, 1)
    return result


def snapshot(encoder, data):
    """Cheap figures for the curve: linear probe and collapse of the pooled last layer."""
    from jepa_components.backends.keras import encode_images

    started = time.perf_counter()
    pooled = encode_images(encoder, data.images, last_n=1, tokens=False)["pooled"]
    result = {"linear": _pooled_probes(pooled, data, probes=("linear",))["linear"]}
    result.update(_collapse(pooled, data))
    result["eval_seconds"] = round(time.perf_counter() - started, 1)
    return result


def evaluate_pixels(data, *, patch_size, attentive=None, with_attentive=True):
    """Raw pixels: linear and k-NN on the 784 standardized pixels; attentive on raw patches."""
    started = time.perf_counter()
    flat = data.images.reshape(len(data.images), -1)
    result = dict(_pooled_probes(flat, data))
    result.update(_collapse(flat, data))
    if with_attentive:
        result["attentive"] = _attentive(patchify(data.images, patch_size), data, attentive)
    result["eval_seconds"] = round(time.perf_counter() - started, 1)
    return result
