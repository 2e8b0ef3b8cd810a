"""``TargetEMA``: sets the momentum schedule of the I-JEPA target encoder.

The schedule itself lives in the model: a model with an EMA target
(:class:`~jepa_components.backends.keras.training.ema.EMATarget`, e.g.
:class:`IJEPA`) keeps its start, end and length in saved variables, applies
the target update ``target = m * target + (1 - m) * online`` inside its
compiled training step, and applies the update still pending at the end of
``fit`` and before ``evaluate`` (see
:mod:`~jepa_components.backends.keras.training.ema`). This callback only
writes the schedule, once, in ``on_train_begin``:

- a float ``momentum`` with ``final_momentum``: the paper's linear schedule
  ``schedules.ema_momentum`` (0.996 -> 1.0 by default) over ``total_steps``
  optimizer updates; by default the whole run,
  :func:`~jepa_components.backends.keras.training.optimizers.total_optimizer_steps`
  of the ``fit`` call (the same definition as ``make_adamw``: give both the
  same ``ipe_scale``). No per-batch work at all, on any backend.
- ``final_momentum=None``: a constant ``momentum``.
- a python callable ``step -> m``: evaluated after every batch for the
  update then pending and written into the model's schedule as a constant.
  Exact for any sequence, but each write costs a Python round trip per
  batch (on jax a full state sync, since ``fit`` keeps variables in a
  functional state); prefer the linear schedule when it fits.

``step`` is the 0-based index of the EMA update, i.e. of the optimizer update
it follows (the official ``momentum_scheduler``'s ``i``); it counts optimizer
updates, not micro-batches, under gradient accumulation, and it continues
across ``fit`` calls and ``.keras`` round trips (it is the model's saved
``ema_updates`` variable). Since the schedule is saved with the model, a
model loaded in the middle of a run continues with the same momentum, with
or without this callback.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import cast

import keras

from jepa_components._validation import check_float, check_int, invalid
from jepa_components.backends.keras.training.ema import EMATarget
from jepa_components.backends.keras.training.optimizers import total_optimizer_steps

__all__ = ["TargetEMA"]


class TargetEMA(keras.callbacks.Callback):
    """Sets the EMA momentum schedule of an :class:`IJEPA` target encoder (any ``EMATarget``).

    Args:
        momentum: float in [0, 1], the momentum of the first update (paper
            0.996); or a callable ``step -> m`` (0-based update index to a
            momentum in [0, 1]).
        final_momentum: float in [0, 1] reached after ``total_steps``
            updates (paper 1.0), or None for a constant ``momentum``.
            Ignored for a callable.
        total_steps: int >= 1, optimizer updates over which the momentum goes
            from ``momentum`` to ``final_momentum``. None:
            ``total_optimizer_steps(steps, epochs, ipe_scale, n)`` of the
            ``fit`` call (``steps`` batches per epoch, ``epochs`` the final
            epoch, ``n`` the optimizer's gradient-accumulation steps), i.e.
            the official ``ipe * num_epochs * ipe_scale`` (``src/train.py``,
            ``momentum_scheduler``). For training split over ``fit`` calls
            with ``initial_epoch``, None still covers the whole run.
        ipe_scale: float > 0, the official schedule stretch factor, used when
            ``total_steps`` is None (pass ``make_adamw`` the same value).

    Example:
        >>> import numpy as np
        >>> from jepa_components.backends.keras import IJEPA, Predictor, vit_tiny
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> model = IJEPA(encoder=vit_tiny(image_size=32, patch_size=8, depth=1, seed=0),
        ...               predictor=Predictor(num_patches=16, embed_dim=192,
        ...                                   predictor_embed_dim=32, depth=1, num_heads=2))
        >>> model.compile(optimizer="adamw")
        >>> batch = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0).sample(4)
        >>> data = {"images": np.zeros((4, 32, 32, 3), "float32"), **batch.as_dict()}
        >>> history = model.fit(data, batch_size=2, epochs=2, verbose=0,
        ...                     callbacks=[TargetEMA()])     # 0.996 -> 1.0 over 4 updates
        >>> model.momentum_schedule()
        {'start': 0.996, 'end': 1.0, 'total_steps': 4}
        >>> model.ema_update_count()
        4
        >>> ema = TargetEMA(0.99, final_momentum=None)        # constant
        >>> ema = TargetEMA(lambda step: 0.99 if step < 100 else 0.999)
    """

    def __init__(
        self,
        momentum: float | Callable[[int], float] = 0.996,
        final_momentum: float | None = 1.0,
        total_steps: int | None = None,
        ipe_scale: float = 1.0,
    ):
        super().__init__()
        if not callable(momentum):
            momentum = check_float("momentum", momentum, low=0.0, high=1.0)
            final_momentum = check_float(
                "final_momentum", final_momentum, low=0.0, high=1.0, allow_none=True
            )
        self.momentum: float | Callable[[int], float] = momentum
        self.final_momentum = final_momentum
        self.total_steps = check_int("total_steps", total_steps, low=1, allow_none=True)
        self.ipe_scale = check_float("ipe_scale", ipe_scale, low=0.0, low_open=True)

    def _ijepa(self):
        model = self.model
        if not isinstance(model, EMATarget):
            raise ValueError(
                "TargetEMA needs a model with an EMA target encoder (IJEPA). "
                f"Received: model of type {type(model).__name__}"
            )
        return model

    def _schedule_steps(self, model):
        if self.total_steps is not None:
            return self.total_steps
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if not epochs or not steps:
            raise invalid(
                "total_steps",
                "an integer >= 1 when `fit` does not know its number "
                "of steps (a dataset of unknown length)",
                None,
            )
        return total_optimizer_steps(steps, epochs, self.ipe_scale, model.accumulation_steps())

    def _write_callable_momentum(self, model):
        """The callable's momentum for the next update (the pending one, if any)."""
        step = model.ema_update_count()
        value = cast(Callable[[int], float], self.momentum)(step)  # a callable schedule here
        if (
            not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not (0.0 <= value <= 1.0)
        ):
            raise invalid(
                "momentum",
                "a callable returning a float in [0, 1]",
                f"<callable> returning {value!r} at step {step}",
            )
        model.set_momentum_schedule(float(value))

    def on_train_begin(self, logs=None):
        model = self._ijepa()
        if callable(self.momentum):
            if getattr(model, "steps_per_execution", 1) > 1:
                warnings.warn(
                    "TargetEMA with a callable momentum and steps_per_execution > 1: the "
                    "momentum is written once per execution, so several updates share it. "
                    "Use the linear schedule (a float momentum) to stay exact.",
                    stacklevel=2,
                )
            self._write_callable_momentum(model)
        elif self.final_momentum is None:
            model.set_momentum_schedule(self.momentum)
        else:
            model.set_momentum_schedule(
                self.momentum, self.final_momentum, self._schedule_steps(model)
            )

    @property
    def async_safe(self):
        """Keras may dispatch batch ends asynchronously unless a callable writes per batch."""
        return not callable(self.momentum)

    def on_train_batch_end(self, batch, logs=None):
        if callable(self.momentum):
            self._write_callable_momentum(self._ijepa())
