"""What :mod:`jepa_components.datasets` and :mod:`jepa_components.fashion_mnist` share.

:class:`DatasetError`, :class:`ImageSplit` and :func:`resize_bilinear` live
here so that both modules import them from one place and neither imports
the other lazily (``datasets`` re-exports ``load_fashion_mnist``, which
needs these). Import them from :mod:`jepa_components.datasets`; their
``__module__`` says so, in tracebacks and pickles alike.

:func:`open_regular_file` and :func:`is_inside` are the two checks every
reader of files it did not write makes before reading a byte (see
"Files you did not write" in the design notes): the path resolves inside
the folder the user named, and it is a regular file (never a FIFO, socket
or device, which could block forever or never end).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

_PUBLIC_MODULE = "jepa_components.datasets"


class DatasetError(ValueError):
    """A data source cannot be used (missing, empty, too small, corrupt, hostile...).

    The message names the file (or folder) and the problem.
    """


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "a special file"


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when ``path``, every symbolic link resolved, lies in the folder ``root``.

    >>> is_inside("/data/cats/../cats/a.png", "/data"), is_inside("/data/../etc", "/data")
    (True, False)
    """
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([real, real_root]) == real_root
    except ValueError:  # different drives (Windows)
        return False


def open_regular_file(
    path: str | os.PathLike[str], *, inside: str | os.PathLike[str] | None = None
) -> BinaryIO:
    """Open ``path`` for binary reading, only if it is a regular file (inside ``inside``).

    ``os.stat`` is checked *before* opening, so a FIFO, socket or device is
    never opened (opening a FIFO blocks until a writer comes; a device may
    never end). The file is then opened non-blocking and checked again with
    ``os.fstat`` (same file, still regular), so one swapped in between the
    two calls cannot block either. With ``inside``, a path whose real
    location (symbolic links resolved) is outside that folder is refused.

    Raises:
        DatasetError: outside ``inside``, or not a regular file; the message
            names the path.
        OSError: the path cannot be stat-ed or opened (missing, no access).
    """
    path = os.fspath(path)
    if inside is not None and not is_inside(path, inside):
        raise DatasetError(
            f"{path} resolves to {os.path.realpath(path)}, outside the folder "
            f"{os.fspath(inside)}: refused (files are never read outside the folder you name)"
        )
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise DatasetError(
            f"{path} is {_file_kind(before.st_mode)}, not a regular file: "
            "refused without opening it"
        )
    nonblock = getattr(os, "O_NONBLOCK", 0)
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | nonblock | getattr(os, "O_NOCTTY", 0))
    try:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise DatasetError(f"{path} changed while being opened: refused")
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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
