"""Token selection and target construction, array-namespace generic.

Every function takes ``xp``, the array namespace (``numpy`` by default, or
``keras.ops``), and uses only operations that both provide, so the Keras
layers run the very definition the NumPy tests check.

Index convention: a token index ``i`` is a row-major patch index
``i = row * grid_width + col`` (as facebookresearch/ijepa).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from jepa_components._validation import check_float, check_int

__all__ = [
    "apply_masks",
    "gather_tokens",
    "layer_norm",
    "make_targets",
    "repeat_interleave_batch",
]


def _rank(x):
    return len(x.shape)


def _check_rank(name, x, ranks, description):
    if _rank(x) not in ranks:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {description}. "
            f"Received: {name} with shape {tuple(x.shape)}"
        )


def _check_numpy_indices(indices, num_tokens):
    """Range check, only where values are concrete NumPy arrays."""
    if not isinstance(indices, np.ndarray) or num_tokens is None:
        return
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(
            "Invalid value for argument `indices`. Expected an integer array. "
            f"Received: indices with dtype {indices.dtype}"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_tokens):
        raise ValueError(
            "Invalid value for argument `indices`. Expected 0 <= index < "
            f"{num_tokens} (the number of tokens). Received: indices in "
            f"[{indices.min()}, {indices.max()}]"
        )


def gather_tokens(x: Any, indices: Any, xp: Any = np) -> Any:
    """Select tokens of every sample by index.

    Args:
        x: ``(B, N, D)`` tokens.
        indices: ``(B, K)`` or ``(B, M, K)`` integer token indices in
            ``[0, N)`` (e.g. ``MaskBatch.context`` or ``MaskBatch.targets``).
            Padded entries must still hold a valid index (the samplers repeat
            a real one); mask them out downstream with the ``*_valid`` arrays.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(B, K, D)`` or ``(B, M, K, D)``, dtype of ``x``:
        ``out[b, ..., k, :] = x[b, indices[b, ..., k], :]``.

    Example:
        >>> x = np.arange(12.0).reshape(1, 4, 3)
        >>> gather_tokens(x, np.array([[3, 0]]))[0, :, 0]
        array([9., 0.])
    """
    _check_rank("x", x, (3,), "a rank-3 array (B, N, D)")
    _check_rank("indices", indices, (2, 3), "a rank-2 (B, K) or rank-3 (B, M, K) array")
    _check_numpy_indices(indices, x.shape[1])
    if _rank(indices) == 3:
        _, num_blocks, block_size = xp.shape(indices)  # dynamic where a compiler relaxed it
        flat = xp.reshape(indices, (-1, num_blocks * block_size))
        gathered = gather_tokens(x, flat, xp=xp)
        return xp.reshape(gathered, (-1, num_blocks, block_size, x.shape[-1]))
    return xp.take_along_axis(x, xp.expand_dims(indices, -1), axis=1)


def apply_masks(x: Any, masks: Sequence[Any], xp: Any = np) -> Any:
    """Official ``apply_masks``: gather each mask, stack masks along batch.

    Same semantics as ``src/masks/utils.py::apply_masks`` of
    facebookresearch/ijepa: for a list ``[m_1, ..., m_M]`` of ``(B, K)``
    index arrays, returns ``concat([x[m_1], ..., x[m_M]], axis=0)``, so row
    ``j * B + b`` holds mask ``j`` of sample ``b``.

    Args:
        x: ``(B, N, D)`` tokens.
        masks: non-empty list/tuple of ``(B, K)`` integer index arrays (same
            ``K`` for all).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(len(masks) * B, K, D)``, dtype of ``x``.

    Example:
        >>> x = np.arange(8.0).reshape(2, 4, 1)
        >>> apply_masks(x, [np.array([[0], [1]]), np.array([[2], [3]])])[:, 0, 0]
        array([0., 5., 2., 7.])
    """
    if not isinstance(masks, (list, tuple)) or len(masks) == 0:
        raise ValueError(
            "Invalid value for argument `masks`. Expected a non-empty list of "
            f"(B, K) index arrays. Received: masks={type(masks).__name__}"
            + (" of length 0" if isinstance(masks, (list, tuple)) else "")
        )
    for mask in masks:
        _check_rank("masks", mask, (2,), "every mask to be a rank-2 (B, K) array")
    return xp.concatenate([gather_tokens(x, mask, xp=xp) for mask in masks], axis=0)


def repeat_interleave_batch(x: Any, batch_size: int, repeat: int, xp: Any = np) -> Any:
    """Official ``repeat_interleave_batch``: repeat each chunk of B rows.

    Same semantics as ``src/utils/tensors.py::repeat_interleave_batch`` of
    facebookresearch/ijepa: ``x`` is ``C`` chunks of ``batch_size`` rows;
    each chunk is repeated ``repeat`` times in place, giving
    ``[c_0, c_0, ..., c_1, c_1, ...]``. The official train step uses it to
    pair every target block with every context mask. Unlike the official
    code (which silently drops a trailing partial chunk) a length that is not
    a multiple of ``batch_size`` raises.

    Args:
        x: ``(C * batch_size, ...)`` array.
        batch_size: positive int ``B``.
        repeat: positive int.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(C * repeat * batch_size, ...)``, dtype of ``x``.

    Example:
        >>> repeat_interleave_batch(np.arange(4), 2, 2)
        array([0, 1, 0, 1, 2, 3, 2, 3])
    """
    check_int("batch_size", batch_size, low=1)
    check_int("repeat", repeat, low=1)
    if _rank(x) < 1:
        raise ValueError(
            "Invalid value for argument `x`. Expected an array of rank >= 1. "
            f"Received: x with shape {tuple(x.shape)}"
        )
    length = x.shape[0]
    if length is not None and length % batch_size != 0:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected a divisor of "
            f"len(x)={length}. Received: batch_size={batch_size}"
        )
    rest = tuple(x.shape[1:])
    chunks = xp.expand_dims(xp.reshape(x, (-1, batch_size) + rest), 1)
    repeated = xp.concatenate([chunks] * repeat, axis=1)
    return xp.reshape(repeated, (-1,) + rest)


def _check_eps(eps):
    check_float("eps", eps, low=0.0, low_open=True)


def layer_norm(x: Any, eps: float = 1e-5, xp: Any = np) -> Any:
    """Non-affine layer norm over the last axis.

    Matches ``torch.nn.functional.layer_norm(x, (D,))``, which the official
    train step applies to the target-encoder output (``train.py``); its
    default ``eps`` is 1e-5, hence ours (the ViT's own LayerNorm layers use
    1e-6, a different thing). Variance is the biased one (divide by ``D``).

    Args:
        x: ``(..., D)`` floating array.
        eps: float > 0 added to the variance.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(..., D)``, dtype of ``x``: ``(x - mean) / sqrt(var + eps)``.

    Example:
        >>> np.round(layer_norm(np.array([[1.0, 3.0]])), 4)
        array([[-1.,  1.]])
    """
    _check_eps(eps)
    mean = xp.mean(x, axis=-1, keepdims=True)
    centered = xp.subtract(x, mean)
    variance = xp.mean(xp.square(centered), axis=-1, keepdims=True)
    return xp.divide(centered, xp.sqrt(xp.add(variance, eps)))


def make_targets(target_tokens: Any, target_indices: Any, eps: float = 1e-5, xp: Any = np) -> Any:
    """I-JEPA prediction targets: layer-normed target-encoder tokens per block.

    Paper Sec. 3 (Assran et al. 2023): targets are the target encoder's
    output tokens at the positions of each target block; the official code
    (``train.py::forward_target``) first applies a non-affine
    ``layer_norm`` over the feature axis (eps 1e-5), then ``apply_masks``.
    Layer norm acts per token, so we gather first (fewer tokens to normalize)
    with the same result.

    Args:
        target_tokens: ``(B, N, D)`` target-encoder output on the full image.
        target_indices: ``(B, M, Kt)`` integer indices (``MaskBatch.targets``).
        eps: float > 0, layer-norm epsilon.
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(B, M, Kt, D)`` targets, dtype of ``target_tokens``. The official
        layout ``(M * B, Kt, D)`` (mask-major) is
        ``targets.transpose(1, 0, 2, 3).reshape(M * B, Kt, D)``.

    Example:
        >>> tokens = np.arange(8.0).reshape(1, 4, 2)
        >>> make_targets(tokens, np.array([[[0, 1], [3, 3]]])).shape
        (1, 2, 2, 2)
    """
    _check_eps(eps)
    _check_rank("target_tokens", target_tokens, (3,), "a rank-3 array (B, N, D)")
    _check_rank("target_indices", target_indices, (3,), "a rank-3 array (B, M, Kt)")
    return layer_norm(gather_tokens(target_tokens, target_indices, xp=xp), eps=eps, xp=xp)
