"""Small, framework-free image sources for the I-JEPA example and probes.

- :func:`load_digits_split`: scikit-learn's bundled handwritten digits
  (1,797 real 8x8 grayscale images, 10 classes, no download), upsampled
  bilinearly to a size a small ViT can patchify, split into train and
  held-out parts with a fixed seed.
- :class:`ImageFolder`: a folder of images, one subfolder per class
  (labels are optional and only used for evaluation). Only the file list is
  held in memory; pixels are read lazily with Pillow, one batch at a time,
  from any thread (see :func:`iter_batches` for a prefetching reader).
  Unreadable files are skipped with a warning and counted, or stop the run,
  as chosen by ``on_bad_image``.
- :func:`load_fashion_mnist`: the 70,000 real 28x28 Fashion-MNIST images
  (official 60k / 10k split) from local IDX files, never downloaded; it
  lives in :mod:`jepa_components.fashion_mnist` and is reachable here.

Images come out as ``(N, H, W, C)`` float32 in ``[0, 1]``; normalizing them
for a model is the caller's choice. scikit-learn and Pillow are imported
only by the functions that need them.

Example:

>>> split = load_digits_split(image_size=16, seed=0)
>>> split.train_images.shape[1:], split.num_classes
((16, 16, 1), 10)
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from jepa_components._images import (
    DatasetError,
    ImageSplit,
    _file_kind,
    check_image_size,
    is_inside,
    open_regular_file,
    resize_bilinear,
)
from jepa_components._validation import check_int
from jepa_components.fashion_mnist import load_fashion_mnist

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "DatasetError",
    "BadImageError",
    "ImageSplit",
    "resize_bilinear",
    "split_indices",
    "load_digits_split",
    "ImageFolder",
    "iter_batches",
    "load_fashion_mnist",
]

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)

# ImageFolder's default cap on width * height, checked from the image header
# before decoding (8192 x 8192). It stays under Pillow's own limit
# (PIL.Image.MAX_IMAGE_PIXELS, ~89.5 Mpx: a DecompressionBombWarning, an error
# at twice that), so every image Pillow warns about is refused here too.
# Turning that warning into an error would need warnings.catch_warnings(),
# process-wide state that reader threads would race on and that makes
# every already-shown warning of the process show again.
DEFAULT_MAX_PIXELS = 2**26


class BadImageError(DatasetError):
    """An image file cannot be used (and ``on_bad_image="stop"``).

    It cannot be decoded, has more pixels than allowed, is not a regular
    file, or is a link out of the folder; the message names it.
    """


def _check_fraction(test_fraction):
    if not 0 < test_fraction < 1:
        raise ValueError(
            "Invalid value for argument `test_fraction`. Expected "
            f"0 < test_fraction < 1. Received: test_fraction={test_fraction}"
        )


def _check_channels(channels):
    if channels not in (1, 3):
        raise ValueError(
            "Invalid value for argument `channels`. Expected 1 or 3. "
            f"Received: channels={channels!r}"
        )


def split_indices(
    num_samples: int, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A fixed random split of ``range(num_samples)`` into train / held-out.

    Returns two sorted int64 arrays; the held-out part has
    ``max(1, round(test_fraction * num_samples))`` entries.

    >>> train, test = split_indices(10, test_fraction=0.2, seed=0)
    >>> len(train), len(test), sorted(set(train) | set(test)) == list(range(10))
    (8, 2, True)
    """
    _check_fraction(test_fraction)
    if num_samples < 2:
        raise DatasetError(f"need at least 2 samples to split, got {num_samples}")
    num_test = min(num_samples - 1, max(1, int(round(test_fraction * num_samples))))
    order = np.random.default_rng(seed).permutation(num_samples)
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def load_digits_split(
    image_size: int = 32, *, channels: int = 1, test_fraction: float = 0.2, seed: int = 0
) -> ImageSplit:
    """scikit-learn's handwritten digits as a train / held-out :class:`ImageSplit`.

    The 1,797 8x8 images (pixel values 0..16) are scaled to ``[0, 1]`` and
    resized bilinearly to ``image_size`` (e.g. 32 for a ViT with patch 4 and
    an 8x8 grid), then split with :func:`split_indices` (fixed ``seed``).

    Args:
        image_size: output height and width, >= 1.
        channels: 1 (grayscale) or 3 (the gray value repeated).
        test_fraction: held-out share, in (0, 1).
        seed: seed of the split.
    """
    image_size = check_image_size(image_size)
    _check_channels(channels)
    _check_fraction(test_fraction)
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - depends on the env
        raise ImportError(
            "the bundled digits need scikit-learn: pip install 'jepa-components[examples]'"
        ) from error
    digits = load_digits()
    images = resize_bilinear(digits.images / 16.0, image_size)
    images = np.repeat(images[..., None], channels, axis=-1).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train, test = split_indices(len(images), test_fraction=test_fraction, seed=seed)
    return ImageSplit(
        train_images=images[train],
        train_labels=labels[train],
        test_images=images[test],
        test_labels=labels[test],
        class_names=tuple(str(name) for name in digits.target_names),
    )


def _decode_image(path, image_size, channels, max_pixels=DEFAULT_MAX_PIXELS, root=None):
    """Read, center-crop to a square and resize one file; raises on bad data.

    The file must be a regular file (inside ``root`` if given), and its
    header's width x height at most ``max_pixels``, before anything is
    decoded.
    """
    from PIL import Image

    with open_regular_file(path, inside=root) as handle:
        try:
            opened = Image.open(handle)  # the header only
        except Image.DecompressionBombError as error:
            raise BadImageError(
                f"{path}: too many pixels ({error}); ImageFolder's limit is max_pixels"
                f"={max_pixels} (raising it past Pillow's limit also needs "
                "PIL.Image.MAX_IMAGE_PIXELS raised)"
            ) from None
        with opened as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadImageError(
                    f"{path}: {width}x{height} = {width * height} pixels, more than "
                    f"max_pixels={max_pixels}: refused before decoding"
                )
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((image_size, image_size), Image.BICUBIC)  # type: ignore[attr-defined]  # (Pillow 9.0: no Resampling)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.clip(pixels, 0.0, 1.0)


class ImageFolder:
    """Lazily read images from ``root`` (one subfolder per class, optional).

    Layout: ``root/<class name>/**/<image>`` gives labelled images (classes
    sorted by name, label = position); images directly in ``root`` are
    unlabelled (label -1). Hidden files and folders are ignored. Only paths
    are held in memory; :meth:`load_batch` decodes with Pillow and is safe to
    call from several threads at once.

    The folder may come from anywhere, so nothing is read outside it and
    nothing can block or blow up memory:

    - A symbolic link to a folder is never followed: one resolving inside
      ``root`` (a loop back to it, or a second name for a class) is left out
      with a warning, so no image is counted twice under a bogus class.
    - A symbolic link resolving outside ``root`` (to a folder or an image
      file) is a bad entry, and so is an image name that is not a regular
      file (a FIFO, socket or device: never opened) or a broken link. Bad
      entries are found while scanning and follow ``on_bad_image``: left
      out with a warning (listed in :attr:`skipped_files`) or
      :class:`BadImageError` from the constructor. Links to image files
      inside ``root`` are read.
    - Each image's header is read first; more than ``max_pixels`` pixels
      (or Pillow's ``DecompressionBombError``) makes it a bad image,
      refused before decoding (Pillow may print its own
      ``DecompressionBombWarning`` first). Every read checks again that the
      path is a regular file inside ``root``.

    Each image is center-cropped to a square and resized (bicubic) to
    ``image_size`` -- the usual evaluation transform; the I-JEPA paper's
    random-resized-crop augmentation is not done while reading (a
    deterministic read keeps resume exact); apply it per batch with
    :class:`jepa_components.augment.RandomResizedCrop` (seeded per batch).

    Args:
        root: folder path.
        image_size: output height and width, >= 1.
        channels: 1 (grayscale) or 3 (RGB).
        on_bad_image: ``"skip"`` (warn once per file, count it, and fill its
            slot in the batch with the next readable image of the dataset;
            bad entries found while scanning are left out of the list)
            or ``"stop"`` (raise :class:`BadImageError`).
        extensions: file name endings (lower case) that count as images.
        max_pixels: the largest ``width * height`` decoded (default
            :data:`DEFAULT_MAX_PIXELS`, 2**26 = 8192 x 8192); checked from the
            header. Above ~89.5 million, Pillow's own
            ``PIL.Image.MAX_IMAGE_PIXELS`` must be raised too.

    Raises:
        DatasetError: ``root`` is missing, not a folder, or holds no image.
        BadImageError: a bad entry while scanning, with ``on_bad_image="stop"``.

    Example:

    >>> import tempfile, PIL.Image
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "cat"))
    >>> PIL.Image.new("RGB", (20, 10)).save(os.path.join(root, "cat", "a.png"))
    >>> folder = ImageFolder(root, image_size=8)
    >>> len(folder), folder.class_names, folder.load_batch([0]).shape
    (1, ('cat',), (1, 8, 8, 3))
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        image_size: int,
        channels: int = 3,
        on_bad_image: str = "skip",
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.image_size = check_image_size(image_size)
        _check_channels(channels)
        if on_bad_image not in ("skip", "stop"):
            raise ValueError(
                "Invalid value for argument `on_bad_image`. Expected 'skip' or "
                f"'stop'. Received: on_bad_image={on_bad_image!r}"
            )
        self.max_pixels = check_int("max_pixels", max_pixels, low=1)
        self.root = os.fspath(root)
        self.channels = channels
        self.on_bad_image = on_bad_image
        self.extensions = tuple(e.lower() for e in extensions)
        self._bad: dict[str, str] = {}
        self._lock = threading.Lock()
        self.files, self.labels, self.class_names = self._scan()

    def _scan(self):
        if not os.path.exists(self.root):
            raise DatasetError(f"image folder not found: {self.root}")
        if not os.path.isdir(self.root):
            raise DatasetError(f"not a folder: {self.root}")
        self._real_root = os.path.realpath(self.root)
        files, labels, class_folders = [], [], []
        for path, kind in self._list(self.root):
            if kind == "file":
                files.append(path)
                labels.append(-1)
            else:
                class_folders.append(path)
        for label, top in enumerate(class_folders):
            stack = [top]  # depth first, files before subfolders, as os.walk
            while stack:
                subfolders = []
                for path, kind in self._list(stack.pop()):
                    if kind == "file":
                        files.append(path)
                        labels.append(label)
                    else:
                        subfolders.append(path)
                stack.extend(reversed(subfolders))
        if not files:
            left_out = f"; {len(self._bad)} left out, see the warnings" if self._bad else ""
            raise DatasetError(
                f"no images found in {self.root} (looked for "
                f"{', '.join(self.extensions)}{left_out})"
            )
        class_names = tuple(os.path.basename(p) for p in class_folders)
        return files, np.asarray(labels, dtype=np.int64), class_names

    def _list(self, folder):
        """``[(path, "file" | "folder")]`` of ``folder``, sorted, vetted.

        Regular files with an image extension and real (not linked) folders;
        links to image files inside the root count as files. Everything
        else is ignored, or is a bad entry (see the class docstring).
        """
        try:
            with os.scandir(folder) as scan:
                entries = sorted(
                    (e for e in scan if not e.name.startswith(".")), key=lambda e: e.name
                )
        except OSError as error:
            if folder == self.root:
                raise DatasetError(f"cannot list {folder}: {error}") from None
            self._leave_out(folder, f"cannot list this folder ({error.strerror})")
            return []
        out = []
        for entry in entries:
            is_image = entry.name.lower().endswith(self.extensions)
            if entry.is_dir(follow_symlinks=False):
                out.append((entry.path, "folder"))
            elif entry.is_file(follow_symlinks=False):
                if is_image:
                    out.append((entry.path, "file"))
            elif entry.is_symlink():
                kind = self._vet_link(entry.path, is_image)
                if kind is not None:
                    out.append((entry.path, kind))
            elif is_image:
                mode = entry.stat(follow_symlinks=False).st_mode
                self._leave_out(entry.path, f"{_file_kind(mode)}, not a regular file")
        return out

    def _vet_link(self, path, is_image):
        """``"file"`` for a link to an image file inside the root, else None."""
        target = os.path.realpath(path)
        try:
            mode = os.stat(path).st_mode
        except OSError as error:
            if is_image:
                self._leave_out(path, f"a broken link to {target} ({error.strerror})")
            return None
        if not (is_image or stat.S_ISDIR(mode)):
            return None
        if not is_inside(target, self._real_root):
            self._leave_out(path, f"a link to {target}, outside {self.root}")
        elif stat.S_ISDIR(mode):
            warnings.warn(
                f"not following {path}, a link to the folder {target} inside {self.root} "
                "(a loop, or a second name for images read under their own name)",
                stacklevel=5,
            )
        elif stat.S_ISREG(mode):
            return "file"
        else:
            self._leave_out(path, f"a link to {target}, {_file_kind(mode)}, not a regular file")
        return None

    def _leave_out(self, path, reason):
        """A bad entry found while scanning: warn and leave it out, or stop."""
        if self.on_bad_image == "stop":
            raise BadImageError(f"refusing {path}: {reason} (on_bad_image='stop')")
        self._bad[path] = reason
        warnings.warn(f"skipping {path}: {reason}", stacklevel=5)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def is_labelled(self) -> bool:
        """True when every image has a class and there are at least 2 classes."""
        return len(self.class_names) >= 2 and bool(np.all(self.labels >= 0))

    @property
    def num_skipped(self) -> int:
        """How many distinct files were left out while scanning or failed to decode so far."""
        with self._lock:
            return len(self._bad)

    @property
    def skipped_files(self) -> dict[str, str]:
        """``{path: reason}`` of the files left out while scanning or that failed to decode."""
        with self._lock:
            return dict(self._bad)

    def _try_load(self, index):
        path = self.files[index]
        with self._lock:
            if path in self._bad:
                return None
        try:
            return _decode_image(
                path, self.image_size, self.channels, self.max_pixels, self._real_root
            )
        except Exception as error:  # Pillow raises many types on bad data
            message = (
                str(error)
                if isinstance(error, DatasetError)
                else f"{type(error).__name__}: {error}"
            )
            if self.on_bad_image == "stop":
                raise BadImageError(f"cannot read image {path} ({message})") from None
            with self._lock:
                first_time = path not in self._bad
                self._bad[path] = message
            if first_time:
                warnings.warn(f"skipping unreadable image {path} ({message})", stacklevel=3)
            return None

    def load(self, index: int) -> npt.NDArray[np.float32]:
        """One image, ``(H, W, C)`` float32; a bad file is replaced as in batches."""
        return self.load_batch([index])[0]

    def load_batch(self, indices: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Decode ``indices`` -> ``(len(indices), H, W, C)`` float32 in ``[0, 1]``.

        With ``on_bad_image="skip"`` a bad file's slot takes the next readable
        image in file order (deterministic, so batch shapes stay fixed).

        Raises:
            BadImageError: a bad file with ``on_bad_image="stop"``, or no
                readable image at all in the folder.
        """
        indices = [int(i) for i in np.asarray(indices).reshape(-1)]
        out = np.empty((len(indices), self.image_size, self.image_size, self.channels), np.float32)
        for slot, index in enumerate(indices):
            image = self._try_load(index)
            step = 1
            while image is None:
                if step >= len(self.files):
                    raise BadImageError(f"no readable image in {self.root}")
                image = self._try_load((index + step) % len(self.files))
                step += 1
            out[slot] = image
        return out


def iter_batches(
    load_batch: Callable[[np.ndarray], Any],
    indices: npt.ArrayLike,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = True,
    num_threads: int = 2,
    prefetch: int = 2,
) -> Iterator[tuple[npt.NDArray[np.int64], Any]]:
    """Yield ``(batch_indices, images)`` read ahead by a thread pool.

    Args:
        load_batch: callable ``indices -> (b, H, W, C)`` images (e.g.
            :meth:`ImageFolder.load_batch`).
        indices: the sample indices to visit, ``(N,)`` ints.
        batch_size: >= 1.
        shuffle: permute ``indices`` with ``seed`` first.
        seed: seed of the permutation (pass ``seed + epoch`` for a new order
            every epoch that is still reproducible on resume).
        drop_remainder: drop a last, smaller batch.
        num_threads: reader threads (>= 1); decoding runs in parallel with
            whatever the consumer does between batches.
        prefetch: batches in flight per thread (>= 1).

    >>> batches = list(iter_batches(lambda i: np.asarray(i)[:, None], range(5), 2,
    ...                             shuffle=False))
    >>> [b[0].tolist() for b in batches]
    [[0, 1], [2, 3]]
    """
    if int(batch_size) < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an integer >= 1. "
            f"Received: batch_size={batch_size}"
        )
    if int(num_threads) < 1 or int(prefetch) < 1:
        raise ValueError(
            "Invalid value for argument `num_threads`/`prefetch`. Expected integers "
            f">= 1. Received: num_threads={num_threads}, prefetch={prefetch}"
        )
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if shuffle:
        indices = indices[np.random.default_rng(seed).permutation(len(indices))]
    stop = len(indices) - len(indices) % batch_size if drop_remainder else len(indices)
    chunks = [indices[i : i + batch_size] for i in range(0, stop, batch_size)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=int(num_threads)) as pool:
        pending: deque[tuple[np.ndarray, concurrent.futures.Future[Any]]] = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(load_batch, chunk)))
            if len(pending) >= int(num_threads) * int(prefetch):
                done_chunk, future = pending.popleft()
                yield done_chunk, future.result()
        while pending:
            done_chunk, future = pending.popleft()
            yield done_chunk, future.result()
