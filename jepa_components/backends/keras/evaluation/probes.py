"""Frozen-encoder evaluation: one feature pass, then linear, k-NN and attentive probes.

- :func:`encode_images`: one ``predict`` pass of a ViT encoder over the
  images gives every feature view a probe needs -- the last layer's patch
  tokens, their mean (I-JEPA has no class token) and the mean of each of
  the last ``last_n`` blocks (the usual "last 4 layers" view). Keep the
  arrays and probe them as often as needed; nothing reads the encoder twice.
- the attentive probe of V-JEPA's frozen evaluation
  (``attentive_probe``: :func:`attentive_probe_accuracy` and its layers,
  re-exported here): learned queries cross-attend to the frozen patch
  tokens, then a linear classifier, trained on the cached tokens;
- :func:`probe_encoder`: all of it for one encoder and one split, with the
  NumPy core's linear and k-NN probes
  (``jepa_components.diagnostics.probe_accuracies``).

Everything runs unchanged on jax, torch and tensorflow. The attentive probe
is seeded (weights from ``seed``, batch order from ``seed`` and the epoch)
and trains for a fixed number of epochs: nothing is tuned on the test split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from keras import ops

from jepa_components._validation import check_int, invalid
from jepa_components.backends.keras.evaluation.attentive_probe import (
    AttentivePooler,
    AttentiveProbe,
    attentive_probe_accuracy,
    token_statistics,
    train_attentive_probe,
)
from jepa_components.diagnostics import PROBE_PROTOCOLS, probe_accuracies

__all__ = [
    "AttentivePooler",
    "AttentiveProbe",
    "attentive_probe_accuracy",
    "encode_images",
    "probe_encoder",
    "token_statistics",
    "train_attentive_probe",
]


# ---------------------------------------------------------------- features


def _feature_model(encoder: Any, last_n: int, keep_tokens: bool) -> keras.Model:
    """A ``keras.Model`` images -> pooled features of the last ``last_n`` blocks (+ tokens).

    Built on ``VisionTransformer.intermediate_layers`` (each block output
    through the final norm, as DINO's ``get_intermediate_layers``); the last
    one is ``encoder(images)``.
    """

    class LayerFeatures(keras.Model):
        def call(self, images: Any) -> dict[str, Any]:
            layers = encoder.intermediate_layers(images, layers=last_n, norm=True)
            out = {"pooled": ops.mean(layers[-1], axis=1)}
            if last_n > 1:
                out["pooled_last_layers"] = ops.concatenate(
                    [ops.mean(x, axis=1) for x in layers], axis=-1
                )
            if keep_tokens:
                out["tokens"] = layers[-1]
            return out

    return LayerFeatures()


def encode_images(
    encoder: Any,
    images: npt.ArrayLike,
    *,
    last_n: int = 1,
    tokens: bool = True,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Every feature view of ``images`` from one pass of a ViT encoder.

    Args:
        encoder: a :class:`VisionTransformer` (uses its
            ``intermediate_layers``), e.g. ``model.target_encoder`` of an
            :class:`IJEPA` or ``model.encoder`` of a :class:`PixelBaseline`.
        images: ``(N, H, W, C)`` float array.
        last_n: int >= 1, blocks whose mean-pooled output (after the final
            norm) is concatenated into ``"pooled_last_layers"`` (capped at
            the depth).
        tokens: also return the last layer's tokens (``N * T * D`` floats).
        batch_size: images per forward pass.

    Returns:
        dict of NumPy arrays: ``"pooled"`` ``(N, D)`` (= mean over tokens
        of ``encoder(images)``), ``"pooled_last_layers"`` ``(N, last_n *
        D)`` when ``last_n > 1``, ``"tokens"`` ``(N, T, D)`` when asked.

    Example:
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=2,
        ...                         num_heads=2, seed=0)
        >>> out = encode_images(vit, np.zeros((3, 16, 16, 3), "float32"), last_n=2)
        >>> {k: v.shape for k, v in sorted(out.items())}
        {'pooled': (3, 32), 'pooled_last_layers': (3, 64), 'tokens': (3, 16, 32)}
    """
    if not hasattr(encoder, "intermediate_layers") or not hasattr(encoder, "blocks"):
        raise invalid("encoder", "a VisionTransformer (with `intermediate_layers`)", encoder)
    last_n = min(check_int("last_n", last_n, low=1), len(encoder.blocks))
    batch_size = check_int("batch_size", batch_size, low=1)
    images = np.asarray(images)
    if images.ndim != 4 or len(images) < 1:
        raise invalid("images", "a non-empty (N, H, W, C) array", f"shape {images.shape}")
    outputs = _feature_model(encoder, last_n, bool(tokens)).predict(
        images, batch_size=min(batch_size, len(images)), verbose=0
    )
    return {name: np.asarray(value) for name, value in outputs.items()}


# ---------------------------------------------------------------- all probes


def probe_encoder(
    encoder: Any,
    train_images: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    test_images: npt.ArrayLike,
    test_labels: npt.ArrayLike,
    *,
    last_n: int = 4,
    probes: Iterable[str] = ("linear", "knn", "attentive"),
    knn_k: int = 20,
    attentive: Mapping[str, Any] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Every probe of one frozen encoder, from one feature pass over both splits.

    Encodes ``train_images`` and ``test_images`` once (:func:`encode_images`)
    and runs, with fixed settings identical for every encoder compared:

    - ``"linear"`` / ``"knn"`` on the mean-pooled last layer, and
      ``"linear_last_layers"`` / ``"knn_last_layers"`` on the concatenated
      mean-pooled last ``last_n`` blocks (when the encoder has more than
      one), via ``diagnostics.probe_accuracies``;
    - ``"attentive"`` on the last layer's patch tokens
      (:func:`attentive_probe_accuracy` with ``attentive`` keyword
      arguments).

    Returns:
        dict ``{figure name: accuracy}`` plus ``"protocols"``: ``{probe:
        description}`` from ``diagnostics.PROBE_PROTOCOLS`` for a report.

    Example:
        >>> from jepa_components.backends.keras import VisionTransformer
        >>> vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=1,
        ...                         num_heads=2, seed=0)
        >>> rng = np.random.default_rng(0)
        >>> images = rng.uniform(size=(40, 16, 16, 3)).astype("float32")
        >>> labels = np.arange(40) % 2
        >>> result = probe_encoder(vit, images[:30], labels[:30], images[30:], labels[30:],
        ...                        knn_k=5, attentive={"epochs": 1, "num_heads": 2})
        >>> sorted(k for k in result if k != "protocols")
        ['attentive', 'knn', 'linear']
    """
    probes = tuple(probes)
    known = ("linear", "knn", "attentive")
    if not probes or any(p not in known for p in probes):
        raise invalid("probes", f"a non-empty subset of {known}", probes)
    want_tokens = "attentive" in probes
    both = np.concatenate([np.asarray(train_images), np.asarray(test_images)])
    features = encode_images(
        encoder, both, last_n=last_n, tokens=want_tokens, batch_size=batch_size
    )
    num_train = len(np.asarray(train_images))
    result: dict[str, Any] = {}
    pooled_probes = [p for p in probes if p != "attentive"]
    views = [("", "pooled"), ("_last_layers", "pooled_last_layers")]
    for suffix, view in views:
        if pooled_probes and view in features:
            values = features[view]
            accuracies = probe_accuracies(
                values[:num_train],
                train_labels,
                values[num_train:],
                test_labels,
                probes=pooled_probes,
                knn_k=knn_k,
            )
            result.update({name + suffix: value for name, value in accuracies.items()})
    if want_tokens:
        tokens = features["tokens"]
        result["attentive"] = attentive_probe_accuracy(
            tokens[:num_train],
            train_labels,
            tokens[num_train:],
            test_labels,
            **dict(attentive or {}),
        )
    result["protocols"] = {p: PROBE_PROTOCOLS[p] for p in probes}
    return result
