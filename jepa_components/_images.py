"""What :mod:`jepa_components.datasets` and :mod:`jepa_components.fashion_mnist` share.

:class:`DatasetError`, :class:`ImageSplit` and :func:`resize_bilinear` live
here so that both modules import them from one place and neither imports
the other lazily (``datasets`` re-exports ``load_fashion_mnist``, which
needs these). Import them from :mod:`jepa_components.datasets`; their
``__module__`` says so, in tracebacks and pickles alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

_PUBLIC_MODULE = "jepa_components.datasets"


class DatasetError(ValueError):
    """A data source cannot be used (missing, empty, too small...)."""


@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """A labelled train / held-out split held in memory.

    Attributes:
        train_images: ``(N, H, W, C)`` float32 in ``[0, 1]``.
        train_labels: ``(N,)`` int64.
        test_images: ``(M, H, W, C)`` float32 in ``[0, 1]``.
        test_labels: ``(M,)`` int64.
        class_names: one name per label value.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_image_size(image_size: object) -> int:
    """``image_size`` as an ``int`` >= 1, or a ``ValueError`` naming it."""
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 1
    ):
        raise ValueError(
            "Invalid value for argument `image_size`. Expected an integer >= 1. "
            f"Received: image_size={image_size!r}"
        )
    return int(image_size)


def _interpolation_matrix(in_size: int, out_size: int) -> npt.NDArray[np.float64]:
    """(out, in) weights of 1-D linear interpolation, half-pixel centers."""
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0, in_size - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    matrix = np.zeros((out_size, in_size))
    matrix[np.arange(out_size), low] += 1 - frac
    matrix[np.arange(out_size), high] += frac
    return matrix


def resize_bilinear(images: npt.ArrayLike, size: int) -> npt.NDArray[np.float64]:
    """Bilinear resize of ``(N, H, W)`` or ``(N, H, W, C)`` images to ``size``.

    Half-pixel centers (the convention of Pillow and ``jax.image.resize``),
    edges clamped; no antialiasing, so meant for upsampling.

    >>> resize_bilinear(np.ones((2, 8, 8)), 32).shape
    (2, 32, 32)
    """
    size = check_image_size(size)
    images = np.asarray(images, dtype=np.float64)
    if images.ndim not in (3, 4):
        raise ValueError(
            "Invalid value for argument `images`. Expected shape (N, H, W) or "
            f"(N, H, W, C). Received: images.shape={images.shape}"
        )
    rows = _interpolation_matrix(images.shape[1], size)
    cols = _interpolation_matrix(images.shape[2], size)
    if images.ndim == 3:
        return np.einsum("yh,nhw,xw->nyx", rows, images, cols, optimize=True)
    return np.einsum("yh,nhwc,xw->nyxc", rows, images, cols, optimize=True)


for _public in (DatasetError, ImageSplit, resize_bilinear):
    _public.__module__ = _PUBLIC_MODULE
del _public
