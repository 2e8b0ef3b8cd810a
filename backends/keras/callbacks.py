"""``TargetEMA``: the momentum schedule of the I-JEPA target encoder.

The update ``target = m * target + (1 - m) * online`` itself runs inside
:class:`~jepa_components.backends.keras.ijepa.IJEPA`'s compiled training step
(see that module for why and how); this callback only *owns the schedule*:

- a float ``momentum`` with ``final_momentum``: the paper's linear schedule
  ``schedules.ema_momentum`` (0.996 -> 1.0 by default), set once in
  ``on_train_begin``. It is a constant of the compiled step: no per-batch
  work at all, on any backend.
- ``final_momentum=None``: a constant ``momentum``.
- a python callable ``step -> m``: evaluated every batch and written into a
  model variable. Exact for any sequence, but each write costs a Python
  round trip per batch (on jax a full state sync, since ``fit`` keeps
  variables in a functional state); prefer the linear schedule when it fits.

``step`` is the 0-based index of the EMA update, i.e. of the optimizer update
it follows (the official ``momentum_scheduler``'s ``i``); it counts optimizer
updates, not micro-batches, under gradient accumulation, and it continues
across ``fit`` calls (it is the model's ``ema_updates`` variable, saved with
the model).

Pending updates: the update of the last optimizer step of a ``fit`` is
applied in ``on_train_end``, and before validation (``on_test_begin``) so
``val_loss`` uses the current target.
"""

import math
import warnings

import keras

__all__ = ["TargetEMA"]


def _check_momentum(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float in [0, 1]. "
            f"Received: {name}={value!r}"
        )


class TargetEMA(keras.callbacks.Callback):
    """EMA momentum schedule of an :class:`IJEPA` target encoder.

    Args:
        momentum: float in [0, 1], the momentum of the first update (paper
            0.996); or a callable ``step -> m`` (0-based update index to a
            momentum in [0, 1]).
        final_momentum: float in [0, 1] reached after ``total_steps``
            updates (paper 1.0), or None for a constant ``momentum``.
            Ignored for a callable.
        total_steps: int >= 1, optimizer updates over which the momentum goes
            from ``momentum`` to ``final_momentum`` (official:
            ``ipe * epochs * ipe_scale``). None: ``epochs * steps`` of the
            ``fit`` call (divided by the gradient-accumulation steps). For
            training split over several ``fit`` calls, pass it explicitly.

    Example:
        >>> ema = TargetEMA()                                 # 0.996 -> 1.0 over the fit
        >>> ema = TargetEMA(0.99, final_momentum=None)        # constant
        >>> ema = TargetEMA(lambda step: 0.99 if step < 100 else 0.999)
        >>> # model.fit(data, epochs=10, callbacks=[ema])
    """

    is_target_ema = True  # how IJEPA.fit recognises it without an import cycle

    def __init__(self, momentum=0.996, final_momentum=1.0, total_steps=None):
        super().__init__()
        if not callable(momentum):
            _check_momentum("momentum", momentum)
            if final_momentum is not None:
                _check_momentum("final_momentum", final_momentum)
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
        ):
            raise ValueError(
                "Invalid value for argument `total_steps`. Expected None or an integer "
                f">= 1. Received: total_steps={total_steps!r}"
            )
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.total_steps = total_steps

    def _ijepa(self):
        model = self.model
        if not hasattr(model, "set_momentum_schedule"):
            raise ValueError(
                "TargetEMA needs an IJEPA model (with `set_momentum_schedule`). "
                f"Received: model of type {type(model).__name__}"
            )
        return model

    def _schedule_steps(self, model):
        if self.total_steps is not None:
            return self.total_steps
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if not epochs or not steps:
            raise ValueError(
                "Invalid value for argument `total_steps`. Expected an integer >= 1 "
                "when `fit` does not know its number of steps (a dataset of unknown "
                "length). Received: total_steps=None"
            )
        return max(1, (epochs * steps) // model.accumulation_steps())

    def _write_callable_momentum(self, model):
        step = model.ema_update_count()
        value = float(self.momentum(step))
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(
                "Invalid value for argument `momentum`. Expected a callable returning "
                f"a float in [0, 1]. Received: momentum({step}) = {value!r}"
            )
        model.set_momentum(value)

    def on_train_begin(self, logs=None):
        model = self._ijepa()
        if callable(self.momentum):
            if getattr(model, "steps_per_execution", 1) > 1:
                warnings.warn(
                    "TargetEMA with a callable momentum and steps_per_execution > 1: the "
                    "momentum is written once per execution, so several updates share it. "
                    "Use the linear schedule (a float momentum) to stay exact.", stacklevel=2)
            self._write_callable_momentum(model)
        elif self.final_momentum is None:
            model.set_momentum_schedule(float(self.momentum))
        else:
            total = self._schedule_steps(model)
            model.set_momentum_schedule(float(self.momentum), float(self.final_momentum), total)

    def on_train_batch_begin(self, batch, logs=None):
        if callable(self.momentum):
            self._write_callable_momentum(self._ijepa())

    def on_test_begin(self, logs=None):
        self._flush()

    def on_train_end(self, logs=None):
        self._flush()

    def _flush(self):
        model = self._ijepa()
        if callable(self.momentum):
            self._write_callable_momentum(model)
        model.apply_pending_ema()
