"""The I-JEPA model: context encoder, EMA target encoder and predictor.

One ``keras.Model`` that trains with ``model.compile(optimizer=...)`` and
``model.fit(...)`` on jax, torch and tensorflow (Assran et al. 2023;
official ``train.py``).

Training step (batch dict ``{"images", "context", "context_valid",
"targets", "targets_valid"}``, see :class:`IJEPA`):

1. targets: the target encoder on the full image, non-affine layer norm
   (eps 1e-5), gathered per target block (``context.make_targets``), no
   gradient;
2. predictions: the context encoder on the context patches, then the
   predictor for every target block;
3. loss: ``losses.jepa_loss`` over valid target tokens ("l2" by default,
   the paper's; "smooth_l1" is the official code's).

**Target EMA, inside the compiled step.** The official code updates the
target after every optimizer step: ``target = m * target + (1 - m) *
online``. A batch-level Keras callback doing that is slow (a Python loop of
assigns, and on jax a full state sync per batch) and easy to get wrong under
gradient accumulation. Here the model does it the way BatchNorm updates its
statistics: at the *start* of training step ``t``, before the targets are
computed, it applies the update pending from step ``t - 1`` (whose
optimizer update has happened by then). The targets of step ``t`` therefore
come from exactly the official target weights, the update is fused into the
compiled step on every backend, and nothing crosses the Python boundary.
Three non-trainable counters hold the state (saved with the model):
``ema_updates`` (EMA updates applied, the momentum schedule's step),
``ema_pending`` (1 if an optimizer update is not yet in the target) and
``accumulation_step`` (micro-batch counter; with
``optimizer.gradient_accumulation_steps = n`` only every n-th step is an
optimizer update, so only those schedule an EMA update). The last update of
a ``fit`` is still pending when training stops; ``fit`` (and ``TargetEMA``)
applies it once at the end (:meth:`IJEPA.apply_pending_ema`). Custom loops
(``train_on_batch``, a hand-written step calling ``model(batch,
training=True)``) get the same behaviour; call ``apply_pending_ema()`` after
them.

The momentum comes from ``schedules.ema_momentum`` (linear 0.996 -> 1.0 in
the paper), set by the ``TargetEMA`` callback; without it, a constant
``momentum`` (0.996 by default, with a one-time warning) is used rather than
a frozen target.
"""

import warnings

import keras
from keras import ops

from jepa_components.context import make_targets
from jepa_components.losses import LOSSES, REDUCTIONS, jepa_loss
from jepa_components.schedules import ema_momentum
from jepa_components.backends.keras._backend_specific import fused_blend

__all__ = ["IJEPA", "BATCH_KEYS"]

BATCH_KEYS = ("images", "context", "context_valid", "targets", "targets_valid")
_REQUIRED_KEYS = ("images", "context", "targets")
_DEFAULT_MOMENTUM = 0.996


def _check_momentum(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float in [0, 1]. "
            f"Received: {name}={value!r}"
        )


def _accumulation_steps(optimizer):
    """Micro-batches per optimizer update (1 without gradient accumulation)."""
    while optimizer is not None:
        steps = getattr(optimizer, "gradient_accumulation_steps", None)
        if steps:
            return int(steps)
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return 1


@keras.saving.register_keras_serializable(package="jepa_components")
class IJEPA(keras.Model):
    """I-JEPA: encoder, EMA target encoder and predictor in one Keras model.

    Args:
        encoder: the context encoder, e.g. ``vit_tiny(image_size=96)``. Any
            layer called as ``encoder(images, indices=None, valid=None)``
            returning ``(B, N, D)`` / ``(B, K, D)`` with a ``get_config``.
        predictor: a :class:`Predictor` with the encoder's ``embed_dim`` and
            ``num_patches``.
        loss: ``"l2"`` (paper, default) or ``"smooth_l1"`` (official code).
        reduction: ``"mean"`` (over valid tokens and features) or
            ``"paper"`` (Eq. 1); see ``jepa_components.losses``.
        target_eps: layer-norm epsilon of the targets (official 1e-5).
        momentum: EMA momentum used when ``fit`` runs without a
            :class:`TargetEMA` callback. None: 0.996 and a one-time warning.

    Attributes: ``encoder``, ``target_encoder`` (same architecture, weights
    copied from ``encoder`` at construction, not trainable, never seen by
    the optimizer), ``predictor``.

    Batches: dicts with ``images`` ``(B, H, W, C)`` float, ``context``
    ``(B, Kc)`` int, ``targets`` ``(B, M, Kt)`` int, and optionally
    ``context_valid`` ``(B, Kc)`` / ``targets_valid`` ``(B, M, Kt)`` bool
    (``MaskBatch.as_dict()`` plus the images). ``model(batch)`` returns
    ``{"predictions": (B, M, Kt, D), "targets": (B, M, Kt, D)}``.

    Frozen features for probes: :meth:`features` (mean-pooled target-encoder
    tokens; I-JEPA has no class token), or ``model.target_encoder(images)``
    for all tokens ``(B, N, D)``.

    Example:
        >>> from jepa_components.backends.keras import Predictor, TargetEMA, vit_tiny
        >>> encoder = vit_tiny(image_size=32, patch_size=8, seed=0)
        >>> predictor = Predictor(num_patches=16, embed_dim=192,
        ...                       predictor_embed_dim=32, depth=1, num_heads=2, seed=1)
        >>> model = IJEPA(encoder=encoder, predictor=predictor)
        >>> model.compile(optimizer="adamw")
        >>> # model.fit(dataset, epochs=1, callbacks=[TargetEMA()])
    """

    def __init__(self, encoder, predictor, loss="l2", reduction="mean", target_eps=1e-5,
                 momentum=None, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"Invalid value for argument `loss`. Expected one of {LOSSES}. "
                             f"Received: loss={loss!r}")
        if reduction not in REDUCTIONS:
            raise ValueError("Invalid value for argument `reduction`. Expected one of "
                             f"{REDUCTIONS}. Received: reduction={reduction!r}")
        if (isinstance(target_eps, bool) or not isinstance(target_eps, (int, float))
                or not target_eps > 0):
            raise ValueError("Invalid value for argument `target_eps`. Expected a float > 0. "
                             f"Received: target_eps={target_eps!r}")
        if momentum is not None:
            _check_momentum("momentum", momentum)
        for name, value in (("embed_dim", "embed_dim"), ("num_patches", "num_patches")):
            mine, theirs = getattr(predictor, value, None), getattr(encoder, value, None)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(
                    f"Invalid value for argument `predictor`. Expected {name}={theirs} "
                    f"(the encoder's). Received: predictor with {name}={mine}")
        self.loss_type, self.reduction, self.target_eps = loss, reduction, float(target_eps)
        self.momentum = momentum
        self._warned_no_callback = False
        self.encoder = encoder
        self.predictor = predictor
        config = encoder.get_config()
        config.update(name="target_encoder")
        self.target_encoder = encoder.__class__.from_config(config)
        for layer in (encoder, self.target_encoder, predictor):
            if not layer.built:
                layer.build(None)
        self.target_encoder.trainable = False
        if len(self.target_encoder.weights) != len(encoder.weights) or any(
            tuple(t.shape) != tuple(o.shape) for t, o in self._ema_pairs()
        ):
            raise ValueError("Invalid value for argument `encoder`. Expected a layer whose "
                             "`from_config(get_config())` copy has the same weights.")
        for target, online in self._ema_pairs():
            target.assign(ops.copy(online))  # a copy: jax must not share buffers
        counter = dict(shape=(), dtype="int32", initializer="zeros", trainable=False)
        self.ema_updates = self.add_weight(name="ema_updates", **counter)
        self.ema_pending = self.add_weight(name="ema_pending", **counter)
        self.accumulation_step = self.add_weight(name="accumulation_step", **counter)
        self.momentum_value = self.add_weight(
            name="momentum_value", shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(
                _DEFAULT_MOMENTUM if momentum is None else momentum))
        # (start, end, total_steps) of schedules.ema_momentum, python numbers:
        # constants of the compiled step. None: read `momentum_value` instead.
        start = _DEFAULT_MOMENTUM if momentum is None else float(momentum)
        self._momentum_schedule = (start, start, 1)
        self.built = True

    # ------------------------------------------------------------------ EMA
    def set_momentum_schedule(self, start, end=None, total_steps=None):
        """Linear momentum ``schedules.ema_momentum(k, total_steps, start, end)``.

        ``end=None`` means a constant ``start``. ``k`` counts EMA updates
        (``ema_updates``), i.e. optimizer updates. The values are constants
        of the compiled step: changing them rebuilds the train function (no
        cost before its first call; :class:`TargetEMA` does it in
        ``on_train_begin``).
        """
        _check_momentum("start", start)
        if end is not None:
            _check_momentum("end", end)
            if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
                raise ValueError("Invalid value for argument `total_steps`. Expected an "
                                 f"integer >= 1. Received: total_steps={total_steps!r}")
        schedule = (float(start), float(start), 1) if end is None else (
            float(start), float(end), int(total_steps))
        self._set_schedule(schedule)

    def set_momentum(self, value):
        """Use ``value`` (written into ``momentum_value``) for the next updates.

        For momentum sequences given as an arbitrary python callable: the
        value is a variable, so it can change between steps without a
        rebuild, at the cost of a write (and, on jax, a state sync) per batch.
        """
        _check_momentum("value", value)
        self.momentum_value.assign(float(value))
        self._set_schedule(None)

    def _set_schedule(self, schedule):
        if schedule != self._momentum_schedule:
            self._momentum_schedule = schedule
            if getattr(self, "train_function", None) is not None:
                self.make_train_function(force=True)

    def current_momentum(self, step):
        """Momentum of EMA update number ``step`` (0-based), a float32 tensor."""
        if self._momentum_schedule is None:
            return ops.convert_to_tensor(self.momentum_value)
        start, end, total = self._momentum_schedule
        momentum = ema_momentum(ops.cast(step, "float32"), total, start, end, xp=ops)
        return ops.cast(momentum, "float32")

    def _ema_pairs(self):
        """(target weight, online weight) pairs, in build order."""
        return list(zip(self.target_encoder.weights, self.encoder.weights))

    def _blend_target(self, momentum):
        """``target = m * target + (1 - m) * online`` for every weight pair."""
        if fused_blend(self._ema_pairs(), momentum):  # torch: multi-tensor kernels
            return
        for target, online in self._ema_pairs():
            m = ops.cast(momentum, target.dtype)
            online = ops.stop_gradient(ops.cast(online, target.dtype))
            target.assign(m * target + (1.0 - m) * online)

    def _ema_in_step(self):
        """Apply the pending update (if any), then schedule this step's one."""
        pending = ops.convert_to_tensor(self.ema_pending)
        momentum = self.current_momentum(self.ema_updates)
        self._blend_target(ops.where(pending > 0, momentum, ops.ones_like(momentum)))
        self.ema_updates.assign(self.ema_updates + pending)
        steps = self.accumulation_steps()
        if steps == 1:
            self.ema_pending.assign(ops.ones_like(pending))
        else:
            micro = (self.accumulation_step + 1) % steps
            self.accumulation_step.assign(micro)
            self.ema_pending.assign(ops.cast(ops.equal(micro, 0), "int32"))

    def accumulation_steps(self):
        """Micro-batches per optimizer update of the compiled optimizer (1 if none)."""
        return _accumulation_steps(getattr(self, "optimizer", None))

    def ema_update_count(self):
        """EMA updates applied so far (python int; the schedule's next step)."""
        return int(ops.convert_to_numpy(self.ema_updates.value))

    def apply_pending_ema(self):
        """Apply the EMA update of the last optimizer step, if still pending.

        Called by ``fit`` and ``TargetEMA`` at the end of training (once, not
        per batch). Returns True if an update was applied.
        """
        if int(ops.convert_to_numpy(self.ema_pending.value)) == 0:
            return False
        self._blend_target(self.current_momentum(self.ema_updates))
        self.ema_updates.assign(self.ema_updates + 1)
        self.ema_pending.assign(0)
        return True

    # -------------------------------------------------------------- training
    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        self.accumulation_step.assign(0)  # a new optimizer counts micro-batches from 0

    def compile_from_config(self, config):
        """As ``keras.Model.compile_from_config`` (needed since ``compile`` is overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, then the pending target update is applied."""
        callbacks = kwargs.get("callbacks") or []
        callbacks = getattr(callbacks, "callbacks", callbacks)
        has_ema = any(getattr(cb, "is_target_ema", False) for cb in callbacks)
        if not has_ema and self.momentum is None and not self._warned_no_callback:
            self._warned_no_callback = True
            warnings.warn(
                "IJEPA.fit without a TargetEMA callback: the target encoder follows the "
                f"online encoder with the constant momentum {self._momentum_schedule[0]}. "
                "Pass callbacks=[TargetEMA()] for the paper's 0.996 -> 1.0 schedule, or "
                "IJEPA(..., momentum=m) to silence this warning.", stacklevel=2)
        history = super().fit(*args, **kwargs)
        self.apply_pending_ema()
        return history

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or any(k not in inputs for k in _REQUIRED_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"Invalid value for argument `inputs`. Expected a dict with keys {BATCH_KEYS} "
                f"(the *_valid ones optional). Received: {got}")
        images, context, targets = inputs["images"], inputs["context"], inputs["targets"]
        context_valid, targets_valid = inputs.get("context_valid"), inputs.get("targets_valid")
        if training:
            self._ema_in_step()
        target_tokens = ops.stop_gradient(self.target_encoder(images))
        target_blocks = make_targets(target_tokens, ops.cast(targets, "int32"),
                                     eps=self.target_eps, xp=ops)
        context_tokens = self.encoder(images, indices=context, valid=context_valid)
        predictions = self.predictor(context_tokens, context, targets,
                                     context_valid=context_valid, targets_valid=targets_valid)
        return {"predictions": predictions, "targets": ops.stop_gradient(target_blocks)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The JEPA loss of ``y_pred`` over the valid target tokens of ``x``."""
        valid = x.get("targets_valid") if isinstance(x, dict) else None
        if valid is not None:
            valid = ops.cast(valid, "bool")
        return jepa_loss(
            ops.cast(y_pred["predictions"], "float32"), ops.cast(y_pred["targets"], "float32"),
            valid=valid, loss=self.loss_type, reduction=self.reduction, xp=ops)

    def features(self, images, pooled=True):
        """Frozen target-encoder features: ``(B, D)`` mean-pooled, or ``(B, N, D)``."""
        tokens = self.target_encoder(images)
        return ops.mean(tokens, axis=1) if pooled else tokens

    # --------------------------------------------------------- serialization
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "loss": self.loss_type,
            "reduction": self.reduction,
            "target_eps": self.target_eps,
            "momentum": self.momentum,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["predictor"] = keras.saving.deserialize_keras_object(config["predictor"])
        return cls(**config)
