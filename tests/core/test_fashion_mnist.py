import gzip
import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components import datasets
from jepa_components import fashion_mnist as fm
from jepa_components.datasets import DatasetError

REAL = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def no_default_places(monkeypatch, tmp_path):
    """Search only empty folders unless a test puts files there."""
    monkeypatch.delenv("JEPA_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    places = [str(tmp_path / "nowhere_a"), str(tmp_path / "nowhere_b")]
    original = fm.fashion_mnist_search_paths
    monkeypatch.setattr(
        fm, "fashion_mnist_search_paths", lambda: [p for p in original() if p != REAL] + places
    )
    return places


def _raw_uint8(folder, name):
    return fm.read_idx(os.path.join(folder, name))


# --- IDX format -------------------------------------------------------------------


@given(
    st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
    st.lists(st.integers(0, 4), min_size=1, max_size=3),
    st.booleans(),
)
def test_read_idx__round_trips_every_dtype_and_shape(tmp_path_factory, dtype, shape, gzipped):
    folder = tmp_path_factory.mktemp("idx")
    array = (np.arange(int(np.prod(shape))) % 100).astype(dtype).reshape(shape)
    path = os.path.join(folder, "a-idx" + (".gz" if gzipped else ""))
    fm.write_idx(path, array)
    back = fm.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_read_idx__exact_bytes_of_the_format(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    assert fm.read_idx(path).tolist() == [7, 8, 9]
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 1, 2, 255, 254]))  # big-endian int16
    assert fm.read_idx(path).tolist() == [258, -2]


# --- loading the fixture ---------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [True, False])
def test_load_fashion_mnist__fixture_split_values_and_labels(tmp_path, gzipped):
    fm.write_idx_fixture(tmp_path, num_train=12, num_test=5, gzipped=gzipped, seed=1)
    split = fm.load_fashion_mnist(tmp_path)
    suffix = ".gz" if gzipped else ""
    raw = _raw_uint8(tmp_path, "train-images-idx3-ubyte" + suffix)
    assert split.train_images.shape == (12, 28, 28, 1) and split.test_images.shape == (5, 28, 28, 1)
    assert split.train_images.dtype == np.float32
    np.testing.assert_array_equal(split.train_images[..., 0], raw / np.float32(255))
    assert split.train_labels.dtype == np.int64
    assert split.train_labels.tolist() == [i % 10 for i in range(12)]
    assert split.num_classes == 10 and split.class_names[9] == "Ankle boot"


def test_load_fashion_mnist__resize_and_three_channels(tmp_path):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2)
    split = fm.load_fashion_mnist(tmp_path, image_size=32, channels=3)
    assert split.train_images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(split.train_images[..., 0], split.train_images[..., 2])
    native = fm.load_fashion_mnist(tmp_path)
    expected = datasets.resize_bilinear(native.train_images[..., 0], 32)
    np.testing.assert_allclose(split.train_images[..., 1], expected, atol=1e-6)


def test_load_fashion_mnist__the_same_function_in_datasets():
    assert datasets.load_fashion_mnist is fm.load_fashion_mnist
    assert "load_fashion_mnist" in datasets.__all__


def test_load_fashion_mnist__validates(tmp_path):
    with pytest.raises(ValueError, match="Invalid value for argument `channels`"):
        fm.load_fashion_mnist(tmp_path, channels=2)
    with pytest.raises(ValueError, match="Invalid value for argument `image_size`"):
        fm.load_fashion_mnist(tmp_path, image_size=0)


# --- where the files are looked for ------------------------------------------------------


def test_search__jepa_data_dir_then_keras_cache(monkeypatch, tmp_path, no_default_places):
    keras_home = tmp_path / "keras_home"
    fm.write_idx_fixture(keras_home / "datasets" / "fashion-mnist", num_train=4, num_test=2)
    assert len(fm.load_fashion_mnist().train_images) == 4  # Keras' cache
    data_dir = tmp_path / "data"
    fm.write_idx_fixture(data_dir / "fashion-mnist", num_train=6, num_test=2, gzipped=False)
    monkeypatch.setenv("JEPA_DATA_DIR", str(data_dir))
    assert len(fm.load_fashion_mnist().train_images) == 6  # $JEPA_DATA_DIR first


def test_search__default_places_are_jepa_keras_debian(monkeypatch):
    monkeypatch.setenv("JEPA_DATA_DIR", "/data")
    monkeypatch.delenv("KERAS_HOME", raising=False)
    assert fm.fashion_mnist_search_paths() == [
        "/data/fashion-mnist",
        os.path.expanduser(os.path.join("~", ".keras", "datasets", "fashion-mnist")),
        REAL,
    ]


def test_search__dotted_file_names_are_accepted(tmp_path):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2, gzipped=False)
    for name in os.listdir(tmp_path):
        os.rename(tmp_path / name, tmp_path / name.replace("-idx", ".idx"))
    assert len(fm.load_fashion_mnist(tmp_path).test_images) == 2


def test_missing__one_error_listing_places_and_how_to_get_the_files(no_default_places):
    with pytest.raises(DatasetError) as info:
        fm.load_fashion_mnist()
    message = str(info.value)
    for place in no_default_places:
        assert place in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "keras.datasets.fashion_mnist.load_data()" in message
    assert "no download" in message


def test_missing__explicit_path_is_the_only_place(tmp_path):
    with pytest.raises(DatasetError, match=r"not found: .*nothing_here.*apt-get"):
        fm.load_fashion_mnist(tmp_path / "nothing_here")
    with pytest.raises(DatasetError, match=r"Looked for .* in: " + re.escape(str(tmp_path))):
        fm.load_fashion_mnist(tmp_path)  # exists but empty


def test_missing__incomplete_folder_names_the_missing_files(tmp_path):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match=r"incomplete .*t10k-labels-idx1-ubyte"):
        fm.load_fashion_mnist(tmp_path)


# --- corrupt files -------------------------------------------------------------------


def _corrupt(folder, name, payload, *, gz=True):
    path = os.path.join(folder, name + (".gz" if gz else ""))
    opener = gzip.open if gz else open
    with opener(path, "wb") as handle:
        handle.write(payload)
    return path


def _header(code, shape):
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, ">u4").tobytes()


@pytest.mark.parametrize(
    "name, payload, pattern",
    [
        ("train-images-idx3-ubyte", b"\x08\x03\x00\x00" + bytes(100), "bad magic"),
        ("train-images-idx3-ubyte", b"", "empty file"),
        ("train-images-idx3-ubyte", _header(8, (3, 27, 28)) + bytes(3 * 27 * 28), r"\(N, 28, 28\)"),
        ("train-images-idx3-ubyte", _header(8, (3, 28, 28)) + bytes(100), "truncated"),
        ("train-images-idx3-ubyte", _header(8, (3, 28, 28)) + bytes(3 * 784 + 1), "trailing"),
        (
            "train-images-idx3-ubyte",
            _header(8, (2, 28, 28)) + bytes(2 * 784),
            "2 images .* 3 labels",
        ),
        ("t10k-labels-idx1-ubyte", _header(8, (2,)) + bytes([1, 10]), "out of range"),
        ("t10k-labels-idx1-ubyte", _header(0x0C, (2,)) + bytes(8), "uint8 labels"),
    ],
)
def test_corrupt__clear_error_naming_the_file(tmp_path, name, payload, pattern):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2)
    _corrupt(tmp_path, name, payload)
    with pytest.raises(DatasetError, match=pattern) as info:
        fm.load_fashion_mnist(tmp_path)
    assert name in str(info.value)


def test_corrupt__bad_or_truncated_gzip_names_the_file(tmp_path):
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2)
    path = os.path.join(tmp_path, "train-labels-idx1-ubyte.gz")
    with open(path, "wb") as handle:
        handle.write(b"this is not gzip")
    with pytest.raises(DatasetError, match=r"cannot read IDX file .*train-labels-idx1-ubyte\.gz"):
        fm.load_fashion_mnist(tmp_path)
    fm.write_idx_fixture(tmp_path, num_train=3, num_test=2)
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:-12])  # cut inside the stream
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz"):
        fm.load_fashion_mnist(tmp_path)


# --- the real files (skipped when not installed) ----------------------------------------


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(REAL, "t10k-labels-idx1-ubyte.gz")),
    reason=f"Fashion-MNIST not installed in {REAL} (apt-get install dataset-fashion-mnist)",
)
def test_real_files__official_split_smoke():
    split = fm.load_fashion_mnist(REAL)
    assert split.train_images.shape == (60000, 28, 28, 1)
    assert split.test_images.shape == (10000, 28, 28, 1)
    assert np.bincount(split.train_labels).tolist() == [6000] * 10
    assert np.bincount(split.test_labels).tolist() == [1000] * 10
    assert split.train_labels[:5].tolist() == [9, 0, 0, 3, 0]  # first file entries
    assert 0.0 == split.train_images.min() and split.train_images.max() == 1.0
    np.testing.assert_allclose(
        split.train_images.mean(dtype=np.float64), fm.FASHION_MNIST_MEAN, rtol=1e-6
    )
    np.testing.assert_allclose(
        split.train_images.std(dtype=np.float64), fm.FASHION_MNIST_STD, rtol=1e-6
    )


# --- limits (hostile files: tests/security/test_hostile_data.py) -------------------------


def test_read_idx__max_bytes_is_the_documented_limit(tmp_path):
    path = tmp_path / "x-idx2-ubyte"
    fm.write_idx(path, np.zeros((28, 28), np.uint8))
    assert fm.read_idx(path, max_bytes=784).shape == (28, 28)
    with pytest.raises(DatasetError, match=r"784 bytes, more than max_bytes=783") as info:
        fm.read_idx(path, max_bytes=783)
    assert str(path) in str(info.value)
    assert fm.DEFAULT_MAX_IDX_BYTES == 2**31
    with pytest.raises(ValueError, match="`max_bytes`"):
        fm.read_idx(path, max_bytes=-1)


def test_read_idx__result_is_native_writable_and_owns_nothing_shared(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    fm.write_idx(path, np.array([1.5, -2.0], np.float64))
    back = fm.read_idx(path)
    assert back.dtype == np.dtype("float64") and back.dtype.isnative and back.flags.writeable
    assert back.tolist() == [1.5, -2.0]


def test_write_idx__refuses_what_read_idx_cannot_read(tmp_path):
    with pytest.raises(ValueError, match=r"1 to 8 dimensions"):
        fm.write_idx(tmp_path / "a", np.zeros(()))
    with pytest.raises(ValueError, match=r"1 to 8 dimensions"):
        fm.write_idx(tmp_path / "a", np.zeros((1,) * 9))
    fm.write_idx(tmp_path / "b", np.zeros((1,) * 8, np.uint8))
    assert fm.read_idx(tmp_path / "b").shape == (1,) * 8


def test_load_fashion_mnist__links_inside_the_folder_are_read(tmp_path):
    fm.write_idx_fixture(tmp_path / "store", num_train=3, num_test=2, gzipped=False)
    os.symlink("store", tmp_path / "fashion")  # the folder itself may be a link
    folder = tmp_path / "fashion"
    os.rename(folder / "t10k-labels-idx1-ubyte", folder / "labels.bin")
    os.symlink("labels.bin", folder / "t10k-labels-idx1-ubyte")
    assert fm.load_fashion_mnist(folder).test_labels.tolist() == [0, 1]
