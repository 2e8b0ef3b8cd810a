"""Hostile data files get a clean refusal: IDX files and image folders.

Each case crafts a file in ``tmp_path``, reads it through the public API in a
fresh process (``hostile.run_isolated``: memory measured, hangs caught) and
asserts a ``ValueError`` subclass naming the file. Core only: no
deep-learning import.
"""

import gzip
import os
import struct
import zlib

import numpy as np
import pytest
from hostile import assert_accepted, assert_refused, make_fifo, run_isolated
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from jepa_components import fashion_mnist as fm
from jepa_components.datasets import DatasetError

PIL = pytest.importorskip("PIL.Image")

IDX_SETUP = "from jepa_components.fashion_mnist import read_idx, load_fashion_mnist"
FOLDER_SETUP = "import warnings\nfrom jepa_components.datasets import ImageFolder"
MIB = 1 << 20


def _header(code, shape, ndim=None):
    ndim = len(shape) if ndim is None else ndim
    return bytes([0, 0, code, ndim]) + b"".join(struct.pack(">I", s) for s in shape)


def _gzip_bomb(path, head, inflated):
    """``head`` then zeros up to ``inflated`` bytes, as ~1 KB gzip members of 1 MiB each.

    A gzip file may hold several members, read as one stream: ~1 MB on disk
    for 1 GiB inflated, made in milliseconds, never held in memory.
    """
    member = gzip.compress(bytes(MIB), 9)
    with open(path, "wb") as f:
        f.write(gzip.compress(head + bytes(MIB - len(head)), 9))
        for _ in range(inflated // MIB - 1):
            f.write(member)
    return path


def _gzip_single_member_bomb(path, head, inflated):
    """The same in one deflate stream, compressed by 16 MiB chunks of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    chunk = bytes(16 * MIB)
    with open(path, "wb") as f:
        f.write(compressor.compress(head))
        for _ in range(inflated // len(chunk)):
            f.write(compressor.compress(chunk))
        f.write(compressor.flush())
    return path


def _read(path, memory_mib=64, **kwargs):
    return run_isolated(
        f"read_idx({str(path)!r})", setup=IDX_SETUP, memory_mib=memory_mib, **kwargs
    )


# --- IDX: decompression bombs and lying headers ------------------------------------


def test_idx__1mb_gzip_inflating_to_1gib_is_refused_after_the_declared_bytes(tmp_path):
    path = _gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", _header(8, (60000, 28, 28)), 1 << 30)
    assert os.path.getsize(path) < 2 * MIB
    result = _read(path, memory_mib=128)  # the declared 47 MB, and not the inflated 1 GiB
    assert_refused(result, match="trailing data", file=path)
    assert result.elapsed_s < 10


def test_idx__single_stream_gzip_bomb_is_refused(tmp_path):
    path = _gzip_single_member_bomb(tmp_path / "x-idx1-ubyte.gz", _header(8, (10000,)), 128 * MIB)
    assert_refused(_read(path, memory_mib=32), match="trailing data", file=path)


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx__header_declaring_more_than_max_bytes_is_refused_before_reading(tmp_path, gzipped):
    head = _header(8, (60000, 28, 28, 1000))  # 47 GB
    if gzipped:
        path = _gzip_bomb(tmp_path / "x-idx4-ubyte.gz", head, 64 * MIB)
    else:
        path = tmp_path / "x-idx4-ubyte"
        path.write_bytes(head + bytes(1000))
    assert_refused(
        _read(path, memory_mib=16), match=r"47040000000 bytes, more than max_bytes", file=path
    )


def test_idx__gzip_too_small_for_its_header_is_refused_before_allocating(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_header(8, (1800, 1000, 1000)) + bytes(100)))  # 1.8 GB declared
    assert_refused(_read(path, memory_mib=16), match="cannot inflate", file=path)


@pytest.mark.parametrize(
    "shape",
    [(2**16, 2**16, 2**16, 2**16), (2**32 - 1,) * 8, (0xFFFFFFFF, 2)],
    ids=["product-2**64", "eight-max-dims", "2**33"],
)
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx__dims_that_overflow_c_integers_are_refused(tmp_path, shape, gzipped):
    payload = _header(0x0E, shape) + bytes(16)  # float64: 2**64 elements * 8 wraps to 0 too
    path = tmp_path / ("x-idx-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    assert_refused(_read(path), match="more than max_bytes", file=path)


@pytest.mark.parametrize(
    "payload, pattern",
    [
        (_header(8, (100, 28, 28)) + bytes(1000), "truncated"),
        (_header(8, (100, 28, 28))[:9], "truncated .* header needs 16"),
        (_header(8, (3, 4)) + bytes(13), "trailing data"),
        (_header(8, (1,) * 100) + bytes(1), "100 dimensions"),
        (_header(8, (), ndim=0) + bytes(1), "0 dimensions"),
        (_header(0x07, (4,)) + bytes(4), "unknown type code 0x07"),
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad magic"),
        (b"", "empty file"),
    ],
    ids=[
        "truncated",
        "truncated-header",
        "trailing",
        "100-dims",
        "0-dims",
        "dtype",
        "magic",
        "empty",
    ],
)
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx__malformed_files_are_refused(tmp_path, payload, pattern, gzipped):
    path = tmp_path / ("x-idx-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    assert_refused(_read(path, memory_mib=16), match=pattern, file=path)


# --- Fashion-MNIST folder: special files and links ---------------------------------------


def test_fashion_mnist__fifo_named_like_an_idx_file_is_refused_unopened(tmp_path):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2, gzipped=False)
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.remove(fifo)
    make_fifo(fifo)
    code = f"load_fashion_mnist({str(tmp_path)!r})"
    result = run_isolated(code, setup=IDX_SETUP, memory_mib=64, timeout_s=10)
    assert_refused(result, match="FIFO", file=fifo)
    assert_refused(_read(fifo, timeout_s=10), match="not a regular file", file=fifo)


def test_fashion_mnist__link_out_of_the_folder_is_refused(tmp_path):
    outside, folder = tmp_path / "elsewhere", tmp_path / "fashion"
    fm.write_idx_fixture(outside, num_train=3, num_test=2, gzipped=False)
    fm.write_idx_fixture(folder, num_train=3, num_test=2, gzipped=False)
    link = folder / "t10k-labels-idx1-ubyte"
    os.remove(link)
    os.symlink(outside / "t10k-labels-idx1-ubyte", link)
    result = run_isolated(f"load_fashion_mnist({str(folder)!r})", setup=IDX_SETUP)
    assert_refused(result, match="outside the folder", file=link)


# --- IDX: any header, quickly a shape or a DatasetError (in-process) ------------------------

_DIMS = st.one_of(
    st.lists(st.integers(0, 5), min_size=0, max_size=5),
    st.lists(st.sampled_from([0, 1, 7, 2**16, 2**31, 2**32 - 1]), min_size=1, max_size=9),
)
_VALID_MAGIC = st.just(b"\x00\x00")


@settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    magic=st.one_of(_VALID_MAGIC, _VALID_MAGIC, _VALID_MAGIC, st.binary(max_size=2)),
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E] * 2 + [0x00, 0x07, 0x0A, 0xFF]),
    dims=_DIMS,
    ndim_lie=st.sampled_from([0] * 5 + [1, -1, 200]),
    body_delta=st.one_of(st.just(0), st.just(0), st.integers(-8, 8)),
    gzipped=st.booleans(),
)
@example(magic=b"\x00\x00", code=0x0B, dims=[2], ndim_lie=1, body_delta=0, gzipped=False)
def test_idx__random_headers_read_to_their_shape_or_raise_dataset_error(
    tmp_path, magic, code, dims, ndim_lie, body_delta, gzipped
):
    ndim = max(0, min(255, len(dims) + ndim_lie))
    head = magic + bytes([code, ndim]) + b"".join(struct.pack(">I", d) for d in dims)
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    honest = int(np.prod(dims, dtype=object)) * itemsize if dims else 0
    body = bytes(max(0, (honest if honest <= 1 << 15 else 256) + body_delta))  # never large
    payload = head[: 4 + 4 * len(dims)] + body
    # the shape the header declares: its ndim words as written; when ndim overstates the
    # dims, the body's first bytes are the further dims, and the file can be a valid one of
    # that shape (ndim 2, dims (2,), 4 zero bytes: a (2, 0) array, 12 bytes as declared)
    words = payload[4 : 4 + 4 * ndim]
    declared = struct.unpack(f">{ndim}I", words) if len(words) == 4 * ndim else None
    path = tmp_path / ("h-idx" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    try:
        array, message = fm.read_idx(path), ""
    except DatasetError as error:
        array, message = None, str(error)
    event("refused" if array is None else "read")
    if array is None:
        assert str(path) in message
    else:
        assert array.shape == declared and array.nbytes <= len(payload)


# --- image folders: special files, links, huge images -----------------------------------------


def _image(path, size=(6, 5)):
    PIL.new("RGB", size, (10, 20, 30)).save(path)


def _folder_code(root, on_bad_image, extra=""):
    return (
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    folder = ImageFolder({str(root)!r}, image_size=4, on_bad_image={on_bad_image!r})\n"
        "    batch = folder.load_batch(range(len(folder)))\n"
        f"{extra}"
        "result = dict(n=len(folder), classes=list(folder.class_names),\n"
        "              labels=folder.labels.tolist(), skipped=sorted(folder.skipped_files),\n"
        "              shape=list(batch.shape), warnings=[str(w.message) for w in caught])\n"
    )


def _fifo_folder(root):
    for name in ("cat", "dog"):
        os.makedirs(root / name)
        _image(root / name / "a.png")
    make_fifo(root / "cat" / "x.png")
    return root / "cat" / "x.png"


def test_image_folder__fifo_is_skipped_with_a_warning(tmp_path):
    fifo = _fifo_folder(tmp_path)
    result = run_isolated(_folder_code(tmp_path, "skip"), setup=FOLDER_SETUP, timeout_s=10)
    value = assert_accepted(result)
    assert value["n"] == 2 and value["labels"] == [0, 1] and value["skipped"] == [str(fifo)]
    assert any(str(fifo) in w and "FIFO" in w for w in value["warnings"])


def test_image_folder__fifo_stops_with_an_error_naming_it(tmp_path):
    fifo = _fifo_folder(tmp_path)
    result = run_isolated(_folder_code(tmp_path, "stop"), setup=FOLDER_SETUP, timeout_s=10)
    assert_refused(result, match="FIFO", file=fifo, error="BadImageError")


@pytest.mark.parametrize("on_bad_image", ["skip", "stop"])
def test_image_folder__fifo_swapped_in_after_the_scan_is_not_opened(tmp_path, on_bad_image):
    (tmp_path / "cat").mkdir()
    _image(tmp_path / "cat" / "a.png")
    swapped = tmp_path / "cat" / "b.png"
    _image(swapped)
    code = (
        f"folder = ImageFolder({str(tmp_path)!r}, image_size=4, on_bad_image={on_bad_image!r})\n"
        f"import os; os.remove({str(swapped)!r}); os.mkfifo({str(swapped)!r})\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    batch = folder.load_batch([0, 1])\n"
        "result = dict(skipped=list(folder.skipped_files),\n"
        "              warnings=[str(w.message) for w in caught])\n"
    )
    if not hasattr(os, "mkfifo"):
        pytest.skip("this OS has no FIFOs")
    result = run_isolated(code, setup=FOLDER_SETUP, timeout_s=10)
    if on_bad_image == "stop":
        assert_refused(result, match="FIFO", file=swapped, error="BadImageError")
    else:
        value = assert_accepted(result)
        assert value["skipped"] == [str(swapped)] and "FIFO" in value["warnings"][0]


def test_image_folder__class_folder_linked_back_to_the_root_is_not_counted(tmp_path):
    for name in ("cat", "dog"):
        os.makedirs(tmp_path / name / "sub")
        _image(tmp_path / name / "a.png")
        _image(tmp_path / name / "sub" / "b.png")
    os.symlink(tmp_path, tmp_path / "loop")  # a class named "loop" holding everything again
    os.symlink(tmp_path / "dog", tmp_path / "cat" / "dogs_again")  # a subfolder link
    result = run_isolated(_folder_code(tmp_path, "stop"), setup=FOLDER_SETUP)
    value = assert_accepted(result)
    assert value["classes"] == ["cat", "dog"] and value["labels"] == [0, 0, 1, 1]
    assert value["skipped"] == [] and value["shape"] == [4, 4, 4, 3]
    assert sum("not following" in w for w in value["warnings"]) == 2


@pytest.fixture
def outside_links(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    os.makedirs(root / "cat")
    os.makedirs(outside / "secrets")
    _image(root / "cat" / "a.png")
    _image(outside / "secret.png")
    _image(outside / "secrets" / "b.png")
    os.symlink(outside / "secret.png", root / "cat" / "evil.png")
    os.symlink(outside / "secrets", root / "stolen")  # a class folder out of the root
    return root, [str(root / "cat" / "evil.png"), str(root / "stolen")]


def test_image_folder__links_out_of_the_root_are_skipped(outside_links):
    root, links = outside_links
    value = assert_accepted(run_isolated(_folder_code(root, "skip"), setup=FOLDER_SETUP))
    assert value["n"] == 1 and value["classes"] == ["cat"] and value["skipped"] == sorted(links)
    assert sum("outside" in w for w in value["warnings"]) == 2


@pytest.mark.parametrize("kept", [0, 1], ids=["file-link", "folder-link"])
def test_image_folder__links_out_of_the_root_stop(outside_links, kept):
    root, links = outside_links
    os.remove(links[1 - kept])
    result = run_isolated(_folder_code(root, "stop"), setup=FOLDER_SETUP)
    assert_refused(result, match="outside", file=links[kept], error="BadImageError")


def _bilevel_png(path, width, height):
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels, written by rows."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000))
    idat += compressor.compress(row * (height % 1000)) + compressor.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    "side, pattern",
    [
        (9000, r"9000x9000 = 81000000 pixels, more than max_pixels=67108864"),
        (12000, r"12000x12000 = 144000000 pixels, more than max_pixels"),  # Pillow warns
        (20000, "too many pixels .*decompression bomb"),  # Pillow's error
    ],
)
def test_image_folder__huge_image_that_compresses_small_is_refused_from_its_header(
    tmp_path, side, pattern
):
    (tmp_path / "cat").mkdir()
    path = _bilevel_png(tmp_path / "cat" / "bomb.png", side, side)
    assert os.path.getsize(path) < MIB
    result = run_isolated(_folder_code(tmp_path, "stop"), setup=FOLDER_SETUP, memory_mib=32)
    assert_refused(result, match=pattern, file=path, error="BadImageError")
    assert result.elapsed_s < 5
