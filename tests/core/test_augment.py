import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LUMA_WEIGHTS,
    ColorJitter,
    Compose,
    GaussianBlur,
    MultiView,
    Normalize,
    RandomGrayscale,
    RandomResizedCrop,
    RandomSolarize,
    channel_mean_std,
    gaussian_kernels,
    lejepa_views,
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


# --- LeJEPA photometric transforms ---------------------------------------------------


def _jitter_only(**kwargs):
    """A ColorJitter with every op off except those given, always applied."""
    arguments = dict(brightness=0, contrast=0, saturation=0, hue=0, p=1.0)
    return ColorJitter(**{**arguments, **kwargs})


def _pixel(*rgb):
    return np.asarray(rgb, np.float64).reshape(1, 1, 1, -1)


def test_color_jitter__factor_one_and_zero_strength_are_the_identity():
    images = _images(3, 6, 6, 3)
    for jitter in (
        _jitter_only(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(1.0, 1.0)),
        ColorJitter(0, 0, 0, 0, p=1.0),
        ColorJitter(p=0.0),
    ):
        np.testing.assert_allclose(jitter(images, 0), images, rtol=1e-6)


def test_color_jitter__brightness_scales_and_clamps():
    images = np.array([0.2, 0.5, 0.8]).reshape(1, 1, 3, 1) * np.ones((1, 1, 1, 3))
    half = _jitter_only(brightness=(0.5, 0.5))(images, 0)
    np.testing.assert_allclose(half[0, 0, :, 0], [0.1, 0.25, 0.4], rtol=1e-6)
    double = _jitter_only(brightness=(2.0, 2.0))(images, 0)
    np.testing.assert_allclose(double[0, 0, :, 0], [0.4, 1.0, 1.0], rtol=1e-6)


def test_color_jitter__contrast_blends_with_the_mean_luma():
    images = np.concatenate([_pixel(1, 0, 0), _pixel(0, 0, 1)], axis=2)  # (1, 1, 2, 3)
    mean = (LUMA_WEIGHTS[0] + LUMA_WEIGHTS[2]) / 2
    out = _jitter_only(contrast=(0.25, 0.25))(images, 0)
    expected = np.clip(0.25 * images + 0.75 * mean, 0, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    flat = _jitter_only(contrast=(0.0, 0.0))(images, 0)
    np.testing.assert_allclose(flat, np.full_like(images, mean), rtol=1e-6)


def test_color_jitter__saturation_zero_is_the_luma():
    images = _images(2, 4, 4, 3)
    out = _jitter_only(saturation=(0.0, 0.0))(images, 0)
    luma = images @ np.asarray(LUMA_WEIGHTS)
    np.testing.assert_allclose(out, np.repeat(luma[..., None], 3, axis=-1), rtol=1e-5)


@pytest.mark.parametrize(
    "shift, expected",
    [(1 / 3, (0, 1, 0)), (-1 / 3, (0, 0, 1)), (0.5, (0, 1, 1)), (1 / 6, (1, 1, 0))],
)
def test_color_jitter__hue_shift_of_pure_red(shift, expected):
    out = _jitter_only(hue=(shift, shift))(_pixel(1, 0, 0), 0)
    np.testing.assert_allclose(out[0, 0, 0], expected, atol=1e-6)


def test_color_jitter__hue_shift_matches_colorsys():
    colorsys = pytest.importorskip("colorsys")
    images = _images(2, 5, 5, 3, seed=4)
    out = _jitter_only(hue=(0.13, 0.13))(images, 0)
    expected = []
    for r, g, b in images.reshape(-1, 3):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb((h + 0.13) % 1.0, s, v))
    np.testing.assert_allclose(out.reshape(-1, 3), expected, atol=1e-5)


def test_color_jitter__random_order_per_image():
    """Saturation and hue do not commute: both orders occur, about half each."""
    images = np.broadcast_to(_pixel(0.9, 0.3, 0.1), (400, 1, 1, 3))
    out = _jitter_only(saturation=(0.3, 0.3), hue=(0.25, 0.25))(images, 7)[:, 0, 0]
    sat = _jitter_only(saturation=(0.3, 0.3))
    hue = _jitter_only(hue=(0.25, 0.25))
    one = hue(sat(images[:1], 0), 0)[0, 0, 0]
    other = sat(hue(images[:1], 0), 0)[0, 0, 0]
    assert not np.allclose(one, other)
    first = np.all(np.isclose(out, one, atol=1e-6), axis=1)
    second = np.all(np.isclose(out, other, atol=1e-6), axis=1)
    assert np.all(first | second) and 0.4 < first.mean() < 0.6


def test_color_jitter__factor_ranges_and_probability():
    images = np.full((4000, 1, 1, 3), 0.5)
    factors = _jitter_only(brightness=0.8)(images, 1)[:, 0, 0, 0] / 0.5
    assert 0.2 - 1e-6 <= factors.min() < 0.21 and 1.79 < factors.max() <= 1.8 + 1e-6
    applied = ColorJitter(brightness=0.8, contrast=0, saturation=0, hue=0, p=0.3)(images, 2)
    fraction = np.mean(~np.isclose(applied[:, 0, 0, 0], 0.5))
    assert 0.27 < fraction < 0.33


def test_color_jitter__one_channel_gets_brightness_and_contrast_only():
    images = _images(3, 4, 4, 1)
    np.testing.assert_array_equal(
        _jitter_only(saturation=(0.0, 0.0), hue=(0.4, 0.4))(images, 0),
        images.astype(np.float32),
    )
    out = _jitter_only(contrast=(0.5, 0.5))(images, 0)
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, 0.5 * images + 0.5 * mean, rtol=1e-5)


def test_color_jitter__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `brightness`"):
        ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError, match="Invalid value for argument `contrast`"):
        ColorJitter(contrast=(1.2, 0.8))
    with pytest.raises(ValueError, match="Invalid value for argument `hue`"):
        ColorJitter(hue=0.6)
    with pytest.raises(ValueError, match="Invalid value for argument `p`"):
        ColorJitter(p=1.5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\] for ColorJitter"):
        ColorJitter()(_images(2, 4, 4, 3) * 255, 0)
    with pytest.raises(ValueError, match=r"Invalid value for argument `images`.*channel"):
        ColorJitter()(_images(2, 4, 4, 2), 0)


def test_random_grayscale__luma_weights_replicated():
    images = np.eye(3).reshape(3, 1, 1, 3)
    out = RandomGrayscale(p=1.0)(images, 0)
    assert LUMA_WEIGHTS == (0.2989, 0.587, 0.114)
    np.testing.assert_allclose(
        out[:, 0, 0], np.repeat(np.asarray(LUMA_WEIGHTS)[:, None], 3, axis=1)
    )
    np.testing.assert_array_equal(RandomGrayscale(p=0.0)(images, 0), images.astype(np.float32))
    gray = _images(2, 3, 3, 1)
    np.testing.assert_array_equal(RandomGrayscale(p=1.0)(gray, 0), gray.astype(np.float32))


def test_random_grayscale__probability():
    images = np.broadcast_to(_pixel(1, 0, 0), (4000, 1, 1, 3))
    out = RandomGrayscale(p=0.2)(images, 3)
    assert 0.18 < np.mean(out[:, 0, 0, 1] > 0) < 0.22
    with pytest.raises(ValueError, match="Invalid value for argument `p`"):
        RandomGrayscale(p=-0.1)


def test_gaussian_blur__constant_stays_constant_and_impulse_is_the_kernel():
    constant = np.full((3, 9, 7, 2), 0.3)
    np.testing.assert_allclose(GaussianBlur(p=1.0)(constant, 0), constant, rtol=1e-6)
    impulse = np.zeros((1, 15, 15, 1))
    impulse[0, 7, 7] = 1.0
    out = GaussianBlur(7, sigma=1.5, p=1.0)(impulse, 0)[0, :, :, 0]
    x = np.arange(7) - 3.0
    kernel = np.exp(-(x**2) / (2 * 1.5**2))
    kernel /= kernel.sum()
    np.testing.assert_allclose(out[4:11, 4:11], np.outer(kernel, kernel), rtol=1e-5, atol=1e-8)
    assert out.sum() == pytest.approx(1.0, rel=1e-6) and out[:4].max() == 0
    np.testing.assert_allclose(gaussian_kernels(7, [1.5])[0], kernel)


def test_gaussian_blur__reflect_padding_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    images = _images(2, 10, 12, 2, seed=5)
    out = GaussianBlur(7, sigma=1.2, p=1.0)(images, 0)
    for image, got in zip(images, out):
        expected = ndimage.gaussian_filter(image, (1.2, 1.2, 0), mode="mirror", radius=(3, 3, 0))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_gaussian_blur__sigma_per_image_and_probability():
    impulse = np.zeros((2000, 7, 7, 1))
    impulse[:, 3, 3] = 1.0
    out = GaussianBlur(7, sigma=(0.1, 2.0), p=0.5)(impulse, 0)[:, 3, 3, 0]
    blurred = out < 1.0 - 1e-6
    assert 0.47 < blurred.mean() < 0.53
    assert len(np.unique(out[blurred].round(6))) > 500  # a sigma per image
    # sigma 2: centre 1 / (sum of exp(-x^2/8) over 7 taps)^2; sigma 0.1: ~1
    centre = 1 / np.exp(-(np.arange(-3, 4) ** 2) / 8).sum() ** 2
    assert centre - 1e-4 < out.min() < centre + 0.01


def test_gaussian_blur__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `kernel_size`"):
        GaussianBlur(6)
    with pytest.raises(ValueError, match="Invalid value for argument `sigma`"):
        GaussianBlur(sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match="Invalid value for argument `sigma`"):
        GaussianBlur(sigma=0.0)
    with pytest.raises(ValueError, match="Invalid value for argument `p`"):
        GaussianBlur(p=2)


def test_random_solarize__known_array_and_probability():
    x = np.array([0.0, 0.25, 127 / 255, 128 / 255, 0.75, 1.0]).reshape(1, 1, 6, 1)
    out = RandomSolarize(0.5, p=1.0)(x, 0).ravel()
    np.testing.assert_allclose(out, [0.0, 0.25, 127 / 255, 127 / 255, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_allclose(RandomSolarize(0.0, p=1.0)(x, 0).ravel(), 1 - x.ravel(), atol=1e-7)
    np.testing.assert_array_equal(RandomSolarize(p=0.0)(x, 0), x.astype(np.float32))
    many = RandomSolarize(0.5, p=0.2)(np.full((4000, 1, 1, 1), 0.9), 0)
    assert 0.18 < np.mean(many < 0.5) < 0.22
    with pytest.raises(ValueError, match="Invalid value for argument `threshold`"):
        RandomSolarize(threshold=1.5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\] for RandomSolarize"):
        RandomSolarize()(x * 255, 0)


PHOTOMETRIC = [
    ColorJitter(),
    RandomGrayscale(0.5),
    GaussianBlur(p=0.5),
    RandomSolarize(p=0.5),
]


@pytest.mark.parametrize("transform", PHOTOMETRIC, ids=repr)
def test_photometric__deterministic_shapes_range_and_fixed_draws(transform):
    images = _images(6, 9, 9, 3)
    out = transform(images, np.random.default_rng([1, 2]))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(out, transform(images, np.random.default_rng([1, 2])))
    np.testing.assert_array_equal(transform(images, 5), transform(images, 5))
    # A fixed number of draws per image, whatever is applied: the next draw is the same.
    never, always = (type(transform)(**{**_arguments(transform), "p": p}) for p in (0.0, 1.0))
    after = []
    for variant in (never, always):
        rng = np.random.default_rng(9)
        variant(images, rng)
        after.append(rng.uniform())
    assert after[0] == after[1]
    with pytest.raises(ValueError, match="Invalid value for argument `rng`"):
        transform(images, None)


def _arguments(transform):
    if isinstance(transform, ColorJitter):
        return {}
    if isinstance(transform, GaussianBlur):
        return dict(kernel_size=transform.kernel_size, sigma=transform.sigma)
    if isinstance(transform, RandomSolarize):
        return dict(threshold=transform.threshold)
    return {}


# --- multi-view ----------------------------------------------------------------------


def test_multi_view__shapes_global_first_and_per_view_generators():
    images = _images(4, 16, 16, 1)
    glob, loc = RandomResizedCrop(8), RandomResizedCrop(8, scale=(0.05, 0.3))
    views = MultiView(glob, 2, loc, 3)
    out = views(images, 11)
    assert out.shape == (4, 5, 8, 8, 1) and out.dtype == np.float32 and views.num_views == 5
    seeds = np.random.default_rng(11).integers(2**63, size=5, dtype=np.int64).tolist()
    for v, seed in enumerate(seeds):
        transform = glob if v < 2 else loc
        np.testing.assert_array_equal(out[:, v], transform(images, np.random.default_rng(seed)))


def test_multi_view__deterministic_independent_views_and_stable_globals():
    images = _images(8, 16, 16, 3)
    recipe = lejepa_views(12, num_global=2, num_local=3)
    out = recipe(images, np.random.default_rng([3, 0, 1]))
    np.testing.assert_array_equal(out, recipe(images, np.random.default_rng([3, 0, 1])))
    assert not np.array_equal(out, recipe(images, np.random.default_rng([3, 0, 2])))
    flat = out.reshape(8, 5, -1)
    for a in range(5):
        for b in range(a + 1, 5):
            assert not np.allclose(flat[:, a], flat[:, b])  # every view its own draw
    fewer = lejepa_views(12, num_global=2, num_local=1)(images, np.random.default_rng([3, 0, 1]))
    np.testing.assert_array_equal(fewer[:, :2], out[:, :2])  # globals do not depend on num_local


def test_multi_view__refuses_mismatched_sizes_and_bad_arguments():
    views = MultiView(RandomResizedCrop(8), 1, RandomResizedCrop(6), 1)
    with pytest.raises(ValueError, match="every view of the same shape"):
        views(_images(2, 16, 16), 0)
    with pytest.raises(ValueError, match="Invalid value for argument `num_local`"):
        MultiView(RandomResizedCrop(8), 2, None, 2)
    with pytest.raises(ValueError, match="Invalid value for argument `num_local`"):
        MultiView(RandomResizedCrop(8), 2, RandomResizedCrop(8), 0)
    with pytest.raises(ValueError, match="Invalid value for argument `num_global`"):
        MultiView(RandomResizedCrop(8), 0)
    with pytest.raises(ValueError, match="Invalid value for argument `global_transform`"):
        MultiView(3)
    with pytest.raises(ValueError, match="Invalid value for argument `images`"):
        MultiView(RandomResizedCrop(8))(np.zeros((16, 16, 1)), 0)


def test_lejepa_views__is_the_reference_recipe():
    views = lejepa_views(128, num_global=2, num_local=6)
    assert (views.num_global, views.num_local) == (2, 6)
    for composed, scale in (
        (views.global_transform, (0.3, 1.0)),
        (views.local_transform, (0.05, 0.3)),
    ):
        crop, jitter, gray, blur, solarize = composed.transforms
        assert (crop.size, crop.scale, crop.ratio) == ((128, 128), scale, (3 / 4, 4 / 3))
        assert crop.horizontal_flip
        assert np.allclose([jitter.brightness, jitter.contrast, jitter.saturation], [0.2, 1.8])
        assert jitter.hue == (-0.2, 0.2) and jitter.p == 0.8
        assert gray.p == 0.2
        assert (blur.kernel_size, blur.sigma, blur.p) == (7, (0.1, 2.0), 0.5)
        assert (solarize.threshold, solarize.p) == (0.5, 0.2)
    norm = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    assert lejepa_views(64, normalize=norm).global_transform.transforms[-1] is norm
    small = lejepa_views(32, num_local=0)
    assert small.local_transform is None
    assert small.global_transform.transforms[3].sigma == (0.025, 0.5)  # scaled to 32 px


def test_lejepa_views__grayscale_recipe_and_value_range():
    views = lejepa_views(16, channels=1)
    crop, blur = views.global_transform.transforms
    assert crop.horizontal_flip and blur.kernel_size == 7
    out = views(_images(4, 28, 28, 1), 0)
    assert out.shape == (4, 4, 16, 16, 1) and 0.0 <= out.min() and out.max() <= 1.0 + 1e-6
    rgb = lejepa_views(16)(_images(4, 28, 28, 3), 0)
    assert rgb.shape == (4, 4, 16, 16, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0 + 1e-6


def test_lejepa_views__validates():
    with pytest.raises(ValueError, match="Invalid value for argument `channels`"):
        lejepa_views(16, channels=2)
    with pytest.raises(ValueError, match="Invalid value for argument `local_scale`"):
        lejepa_views(16, local_scale=(0.3, 0.05))
    with pytest.raises(ValueError, match="Invalid value for argument `num_global`"):
        lejepa_views(16, num_global=0)
    with pytest.raises(ValueError, match="Invalid value for argument `normalize`"):
        lejepa_views(16, normalize="imagenet")
    with pytest.raises(ValueError, match="Invalid value for argument `color_jitter`"):
        lejepa_views(16, color_jitter=(0.4, 0.4))
