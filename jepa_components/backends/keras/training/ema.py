"""The EMA target encoder: its saved state, its update inside the compiled step, its schedule.

:class:`EMATarget` is a mixin for a Keras model with an ``encoder``: it adds
``target_encoder``, a frozen copy that follows the encoder by an exponential
moving average, as I-JEPA's (Assran et al. 2023; official ``train.py``):
``target = m * target + (1 - m) * online`` after every optimizer step.

**The update, inside the compiled step.** A batch-level Keras callback doing
it is slow (a Python loop of assigns, and on jax a full state sync per batch)
and easy to get wrong under gradient accumulation. Here the model does it the
way BatchNorm updates its statistics: at the *start* of training step ``t``,
before the targets are computed, it applies the update pending from step
``t - 1`` (whose optimizer update has happened by then). The targets of step
``t`` therefore come from exactly the official target weights, the update is
fused into the compiled step on every backend, and nothing crosses the
Python boundary.

**All EMA state is in saved variables** (non-trainable weights of the model,
so ``model.save("x.keras")`` keeps them and a loaded model continues the run
with the same momentum, with or without a callback):

- ``momentum_start``, ``momentum_end``, ``momentum_total_steps``: the
  schedule, ``schedules.ema_momentum(k, total, start, end)`` for EMA update
  ``k`` (linear, then held at ``end``; the same function, on the variables as
  tensors); a constant momentum is ``start == end``. Set it with
  :meth:`EMATarget.set_momentum_schedule` (what ``TargetEMA`` does) or the
  model's ``momentum`` argument; ``total_steps == 0`` marks "never set" (the
  constant 0.996, with a one-time warning in ``fit``).
- ``ema_updates``: EMA updates applied (the schedule's ``k``);
- ``ema_pending``: 1 if an optimizer update is not yet in the target;
- ``accumulation_step``: micro-batch counter; with
  ``optimizer.gradient_accumulation_steps = n`` only every n-th step is an
  optimizer update, so only those schedule an EMA update.

One method applies a pending update (``_apply_pending_update``): the training
step calls it first, and :meth:`EMATarget.apply_pending_ema` calls it at the
end of ``fit`` (before the other callbacks' ``on_train_end``) and at the start
of ``evaluate`` (so ``val_loss`` uses the current target). The last update of
a run that stops mid-``fit`` (an exception, or a checkpoint written by a
callback) stays pending in the saved state and is applied at the start of the
next training step. Custom loops (``train_on_batch``, a hand-written step
calling ``model(batch, training=True)``) get the same behaviour; call
``apply_pending_ema()`` after them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from jepa_components._validation import check_float, check_int
from jepa_components.backends.keras.compat import fused_blend, no_autocast
from jepa_components.schedules import ema_momentum

__all__ = ["DEFAULT_MOMENTUM", "EMATarget", "accumulation_steps"]

#: The momentum of a model whose schedule was never set (the paper's first value).
DEFAULT_MOMENTUM = 0.996


def accumulation_steps(optimizer: Any) -> int:
    """Micro-batches per optimizer update of ``optimizer`` (1 without gradient accumulation)."""
    while optimizer is not None:
        steps = getattr(optimizer, "gradient_accumulation_steps", None)
        if steps:
            return int(steps)
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return 1


def _python_float(value):
    """A float32 value as the shortest python float that reads back to it (0.996, not 0.9959...)."""
    return float(str(np.float32(ops.convert_to_numpy(value))))


class _EMAFitCallback(keras.callbacks.Callback):
    """The EMA target's own ``fit`` callback, placed before the user's.

    Warns once if no momentum schedule was ever set (checked at the first
    epoch begin, after every callback's ``on_train_begin``, so a
    ``TargetEMA`` or any other way of setting it counts), and applies the
    pending EMA update at the end of training, before the other callbacks'
    ``on_train_end`` see the target.
    """

    def __init__(self):
        super().__init__()
        self._checked = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._checked:
            self._checked = True
            self.model._warn_if_no_schedule()

    def on_train_end(self, logs=None):
        self.model.apply_pending_ema()


if TYPE_CHECKING:  # the mixin uses attributes of the keras.Model it is mixed into
    _ModelMixinBase = Any
else:
    _ModelMixinBase = object


class EMATarget(_ModelMixinBase):
    """Mixin: a ``target_encoder`` that follows ``self.encoder`` by EMA (module docstring).

    For a ``keras.Model`` subclass (listed before the model base class) whose
    ``__init__`` sets ``self.encoder`` and then calls
    :meth:`_add_ema_target`. It adds ``target_encoder``, the saved state
    variables, the update in the training step (the subclass's ``call``
    calls :meth:`_ema_in_step` first when ``training``), and the public
    methods below; it overrides ``compile`` (a new optimizer counts
    micro-batches from 0), ``evaluate`` (on the current target) and adds its
    ``fit`` callback through the base's ``_fit_callbacks``.
    """

    # ------------------------------------------------------------- set-up
    def _add_ema_target(self, momentum: float | None) -> None:
        """Make ``target_encoder`` (a frozen copy of ``encoder``) and the saved EMA variables."""
        encoder = self.encoder
        config = encoder.get_config()
        config.update(name="target_encoder")
        self.target_encoder = encoder.__class__.from_config(config)
        if not self.target_encoder.built:
            self.target_encoder.build(None)
        self.target_encoder.trainable = False
        if len(self.target_encoder.weights) != len(encoder.weights) or any(
            tuple(t.shape) != tuple(o.shape) for t, o in self._ema_pairs()
        ):
            raise ValueError(
                "Invalid value for argument `encoder`. Expected a layer whose "
                "`from_config(get_config())` copy has the same weights."
            )
        for target, online in self._ema_pairs():
            target.assign(ops.copy(online))  # a copy: jax must not share buffers
        self._warned_no_schedule = False

        def scalar(name, dtype, value):
            return self.add_weight(
                name=name,
                shape=(),
                dtype=dtype,
                trainable=False,
                initializer=keras.initializers.Constant(value),
            )

        constant = DEFAULT_MOMENTUM if momentum is None else momentum
        self.ema_updates = scalar("ema_updates", "int32", 0)
        self.ema_pending = scalar("ema_pending", "int32", 0)
        self.accumulation_step = scalar("accumulation_step", "int32", 0)
        self.momentum_start = scalar("momentum_start", "float32", constant)
        self.momentum_end = scalar("momentum_end", "float32", constant)
        self.momentum_total_steps = scalar(
            "momentum_total_steps", "int32", 0 if momentum is None else 1
        )

    # ------------------------------------------------------------ schedule
    def set_momentum_schedule(
        self, start: float, end: float | None = None, total_steps: int | None = None
    ) -> None:
        """Momentum of EMA update ``k``: ``schedules.ema_momentum(k, total_steps, start, end)``.

        ``end=None``: the constant ``start``. ``k`` counts EMA updates
        (``ema_updates``), i.e. optimizer updates. The values are written
        into the schedule variables (saved with the model), read by the
        compiled step: changing them needs no retracing.
        """
        start = check_float("start", start, low=0.0, high=1.0)
        end = start if end is None else check_float("end", end, low=0.0, high=1.0)
        total_steps = 1 if total_steps is None else check_int("total_steps", total_steps, low=1)
        self.momentum_start.assign(start)
        self.momentum_end.assign(end)
        self.momentum_total_steps.assign(total_steps)

    def momentum_schedule(self) -> dict:
        """The saved schedule: ``{"start", "end", "total_steps"}`` (python numbers).

        ``total_steps == 0``: never set (the constant ``start`` is used).
        """
        return {
            "start": _python_float(self.momentum_start.value),
            "end": _python_float(self.momentum_end.value),
            "total_steps": int(ops.convert_to_numpy(self.momentum_total_steps.value)),
        }

    def current_momentum(self, step: Any = None) -> Any:
        """Momentum of EMA update number ``step`` (0-based), a float32 scalar tensor.

        ``step=None``: the next update to apply (``ema_updates``; the pending
        one, if any). ``schedules.ema_momentum`` on the schedule variables
        (``total_steps == 0``, never set, reads as 1 with ``start == end``).
        """
        step = self.ema_updates if step is None else step
        total = ops.cast(ops.maximum(self.momentum_total_steps, 1), "float32")
        return ema_momentum(
            ops.cast(step, "float32"),
            total,
            ops.convert_to_tensor(self.momentum_start),
            ops.convert_to_tensor(self.momentum_end),
            xp=ops,
        )

    # -------------------------------------------------------------- update
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

    def _apply_pending_update(self):
        """The one place a pending update is applied (momentum 1, a no-op, if none).

        Inside ``call`` a mixed-precision policy (``mixed_bfloat16``) autocasts
        every float variable read to bfloat16: the momentum (0.996 -> 0.99609375),
        the target and the online weights would be rounded to 8 mantissa bits
        (the ``(1 - m) * (online - target)`` step is below that resolution), the
        torch fused update would write into temporary bfloat16 copies (updates
        silently lost) and tensorflow fails on a bfloat16 x float32 product.
        The EMA reads its variables as stored (float32).
        """
        with no_autocast():
            pending = ops.convert_to_tensor(self.ema_pending)
            momentum = self.current_momentum()
            self._blend_target(ops.where(pending > 0, momentum, ops.ones_like(momentum)))
            self.ema_updates.assign(self.ema_updates + pending)
            self.ema_pending.assign(ops.zeros_like(pending))

    def _ema_in_step(self):
        """Start of a training step: apply the pending update, then schedule this step's."""
        self._apply_pending_update()
        steps = self.accumulation_steps()
        if steps == 1:
            self.ema_pending.assign(1)
        else:
            micro = (self.accumulation_step + 1) % steps
            self.accumulation_step.assign(micro)
            self.ema_pending.assign(ops.cast(ops.equal(micro, 0), "int32"))

    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer update of the compiled optimizer (1 if none)."""
        return accumulation_steps(getattr(self, "optimizer", None))

    def ema_update_count(self) -> int:
        """EMA updates applied so far (python int; the schedule's next step)."""
        return int(ops.convert_to_numpy(self.ema_updates.value))

    def apply_pending_ema(self) -> bool:
        """Apply the EMA update of the last optimizer step, if still pending.

        ``fit`` does it at the end of training and ``evaluate`` before it
        starts; call it after custom loops. Returns True if an update was
        applied.
        """
        if int(ops.convert_to_numpy(self.ema_pending.value)) == 0:
            return False
        self._apply_pending_update()
        return True

    def _warn_if_no_schedule(self):
        if self._warned_no_schedule or self.momentum_schedule()["total_steps"] > 0:
            return
        self._warned_no_schedule = True
        name = type(self).__name__
        warnings.warn(
            f"{name}.fit without a momentum schedule (no TargetEMA callback): the target "
            f"encoder follows the online encoder with the constant momentum "
            f"{DEFAULT_MOMENTUM}. Pass callbacks=[TargetEMA()] for the paper's 0.996 -> 1.0 "
            f"schedule, or {name}(..., momentum=m) to silence this warning.",
            stacklevel=2,
        )

    # ------------------------------------------------- training entry points
    def compile(self, *args: Any, **kwargs: Any) -> None:
        """The model's ``compile``; a new optimizer counts micro-batches from 0."""
        super().compile(*args, **kwargs)
        self.accumulation_step.assign(0)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """``keras.Model.evaluate`` on the current target (a pending update applied first)."""
        self.apply_pending_ema()
        return super().evaluate(*args, **kwargs)

    def _fit_callbacks(self):
        return [_EMAFitCallback(), *super()._fit_callbacks()]
