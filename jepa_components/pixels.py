"""Pixel targets: patches of the image, per-patch normalised, per target block.

The pixel-reconstruction baseline that I-JEPA argues against (Assran et al.
2023, Sec. 1 and Table 1, against MAE) regresses the *pixels* of the target
patches instead of target-encoder features. This module is that target,
array-namespace generic like :mod:`jepa_components.context` (``xp=numpy``
by default, ``keras.ops`` in the Keras model); the rearrangements are
einops patterns, which work on NumPy, jax, torch and tensorflow tensors.

Conventions:

- images are channels last, ``(B, H, W, C)``;
- patch ``i`` is grid cell ``(row, col)`` with ``i = row * grid_width + col``
  (row-major, the project's and facebookresearch/ijepa's patch order, the
  order of ``PatchEmbed``'s tokens);
- inside a patch, values are ordered ``(y, x, channel)``: the layout of
  MAE's ``patchify`` (facebookresearch/mae ``models_mae.py``:
  ``einsum('nchpwq->nhwpqc')``, then ``reshape(N, h * w, p**2 * C)``).

Normalisation is MAE's ``norm_pix_loss`` (``models_mae.py::forward_loss``):
per patch, ``(x - mean) / sqrt(var + 1e-6)`` with mean and variance over
the patch's ``p * p * C`` values; MAE computes ``target.var(dim=-1)``,
PyTorch's *unbiased* variance (divide by ``P - 1``), and so do we.

Example:

>>> images = np.arange(16.0).reshape(1, 4, 4, 1)
>>> patchify(images, 2)[0, 1].tolist()  # grid cell (row 0, col 1)
[2.0, 3.0, 6.0, 7.0]
>>> make_pixel_targets(images, np.array([[[1, 2]]]), 2).shape
(1, 1, 2, 4)
"""

from __future__ import annotations

from typing import Any

import einops
import numpy as np

from jepa_components._validation import check_bool, check_float, check_int, check_pair, invalid
from jepa_components.context import gather_tokens

__all__ = [
    "make_pixel_targets",
    "normalize_patches",
    "patchify",
    "unpatchify",
]

_PATCHIFY = "b (h p) (w q) c -> b (h w) (p q c)"
_UNPATCHIFY = "b (h w) (p q c) -> b (h p) (w q) c"


def _shape(x):
    return tuple(x.shape)


def patchify(images: Any, patch_size: int, *, xp: Any = np) -> Any:
    """Split images into flattened non-overlapping patches.

    Args:
        images: ``(B, H, W, C)``; ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: int ``p`` >= 1.
        xp: array namespace (unused by the einops rearrangement itself; kept
            for the module's uniform signature).

    Returns:
        ``(B, N, p * p * C)``, ``N = (H / p) * (W / p)``, row-major patch
        order; entry ``[b, row * (W / p) + col, (y * p + x) * C + c]`` is
        ``images[b, row * p + y, col * p + x, c]``.

    >>> patchify(np.zeros((2, 8, 12, 3)), 4).shape
    (2, 6, 48)
    """
    del xp
    patch_size = check_int("patch_size", patch_size, low=1)
    shape = _shape(images)
    if len(shape) != 4:
        raise invalid("images", "a rank-4 array (B, H, W, C)", f"array of shape {shape}")
    height, width = shape[1], shape[2]
    if height % patch_size or width % patch_size:
        raise invalid(
            "patch_size", f"a divisor of the image height and width {(height, width)}", patch_size
        )
    return einops.rearrange(images, _PATCHIFY, p=patch_size, q=patch_size)


def unpatchify(
    patches: Any,
    patch_size: int,
    grid_size: int | tuple[int, int] | None = None,
    *,
    xp: Any = np,
) -> Any:
    """Inverse of :func:`patchify`: ``(B, N, p * p * C)`` -> ``(B, H, W, C)``.

    Args:
        patches: ``(B, N, p * p * C)``.
        patch_size: int ``p`` >= 1.
        grid_size: ``(H / p, W / p)``, an int for a square grid, or None
            (square: ``N`` must be a perfect square).
        xp: array namespace (unused, see :func:`patchify`).

    >>> images = np.random.default_rng(0).normal(size=(2, 8, 12, 3))
    >>> bool(np.array_equal(unpatchify(patchify(images, 4), 4, (2, 3)), images))
    True
    """
    del xp
    patch_size = check_int("patch_size", patch_size, low=1)
    shape = _shape(patches)
    if len(shape) != 3:
        raise invalid("patches", "a rank-3 array (B, N, p * p * C)", f"array of shape {shape}")
    num_patches, width = shape[1], shape[2]
    if grid_size is None:
        side = int(round(np.sqrt(num_patches)))
        if side * side != num_patches:
            raise invalid(
                "grid_size",
                f"(rows, cols) with rows * cols = N = {num_patches} (N is not a perfect square)",
                grid_size,
            )
        grid = (side, side)
    else:
        grid = check_pair("grid_size", grid_size)
        if grid[0] * grid[1] != num_patches:
            raise invalid(
                "grid_size", f"(rows, cols) with rows * cols = N = {num_patches}", grid_size
            )
    if width % (patch_size * patch_size):
        raise invalid("patch_size", f"p with p * p dividing the patch width {width}", patch_size)
    return einops.rearrange(patches, _UNPATCHIFY, h=grid[0], w=grid[1], p=patch_size, q=patch_size)


def normalize_patches(patches: Any, eps: float = 1e-6, *, xp: Any = np) -> Any:
    """MAE's ``norm_pix_loss`` target: each patch to zero mean, unit variance.

    ``(x - mean) / sqrt(var + eps)`` over the last axis, with the unbiased
    variance (divide by ``P - 1``) as MAE's ``target.var(dim=-1)``.

    Args:
        patches: ``(..., P)`` floating array, ``P >= 2`` values per patch.
        eps: float > 0 (MAE: 1e-6).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(..., P)``, dtype of ``patches``.

    >>> np.round(normalize_patches(np.array([[0.0, 2.0]])), 4).tolist()
    [[-0.7071, 0.7071]]
    """
    eps = check_float("eps", eps, low=0.0, low_open=True)
    size = _shape(patches)[-1]
    if size is not None and size < 2:
        raise invalid(
            "patches",
            "at least 2 values per patch (last axis), for a variance",
            f"array of shape {_shape(patches)}",
        )
    mean = xp.mean(patches, axis=-1, keepdims=True)
    centered = xp.subtract(patches, mean)
    variance = xp.divide(xp.sum(xp.square(centered), axis=-1, keepdims=True), float(size - 1))
    return xp.divide(centered, xp.sqrt(xp.add(variance, eps)))


def make_pixel_targets(
    images: Any,
    target_indices: Any,
    patch_size: int,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
    xp: Any = np,
) -> Any:
    """Pixel targets of every target block: the pixel analogue of ``make_targets``.

    Patchify the full image, gather the patches of each target block (as
    ``context.make_targets`` gathers target-encoder tokens), and, with
    ``normalize=True``, normalise each patch (:func:`normalize_patches`; it
    acts per patch, so gathering first gives the same values).

    Args:
        images: ``(B, H, W, C)`` float.
        target_indices: ``(B, M, Kt)`` int patch indices (``MaskBatch.targets``).
        patch_size: int ``p``, the encoder's patch size.
        normalize: per-patch normalisation (MAE ``norm_pix_loss=True``).
        eps: normalisation epsilon, > 0 (MAE: 1e-6).
        xp: array namespace, ``numpy`` or ``keras.ops``.

    Returns:
        ``(B, M, Kt, p * p * C)``, dtype of ``images``.

    >>> images = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> make_pixel_targets(images, np.array([[[3]]]), 2, normalize=False)[0, 0, 0].tolist()
    [10.0, 11.0, 14.0, 15.0]
    """
    normalize = check_bool("normalize", normalize)
    if len(_shape(target_indices)) != 3:
        raise invalid(
            "target_indices",
            "a rank-3 array (B, M, Kt)",
            f"array of shape {_shape(target_indices)}",
        )
    targets = gather_tokens(patchify(images, patch_size), target_indices, xp=xp)
    return normalize_patches(targets, eps, xp=xp) if normalize else targets
