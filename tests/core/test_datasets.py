import os
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components import datasets as ds

PIL = pytest.importorskip("PIL.Image")


# --- resize / split ------------------------------------------------------------


def test_resize_bilinear__matches_pillow_when_upsampling():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(8, 8)).astype(np.float32)
    expected = np.asarray(PIL.fromarray(image, mode="F").resize((32, 32), PIL.BILINEAR))
    np.testing.assert_allclose(ds.resize_bilinear(image[None], 32)[0], expected, atol=1e-5)


def test_resize_bilinear__constant_stays_constant_with_channels():
    out = ds.resize_bilinear(np.full((2, 5, 7, 3), 0.25), 11)
    assert out.shape == (2, 11, 11, 3)
    np.testing.assert_allclose(out, 0.25)


def test_resize_bilinear__validates():
    with pytest.raises(ValueError, match="`images`"):
        ds.resize_bilinear(np.zeros((8, 8)), 16)
    with pytest.raises(ValueError, match="`image_size`"):
        ds.resize_bilinear(np.zeros((1, 8, 8)), 0)


@given(st.integers(2, 300), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_split_indices__disjoint_cover_and_deterministic(n, fraction, seed):
    train, test = ds.split_indices(n, test_fraction=fraction, seed=seed)
    assert len(test) >= 1 and len(train) >= 1
    assert not set(train) & set(test)
    assert sorted(np.concatenate([train, test])) == list(range(n))
    again = ds.split_indices(n, test_fraction=fraction, seed=seed)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])


def test_split_indices__validates():
    with pytest.raises(ValueError, match="`test_fraction`"):
        ds.split_indices(10, test_fraction=1.0)
    with pytest.raises(ds.DatasetError, match="at least 2"):
        ds.split_indices(1)


# --- digits ----------------------------------------------------------------------


def test_load_digits_split__shapes_range_and_determinism():
    split = ds.load_digits_split(image_size=16, seed=3)
    assert split.train_images.shape == (1438, 16, 16, 1)
    assert split.test_images.shape == (359, 16, 16, 1)
    assert split.train_images.dtype == np.float32
    assert 0.0 <= split.train_images.min() and split.train_images.max() <= 1.0
    assert split.num_classes == 10 and set(split.test_labels) == set(range(10))
    again = ds.load_digits_split(image_size=16, seed=3)
    np.testing.assert_array_equal(split.test_labels, again.test_labels)
    other = ds.load_digits_split(image_size=16, seed=4)
    assert not np.array_equal(split.test_labels, other.test_labels)


def test_load_digits_split__three_channels_repeat_gray():
    split = ds.load_digits_split(image_size=8, channels=3, test_fraction=0.5)
    assert split.train_images.shape[-1] == 3
    np.testing.assert_array_equal(split.train_images[..., 0], split.train_images[..., 2])


def test_load_digits_split__validates():
    with pytest.raises(ValueError, match="`channels`"):
        ds.load_digits_split(channels=2)
    with pytest.raises(ValueError, match="`image_size`"):
        ds.load_digits_split(image_size=3.5)


# --- image folder --------------------------------------------------------------


def _make_folder(root, *, bad=0, loose=0):
    rng = np.random.default_rng(0)
    for name, size, fmt in [("cat", (20, 10), "png"), ("dog", (12, 12), "jpg")]:
        os.makedirs(root / name / "nested", exist_ok=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            target = root / name / ("nested" if i == 2 else "") / f"{i}.{fmt}"
            PIL.fromarray(pixels).save(target)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.png").write_bytes(b"")
    for i in range(bad):
        (root / "dog" / f"zz_bad{i}.png").write_bytes(b"\x89PNG broken")
    for i in range(loose):
        PIL.new("L", (9, 9), 128).save(root / f"loose{i}.bmp")
    return root


def test_image_folder__scans_classes_nested_and_ignores_others(tmp_path):
    folder = ds.ImageFolder(_make_folder(tmp_path), image_size=8)
    assert len(folder) == 6
    assert folder.class_names == ("cat", "dog")
    assert folder.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert folder.is_labelled
    batch = folder.load_batch([0, 5, 3])
    assert batch.shape == (3, 8, 8, 3) and batch.dtype == np.float32
    assert 0 <= batch.min() and batch.max() <= 1


def test_image_folder__loose_files_are_unlabelled(tmp_path):
    folder = ds.ImageFolder(_make_folder(tmp_path, loose=2), image_size=4, channels=1)
    assert len(folder) == 8 and folder.labels[:2].tolist() == [-1, -1]
    assert not folder.is_labelled
    np.testing.assert_allclose(folder.load(0), 128 / 255, atol=1e-6)
    assert folder.load(0).shape == (4, 4, 1)


def test_image_folder__center_crops_non_square(tmp_path):
    pixels = np.zeros((4, 12), np.uint8)
    pixels[:, 4:8] = 255  # white middle square, black sides
    PIL.fromarray(pixels).save(tmp_path / "wide.png")
    image = ds.ImageFolder(tmp_path, image_size=4, channels=1).load(0)
    np.testing.assert_allclose(image, 1.0, atol=1e-6)


def test_image_folder__missing_and_empty(tmp_path):
    with pytest.raises(ds.DatasetError, match="not found"):
        ds.ImageFolder(tmp_path / "nope", image_size=8)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ds.DatasetError, match="no images found"):
        ds.ImageFolder(tmp_path, image_size=8)
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(ds.DatasetError, match="not a folder"):
        ds.ImageFolder(tmp_path / "file.png", image_size=8)


def test_image_folder__skip_bad_files_warns_once_and_counts(tmp_path):
    folder = ds.ImageFolder(_make_folder(tmp_path, bad=2), image_size=8)
    assert len(folder) == 8  # bad files are only found when read
    bad = [str(tmp_path / "dog" / f"zz_bad{i}.png") for i in range(2)]
    index = folder.files.index(bad[1])
    with pytest.warns(UserWarning, match=r"zz_bad1\.png"):
        batch = folder.load_batch([index, 1])
    assert batch.shape == (2, 8, 8, 3)
    assert folder.num_skipped == 1
    # The slot took the next readable image in file order.
    np.testing.assert_array_equal(batch[0], folder.load_batch([index + 1])[0])
    with pytest.warns(UserWarning, match=r"zz_bad0\.png") as record:
        full = folder.load_batch(range(len(folder)))
    assert len(record) == 1  # zz_bad1 was already reported
    assert full.shape == (8, 8, 8, 3)
    assert folder.num_skipped == 2 and set(folder.skipped_files) == set(bad)


def test_image_folder__stop_on_bad_file(tmp_path):
    folder = ds.ImageFolder(_make_folder(tmp_path, bad=1), image_size=8, on_bad_image="stop")
    with pytest.raises(ds.BadImageError, match=r"zz_bad0\.png"):
        folder.load_batch(range(len(folder)))


def test_image_folder__all_bad_raises(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "b.png").write_bytes(b"junk")
    folder = ds.ImageFolder(tmp_path, image_size=8)
    with (
        pytest.warns(UserWarning, match="skipping unreadable image"),
        pytest.raises(ds.BadImageError, match="no readable"),
    ):
        folder.load_batch([0])


def test_image_folder__validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="`on_bad_image`"):
        ds.ImageFolder(tmp_path, image_size=8, on_bad_image="ignore")
    with pytest.raises(ValueError, match="`channels`"):
        ds.ImageFolder(tmp_path, image_size=8, channels=4)


# --- iter_batches --------------------------------------------------------------


def test_iter_batches__shuffled_reproducible_and_drops_remainder():
    def load(indices):
        return np.asarray(indices, np.float32)[:, None]

    first = list(ds.iter_batches(load, range(10), 3, seed=1))
    assert [len(b) for b, _ in first] == [3, 3, 3]
    seen = np.concatenate([b for b, _ in first])
    assert len(set(seen)) == 9 and seen.tolist() != sorted(seen.tolist())
    for indices, images in first:
        np.testing.assert_array_equal(images[:, 0], indices)
    again = list(ds.iter_batches(load, range(10), 3, seed=1))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    kept = list(ds.iter_batches(load, range(10), 3, shuffle=False, drop_remainder=False))
    assert [b.tolist() for b, _ in kept][-1] == [9]


def test_iter_batches__reads_in_worker_threads():
    threads = set()

    def load(indices):
        threads.add(threading.get_ident())
        return np.zeros((len(indices), 1))

    list(ds.iter_batches(load, range(40), 4, num_threads=2))
    assert threading.get_ident() not in threads


def test_iter_batches__validates():
    with pytest.raises(ValueError, match="`batch_size`"):
        list(ds.iter_batches(lambda i: i, range(4), 0))
    with pytest.raises(ValueError, match="`num_threads`"):
        list(ds.iter_batches(lambda i: i, range(4), 2, num_threads=0))


# --- limits and links (hostile folders: tests/security/test_hostile_data.py) ------------


def test_image_folder__max_pixels_is_checked_from_the_header(tmp_path):
    PIL.new("RGB", (100, 60)).save(tmp_path / "big.png")
    PIL.new("RGB", (50, 50)).save(tmp_path / "small.png")
    assert ds.DEFAULT_MAX_PIXELS == 2**26
    assert ds.ImageFolder(tmp_path, image_size=4).load_batch([0, 1]).shape == (2, 4, 4, 3)
    stop = ds.ImageFolder(tmp_path, image_size=4, max_pixels=5000, on_bad_image="stop")
    with pytest.raises(ds.BadImageError, match=r"big\.png: 100x60 = 6000 pixels, more than"):
        stop.load_batch([0])
    skip = ds.ImageFolder(tmp_path, image_size=4, max_pixels=5000)
    with pytest.warns(UserWarning, match=r"big\.png.*max_pixels=5000"):
        skip.load_batch([0, 1])
    assert list(skip.skipped_files) == [str(tmp_path / "big.png")]


def test_image_folder__validates_max_pixels(tmp_path):
    with pytest.raises(ValueError, match="`max_pixels`"):
        ds.ImageFolder(tmp_path, image_size=8, max_pixels=0)


def test_image_folder__links_to_images_inside_the_root_are_read(tmp_path):
    _make_folder(tmp_path)
    os.symlink(tmp_path / "dog" / "0.jpg", tmp_path / "cat" / "also_a_dog.jpg")
    folder = ds.ImageFolder(tmp_path, image_size=8)
    assert len(folder) == 7 and folder.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(folder.load(2), folder.load(4))


def test_image_folder__order_and_labels_as_before(tmp_path):
    _make_folder(tmp_path, loose=1)
    (tmp_path / "cat" / "a_sub" / "deeper").mkdir(parents=True)
    PIL.new("L", (5, 5)).save(tmp_path / "cat" / "a_sub" / "deeper" / "z.png")
    folder = ds.ImageFolder(tmp_path, image_size=4)
    names = [os.path.relpath(f, tmp_path) for f in folder.files]
    assert names == [
        "loose0.bmp",
        "cat/0.png",
        "cat/1.png",
        "cat/a_sub/deeper/z.png",
        "cat/nested/2.png",
        "dog/0.jpg",
        "dog/1.jpg",
        "dog/nested/2.jpg",
    ]
