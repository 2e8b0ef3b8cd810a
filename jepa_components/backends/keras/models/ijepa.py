"""The I-JEPA model: context encoder, EMA target encoder and predictor.

One ``keras.Model`` that trains with ``model.compile(optimizer=...)`` and
``model.fit(...)`` on jax, torch and tensorflow (Assran et al. 2023;
official ``train.py``).

Training step (batch dict ``{"images", "context", "context_valid",
"targets", "targets_valid"}``, see :class:`IJEPA`):

1. the target EMA update pending from the previous optimizer step is
   applied (``training.ema``: inside the compiled step, from saved state);
2. targets: the target encoder on the full image, non-affine layer norm
   (eps 1e-5), gathered per target block (``context.make_targets``), no
   gradient;
3. predictions: the context encoder on the context patches, then the
   predictor for every target block;
4. loss: ``losses.jepa_loss`` over valid target tokens ("l2" by default,
   the paper's; "smooth_l1" is the official code's), plus, with a
   ``regularizer`` (LeJEPA's :class:`~jepa_components.backends.keras.layers.sigreg.SIGReg`),
   ``regularizer_weight`` times SIGReg of the context embeddings (the context
   tokens mean-pooled over the valid ones, ``(B, D)``).

``target_encoder="online"`` replaces the EMA target by the online encoder's
own stop-gradient tokens: the EMA with momentum 0 (the pending update of
step ``t - 1`` is applied at the start of step ``t``, so the target weights
*are* the online weights when the targets are computed). Without a
regularizer that collapses; SIGReg is what LeJEPA uses instead of a teacher.

What every JEPA model shares (batch checks, the loss over valid tokens,
compilation, ``fit``'s data hooks, ``features``, serialization) is in
:mod:`~jepa_components.backends.keras.models.base`; the EMA target (its saved
variables, the update, its schedule, ``apply_pending_ema``) in
:mod:`~jepa_components.backends.keras.training.ema`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_choice, check_float, invalid
from jepa_components.backends.keras.layers.sigreg import SIGReg
from jepa_components.backends.keras.models.base import BATCH_KEYS, JEPAModel
from jepa_components.backends.keras.training.ema import EMATarget
from jepa_components.context import make_targets
from jepa_components.diagnostics import mean_pool

__all__ = ["IJEPA", "BATCH_KEYS"]


@keras.saving.register_keras_serializable(package="jepa_components")
class IJEPA(EMATarget, JEPAModel):
    """I-JEPA: encoder, EMA target encoder and predictor in one Keras model.

    Args:
        encoder: the context encoder, e.g. ``vit_tiny(image_size=96)``. Any
            layer called as ``encoder(images, indices=None, valid=None)``
            returning ``(B, N, D)`` / ``(B, K, D)`` with a ``get_config``.
        predictor: a :class:`Predictor` with the encoder's ``embed_dim``,
            ``num_patches`` and patch grid (``Predictor.for_encoder``).
        loss: ``"l2"`` (paper, default) or ``"smooth_l1"`` (official code).
        reduction: ``"mean"`` (over valid tokens and features) or
            ``"paper"`` (Eq. 1); see ``jepa_components.losses``.
        target_eps: layer-norm epsilon of the targets (official 1e-5).
        momentum: float in [0, 1], the initial (constant) EMA momentum
            schedule, for ``fit`` without a :class:`TargetEMA` callback.
            None: 0.996 and a one-time warning unless a schedule is set. The
            saved schedule variables (``training.ema``) hold the truth after
            that.
        regularizer: None, or a :class:`SIGReg` layer applied to the
            mean-pooled context embeddings (LeJEPA's regularizer, arXiv
            2511.08544).
        regularizer_weight: float >= 0, its weight in the loss (0.05, the
            LeJEPA paper's lambda).
        target_encoder: ``"ema"`` (the paper's EMA teacher, default) or
            ``"online"`` (the online encoder's own stop-gradient tokens:
            momentum 0, refuses another momentum or a ``TargetEMA``
            schedule).

    Attributes: ``encoder``, ``target_encoder`` (same architecture, weights
    copied from ``encoder`` at construction, not trainable, never seen by
    the optimizer), ``predictor``, ``grid_size`` (the encoder's patch grid);
    the EMA state variables ``ema_updates``, ``ema_pending``,
    ``accumulation_step``, ``momentum_start``, ``momentum_end``,
    ``momentum_total_steps``.

    EMA methods (:class:`~jepa_components.backends.keras.training.ema.EMATarget`):
    ``set_momentum_schedule``, ``momentum_schedule``, ``current_momentum``,
    ``ema_update_count``, ``apply_pending_ema``, ``accumulation_steps``.
    ``fit`` applies the last pending update at its end, ``evaluate`` before
    it starts.

    Batches: dicts with ``images`` ``(B, H, W, C)`` float, ``context``
    ``(B, Kc)`` int, ``targets`` ``(B, M, Kt)`` int, and optionally
    ``context_valid`` ``(B, Kc)`` / ``targets_valid`` ``(B, M, Kt)`` bool
    (``MaskBatch.as_dict()`` plus the images). ``model(batch)`` returns
    ``{"predictions": (B, M, Kt, D), "targets": (B, M, Kt, D)}``. ``fit`` on
    a dataset with a ``sampler`` (e.g. :class:`MaskedImageDataset`) refuses
    one drawing on another patch grid than the encoder's.

    Frozen features for probes: :meth:`features` (mean-pooled target-encoder
    tokens; I-JEPA has no class token), or ``model.target_encoder(images)``
    for all tokens ``(B, N, D)``.

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import (
        ...     MaskedImageDataset, Predictor, TargetEMA, vit_tiny)
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> encoder = vit_tiny(image_size=32, patch_size=8, depth=1, seed=0)
        >>> predictor = Predictor.for_encoder(encoder, embed_dim=32, depth=1, num_heads=2,
        ...                                   seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> model.compile(optimizer="adamw")
        >>> images = np.random.default_rng(0).random((8, 32, 32, 3), "float32")
        >>> data = MaskedImageDataset(
        ...     images, MultiBlockMaskSampler(grid_size=model.grid_size, min_context=2, seed=0),
        ...     batch_size=4)
        >>> history = model.fit(data, epochs=1, verbose=0, callbacks=[TargetEMA()])
        >>> model.ema_update_count(), tuple(model.features(images).shape)
        (2, (8, 192))
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        predictor: keras.layers.Layer,
        loss: str = "l2",
        reduction: str = "mean",
        target_eps: float = 1e-5,
        momentum: float | None = None,
        regularizer: SIGReg | None = None,
        regularizer_weight: float = 0.05,
        target_encoder: str = "ema",
        **kwargs: Any,
    ):
        target_eps = check_float("target_eps", target_eps, low=0.0, low_open=True)
        momentum = check_float("momentum", momentum, low=0.0, high=1.0, allow_none=True)
        if isinstance(regularizer, dict):  # from_config
            regularizer = keras.saving.deserialize_keras_object(regularizer)
        if regularizer is not None and not isinstance(regularizer, SIGReg):
            raise invalid("regularizer", "None or a SIGReg layer", regularizer)
        regularizer_weight = check_float("regularizer_weight", regularizer_weight, low=0.0)
        target_encoder = check_choice("target_encoder", target_encoder, ("ema", "online"))
        if target_encoder == "online":
            if momentum not in (None, 0.0):
                raise ValueError(
                    "Invalid value for argument `momentum`. Expected None or 0 with "
                    "target_encoder='online' (the targets are the online encoder's own "
                    f"tokens). Received: momentum={momentum}"
                )
            momentum = 0.0
        super().__init__(encoder, predictor, loss=loss, reduction=reduction, **kwargs)
        self.target_eps, self.momentum = target_eps, momentum
        self.regularizer, self.regularizer_weight = regularizer, regularizer_weight
        self.target_encoder_kind = target_encoder
        self._add_ema_target(momentum)
        self.built = True

    def set_momentum_schedule(
        self, start: float, end: float | None = None, total_steps: int | None = None
    ) -> None:
        """As :meth:`EMATarget.set_momentum_schedule`; only momentum 0 with online targets."""
        if self.target_encoder_kind == "online" and (start != 0 or end not in (None, 0)):
            raise ValueError(
                "This IJEPA has target_encoder='online' (momentum 0): it has no EMA "
                f"schedule to set (drop the TargetEMA callback). Received: start={start}, "
                f"end={end}"
            )
        super().set_momentum_schedule(start, end, total_steps)

    def feature_encoder(self) -> keras.layers.Layer:
        """The target encoder: I-JEPA's evaluated encoder."""
        return self.target_encoder

    def _forward_batch(self, batch, training):
        images, context, targets = batch["images"], batch["context"], batch["targets"]
        context_valid, targets_valid = batch.get("context_valid"), batch.get("targets_valid")
        if training:
            self._ema_in_step()
        # Targets in float32 (the official layer_norm runs in float32 under autocast).
        target_tokens = ops.cast(ops.stop_gradient(self.target_encoder(images)), "float32")
        target_blocks = make_targets(
            target_tokens, ops.cast(targets, "int32"), eps=self.target_eps, xp=ops
        )
        context_tokens = self.encoder(images, indices=context, valid=context_valid)
        predictions = self.predictor(
            context_tokens,
            context,
            targets,
            context_valid=context_valid,
            targets_valid=targets_valid,
        )
        out = {"predictions": predictions, "targets": ops.stop_gradient(target_blocks)}
        if self.regularizer is not None:
            valid = None if context_valid is None else ops.cast(context_valid, "bool")
            out["context_embeddings"] = mean_pool(
                ops.cast(context_tokens, "float32"), valid, xp=ops
            )
        return out

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The I-JEPA loss, plus ``regularizer_weight`` times SIGReg with a regularizer."""
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        if self.regularizer is None:
            return loss
        return loss + self.regularizer_weight * self.regularizer(y_pred["context_embeddings"])

    def _own_config(self):
        config = {"target_eps": self.target_eps, "momentum": self.momentum}
        if self.regularizer is not None or self.target_encoder_kind != "ema":
            config.update(
                regularizer=None
                if self.regularizer is None
                else keras.saving.serialize_keras_object(self.regularizer),
                regularizer_weight=self.regularizer_weight,
                target_encoder=self.target_encoder_kind,
            )
        return config
