"""AdamW with the official I-JEPA learning-rate and weight-decay schedules.

Official recipe (facebookresearch/ijepa ``src/helper.py::init_opt``,
``src/utils/schedulers.py``; Assran et al. 2023, Appendix): AdamW; LR warmup
linearly ``start_lr -> ref_lr`` (2e-4 -> 1e-3 over 40 epochs), then cosine to
``final_lr`` (1e-6); weight decay cosine ``0.04 -> 0.4``; no weight decay on
biases and 1-D parameters (norm scales and offsets). Both schedules are the
core's ``schedules`` functions evaluated with ``xp=keras.ops`` inside the
compiled step.

Step convention: the official schedulers are stepped *before* optimizer
step ``k = 1, 2, ...`` and return their value at ``k``; a Keras schedule
receives the 0-based ``optimizer.iterations``, so the schedules here
evaluate the core function at ``iterations + 1``: optimizer step ``k`` uses
exactly the official values. Under gradient accumulation
(``gradient_accumulation_steps = n``) Keras' ``iterations`` counts
micro-batches (Keras passes a learning-rate schedule the micro-batch count,
while ``optimizer.iterations`` counts updates); the schedules take
``accumulation_steps=n`` and evaluate at ``micro_batches // n + 1``, so they
count optimizer updates (the update after micro-batches ``k n - n + 1 .. k
n`` uses the official values of step ``k``). :class:`ScheduledAdamW` calls
its weight-decay schedule the same way.

Schedule length: :func:`total_optimizer_steps` is the one definition of the
number of optimizer updates the schedules run over (the official
``ipe * num_epochs * ipe_scale``); :func:`make_adamw` and
:class:`~jepa_components.backends.keras.training.target_ema.TargetEMA` both use it, so
the learning-rate, weight-decay and EMA-momentum schedules end together.

Weight decay is decoupled as in ``torch.optim.AdamW``: ``w -= lr * wd * w``
(Keras' AdamW does the same), Adam epsilon 1e-8 (torch's default; Keras'
default is 1e-7).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_float, check_int, invalid, is_real
from jepa_components.backends.keras.compat import TorchFusedAdamWHooks
from jepa_components.schedules import cosine_weight_decay, warmup_cosine_lr

__all__ = [
    "CosineWeightDecay",
    "ScheduledAdamW",
    "WarmupCosine",
    "make_adamw",
    "total_optimizer_steps",
]

_PACKAGE = "jepa_components"
_Schedule = keras.optimizers.schedules.LearningRateSchedule


def total_optimizer_steps(
    steps_per_epoch: int, epochs: int, ipe_scale: float = 1.0, accumulation_steps: int = 1
) -> int:
    """Number of optimizer updates the training schedules run over.

    ``int(ipe_scale * epochs * steps_per_epoch / accumulation_steps)``, at
    least 1: the official ``T_max = int(ipe_scale * num_epochs * ipe)`` of
    the LR and weight-decay schedules (``src/helper.py::init_opt``) and the
    length of the momentum schedule (``src/train.py``, the
    ``momentum_scheduler`` over ``ipe * num_epochs * ipe_scale`` steps), with
    ``ipe = steps_per_epoch / accumulation_steps`` optimizer updates per
    epoch. (The official momentum schedule divides by the unrounded product;
    the two differ only when it is not an integer, which no released config
    does: all use ``ipe_scale = 1``.) ``ipe_scale > 1`` stretches every
    schedule past the end of training, so it stops before reaching its final
    value.

    Used by :func:`make_adamw` and by ``TargetEMA`` (when its
    ``total_steps`` is None): given the same arguments they agree.

    Args:
        steps_per_epoch: int >= 1, training batches per epoch (what ``fit``
            runs, ``len(dataset)``; micro-batches under gradient
            accumulation).
        epochs: int >= 1, epochs of the whole run.
        ipe_scale: float > 0, the official schedule stretch factor.
        accumulation_steps: int >= 1, the optimizer's
            ``gradient_accumulation_steps`` (micro-batches per update).

    Returns:
        int >= 1.

    Example:
        >>> total_optimizer_steps(100, 10)
        1000
        >>> total_optimizer_steps(100, 10, ipe_scale=1.25, accumulation_steps=4)
        312
    """
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, low=1)
    epochs = check_int("epochs", epochs, low=1)
    ipe_scale = check_float("ipe_scale", ipe_scale, low=0.0, low_open=True)
    accumulation_steps = check_int("accumulation_steps", accumulation_steps, low=1)
    if accumulation_steps == 1:  # the official expression, evaluated in its order
        return max(1, int(ipe_scale * epochs * steps_per_epoch))
    return max(1, int(ipe_scale * epochs * steps_per_epoch / accumulation_steps))


def _optimizer_update(iterations: Any, accumulation_steps: int) -> Any:
    """1-based optimizer update of the 0-based Keras ``iterations`` (a float tensor)."""
    step = ops.cast(iterations, "float32")
    if accumulation_steps > 1:
        step = ops.floor(step / float(accumulation_steps))
    return step + 1.0


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Warmup then cosine LR: ``schedules.warmup_cosine_lr(update, ...)``.

    ``update = iterations // accumulation_steps + 1``: the 1-based optimizer
    update (see the module docstring). Arguments as
    ``schedules.warmup_cosine_lr``; ``warmup_steps`` and ``total_steps``
    count optimizer updates.

    Example:
        >>> lr = WarmupCosine(warmup_steps=10, total_steps=100, start_lr=0.0, ref_lr=1e-3)
        >>> round(float(lr(4)), 8)                        # optimizer step 5: mid-warmup
        0.0005
        >>> opt = keras.optimizers.AdamW(learning_rate=lr)
    """

    def __init__(
        self,
        *,
        warmup_steps: int,
        total_steps: int,
        start_lr: float,
        ref_lr: float,
        final_lr: float = 0.0,
        accumulation_steps: int = 1,
    ) -> None:
        # Validates every argument once, with the core's messages.
        warmup_cosine_lr(
            0,
            warmup_steps=warmup_steps,
            total_steps=total_steps,
            start_lr=start_lr,
            ref_lr=ref_lr,
            final_lr=final_lr,
        )
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.start_lr, self.ref_lr, self.final_lr = float(start_lr), float(ref_lr), float(final_lr)
        self.accumulation_steps = check_int("accumulation_steps", accumulation_steps, low=1)

    def __call__(self, step: Any) -> Any:
        return warmup_cosine_lr(
            _optimizer_update(step, self.accumulation_steps),
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            start_lr=self.start_lr,
            ref_lr=self.ref_lr,
            final_lr=self.final_lr,
            xp=ops,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "start_lr": self.start_lr,
            "ref_lr": self.ref_lr,
            "final_lr": self.final_lr,
            "accumulation_steps": self.accumulation_steps,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CosineWeightDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine weight decay: ``schedules.cosine_weight_decay(update, ...)``.

    ``update = iterations // accumulation_steps + 1`` (see
    :class:`WarmupCosine`); ``total_steps`` counts optimizer updates.

    Example:
        >>> wd = CosineWeightDecay(total_steps=100, ref_wd=0.04, final_wd=0.4)
        >>> round(float(wd(49)), 6)                       # optimizer step 50: halfway
        0.22
        >>> opt = ScheduledAdamW(learning_rate=1e-3, weight_decay=wd)
    """

    def __init__(
        self, *, total_steps: int, ref_wd: float, final_wd: float, accumulation_steps: int = 1
    ) -> None:
        cosine_weight_decay(0, total_steps=total_steps, ref_wd=ref_wd, final_wd=final_wd)
        self.total_steps = int(total_steps)
        self.ref_wd, self.final_wd = float(ref_wd), float(final_wd)
        self.accumulation_steps = check_int("accumulation_steps", accumulation_steps, low=1)

    def __call__(self, step: Any) -> Any:
        return cosine_weight_decay(
            _optimizer_update(step, self.accumulation_steps),
            total_steps=self.total_steps,
            ref_wd=self.ref_wd,
            final_wd=self.final_wd,
            xp=ops,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "ref_wd": self.ref_wd,
            "final_wd": self.final_wd,
            "accumulation_steps": self.accumulation_steps,
        }


def _is_excluded(variable: Any) -> bool:
    """Official rule: no decay on biases and 1-D parameters."""
    return len(variable.shape) <= 1 or "bias" in variable.name


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScheduledAdamW(TorchFusedAdamWHooks, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` whose weight decay may follow a schedule.

    Args:
        learning_rate: float or a ``LearningRateSchedule`` (e.g.
            :class:`WarmupCosine`).
        weight_decay: float >= 0 or a schedule of the step (e.g.
            :class:`CosineWeightDecay`), evaluated at every optimizer update.
        exclude_biases_and_1d: bool; True (official rule) skips weight decay
            on biases and every parameter with at most one dimension. It is
            applied when the optimizer is built and replaces earlier
            ``exclude_from_weight_decay`` calls.
        epsilon: Adam epsilon (default 1e-8, as ``torch.optim.AdamW``).
        **kwargs: any other ``keras.optimizers.AdamW`` argument.

    On torch the update of all variables runs as one fused kernel per
    parameter group (``compat.TorchFusedAdamWHooks``), the same formula.

    Example:
        >>> opt = ScheduledAdamW(
        ...     learning_rate=WarmupCosine(warmup_steps=5, total_steps=50,
        ...                                start_lr=2e-4, ref_lr=1e-3, final_lr=1e-6),
        ...     weight_decay=CosineWeightDecay(total_steps=50, ref_wd=0.04, final_wd=0.4))
        >>> round(float(opt.learning_rate), 6), round(float(opt.weight_decay), 6)
        (0.00036, 0.040355)
    """

    def __init__(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 0.001,
        weight_decay: float | keras.optimizers.schedules.LearningRateSchedule = 0.04,
        exclude_biases_and_1d: bool = True,
        epsilon: float = 1e-8,
        **kwargs: Any,
    ) -> None:
        if not isinstance(weight_decay, _Schedule) and not (
            is_real(weight_decay) and weight_decay >= 0
        ):
            raise invalid("weight_decay", "a float >= 0 or a LearningRateSchedule", weight_decay)
        super().__init__(
            learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon, **kwargs
        )
        self.exclude_biases_and_1d = bool(exclude_biases_and_1d)

    @property
    def weight_decay(self) -> Any:
        """The weight decay of the current optimizer update (a tensor if scheduled)."""
        value = self._weight_decay_value
        if isinstance(value, _Schedule):
            # Called as Keras calls a learning-rate schedule, with a micro-batch
            # count: under gradient accumulation `iterations` counts updates, and
            # `iterations * n` is the first micro-batch of the current update.
            return value(self.iterations * (self.gradient_accumulation_steps or 1))
        return value

    @weight_decay.setter
    def weight_decay(self, value: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
        self._weight_decay_value = value

    @property
    def weight_decay_schedule(self) -> float | keras.optimizers.schedules.LearningRateSchedule:
        """The weight decay as given: a float or a schedule of the step."""
        return self._weight_decay_value

    def build(self, variables: list[Any]) -> None:
        if self.exclude_biases_and_1d:
            self.exclude_from_weight_decay(var_list=[v for v in variables if _is_excluded(v)])
        super().build(variables)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        value = self._weight_decay_value
        config["weight_decay"] = (
            keras.saving.serialize_keras_object(value)
            if isinstance(value, _Schedule)
            else float(value)
        )
        config["exclude_biases_and_1d"] = self.exclude_biases_and_1d
        return config

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> ScheduledAdamW:
        config = dict(config)
        if isinstance(config.get("weight_decay"), dict):
            config["weight_decay"] = keras.saving.deserialize_keras_object(
                config["weight_decay"], custom_objects=custom_objects
            )
        return super().from_config(config, custom_objects=custom_objects)


def make_adamw(
    *,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 40,
    start_lr: float = 2e-4,
    ref_lr: float = 1e-3,
    final_lr: float = 1e-6,
    weight_decay: float = 0.04,
    final_weight_decay: float = 0.4,
    ipe_scale: float = 1.0,
    **kwargs: Any,
) -> ScheduledAdamW:
    """The official I-JEPA optimizer: :class:`ScheduledAdamW` with both schedules.

    Defaults are the paper's ImageNet recipe. Schedules run over
    ``total_optimizer_steps(steps_per_epoch, epochs, ipe_scale, n)``
    optimizer updates (official ``T_max``; released configs use
    ``ipe_scale = 1``), with ``int(warmup_epochs * steps_per_epoch / n)``
    warmup updates, where ``n`` is ``gradient_accumulation_steps`` (in
    ``kwargs``; 1 without accumulation). Give ``TargetEMA`` the same
    ``ipe_scale`` and the EMA schedule ends with these.

    Args:
        steps_per_epoch: int >= 1, training batches per epoch
            (``len(dataset)``).
        epochs: int >= 1, epochs of the whole run.
        warmup_epochs: float >= 0 (may be fractional).
        start_lr, ref_lr, final_lr: warmup start, peak and final LR.
        weight_decay, final_weight_decay: cosine weight decay ends.
        ipe_scale: float > 0, schedule stretch factor (official).
        **kwargs: any other ``ScheduledAdamW`` / ``keras.optimizers.AdamW``
            argument, e.g. ``gradient_accumulation_steps``.

    Example:
        >>> opt = make_adamw(steps_per_epoch=100, epochs=10, warmup_epochs=1)
        >>> opt.weight_decay_schedule.total_steps
        1000
    """
    accumulation = check_int(
        "gradient_accumulation_steps", kwargs.get("gradient_accumulation_steps") or 1, low=1
    )
    total_steps = total_optimizer_steps(steps_per_epoch, epochs, ipe_scale, accumulation)
    warmup_epochs = check_float("warmup_epochs", warmup_epochs, low=0.0)
    warmup_steps = int(warmup_epochs * steps_per_epoch / accumulation)
    if warmup_steps > total_steps:
        raise invalid(
            "warmup_epochs",
            f"warmup_epochs * steps_per_epoch <= total steps ({total_steps})",
            warmup_epochs,
        )
    learning_rate = WarmupCosine(
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        start_lr=start_lr,
        ref_lr=ref_lr,
        final_lr=final_lr,
        accumulation_steps=accumulation,
    )
    decay = CosineWeightDecay(
        total_steps=total_steps,
        ref_wd=weight_decay,
        final_wd=final_weight_decay,
        accumulation_steps=accumulation,
    )
    return ScheduledAdamW(learning_rate=learning_rate, weight_decay=decay, **kwargs)
