"""Fashion-MNIST from local IDX files: found, checked, never downloaded.

Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, Zalando Research, MIT
licence): 70,000 real 28x28 grayscale photos of clothing in 10 classes,
the official split being 60,000 train and 10,000 test images. The files are
the four IDX files of the original release, gzipped or not::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

(``train-images.idx3-ubyte``, with a dot, is accepted too.) They are looked
for, in order, in ``$JEPA_DATA_DIR/fashion-mnist``, Keras' cache
``$KERAS_HOME/datasets/fashion-mnist`` (``~/.keras/...`` by default, where
``keras.datasets.fashion_mnist.load_data()`` leaves them) and
``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package
``dataset-fashion-mnist``); or only in the folder given as ``path``. Nothing
is downloaded. The IDX format (LeCun et al., the MNIST page): a big-endian
header ``0, 0, dtype code, ndim``, ``ndim`` uint32 sizes, then the data.
Every file is checked (a regular file inside the folder; magic, sizes,
length, label range, image and label counts) before its data is allocated,
and a bad one is named in the error (see :func:`read_idx` for the limits).

:func:`jepa_components.datasets.load_fashion_mnist` is the same function.

Example (a tiny fixture in the real format):

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> write_idx_fixture(folder, num_train=6, num_test=4, seed=0)
>>> split = load_fashion_mnist(folder)
>>> split.train_images.shape, split.test_images.shape, split.class_names[0]
((6, 28, 28, 1), (4, 28, 28, 1), 'T-shirt/top')
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np
import numpy.typing as npt

from jepa_components._images import (
    DatasetError,
    ImageSplit,
    is_inside,
    open_regular_file,
    resize_bilinear,
)
from jepa_components._validation import check_int, invalid

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DEFAULT_MAX_IDX_BYTES",
    "IDX_MAX_NDIM",
    "fashion_mnist_search_paths",
    "load_fashion_mnist",
    "read_idx",
    "write_idx",
    "write_idx_fixture",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# role -> file stem of the official release (Keras and Debian use the same names).
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Pixel mean / std of the 60,000 training images scaled to [0, 1] (for Normalize).
FASHION_MNIST_MEAN = 0.28604060219395294
FASHION_MNIST_STD = 0.3530242495426241

_INSTALL_HINT = (
    "Get the files in one of two ways: `apt-get install dataset-fashion-mnist` "
    "(Debian/Ubuntu; files in /usr/share/datasets/fashion-mnist), or run "
    "`keras.datasets.fashion_mnist.load_data()` once on a machine with network access "
    "(files in ~/.keras/datasets/fashion-mnist), or copy the four IDX files into "
    "$JEPA_DATA_DIR/fashion-mnist."
)
# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


def fashion_mnist_search_paths() -> list[str]:
    """The folders searched when no ``path`` is given, in order.

    ``$JEPA_DATA_DIR/fashion-mnist`` (if set), Keras' cache
    ``$KERAS_HOME/datasets/fashion-mnist`` (``~/.keras`` when unset, or
    ``/tmp/.keras`` if the home folder is not writable, as Keras does) and
    ``/usr/share/datasets/fashion-mnist``.

    >>> fashion_mnist_search_paths()[-1]
    '/usr/share/datasets/fashion-mnist'
    """
    paths = []
    if os.environ.get("JEPA_DATA_DIR"):
        paths.append(os.path.join(os.environ["JEPA_DATA_DIR"], "fashion-mnist"))
    keras_home = os.environ.get("KERAS_HOME")
    if not keras_home:  # as keras/src/backend/config.py: ~/.keras, or /tmp/.keras
        home = os.path.expanduser("~")
        keras_home = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    paths.append(os.path.join(os.path.expanduser(keras_home), "datasets", "fashion-mnist"))
    paths.append("/usr/share/datasets/fashion-mnist")
    return paths


# What read_idx accepts: at most this many dimensions, and by default at most
# this many data bytes (the largest real IDX file, Fashion-MNIST's training
# images, holds 47 MB).
IDX_MAX_NDIM = 8
DEFAULT_MAX_IDX_BYTES = 2**31
# deflate never inflates more than 1032:1 (zlib's technical notes); with
# slack for the gzip header and several members.
_GZIP_MAX_RATIO = 1100
_CHUNK = 1 << 20


def _read_up_to(stream, count):
    """Up to ``count`` bytes of ``stream`` (fewer only at its end)."""
    parts, total = [], 0
    while total < count:
        part = stream.read(min(count - total, _CHUNK))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def _read_idx_header(stream, path):
    """``(dtype, shape, header_bytes)`` from the start of ``stream``, validated."""
    magic = _read_up_to(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        detail = (
            f"unknown type code 0x{magic[2]:02x}; "
            if len(magic) == 4 and not any(magic[:2])
            else ""
        )
        raise DatasetError(
            f"not an IDX file: {path} (bad magic number {magic.hex() or 'empty file'}; "
            f"{detail}expected 00 00 <type> <ndim>, type one of "
            f"{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    if not 1 <= ndim <= IDX_MAX_NDIM:
        raise DatasetError(
            f"unsupported IDX file {path}: {ndim} dimensions (expected 1 to {IDX_MAX_NDIM})"
        )
    header = 4 + 4 * ndim
    sizes = _read_up_to(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DatasetError(
            f"truncated IDX file {path}: {4 + len(sizes)} bytes, header needs {header}"
        )
    shape = tuple(int.from_bytes(sizes[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    return dtype, shape, header


def _read_exactly_into(stream, buffer, path, expected):
    view, filled = memoryview(buffer).cast("B"), 0
    while filled < len(view):
        count = stream.readinto(view[filled : filled + _CHUNK])
        if not count:
            raise DatasetError(
                f"truncated IDX file {path}: {expected - len(view) + filled} bytes, "
                f"needs {expected}"
            )
        filled += count


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_IDX_BYTES) -> np.ndarray:
    """Read one IDX file (gzipped if its name ends in ``.gz``) into an array.

    Hostile files are refused before anything large is allocated: the
    header is read and checked first (magic ``00 00``, a known type code,
    1 to :data:`IDX_MAX_NDIM` dimensions), the data size it declares is
    computed exactly (Python integers: no overflow) and must be at most
    ``max_bytes``. A plain file must then be exactly header + data bytes
    long (checked with ``os.fstat`` before reading); a gzipped one must be
    able to inflate that much (deflate stays under ~1032:1) and is inflated
    by 1 MiB chunks into the declared array, then one byte more must show
    its end: a small gzip that inflates to gigabytes costs the declared
    size, never more. The path must be a regular file (a FIFO or device is
    refused without being opened).

    Args:
        path: the file.
        max_bytes: the largest data size accepted (default
            :data:`DEFAULT_MAX_IDX_BYTES`, 2 GiB); raise it for larger files.

    Raises:
        DatasetError: the file cannot be read, is not a regular file, is not
            IDX (bad magic or type code, too many dimensions), declares more
            than ``max_bytes``, is truncated, or has trailing bytes; the
            message names it.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte.gz")
    >>> write_idx(path, np.array([3, 1, 4], "uint8"))
    >>> read_idx(path).tolist()
    [3, 1, 4]
    """
    path = os.fspath(path)
    max_bytes = check_int("max_bytes", max_bytes, low=0)
    gzipped = path.endswith(".gz")
    try:
        with open_regular_file(path) as raw:
            file_size = os.fstat(raw.fileno()).st_size
            with gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw as stream:
                return _read_idx_body(stream, path, max_bytes, file_size, gzipped)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(
            f"cannot read IDX file {path}: {type(error).__name__}: {error} "
            "(a corrupt or truncated download? delete it and get it again)"
        ) from None


def _read_idx_body(stream, path, max_bytes, file_size, gzipped):
    dtype, shape, header = _read_idx_header(stream, path)
    count = math.prod(shape)  # exact: Python ints
    expected = header + count * dtype.itemsize
    # Zero dims aside too: (0, 2**31, 2**31) holds nothing but NumPy cannot shape it.
    size = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    if size > max_bytes:
        raise DatasetError(
            f"IDX file {path} declares shape {shape} of {dtype.newbyteorder('=')}: "
            f"{size} bytes{' (its 0 dims aside)' if count == 0 else ''}, more than "
            f"max_bytes={max_bytes} (pass a larger `max_bytes` if the file really is that large)"
        )
    if not gzipped and file_size != expected:
        problem = "truncated" if file_size < expected else "trailing data in"
        raise DatasetError(
            f"{problem} IDX file {path}: {file_size} bytes, shape {shape} needs {expected}"
        )
    if gzipped and expected > _GZIP_MAX_RATIO * file_size + 1024:
        raise DatasetError(
            f"truncated IDX file {path}: {file_size} gzip bytes cannot inflate to the "
            f"{expected} bytes shape {shape} needs"
        )
    data = np.empty(count, dtype)
    _read_exactly_into(stream, data, path, expected)
    if stream.read(1):
        raise DatasetError(
            f"trailing data in IDX file {path}: more than the {expected} bytes shape {shape} needs"
        )
    native = dtype.newbyteorder("=")
    if dtype != native:
        data.byteswap(inplace=True)
    return data.view(native).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: npt.ArrayLike) -> None:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``).

    For test fixtures and converted data; dtypes uint8, int8, int16, int32,
    float32, float64; 1 to :data:`IDX_MAX_NDIM` dimensions (what
    :func:`read_idx` reads back).
    """
    array = np.asarray(array)
    if not 1 <= array.ndim <= IDX_MAX_NDIM:
        raise invalid(
            "array", f"an array of 1 to {IDX_MAX_NDIM} dimensions", f"array of shape {array.shape}"
        )
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise invalid(
            "array",
            f"an array of dtype {sorted(str(d) for d in _IDX_CODES)}",
            f"array of dtype {array.dtype}",
        )
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[code]).tobytes()
    with gzip.open(path, "wb") if os.fspath(path).endswith(".gz") else open(path, "wb") as f:
        f.write(payload)


def write_idx_fixture(
    folder: str | os.PathLike[str],
    *,
    num_train: int = 20,
    num_test: int = 10,
    gzipped: bool = True,
    seed: int = 0,
) -> None:
    """Write a tiny random Fashion-MNIST look-alike (the four IDX files) to ``folder``.

    Images are 28x28 uint8 noise, labels cycle through the 10 classes. For
    tests and docs; nothing here is real data.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    for split, count in (("train", num_train), ("test", num_test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_idx(os.path.join(folder, FASHION_MNIST_FILES[f"{split}_images"] + suffix), images)
        write_idx(os.path.join(folder, FASHION_MNIST_FILES[f"{split}_labels"] + suffix), labels)


def _candidates(stem):
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _find_files(folder):
    """``{role: path}`` if ``folder`` holds all four files, None if none of them.

    Raises DatasetError for a folder holding only some of them (an
    interrupted copy: reading elsewhere instead would be a silent fallback),
    or one whose file is a symbolic link resolving outside it.
    """
    if not os.path.isdir(folder):
        return None
    found, missing = {}, []
    for role, stem in FASHION_MNIST_FILES.items():
        # Any entry of that name counts (read_idx refuses a FIFO, device or
        # broken link by name, rather than calling the file missing).
        hits = [
            os.path.join(folder, n)
            for n in _candidates(stem)
            if os.path.lexists(os.path.join(folder, n))
        ]
        if hits:
            found[role] = hits[0]  # uncompressed first: faster to read
        else:
            missing.append(stem + "[.gz]")
    if not found:
        return None
    if missing:
        raise DatasetError(
            f"incomplete Fashion-MNIST folder {folder}: missing "
            f"{', '.join(missing)}. {_INSTALL_HINT}"
        )
    for path in found.values():
        if not is_inside(path, folder):
            raise DatasetError(
                f"{path} is a link to {os.path.realpath(path)}, outside the folder {folder}: "
                "refused (files are never read outside the folder named; copy the file "
                "there, or name the folder that holds it)"
            )
    return found


def _read_split(files, split):
    images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"unexpected content in {images_path}: expected uint8 images of "
            f"shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"unexpected content in {labels_path}: expected uint8 labels of "
            f"shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{len(images)} images in {images_path} but {len(labels)} labels in {labels_path}"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(
            f"labels out of range in {labels_path}: expected 0..9, found {int(labels.max())}"
        )
    if len(images) == 0:
        raise DatasetError(f"no images in {images_path}")
    return images, labels.astype(np.int64)


def _to_float(images, image_size, channels, chunk=4096):
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, s, s, channels)`` in [0, 1], by chunks."""
    size = 28 if image_size is None else image_size
    out = np.empty((len(images), size, size, channels), np.float32)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].astype(np.float32) / 255.0
        if size != 28:
            part = resize_bilinear(part, size)
        out[start : start + chunk] = part[..., None]  # broadcasts over channels
    return out


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None, *, image_size: int | None = None, channels: int = 1
) -> ImageSplit:
    """Fashion-MNIST's official split as an :class:`~jepa_components.datasets.ImageSplit`.

    Args:
        path: a folder holding the four IDX files, or None to search
            :func:`fashion_mnist_search_paths` (first complete folder wins).
            An explicit ``path`` is the only place looked at.
        image_size: None (the native 28) or an int: bilinear resize (half-pixel
            centres, no antialiasing: meant for upsampling, e.g. 32 for
            patch 8 or 16), as ``load_digits_split``.
        channels: 1 (grayscale) or 3 (the gray value repeated).

    Returns:
        ``ImageSplit`` with ``train_images`` ``(60000, s, s, channels)`` and
        ``test_images`` ``(10000, s, s, channels)`` float32 in ``[0, 1]``
        (channels last), ``train_labels`` / ``test_labels`` int64 in
        ``0..9`` (the official order of the files), and ``class_names``
        :data:`FASHION_MNIST_CLASSES`.

    Raises:
        DatasetError: no folder holds the files (the message lists the
            places searched and how to get the files), a folder holds only
            some of them, or a file is corrupt or hostile (named in the
            message): not a regular file, a link out of the folder, or an
            IDX file refused by :func:`read_idx`.
    """
    if image_size is not None:
        image_size = check_int("image_size", image_size, low=1)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise invalid("channels", "1 or 3", channels)
    folders = [os.fspath(path)] if path is not None else fashion_mnist_search_paths()
    if path is not None and not os.path.isdir(folders[0]):
        raise DatasetError(f"Fashion-MNIST folder not found: {folders[0]}. {_INSTALL_HINT}")
    for folder in folders:
        files = _find_files(folder)
        if files is not None:
            break
    else:
        names = ", ".join(s + "[.gz]" for s in FASHION_MNIST_FILES.values())
        raise DatasetError(
            f"Fashion-MNIST not found (no download is attempted). Looked for {names} in: "
            + "; ".join(folders)
            + f". {_INSTALL_HINT}"
        )
    train_images, train_labels = _read_split(files, "train")
    test_images, test_labels = _read_split(files, "test")
    return ImageSplit(
        train_images=_to_float(train_images, image_size, channels),
        train_labels=train_labels,
        test_images=_to_float(test_images, image_size, channels),
        test_labels=test_labels,
        class_names=FASHION_MNIST_CLASSES,
    )
