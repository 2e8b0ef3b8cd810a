"""Training schedules of I-JEPA as pure functions of the optimizer step.

Each function maps ``step`` (a python number, a NumPy array, or a
``keras.ops`` tensor with ``xp=keras.ops``) to a value, with no state, so a
resumed run or a Keras ``LearningRateSchedule`` gets the same numbers as an
uninterrupted run. Steps are counted in optimizer steps, never in epochs.

Correspondence with facebookresearch/ijepa (``train.py``,
``src/utils/schedulers.py``), where ``total_steps = ipe * epochs *
ipe_scale``:

- LR and weight decay: the official schedulers are called *before* the
  k-th optimizer step (``k = 1, 2, ...``) and return their value at
  ``_step = k``; so ``warmup_cosine_lr(k, ...)`` and
  ``cosine_weight_decay(k, ...)`` are the values used by optimizer step k.
  A Keras ``LearningRateSchedule`` receives the 0-based ``iterations``:
  pass ``iterations + 1`` to match.
- EMA momentum: the official generator yields ``i = 0, 1, ...`` after each
  optimizer step, so EMA update k (``k = 1, 2, ...``) uses
  ``ema_momentum(k - 1, ...)``.

Past ``total_steps`` every schedule holds its final value. The official
schedulers are never evaluated there with the released configs
(``ipe_scale = 1``), and their cosine formulas would climb back up.
"""

import math
import numbers

import numpy as np

from jepa_components._validation import check_float, check_int

__all__ = ["cosine_weight_decay", "ema_momentum", "warmup_cosine_lr"]


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_step(step):
    """Concrete steps (python numbers, NumPy arrays) must be finite and >= 0."""
    if _is_number(step) or isinstance(step, (np.ndarray, np.generic)):
        values = np.asarray(step)
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(
            values.dtype, np.complexfloating
        ):
            raise ValueError(
                "Invalid value for argument `step`. Expected real numbers. "
                f"Received: step with dtype {values.dtype}"
            )
        if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
            raise ValueError(
                "Invalid value for argument `step`. Expected finite values >= 0. "
                f"Received: step={step!r}"
            )


def _clamp_step(step, total_steps, xp):
    """Step in [0, total_steps]: schedules hold their end value afterwards."""
    return xp.minimum(xp.maximum(step, 0), total_steps)


def _is_concrete(value):
    """A python or NumPy number (validated here), as opposed to a tensor (read as it is)."""
    return _is_number(value) or isinstance(value, (np.ndarray, np.generic))


def _numpy_output(value, xp):
    """0-d NumPy results as NumPy scalars (``float()`` works either way)."""
    if xp is np:
        return np.asarray(value)[()]
    return value


def ema_momentum(step, total_steps, start=0.996, end=1.0, xp=np):
    """Linear EMA momentum of the target encoder.

    Official ``train.py``: ``m_i = start + i * (end - start) / total_steps``
    for ``i = 0..total_steps`` (the ``momentum_scheduler`` generator; paper:
    0.996 -> 1.0 linearly over training). Held at ``m_{total_steps}`` after
    ``total_steps``, where the official generator would stop. The k-th EMA
    update (after optimizer step k = 1, 2, ...) uses ``step = k - 1``.

    Args:
        step: int/float, array, or tensor (``xp=keras.ops``), >= 0.
        total_steps: int >= 1, or a float tensor (``xp=keras.ops``).
        start: momentum at step 0, in [0, 1]; or a float tensor.
        end: momentum at ``total_steps``, in [0, 1]; or a float tensor.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    ``total_steps``, ``start`` and ``end`` given as python or NumPy numbers
    are validated (with ``xp=numpy`` they must be numbers); as tensors with
    ``xp=keras.ops`` (e.g. the saved schedule variables of the Keras EMA
    target, read inside a compiled step) they are used as they are, so one
    formula serves both.

    Returns:
        float64 for NumPy inputs (scalar for a scalar step), the default float
        dtype of the backend (float32) for ``keras.ops``; shape of ``step``.

    Example:
        >>> float(ema_momentum(50, 100))
        0.998
    """
    divisor = total_steps
    if xp is np or _is_concrete(total_steps):
        divisor = float(check_int("total_steps", total_steps, low=1))
    for name, value in (("start", start), ("end", end)):
        if xp is np or _is_concrete(value):
            check_float(name, value, low=0.0, high=1.0)
    _check_step(step)
    clamped = _clamp_step(step, total_steps, xp)
    increment = xp.divide(xp.multiply(clamped, xp.subtract(end, start)), divisor)
    return _numpy_output(xp.add(increment, start), xp)


def warmup_cosine_lr(step, *, warmup_steps, total_steps, start_lr, ref_lr, final_lr=0.0, xp=np):
    """Linear warmup then cosine decay of the learning rate.

    The formula of the official ``WarmupCosineSchedule`` (I-JEPA
    ``src/utils/schedulers.py``) at ``_step = step``: for
    ``step < warmup_steps``, ``start_lr + step / max(1, warmup_steps) *
    (ref_lr - start_lr)``; afterwards, with ``p = (step - warmup_steps) /
    max(1, total_steps - warmup_steps)``,
    ``max(final_lr, final_lr + (ref_lr - final_lr) * 0.5 * (1 + cos(pi p)))``.
    The official k-th ``.step()`` call returns ``warmup_cosine_lr(k, ...)``.
    Paper: warmup 40 epochs 2e-4 -> 1e-3, cosine to 1e-6. Held at the
    ``total_steps`` value afterwards (see module docstring).

    Args:
        step: int/float, array, or tensor (``xp=keras.ops``), >= 0.
        warmup_steps: int in [0, total_steps].
        total_steps: int >= 1 (the official ``T_max`` argument, warmup
            included).
        start_lr, ref_lr, final_lr: numbers >= 0.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        learning rate, shape of ``step`` (float64 for NumPy, float32 for
        ``keras.ops``).

    Example:
        >>> kwargs = dict(warmup_steps=10, total_steps=110, start_lr=0.0, ref_lr=1.0)
        >>> float(warmup_cosine_lr(5, **kwargs)), float(warmup_cosine_lr(60, **kwargs))
        (0.5, 0.5)
    """
    check_int("total_steps", total_steps, low=1)
    check_int("warmup_steps", warmup_steps, low=0, high=total_steps)
    for name, value in (("start_lr", start_lr), ("ref_lr", ref_lr), ("final_lr", final_lr)):
        check_float(name, value, low=0.0)
    _check_step(step)
    clamped = _clamp_step(step, total_steps, xp)

    warmup_progress = xp.divide(clamped, float(max(1, warmup_steps)))
    warmup_lr = xp.add(xp.multiply(warmup_progress, ref_lr - start_lr), start_lr)

    decay_steps = float(max(1, total_steps - warmup_steps))
    progress = xp.divide(xp.subtract(clamped, warmup_steps), decay_steps)
    cosine = xp.add(xp.cos(xp.multiply(progress, math.pi)), 1.0)
    cosine_lr = xp.add(xp.multiply(cosine, (ref_lr - final_lr) * 0.5), final_lr)
    cosine_lr = xp.maximum(cosine_lr, final_lr)

    lr = xp.where(xp.less(clamped, warmup_steps), warmup_lr, cosine_lr)
    return _numpy_output(lr, xp)


def cosine_weight_decay(step, *, total_steps, ref_wd, final_wd, xp=np):
    """Cosine weight-decay schedule from ``ref_wd`` to ``final_wd``.

    The formula of the official ``CosineWDSchedule`` (I-JEPA
    ``src/utils/schedulers.py``) at ``_step = step``:
    ``final_wd + (ref_wd - final_wd) * 0.5 * (1 + cos(pi * step /
    total_steps))``, clamped so it never passes ``final_wd`` (``max`` when
    ``final_wd <= ref_wd``, else ``min``). Paper: 0.04 -> 0.4. Held at the
    ``total_steps`` value afterwards (see module docstring).

    Args:
        step: int/float, array, or tensor (``xp=keras.ops``), >= 0.
        total_steps: int >= 1.
        ref_wd: weight decay at step 0, >= 0.
        final_wd: weight decay at ``total_steps``, >= 0.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        weight decay, shape of ``step`` (float64 for NumPy, float32 for
        ``keras.ops``).

    Example:
        >>> float(cosine_weight_decay(50, total_steps=100, ref_wd=0.0, final_wd=1.0))
        0.5
    """
    check_int("total_steps", total_steps, low=1)
    check_float("ref_wd", ref_wd, low=0.0)
    check_float("final_wd", final_wd, low=0.0)
    _check_step(step)
    clamped = _clamp_step(step, total_steps, xp)
    progress = xp.divide(clamped, float(total_steps))
    cosine = xp.add(xp.cos(xp.multiply(progress, math.pi)), 1.0)
    wd = xp.add(xp.multiply(cosine, (ref_wd - final_wd) * 0.5), final_wd)
    if final_wd <= ref_wd:
        wd = xp.maximum(wd, final_wd)
    else:
        wd = xp.minimum(wd, final_wd)
    return _numpy_output(wd, xp)
