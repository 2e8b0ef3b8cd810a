import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomResizedCrop,
    channel_mean_std,
    resized_crop,
    sample_crop_boxes,
)

PIL = pytest.importorskip("PIL.Image")


def _images(batch=4, height=28, width=28, channels=1, seed=0):
    return np.random.default_rng(seed).uniform(size=(batch, height, width, channels))


# --- crop boxes --------------------------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1),
    height=st.integers(8, 64),
    width=st.integers(8, 64),
    low=st.floats(0.05, 1.0),
    high_extra=st.floats(0.0, 1.0),
    r_low=st.floats(0.3, 1.0),
    r_high_extra=st.floats(0.0, 2.0),
)
def test_sample_crop_boxes__inside_and_area_and_ratio_in_range(
    seed, height, width, low, high_extra, r_low, r_high_extra
):
    scale = (low, min(1.0, low + high_extra))
    ratio = (r_low, r_low + r_high_extra)
    boxes = sample_crop_boxes(seed, 64, (height, width), scale=scale, ratio=ratio)
    assert boxes.shape == (64, 4) and boxes.dtype == np.int64
    top, left, h, w = boxes.T
    assert np.all((top >= 0) & (left >= 0) & (h >= 1) & (w >= 1))
    assert np.all((top + h <= height) & (left + w <= width))
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback = (width, round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback = (round(height * ratio[1]), height)
    else:
        fallback = (width, height)
    for t, l_, bh, bw in boxes:
        if (bw, bh) == fallback and (t, l_) == ((height - bh) // 2, (width - bw) // 2):
            continue  # the centre fallback: no attempt fitted
        # w = round(sqrt(A r)), h = round(sqrt(A / r)) with A in scale * H * W, r in ratio.
        area = height * width
        assert (bw - 0.5) * (bh - 0.5) <= scale[1] * area + 1e-9
        assert (bw + 0.5) * (bh + 0.5) >= scale[0] * area - 1e-9
        assert (bw - 0.5) / (bh + 0.5) <= ratio[1] + 1e-9
        assert (bw + 0.5) / (bh - 0.5) >= ratio[0] - 1e-9


def test_sample_crop_boxes__official_scale_covers_the_range():
    boxes = sample_crop_boxes(0, 4000, 224)
    fraction = boxes[:, 2] * boxes[:, 3] / 224**2
    assert 0.29 < fraction.min() < 0.32 and fraction.max() > 0.97
    aspect = boxes[:, 3] / boxes[:, 2]
    assert aspect.min() < 0.78 and aspect.max() > 1.28
    assert len(np.unique(boxes[:, 0])) > 50 and len(np.unique(boxes[:, 1])) > 50


def test_sample_crop_boxes__deterministic_per_seed_and_generator():
    a = sample_crop_boxes(7, 16, 32)
    np.testing.assert_array_equal(a, sample_crop_boxes(np.random.default_rng(7), 16, 32))
    assert not np.array_equal(a, sample_crop_boxes(8, 16, 32))


def test_sample_crop_boxes__falls_back_to_the_centre_crop():
    # A 4x40 strip cannot hold any box with aspect ratio in (1, 1) and area > 16.
    boxes = sample_crop_boxes(0, 3, (4, 40), scale=(0.5, 1.0), ratio=(1.0, 1.0))
    assert boxes.tolist() == [[0, 18, 4, 4]] * 3


def test_sample_crop_boxes__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `scale`"):
        sample_crop_boxes(0, 2, 8, scale=(0.5, 0.3))
    with pytest.raises(ValueError, match="Invalid value for argument `scale`"):
        sample_crop_boxes(0, 2, 8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="Invalid value for argument `ratio`"):
        sample_crop_boxes(0, 2, 8, ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="Invalid value for argument `rng`"):
        sample_crop_boxes(None, 2, 8)
    with pytest.raises(ValueError, match="Invalid value for argument `num_images`"):
        sample_crop_boxes(0, 0, 8)


# --- resampling -------------------------------------------------------------------


def test_resized_crop__same_size_box_is_a_slice():
    images = _images(3, 20, 24, 2)
    boxes = np.array([[0, 0, 8, 8], [12, 16, 8, 8], [5, 3, 8, 8]])
    out = resized_crop(images, boxes, 8)
    for image, (t, l_, h, w), got in zip(images, boxes, out):
        np.testing.assert_allclose(got, image[t : t + h, l_ : l_ + w], rtol=1e-6)


@pytest.mark.parametrize(
    "box, size",
    [
        ((3, 5, 20, 12), (16, 16)),
        ((0, 0, 40, 30), (8, 8)),
        ((2, 3, 7, 9), (20, 13)),
        ((10, 1, 30, 5), (6, 11)),
    ],
)
def test_resized_crop__matches_pillow_crop_then_bilinear_resize(box, size):
    image = _images(1, 40, 30, 1, seed=3).astype(np.float32)
    t, l_, h, w = box
    out = resized_crop(image, np.array([box]), size)[0, ..., 0]
    crop = PIL.fromarray(image[0, t : t + h, l_ : l_ + w, 0], mode="F")
    expected = np.asarray(crop.resize((size[1], size[0]), PIL.BILINEAR))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_resized_crop__flip_mirrors_only_flagged_images():
    images = _images(2, 10, 10, 3)
    boxes = np.array([[1, 2, 6, 5]] * 2)
    plain = resized_crop(images, boxes, 7)
    flipped = resized_crop(images, boxes, 7, flip=[True, False])
    np.testing.assert_allclose(flipped[0], plain[0][:, ::-1], rtol=1e-6)
    np.testing.assert_array_equal(flipped[1], plain[1])


def test_resized_crop__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `boxes`"):
        resized_crop(_images(1, 8, 8), np.array([[4, 4, 5, 2]]), 4)
    with pytest.raises(ValueError, match="Invalid value for argument `boxes`"):
        resized_crop(_images(2, 8, 8), np.array([[0, 0, 4, 4]]), 4)
    with pytest.raises(ValueError, match="Invalid value for argument `images`"):
        resized_crop(np.zeros((8, 8, 1)), np.array([[0, 0, 4, 4]]), 4)


# --- the transform ------------------------------------------------------------------


def test_random_resized_crop__shapes_dtype_and_determinism():
    crop = RandomResizedCrop((16, 12), horizontal_flip=True)
    images = _images(5, 28, 28, 3)
    out = crop(images, np.random.default_rng([1, 2, 3]))
    assert out.shape == (5, 16, 12, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, crop(images, np.random.default_rng([1, 2, 3])))
    assert not np.array_equal(out, crop(images, np.random.default_rng([1, 2, 4])))
    assert -1e-6 <= out.min() and out.max() <= 1.0 + 1e-6  # convex weights keep the range


def test_random_resized_crop__identity_with_full_scale_and_unit_ratio():
    crop = RandomResizedCrop(28, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    images = _images(6, 28, 28, 1)
    np.testing.assert_allclose(crop(images, 0), images, rtol=1e-6, atol=1e-7)


def test_random_resized_crop__is_a_masked_image_dataset_transform():
    """Called as MaskedImageDataset calls it: (images, Generator) per batch."""
    crop = RandomResizedCrop(8)
    batch = _images(4, 16, 16, 1)
    first = crop(batch, np.random.default_rng([0, 0, 1]))
    again = crop(batch, np.random.default_rng([0, 0, 1]))
    np.testing.assert_array_equal(first, again)


def test_random_resized_crop__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `size`"):
        RandomResizedCrop(0)
    with pytest.raises(ValueError, match="Invalid value for argument `scale`"):
        RandomResizedCrop(8, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="Invalid value for argument `horizontal_flip`"):
        RandomResizedCrop(8, horizontal_flip=1)
    with pytest.raises(ValueError, match="Invalid value for argument `rng`"):
        RandomResizedCrop(8)(_images(), rng=None)


# --- normalisation -------------------------------------------------------------------


def test_normalize__imagenet_constants_and_exact_values():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    images = np.ones((1, 1, 1, 3))
    out = Normalize(IMAGENET_MEAN, IMAGENET_STD)(images)
    expected = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)
    assert out.dtype == np.float32


def test_normalize__dataset_statistics_give_zero_mean_unit_std():
    images = _images(50, 8, 8, 1) * 0.3 + 0.2
    mean, std = channel_mean_std(images, batch_size=7)
    np.testing.assert_allclose(mean, [images.mean()], rtol=1e-10)
    np.testing.assert_allclose(std, [images.std()], rtol=1e-8)
    out = Normalize(mean, std)(images)
    assert abs(out.mean()) < 1e-5 and math.isclose(out.std(), 1.0, rel_tol=1e-4)


def test_normalize__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `std`"):
        Normalize((0.5, 0.5), (0.1, 0.0))
    with pytest.raises(ValueError, match="Invalid value for argument `std`"):
        Normalize((0.5, 0.5), (0.1,))
    with pytest.raises(ValueError, match="Invalid value for argument `images`"):
        Normalize(IMAGENET_MEAN, IMAGENET_STD)(np.zeros((1, 2, 2, 1)))


def test_compose__crop_then_normalize_matches_by_hand():
    images = _images(3, 12, 12, 3)
    crop, norm = RandomResizedCrop(6), Normalize(IMAGENET_MEAN, IMAGENET_STD)
    got = Compose([crop, norm])(images, rng=5)
    np.testing.assert_allclose(got, norm(crop(images, 5)), rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid value for argument `transforms`"):
        Compose([])
