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
exactly the official values.

Weight decay is decoupled as in ``torch.optim.AdamW``: ``w -= lr * wd * w``
(Keras' AdamW does the same), Adam epsilon 1e-8 (torch's default; Keras'
default is 1e-7).
"""

import keras
from keras import ops

from jepa_components.schedules import cosine_weight_decay, warmup_cosine_lr

__all__ = ["CosineWeightDecay", "ScheduledAdamW", "WarmupCosine", "make_adamw"]

_PACKAGE = "jepa_components"
_Schedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WarmupCosine(_Schedule):
    """Warmup then cosine LR: ``schedules.warmup_cosine_lr(iterations + 1, ...)``.

    Example:
        >>> lr = WarmupCosine(warmup_steps=10, total_steps=100, start_lr=2e-4, ref_lr=1e-3)
        >>> # keras.optimizers.AdamW(learning_rate=lr)
    """

    def __init__(self, *, warmup_steps, total_steps, start_lr, ref_lr, final_lr=0.0):
        # Validates every argument once, with the core's messages.
        warmup_cosine_lr(0, warmup_steps=warmup_steps, total_steps=total_steps,
                         start_lr=start_lr, ref_lr=ref_lr, final_lr=final_lr)
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.start_lr, self.ref_lr, self.final_lr = float(start_lr), float(ref_lr), float(final_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return warmup_cosine_lr(step, warmup_steps=self.warmup_steps, total_steps=self.total_steps,
                                start_lr=self.start_lr, ref_lr=self.ref_lr,
                                final_lr=self.final_lr, xp=ops)

    def get_config(self):
        return {"warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "start_lr": self.start_lr, "ref_lr": self.ref_lr, "final_lr": self.final_lr}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CosineWeightDecay(_Schedule):
    """Cosine weight decay: ``schedules.cosine_weight_decay(iterations + 1, ...)``.

    Example:
        >>> wd = CosineWeightDecay(total_steps=100, ref_wd=0.04, final_wd=0.4)
        >>> # ScheduledAdamW(learning_rate=1e-3, weight_decay=wd)
    """

    def __init__(self, *, total_steps, ref_wd, final_wd):
        cosine_weight_decay(0, total_steps=total_steps, ref_wd=ref_wd, final_wd=final_wd)
        self.total_steps = int(total_steps)
        self.ref_wd, self.final_wd = float(ref_wd), float(final_wd)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return cosine_weight_decay(step, total_steps=self.total_steps, ref_wd=self.ref_wd,
                                   final_wd=self.final_wd, xp=ops)

    def get_config(self):
        return {"total_steps": self.total_steps, "ref_wd": self.ref_wd, "final_wd": self.final_wd}


def _is_excluded(variable):
    """Official rule: no decay on biases and 1-D parameters."""
    return len(variable.shape) <= 1 or "bias" in variable.name


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScheduledAdamW(keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` whose weight decay may follow a schedule.

    Args:
        learning_rate: float or a ``LearningRateSchedule`` (e.g.
            :class:`WarmupCosine`).
        weight_decay: float or a schedule of the step (e.g.
            :class:`CosineWeightDecay`), evaluated at every optimizer update.
        exclude_biases_and_1d: bool; True (official rule) skips weight decay
            on biases and every parameter with at most one dimension. It is
            applied when the optimizer is built and replaces earlier
            ``exclude_from_weight_decay`` calls.
        epsilon: Adam epsilon (default 1e-8, as ``torch.optim.AdamW``).
        **kwargs: any other ``keras.optimizers.AdamW`` argument.

    Example:
        >>> opt = ScheduledAdamW(
        ...     learning_rate=WarmupCosine(warmup_steps=5, total_steps=50,
        ...                                start_lr=2e-4, ref_lr=1e-3, final_lr=1e-6),
        ...     weight_decay=CosineWeightDecay(total_steps=50, ref_wd=0.04, final_wd=0.4))
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.04, exclude_biases_and_1d=True,
                 epsilon=1e-8, **kwargs):
        if not isinstance(weight_decay, _Schedule) and (
            isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float))
            or weight_decay < 0
        ):
            raise ValueError(
                "Invalid value for argument `weight_decay`. Expected a float >= 0 or a "
                f"LearningRateSchedule. Received: weight_decay={weight_decay!r}")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay,
                         epsilon=epsilon, **kwargs)
        self.exclude_biases_and_1d = bool(exclude_biases_and_1d)

    @property
    def weight_decay(self):
        """The weight decay of the current optimizer update (a tensor if scheduled)."""
        value = self._weight_decay_value
        if isinstance(value, _Schedule):
            return value(self.iterations)
        return value

    @weight_decay.setter
    def weight_decay(self, value):
        self._weight_decay_value = value

    @property
    def weight_decay_schedule(self):
        """The weight decay as given: a float or a schedule of the step."""
        return self._weight_decay_value

    def build(self, variables):
        if self.exclude_biases_and_1d:
            self.exclude_from_weight_decay(var_list=[v for v in variables if _is_excluded(v)])
        super().build(variables)

    def get_config(self):
        config = super().get_config()
        value = self._weight_decay_value
        config["weight_decay"] = (keras.saving.serialize_keras_object(value)
                                  if isinstance(value, _Schedule) else float(value))
        config["exclude_biases_and_1d"] = self.exclude_biases_and_1d
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("weight_decay"), dict):
            config["weight_decay"] = keras.saving.deserialize_keras_object(
                config["weight_decay"], custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


def make_adamw(*, steps_per_epoch, epochs, warmup_epochs=40, start_lr=2e-4, ref_lr=1e-3,
               final_lr=1e-6, weight_decay=0.04, final_weight_decay=0.4, ipe_scale=1.0,
               **kwargs):
    """The official I-JEPA optimizer: :class:`ScheduledAdamW` with both schedules.

    Defaults are the paper's ImageNet recipe. Schedules run over
    ``total_steps = int(ipe_scale * epochs * steps_per_epoch)`` optimizer
    steps (official ``T_max``; released configs use ``ipe_scale = 1``) with
    ``int(warmup_epochs * steps_per_epoch)`` warmup steps.

    Example:
        >>> opt = make_adamw(steps_per_epoch=100, epochs=10, warmup_epochs=1)
        >>> # model.compile(optimizer=opt)
    """
    for name, value in (("steps_per_epoch", steps_per_epoch), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid value for argument `{name}`. Expected an integer >= 1. "
                             f"Received: {name}={value!r}")
    if isinstance(ipe_scale, bool) or not isinstance(ipe_scale, (int, float)) or not ipe_scale > 0:
        raise ValueError("Invalid value for argument `ipe_scale`. Expected a float > 0. "
                         f"Received: ipe_scale={ipe_scale!r}")
    total_steps = max(1, int(ipe_scale * epochs * steps_per_epoch))
    warmup_steps = int(warmup_epochs * steps_per_epoch)
    if warmup_steps > total_steps:
        raise ValueError(
            "Invalid value for argument `warmup_epochs`. Expected warmup_epochs * "
            f"steps_per_epoch <= total steps ({total_steps}). Received: "
            f"warmup_epochs={warmup_epochs!r}")
    learning_rate = WarmupCosine(warmup_steps=warmup_steps, total_steps=total_steps,
                                 start_lr=start_lr, ref_lr=ref_lr, final_lr=final_lr)
    decay = CosineWeightDecay(total_steps=total_steps, ref_wd=weight_decay,
                              final_wd=final_weight_decay)
    return ScheduledAdamW(learning_rate=learning_rate, weight_decay=decay, **kwargs)
