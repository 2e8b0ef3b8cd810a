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
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from jepa_components._images import DatasetError, ImageSplit, check_image_size, resize_bilinear
from jepa_components.fashion_mnist import load_fashion_mnist

__all__ = [
    "IMAGE_EXTENSIONS",
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


class BadImageError(DatasetError):
    """An image file cannot be decoded (and ``on_bad_image="stop"``)."""


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


def _decode_image(path, image_size, channels):
    """Read, center-crop to a square and resize one file; raises on bad data."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        image = image.convert("L" if channels == 1 else "RGB")
        width, height = image.size
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
            slot in the batch with the next readable image of the dataset)
            or ``"stop"`` (raise :class:`BadImageError`).
        extensions: file name endings (lower case) that count as images.

    Raises:
        DatasetError: ``root`` is missing, not a folder, or holds no image.

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
    ) -> None:
        self.image_size = check_image_size(image_size)
        _check_channels(channels)
        if on_bad_image not in ("skip", "stop"):
            raise ValueError(
                "Invalid value for argument `on_bad_image`. Expected 'skip' or "
                f"'stop'. Received: on_bad_image={on_bad_image!r}"
            )
        self.root = os.fspath(root)
        self.channels = channels
        self.on_bad_image = on_bad_image
        self.extensions = tuple(e.lower() for e in extensions)
        self.files, self.labels, self.class_names = self._scan()
        self._bad: dict[str, str] = {}
        self._lock = threading.Lock()

    def _scan(self):
        if not os.path.exists(self.root):
            raise DatasetError(f"image folder not found: {self.root}")
        if not os.path.isdir(self.root):
            raise DatasetError(f"not a folder: {self.root}")
        entries = sorted(e for e in os.listdir(self.root) if not e.startswith("."))
        class_names = tuple(e for e in entries if os.path.isdir(os.path.join(self.root, e)))
        files, labels = [], []
        for entry in entries:
            if entry.lower().endswith(self.extensions) and os.path.isfile(
                os.path.join(self.root, entry)
            ):
                files.append(os.path.join(self.root, entry))
                labels.append(-1)
        for label, name in enumerate(class_names):
            for folder, subfolders, names in os.walk(os.path.join(self.root, name)):
                subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
                for file_name in sorted(names):
                    if not file_name.startswith(".") and file_name.lower().endswith(
                        self.extensions
                    ):
                        files.append(os.path.join(folder, file_name))
                        labels.append(label)
        if not files:
            raise DatasetError(
                f"no images found in {self.root} (looked for {', '.join(self.extensions)})"
            )
        return files, np.asarray(labels, dtype=np.int64), class_names

    def __len__(self) -> int:
        return len(self.files)

    @property
    def is_labelled(self) -> bool:
        """True when every image has a class and there are at least 2 classes."""
        return len(self.class_names) >= 2 and bool(np.all(self.labels >= 0))

    @property
    def num_skipped(self) -> int:
        """How many distinct files failed to decode so far."""
        with self._lock:
            return len(self._bad)

    @property
    def skipped_files(self) -> dict[str, str]:
        """``{path: error message}`` of the files that failed to decode."""
        with self._lock:
            return dict(self._bad)

    def _try_load(self, index):
        path = self.files[index]
        with self._lock:
            if path in self._bad:
                return None
        try:
            return _decode_image(path, self.image_size, self.channels)
        except Exception as error:  # Pillow raises many types on bad data
            message = f"{type(error).__name__}: {error}"
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
