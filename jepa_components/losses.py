"""I-JEPA regression losses over (possibly padded) target blocks.

Array-namespace generic: every function takes ``xp`` (``numpy`` by
default, or ``keras.ops``).

Shapes: ``pred`` and ``target`` are ``(B, M, K, D)`` (batch, target blocks,
tokens per block, features); ``valid`` is ``(B, M, K)`` bool, False marking
padded token slots (``MaskBatch.targets_valid``). Padded slots are
*excluded*: they neither add to the sum nor to the count, so a loss does not
change when padding is added (and NaN/inf in padded slots cannot leak in).

Reductions:

- ``"mean"``: mean over valid tokens and feature dims. Without padding,
  ``smooth_l1_loss`` equals the official ``F.smooth_l1_loss(z, h)``
  (facebookresearch/ijepa ``train.py``) and ``l2_loss`` equals
  ``F.mse_loss(z, h)``.
- ``"paper"``: Eq. (1) of Assran et al. (2023),
  ``(1/M) sum_i sum_{j in B_i} ||pred_j - target_j||_2^2`` per image,
  averaged over the batch. Its scale grows with the block size ``K`` and the
  width ``D`` (it is a sum, not a mean), so learning rates tuned for
  ``"mean"`` do not carry over.
"""

from typing import Any

import numpy as np

from jepa_components._validation import check_choice, check_float

__all__ = ["jepa_loss", "l1_loss", "l2_loss", "masked_mean", "smooth_l1_loss"]

REDUCTIONS = ("mean", "paper")
LOSSES = ("l2", "smooth_l1")


def _shape(x):
    return tuple(x.shape)


def _same_known_shape(a, b):
    """Equal rank and equal sizes wherever both are known (not None)."""
    if len(a) != len(b):
        return False
    return all(m is None or n is None or m == n for m, n in zip(a, b))


def masked_mean(values: Any, valid: Any = None, xp: Any = np) -> Any:
    """Mean of ``values`` over the entries where ``valid`` is True.

    Invalid entries are selected away with ``where`` (not multiplied by 0),
    so NaN or inf there do not propagate. If no entry is valid the result is
    0 (not NaN): the count is clamped to at least 1, and the masked sum is 0.

    Args:
        values: array of any shape.
        valid: bool array of the same shape, or None (plain mean).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        scalar: ``sum(values[valid]) / max(count(valid), 1)``.

    Example:
        >>> float(masked_mean(np.array([1.0, 3.0, 100.0]), np.array([True, True, False])))
        2.0
    """
    if valid is None:
        return xp.mean(values)
    if not _same_known_shape(_shape(values), _shape(valid)):
        raise ValueError(
            "Invalid value for argument `valid`. Expected the shape of `values` "
            f"{_shape(values)}. Received: valid with shape {_shape(valid)}"
        )
    total = xp.sum(xp.where(valid, values, xp.zeros_like(values)))
    count = xp.sum(xp.where(valid, xp.ones_like(values), xp.zeros_like(values)))
    return xp.divide(total, xp.maximum(count, 1.0))


def _check_inputs(pred, target, valid, reduction):
    if len(_shape(pred)) != 4:
        raise ValueError(
            "Invalid value for argument `pred`. Expected a rank-4 array "
            f"(B, M, K, D). Received: pred with shape {_shape(pred)}"
        )
    if not _same_known_shape(_shape(pred), _shape(target)):
        raise ValueError(
            "Invalid value for argument `target`. Expected the shape of `pred` "
            f"{_shape(pred)}. Received: target with shape {_shape(target)}"
        )
    if valid is not None and not _same_known_shape(_shape(pred)[:3], _shape(valid)):
        raise ValueError(
            "Invalid value for argument `valid`. Expected shape (B, M, K) = "
            f"{_shape(pred)[:3]}. Received: valid with shape {_shape(valid)}"
        )
    check_choice("reduction", reduction, REDUCTIONS)


def _reduce(elementwise, valid, reduction, xp):
    """(B, M, K, D) per-element loss -> scalar, padded tokens excluded."""
    if reduction == "mean":
        if valid is None:
            return xp.mean(elementwise)
        return masked_mean(xp.mean(elementwise, axis=-1), valid, xp=xp)
    per_token = xp.sum(elementwise, axis=-1)  # (B, M, K)
    if valid is not None:
        per_token = xp.where(valid, per_token, xp.zeros_like(per_token))
    num_blocks = _shape(elementwise)[1]
    per_image = xp.divide(xp.sum(per_token, axis=(1, 2)), float(num_blocks))
    return xp.mean(per_image)


def l2_loss(
    pred: Any, target: Any, valid: Any = None, reduction: str = "mean", xp: Any = np
) -> Any:
    """Squared-error loss of predicted against target tokens (paper Eq. 1).

    Args:
        pred: ``(B, M, K, D)`` predictor output.
        target: ``(B, M, K, D)`` targets (e.g. ``context.make_targets``).
        valid: ``(B, M, K)`` bool, False = padding, or None (all valid).
        reduction: ``"mean"`` (mean squared error per element over valid
            tokens, = ``F.mse_loss`` without padding) or ``"paper"``
            (Eq. 1: squared L2 norms summed over each block's tokens, summed
            over blocks, divided by ``M``, averaged over the batch; grows with
            ``K`` and ``D``).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        scalar loss.

    Example:
        >>> pred = np.zeros((1, 1, 2, 2)); target = np.ones((1, 1, 2, 2))
        >>> float(l2_loss(pred, target)), float(l2_loss(pred, target, reduction="paper"))
        (1.0, 4.0)
    """
    _check_inputs(pred, target, valid, reduction)
    return _reduce(xp.square(xp.subtract(pred, target)), valid, reduction, xp)


def l1_loss(
    pred: Any, target: Any, valid: Any = None, reduction: str = "mean", xp: Any = np
) -> Any:
    """Absolute-error loss, V-JEPA's (Bardes et al. 2024).

    V-JEPA's ``app/vjepa/train.py`` (facebookresearch/jepa and vjepa2) takes
    ``torch.mean(torch.abs(z - h) ** loss_exp) / loss_exp`` per mask and
    averages over the masks; every released config has ``loss_exp: 1.0``,
    i.e. the mean absolute error, which ``reduction="mean"`` reproduces
    without padding for one mask configuration (or several of equal size).
    Equals ``smooth_l1_loss(..., beta=0)``. Where we differ: V-JEPA's
    collator cuts every mask of a batch to the shortest one; here masks are
    padded and the padded tokens excluded.

    Args:
        pred: ``(B, M, K, D)`` predictor output.
        target: ``(B, M, K, D)`` targets.
        valid: ``(B, M, K)`` bool, False = padding, or None (all valid).
        reduction: ``"mean"`` (mean absolute error per element over valid
            tokens) or ``"paper"`` (sums over features and block tokens,
            ``/ M``, batch mean; see ``l2_loss``).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        scalar loss.

    Example:
        >>> pred = np.zeros((1, 1, 1, 2)); target = np.array([[[[0.5, -3.0]]]])
        >>> float(l1_loss(pred, target))  # (0.5 + 3.0) / 2
        1.75
    """
    _check_inputs(pred, target, valid, reduction)
    return _reduce(xp.abs(xp.subtract(pred, target)), valid, reduction, xp)


def smooth_l1_loss(
    pred: Any,
    target: Any,
    valid: Any = None,
    beta: float = 1.0,
    reduction: str = "mean",
    xp: Any = np,
) -> Any:
    """Smooth L1 (Huber / beta) loss, the loss of the official I-JEPA code.

    Per element, with ``z = |pred - target|``: ``0.5 * z**2 / beta`` if
    ``z < beta`` else ``z - 0.5 * beta`` (``beta = 0`` gives plain L1), as
    ``torch.nn.functional.smooth_l1_loss``. The paper states an L2 loss
    (Eq. 1); the official ``train.py`` uses ``F.smooth_l1_loss(z, h)``
    (beta 1, mean), which ``reduction="mean"`` reproduces without padding.

    Args:
        pred: ``(B, M, K, D)`` predictor output.
        target: ``(B, M, K, D)`` targets.
        valid: ``(B, M, K)`` bool, False = padding, or None (all valid).
        beta: float >= 0, the quadratic-to-linear switch point.
        reduction: ``"mean"`` or ``"paper"`` (sum over features and block
            tokens, ``/ M``, batch mean; see ``l2_loss``).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        scalar loss.

    Example:
        >>> pred = np.zeros((1, 1, 1, 2)); target = np.array([[[[0.5, 3.0]]]])
        >>> float(smooth_l1_loss(pred, target))  # (0.125 + 2.5) / 2
        1.3125
    """
    check_float("beta", beta, low=0.0)
    _check_inputs(pred, target, valid, reduction)
    distance = xp.abs(xp.subtract(pred, target))
    if beta == 0:
        elementwise = distance
    else:
        quadratic = xp.divide(xp.multiply(xp.square(distance), 0.5), float(beta))
        linear = xp.subtract(distance, 0.5 * beta)
        elementwise = xp.where(xp.less(distance, float(beta)), quadratic, linear)
    return _reduce(elementwise, valid, reduction, xp)


def jepa_loss(
    pred: Any,
    target: Any,
    valid: Any = None,
    loss: str = "l2",
    reduction: str = "mean",
    beta: float | None = None,
    xp: Any = np,
) -> Any:
    """I-JEPA loss by name: ``"l2"`` (paper) or ``"smooth_l1"`` (official code).

    Args:
        pred, target: ``(B, M, K, D)``.
        valid: ``(B, M, K)`` bool or None.
        loss: ``"l2"`` or ``"smooth_l1"``.
        reduction: ``"mean"`` or ``"paper"``.
        beta: smooth-L1 ``beta`` (default 1.0); only allowed with
            ``loss="smooth_l1"``.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        scalar loss.

    Example:
        >>> pred = np.zeros((1, 1, 1, 2)); target = np.ones((1, 1, 1, 2))
        >>> float(jepa_loss(pred, target, loss="smooth_l1"))
        0.5
    """
    check_choice("loss", loss, LOSSES)
    if loss == "l2":
        if beta is not None:
            raise ValueError(
                "Invalid value for argument `beta`. Expected None with loss='l2' "
                f"(beta only applies to 'smooth_l1'). Received: beta={beta!r}"
            )
        return l2_loss(pred, target, valid=valid, reduction=reduction, xp=xp)
    return smooth_l1_loss(
        pred,
        target,
        valid=valid,
        beta=1.0 if beta is None else beta,
        reduction=reduction,
        xp=xp,
    )
