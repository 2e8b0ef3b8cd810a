"""``HealthMonitor``: a Keras callback that watches a JEPA run for collapse.

A falling JEPA loss is only a proxy: an encoder that maps every image to the
same features predicts its own targets perfectly (``jepa_components.
diagnostics``). This callback measures, every ``every`` training steps and
at every epoch end, the evaluated encoder's image features
(``model.feature_encoder()``: I-JEPA's target encoder, LeJEPA's encoder) on a
fixed probe batch:

- ``feature_std`` / ``feature_std_min``: mean / minimum over dimensions of
  the per-dimension std across the probe images
  (``diagnostics.collapse_metrics``), 0 for complete collapse;
- ``effective_rank``: RankMe of the same ``(N, D)`` matrix, low for
  dimensional collapse;
- ``knn_accuracy`` (optional): cosine k-NN accuracy on a small labelled set
  (``diagnostics.knn_accuracy``);
- ``learning_rate`` and ``ema_momentum``: read from the optimizer
  (``optimizer.learning_rate``, the rate of its next update) and from the
  model (``IJEPA.current_momentum()``, the momentum of the next EMA update;
  only for models with an EMA target), never recomputed from a schedule.

The features are the model's ``features``: mean-pooled tokens of
``feature_encoder()`` (an encoder returning ``(B, D)`` is used as it is),
one row per image. (Rows of individual tokens would hide the collapse that
matters most for I-JEPA: features that depend only on the patch position
vary across tokens through the positional embeddings even when every image
gives the same ones.)

The values go into the ``logs`` of that batch and of the epoch end (so
``History`` and ``CSVLogger`` record them) and into ``monitor.records``.
Training stops (``model.stop_training``) with ``stop_reason`` (a sentence
naming the step), ``stop_kind`` and ``stop_step`` set:

- ``"nonfinite_loss"``: the batch loss is NaN or infinite (checked every
  batch from ``logs``, no model access);
- ``"nonfinite_features"``: the probe features are not finite;
- ``"collapse"``: ``feature_std`` fell below ``min_std_ratio`` times its
  value at random initialization (or ``effective_rank`` below
  ``min_rank_ratio`` times its value). The random-initialization value
  comes from a fresh copy of the encoder built from its config once, at
  the first ``on_train_begin`` (with a seeded encoder that is the run's own
  initialization); pass ``reference=`` to skip it.

Steps count training batches over the whole run: the optimizer's
``iterations`` at ``on_train_begin`` (restored with a ``.keras`` model;
times the gradient-accumulation steps), plus the batches of this ``fit``.

Cost: the features come from one compiled function (``predict_on_batch``
of a small ``keras.Model`` around the target encoder, traced once per batch
shape and reused by every check and every ``fit``); on jax each check syncs
the model state once. Between checks the callback only reads the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from keras import ops

from jepa_components import diagnostics
from jepa_components._validation import check_bool, check_float, check_int, invalid
from jepa_components.backends.keras.compat import callback_model
from jepa_components.backends.keras.models.base import JEPAModel
from jepa_components.backends.keras.training.ema import accumulation_steps

__all__ = ["HealthMonitor"]


class _PooledFeatures(keras.Model):
    """``images -> mean over tokens of encoder(images)``: ``(B, H, W, C) -> (B, D)``.

    An encoder that returns ``(B, D)`` already is used as it is.
    """

    def __init__(self, encoder: keras.Model) -> None:
        super().__init__(name="pooled_features")  # (tensorflow refuses a leading "_")
        self.encoder = encoder

    def call(self, images: Any) -> Any:
        out = self.encoder(images)
        return ops.mean(out, axis=1) if len(out.shape) == 3 else out


def _check_images(name: str, images: npt.ArrayLike, minimum: int) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim != 4 or len(array) < minimum:
        raise invalid(
            name,
            f"an image array (N, H, W, C) with N >= {minimum}",
            f"array of shape {array.shape}",
        )
    return array


class HealthMonitor(keras.callbacks.Callback):
    """Collapse, non-finite-loss and k-NN watch of a JEPA run (``IJEPA``, ``LeJEPA``, ...).

    Args:
        probe_images: ``(N, H, W, C)`` array, N >= 2: the fixed batch the
            collapse metrics are computed on (e.g. 64-256 training images,
            normalized as the training data).
        every: int >= 1, training steps between checks (there is also one
            at every epoch end).
        min_std_ratio: None or a float in [0, 1): stop when ``feature_std``
            drops below this fraction of its random-initialization value.
            None: never stop on it.
        min_rank_ratio: None (default) or a float in [0, 1): the same for
            ``effective_rank``.
        stop_on_nonfinite: bool; stop on a non-finite loss or features.
        knn_data: None or ``(train_images, train_labels, test_images,
            test_labels)``: a small labelled set for the cosine k-NN
            accuracy (train at least ``knn_k`` images).
        knn_every: None (same as ``every``) or int >= 1, steps between
            k-NN evaluations (there is also one at every epoch end).
        knn_k: int >= 1, neighbours of the k-NN vote.
        batch_size: int >= 1, images per call of the features function.
        reference: None or a dict with ``feature_std_mean`` and
            ``effective_rank`` (``diagnostics.collapse_metrics`` output) for
            the random-initialization values.
        verbose: bool; print the stop reason when stopping.

    Attributes: ``records`` (list of dicts: ``step``, ``epoch`` and the
    logged values, one per check), ``reference``, ``stop_reason``,
    ``stop_kind``, ``stop_step`` (None while healthy).

    Example:
        >>> from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, vit_tiny
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> model = IJEPA(encoder=vit_tiny(image_size=32, patch_size=8, depth=1, seed=0),
        ...               predictor=Predictor(num_patches=16, embed_dim=192,
        ...                                   predictor_embed_dim=32, depth=1, num_heads=2),
        ...               momentum=0.99)
        >>> model.compile(optimizer="adamw")
        >>> images = np.random.default_rng(0).random((8, 32, 32, 3), "float32")
        >>> masks = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0).sample(8)
        >>> monitor = HealthMonitor(images, every=2, verbose=False)
        >>> history = model.fit({"images": images, **masks.as_dict()}, batch_size=4,
        ...                     epochs=1, verbose=0, callbacks=[monitor])
        >>> sorted(history.history)
        ['effective_rank', 'ema_momentum', 'feature_std', 'feature_std_min', 'learning_rate',
         'loss']
        >>> monitor.records[-1]["step"], monitor.stop_reason
        (2, None)

        A constant target encoder (all weights zero) is a collapse:

        >>> target = model.target_encoder
        >>> target.set_weights([np.zeros(w.shape, "float32") for w in target.weights])
        >>> model.set_momentum_schedule(1.0)                # keep the target constant
        >>> history = model.fit({"images": images, **masks.as_dict()}, batch_size=4,
        ...                     epochs=1, verbose=0, callbacks=[monitor])
        >>> monitor.stop_kind, monitor.stop_step
        ('collapse', 4)
    """

    def __init__(
        self,
        probe_images: npt.ArrayLike,
        every: int = 100,
        min_std_ratio: float | None = 0.01,
        min_rank_ratio: float | None = None,
        stop_on_nonfinite: bool = True,
        knn_data: Sequence[npt.ArrayLike] | None = None,
        knn_every: int | None = None,
        knn_k: int = 20,
        batch_size: int = 256,
        reference: dict[str, float] | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        self.probe_images = _check_images("probe_images", probe_images, 2)
        self.every = check_int("every", every, low=1)
        self.min_std_ratio = check_float(
            "min_std_ratio", min_std_ratio, low=0.0, high=1.0, high_open=True, allow_none=True
        )
        self.min_rank_ratio = check_float(
            "min_rank_ratio", min_rank_ratio, low=0.0, high=1.0, high_open=True, allow_none=True
        )
        self.stop_on_nonfinite = check_bool("stop_on_nonfinite", stop_on_nonfinite)
        self.knn_k = check_int("knn_k", knn_k, low=1)
        self.knn_data = self._check_knn(knn_data)
        self.knn_every = check_int(
            "knn_every", self.every if knn_every is None else knn_every, low=1
        )
        self.batch_size = check_int("batch_size", batch_size, low=1)
        if reference is not None and not (
            isinstance(reference, dict) and {"feature_std_mean", "effective_rank"} <= set(reference)
        ):
            raise invalid(
                "reference",
                "None or a dict with `feature_std_mean` and `effective_rank`",
                reference,
            )
        self.reference = reference
        self.verbose = check_bool("verbose", verbose)
        self.records: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.stop_kind: str | None = None
        self.stop_step: int | None = None
        self._features_model: _PooledFeatures | None = None
        self._step = 0
        self._last_check: tuple[int, dict[str, float]] | None = None

    def _check_knn(
        self, knn_data: Sequence[npt.ArrayLike] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        if knn_data is None:
            return None
        if not isinstance(knn_data, (tuple, list)) or len(knn_data) != 4:
            raise invalid(
                "knn_data",
                "None or (train_images, train_labels, test_images, test_labels)",
                type(knn_data).__name__,
            )
        train, train_labels, test, test_labels = knn_data
        train = _check_images("knn_data", train, self.knn_k)
        test = _check_images("knn_data", test, 1)
        train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
        if train_labels.shape != (len(train),) or test_labels.shape != (len(test),):
            raise invalid(
                "knn_data",
                "one label per image",
                f"{train_labels.shape} labels for {len(train)} train images and "
                f"{test_labels.shape} for {len(test)} test images",
            )
        return train, train_labels, test, test_labels

    # ------------------------------------------------------------- features
    def _features(self, encoder: keras.Model, images: np.ndarray) -> npt.NDArray[np.float64]:
        """Mean-pooled ``encoder`` features ``(N, D)`` of ``images``, one compiled function."""
        if self._features_model is None or self._features_model.encoder is not encoder:
            self._features_model = _PooledFeatures(encoder)
        size = min(self.batch_size, len(images))
        chunks = []
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            count = len(chunk)
            if count < size:  # pad: every call has the same shape (one trace)
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - count, axis=0)])
            out = self._features_model.predict_on_batch(chunk)
            chunks.append(np.asarray(ops.convert_to_numpy(out))[:count])
        return np.concatenate(chunks).astype(np.float64)

    def _random_init_reference(self, encoder: keras.Model) -> dict[str, float]:
        fresh = type(encoder).from_config(encoder.get_config())
        if not fresh.built:
            fresh.build(None)
        tokens = fresh(self.probe_images[: self.batch_size])
        pooled = ops.mean(tokens, axis=1) if len(tokens.shape) == 3 else tokens
        features = np.asarray(ops.convert_to_numpy(pooled), np.float64)
        return diagnostics.collapse_metrics(features)

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.model
        if not isinstance(model, JEPAModel):
            raise ValueError(
                "HealthMonitor needs a JEPA model of this package (IJEPA, LeJEPA, ...). "
                f"Received: model of type {type(model).__name__}"
            )
        self.stop_reason = self.stop_kind = self.stop_step = None
        updates = int(ops.convert_to_numpy(model.optimizer.iterations))
        self._step = updates * accumulation_steps(model.optimizer)  # training batches so far
        self._last_check = None
        if self.reference is None and (self.min_std_ratio or self.min_rank_ratio):
            self.reference = self._random_init_reference(model.feature_encoder())

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        logs = logs if logs is not None else {}
        loss = logs.get("loss")
        if self.stop_on_nonfinite and loss is not None and not math.isfinite(float(loss)):
            self._stop("nonfinite_loss", f"non-finite loss ({float(loss)}) at step {self._step}")
            return
        if self._step % self.every == 0:
            self._check(logs, knn=self._step % self.knn_every == 0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stop_kind is not None:
            return
        if self._last_check is not None and self._last_check[0] == self._step:
            if logs is not None:
                logs.update(self._last_check[1])  # this step was checked already
            return
        self._check(logs if logs is not None else {}, knn=True)

    # --------------------------------------------------------------- checks
    def _check(self, logs: dict[str, Any], knn: bool) -> None:
        model = self.model  # on jax: one state sync
        encoder = model.feature_encoder()
        features = self._features(encoder, self.probe_images)
        values: dict[str, float] = {
            "learning_rate": float(ops.convert_to_numpy(model.optimizer.learning_rate)),
        }
        if hasattr(model, "current_momentum"):  # a model with an EMA target
            values["ema_momentum"] = float(ops.convert_to_numpy(model.current_momentum()))
        finite = bool(np.all(np.isfinite(features)))
        if finite:
            metrics = diagnostics.collapse_metrics(features)
            values.update(
                feature_std=metrics["feature_std_mean"],
                feature_std_min=metrics["feature_std_min"],
                effective_rank=metrics["effective_rank"],
            )
        else:
            values.update(feature_std=math.nan, feature_std_min=math.nan, effective_rank=math.nan)
        if knn and self.knn_data is not None and finite:
            train, train_labels, test, test_labels = self.knn_data
            values["knn_accuracy"] = diagnostics.knn_accuracy(
                self._features(encoder, train),
                train_labels,
                self._features(encoder, test),
                test_labels,
                k=self.knn_k,
            )
        logs.update(values)
        self._last_check = (self._step, values)
        self.records.append({"step": self._step, "epoch": getattr(self, "_epoch", 0), **values})
        if not finite:
            if self.stop_on_nonfinite:
                self._stop("nonfinite_features", f"non-finite target features at step {self._step}")
            return
        self._check_collapse(values)

    def _check_collapse(self, values: dict[str, float]) -> None:
        reference = self.reference or {}
        for key, ratio, name in (
            ("feature_std", self.min_std_ratio, "feature_std_mean"),
            ("effective_rank", self.min_rank_ratio, "effective_rank"),
        ):
            if ratio is None or name not in reference:
                continue
            threshold = ratio * float(reference[name])
            if values[key] < threshold:
                self._stop(
                    "collapse",
                    f"representation collapse at step {self._step}: {key} of the target "
                    f"features {values[key]:.3g} < {ratio:g} x its random-init value "
                    f"{float(reference[name]):.3g} (feature_std "
                    f"{values['feature_std']:.3g}, effective_rank "
                    f"{values['effective_rank']:.3g})",
                )
                return

    def _stop(self, kind: str, message: str) -> None:
        if self.stop_kind is None:
            self.stop_kind, self.stop_reason, self.stop_step = kind, message, self._step
            if self.verbose:
                print(f"HealthMonitor: stopping training: {message}")
        callback_model(self).stop_training = True  # no jax state sync needed
