"""Batch augmentation of the official I-JEPA pipeline: random resized crop, normalisation.

The official training transform (facebookresearch/ijepa
``src/transforms.py::make_transforms``, with the values of
``configs/in1k_vith14_ep300.yaml``) is: ``RandomResizedCrop(crop_size,
scale=crop_scale)`` with ``crop_scale = (0.3, 1.0)`` and torchvision's
default aspect ratios ``(3/4, 4/3)``; horizontal flip, colour distortion
and blur are implemented but switched off (``use_horizontal_flip: false``,
``color_jitter_strength: 0.0``); then ``ToTensor`` and ``Normalize`` with
the ImageNet mean and std. I-JEPA needs no hand-crafted views (paper,
Sec. 1): the crop only varies scale and framing.

Here the same steps work on a whole batch of NumPy images at once,
``(B, H, W, C)`` channels last, with no Python loop over images:

- :func:`sample_crop_boxes` draws one box per image with torchvision's
  ``RandomResizedCrop.get_params`` rule (10 attempts of area fraction
  ``U(scale)`` and log-uniform aspect ratio, first one that fits, else the
  centre fallback), vectorised over the batch and the attempts;
- :func:`resized_crop` resamples every box to the output size with one
  ``(out, in)`` interpolation matrix per image and axis, applied in one
  einsum: bilinear (triangle filter) with Pillow's antialiasing when a box
  shrinks, so it matches torchvision on PIL images (crop, then bilinear
  resize); only pixels inside the box contribute;
- :class:`RandomResizedCrop` and :class:`Normalize` are callables
  ``(images, rng) -> images``, the ``transform`` of
  ``backends.keras.MaskedImageDataset``; :class:`Compose` chains them.

Randomness is explicit: every random call takes ``rng``, a
``numpy.random.Generator`` or an int seed, and draws a fixed number of
values per image, so a batch's crops depend only on that ``rng``.

**LeJEPA views** (Balestriero & LeCun 2025, reference ``MINIMAL.md``
``HFDataset`` and the reference README's view table): the photometric
transforms :class:`ColorJitter`, :class:`RandomGrayscale`,
:class:`GaussianBlur` and :class:`RandomSolarize` (torchvision semantics on
RGB in ``[0, 1]``, each applied per image with its own probability),
:class:`MultiView`, which stacks independent draws of a global and a local
recipe into ``(B, V, h, w, C)`` views, and :func:`lejepa_views`, the
reference recipe as a :class:`MultiView` (the ``views_transform`` of
``backends.keras.MultiViewDataset``).

Example:

>>> crop = RandomResizedCrop(16)
>>> out = crop(np.zeros((4, 28, 28, 1), "float32"), rng=0)
>>> out.shape, out.dtype.name
((4, 16, 16, 1), 'float32')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from jepa_components._validation import (
    check_bool,
    check_float,
    check_int,
    check_pair,
    check_range_pair,
    invalid,
    is_real,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LUMA_WEIGHTS",
    "ColorJitter",
    "Compose",
    "GaussianBlur",
    "MultiView",
    "Normalize",
    "RandomGrayscale",
    "RandomResizedCrop",
    "RandomSolarize",
    "channel_mean_std",
    "gaussian_kernels",
    "lejepa_views",
    "resized_crop",
    "sample_crop_boxes",
]

# torchvision / official ``make_transforms`` defaults (RGB, pixel values in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_ATTEMPTS = 10  # torchvision RandomResizedCrop.get_params

# What the random transforms take as ``rng``: a Generator or an int seed >= 0.
RandomState = np.random.Generator | int
# A batch transform: ``(images, rng) -> images``.
Transform = Callable[[Any, np.random.Generator], Any]


def _generator(rng: RandomState) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise invalid("rng", "a numpy.random.Generator or an integer seed >= 0", rng)


def _check_images(images: npt.ArrayLike) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise invalid("images", "a rank-4 array (B, H, W, C)", f"array of shape {images.shape}")
    return images


def sample_crop_boxes(
    rng: RandomState,
    num_images: int,
    image_size: int | tuple[int, int],
    *,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> npt.NDArray[np.int64]:
    """Random crop boxes, torchvision's ``RandomResizedCrop.get_params`` per image.

    For each image, up to 10 attempts draw a target area ``H * W * U(scale)``
    and an aspect ratio ``w / h = exp(U(log ratio))``; ``w`` and ``h`` are
    rounded and the first attempt that fits in the image is placed
    uniformly at random. If none fits, the box is the centre crop of the
    largest size whose aspect ratio is clamped into ``ratio`` (the whole
    image if its own ratio is inside). Always draws ``4 * 10 + 2`` numbers
    per image (attempts that are not needed are still drawn).

    Args:
        rng: ``numpy.random.Generator`` or int seed.
        num_images: int >= 1.
        image_size: ``(H, W)`` or an int.
        scale: ``(min, max)`` area fraction, ``0 < min <= max <= 1``.
        ratio: ``(min, max)`` aspect ratio ``w / h``, ``0 < min <= max``.

    Returns:
        ``(num_images, 4)`` int64 ``(top, left, height, width)``.

    >>> sample_crop_boxes(0, 2, 8, scale=(1.0, 1.0), ratio=(1.0, 1.0)).tolist()
    [[0, 0, 8, 8], [0, 0, 8, 8]]
    """
    rng = _generator(rng)
    num_images = check_int("num_images", num_images, low=1)
    height, width = check_pair("image_size", image_size)
    scale = check_range_pair("scale", scale, low=0.0, high=1.0)
    ratio = check_range_pair("ratio", ratio, low=0.0)
    shape = (num_images, _ATTEMPTS)
    area = height * width * rng.uniform(scale[0], scale[1], size=shape)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=shape))
    box_w = np.rint(np.sqrt(area * aspect)).astype(np.int64)
    box_h = np.rint(np.sqrt(area / aspect)).astype(np.int64)
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = np.argmax(fits, axis=1)  # first attempt that fits (0 if none)
    rows = np.arange(num_images)
    box_h, box_w = box_h[rows, first], box_w[rows, first]
    position = rng.uniform(size=(num_images, 2))
    top = np.floor(position[:, 0] * (height - box_h + 1)).astype(np.int64)
    left = np.floor(position[:, 1] * (width - box_w + 1)).astype(np.int64)
    # Centre fallback (torchvision), for images where no attempt fitted.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = int(round(height * ratio[1])), height
    else:
        fallback_w, fallback_h = width, height
    none_fit = ~fits.any(axis=1)
    box_h = np.where(none_fit, fallback_h, box_h)
    box_w = np.where(none_fit, fallback_w, box_w)
    top = np.where(none_fit, (height - fallback_h) // 2, top)
    left = np.where(none_fit, (width - fallback_w) // 2, left)
    return np.stack([top, left, box_h, box_w], axis=1).astype(np.int64)


def _resample_matrices(starts, lengths, in_size, out_size):
    """``(B, out_size, in_size)`` rows of triangle-filter weights, one matrix per box.

    Output pixel ``o`` of a box ``[start, start + length)`` is centred at
    ``start + (o + 0.5) * length / out_size`` (half-pixel centres); input
    pixel ``x`` (centre ``x + 0.5``) weighs ``max(0, 1 - |d| / support)``,
    ``support = max(length / out_size, 1)`` (antialiasing when shrinking,
    as Pillow's bilinear filter); pixels outside the box weigh 0 and each
    row is normalised to sum 1.
    """
    step = lengths.astype(np.float64) / out_size  # (B,)
    centres = starts[:, None] + (np.arange(out_size) + 0.5) * step[:, None]  # (B, out)
    support = np.maximum(step, 1.0)[:, None, None]
    pixels = np.arange(in_size) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(pixels - centres[:, :, None]) / support)
    inside = (pixels >= starts[:, None, None]) & (pixels < (starts + lengths)[:, None, None])
    weights = np.where(inside, weights, 0.0)
    return weights / weights.sum(axis=2, keepdims=True)


def resized_crop(
    images: npt.ArrayLike,
    boxes: npt.ArrayLike,
    size: int | tuple[int, int],
    *,
    flip: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float32]:
    """Crop every image to its box and resize it (bilinear, antialiased) to ``size``.

    Args:
        images: ``(B, H, W, C)`` numeric.
        boxes: ``(B, 4)`` int ``(top, left, height, width)``, inside the image
            (e.g. :func:`sample_crop_boxes`).
        size: output ``(h, w)`` or an int.
        flip: None or ``(B,)`` bool: mirror those outputs left-right.

    Returns:
        ``(B, h, w, C)`` float32. A box of exactly the output size is copied
        unchanged (pure slicing); otherwise values match a crop followed by
        Pillow's bilinear resize.

    >>> images = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> resized_crop(images, np.array([[1, 2, 2, 2]]), 2)[0, ..., 0].tolist()
    [[6.0, 7.0], [10.0, 11.0]]
    """
    images = _check_images(images)
    out_h, out_w = check_pair("size", size)
    boxes = np.asarray(boxes)
    batch, height, width = images.shape[:3]
    if boxes.shape != (batch, 4) or not np.issubdtype(boxes.dtype, np.integer):
        raise invalid(
            "boxes",
            f"a ({batch}, 4) integer array (top, left, height, width)",
            f"array of shape {boxes.shape} and dtype {boxes.dtype}",
        )
    top, left, box_h, box_w = boxes.T
    if (
        np.any(box_h < 1)
        or np.any(box_w < 1)
        or np.any(top < 0)
        or np.any(left < 0)
        or np.any(top + box_h > height)
        or np.any(left + box_w > width)
    ):
        raise invalid(
            "boxes",
            f"non-empty boxes inside the {height}x{width} images",
            "boxes outside the image",
        )
    rows = _resample_matrices(top, box_h, height, out_h)  # (B, out_h, H)
    cols = _resample_matrices(left, box_w, width, out_w)  # (B, out_w, W)
    if flip is not None:
        mirror = np.asarray(flip, dtype=bool).reshape(batch)
        cols = np.where(mirror[:, None, None], cols[:, ::-1], cols)
    # float32 throughout: each output sums a few weights in [0, 1]; ~2x faster.
    out = np.einsum(
        "boh,bhwc,bpw->bopc",
        rows.astype(np.float32),
        images.astype(np.float32, copy=False),
        cols.astype(np.float32),
        optimize=True,
    )
    return np.ascontiguousarray(out, dtype=np.float32)


class RandomResizedCrop:
    """The official I-JEPA crop as a batch transform ``(images, rng) -> images``.

    Args:
        size: output side (int) or ``(h, w)``.
        scale: area fraction range (official ``crop_scale`` ``(0.3, 1.0)``).
        ratio: aspect-ratio range ``w / h`` (torchvision default ``(3/4, 4/3)``).
        horizontal_flip: also mirror each image with probability 1/2
            (official ``use_horizontal_flip``, off in every released config).

    Call: ``crop(images, rng)`` with ``images`` ``(B, H, W, C)`` and ``rng`` a
    ``numpy.random.Generator`` or int seed; returns ``(B, h, w, C)`` float32.
    Deterministic for a given ``rng`` state; ``MaskedImageDataset`` passes a
    generator seeded by its seed, the epoch and the batch index.

    >>> crop = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    >>> images = np.random.default_rng(0).uniform(size=(2, 8, 8, 3))
    >>> bool(np.allclose(crop(images, rng=1), images))
    True
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        horizontal_flip: bool = False,
    ) -> None:
        self.size = check_pair("size", size)
        self.scale = check_range_pair("scale", scale, low=0.0, high=1.0)
        self.ratio = check_range_pair("ratio", ratio, low=0.0)
        self.horizontal_flip = check_bool("horizontal_flip", horizontal_flip)

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_images(images)
        rng = _generator(rng)
        boxes = sample_crop_boxes(
            rng, len(images), images.shape[1:3], scale=self.scale, ratio=self.ratio
        )
        flip = rng.uniform(size=len(images)) < 0.5 if self.horizontal_flip else None
        return resized_crop(images, boxes, self.size, flip=flip)

    def __repr__(self) -> str:
        return (
            f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"horizontal_flip={self.horizontal_flip})"
        )


class Normalize:
    """``(images - mean) / std`` per channel, as a batch transform.

    Args:
        mean: one float per channel (or one for all), e.g. :data:`IMAGENET_MEAN`
            for RGB in ``[0, 1]`` (the official pipeline), or a dataset's own
            statistics from :func:`channel_mean_std` for grayscale data.
        std: same length as ``mean``, every value > 0.

    Call: ``normalize(images, rng=None)`` -> float32 of the same shape
    (``rng`` is accepted and ignored, so it chains with random transforms).

    >>> Normalize(0.5, 0.25)(np.array([[[[1.0]]]]))[0, 0, 0].tolist()
    [2.0]
    """

    def __init__(self, mean: float | Iterable[float], std: float | Iterable[float]) -> None:
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise invalid("mean", "one finite number per channel", mean.tolist())
        if std.shape != mean.shape or not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise invalid("std", f"{len(mean)} finite number(s) > 0 (one per mean)", std.tolist())
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())

    def __call__(self, images: npt.ArrayLike, rng: object = None) -> npt.NDArray[np.float32]:
        images = np.asarray(images)
        channels = images.shape[-1] if images.ndim else 0
        if len(self.mean) not in (1, channels):
            raise invalid(
                "images",
                f"{len(self.mean)} channel(s) (last axis), as mean/std",
                f"array of shape {images.shape}",
            )
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return ((images.astype(np.float32) - mean) / std).astype(np.float32)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply batch transforms in order, passing the same ``rng`` to each.

    >>> chain = Compose([RandomResizedCrop(4), Normalize(0.5, 0.5)])
    >>> round(chain(np.ones((2, 8, 8, 1)), rng=0).max().item(), 5)
    1.0
    """

    def __init__(self, transforms: Iterable[Transform]) -> None:
        transforms = list(transforms)
        if not transforms or not all(callable(t) for t in transforms):
            raise invalid(
                "transforms", "a non-empty list of callables (images, rng) -> images", transforms
            )
        self.transforms = transforms

    def __call__(self, images: Any, rng: RandomState) -> Any:
        rng = _generator(rng)
        for transform in self.transforms:
            images = transform(images, rng)
        return images

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def channel_mean_std(
    images: npt.ArrayLike, *, batch_size: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``(N, H, W, C)`` images.

    The statistics :class:`Normalize` needs for data other than ImageNet
    (e.g. grayscale Fashion-MNIST); computed in float64, ``batch_size``
    images at a time.

    Returns:
        ``(mean, std)``, two tuples of ``C`` floats.

    >>> channel_mean_std(np.array([0.0, 1.0]).reshape(2, 1, 1, 1))
    ((0.5,), (0.5,))
    """
    images = _check_images(images)
    batch_size = check_int("batch_size", batch_size, low=1)
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size].astype(np.float64)
        total += chunk.sum(axis=(0, 1, 2))
        total_sq += np.square(chunk).sum(axis=(0, 1, 2))
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return tuple(mean.tolist()), tuple(std.tolist())


# ------------------------------------------------------------------ LeJEPA views

# torchvision ``rgb_to_grayscale`` (ITU-R 601-2 luma); PIL's ``convert("L")``
# uses 0.299 / 0.587 / 0.114 (within 1e-4).
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)

_RANGE_SLACK = 1e-3  # float rounding of resampled [0, 1] images (crop outputs)


def _check_probability(p: object) -> float:
    return check_float("p", p, low=0.0, high=1.0)


def _check_channels(images: np.ndarray, allowed: tuple[int, ...], why: str) -> None:
    if images.shape[-1] not in allowed:
        raise invalid(
            "images",
            f"{' or '.join(map(str, allowed))} channel(s) on the last axis ({why})",
            f"array of shape {images.shape}",
        )


def _check_unit_range(images: np.ndarray, who: str) -> np.ndarray:
    """float32 images in ``[0, 1]`` (values within float slack are clipped)."""
    images = images.astype(np.float32, copy=False)
    if images.size and (
        not np.isfinite(images).all()
        or images.min() < -_RANGE_SLACK
        or images.max() > 1 + _RANGE_SLACK
    ):
        raise invalid(
            "images",
            f"values in [0, 1] for {who} (scale uint8 images by 1/255 first and "
            "normalise after the photometric transforms)",
            f"values in [{images.min():g}, {images.max():g}]",
        )
    return np.clip(images, 0.0, 1.0)


def _apply_where(images: np.ndarray, chosen: np.ndarray, function: Callable) -> np.ndarray:
    """``function`` applied to the images flagged in ``chosen`` ``(B,)``, the others copied."""
    out = np.array(images, dtype=np.float32, copy=True)
    if chosen.any():
        out[chosen] = function(images[chosen], chosen)
    return out


def _grayscale(images: np.ndarray) -> np.ndarray:
    """``(b, H, W, 3) -> (b, H, W, 1)`` luma (:data:`LUMA_WEIGHTS`)."""
    return (images @ np.asarray(LUMA_WEIGHTS, np.float32))[..., None]


def _blend(images: np.ndarray, other: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """torchvision ``_blend``: ``factor * images + (1 - factor) * other``, clamped to [0, 1]."""
    factor = factor.astype(np.float32).reshape(-1, 1, 1, 1)
    return np.clip(factor * images + (1.0 - factor) * other, 0.0, 1.0)


def _rgb_to_hsv(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    value = images.max(axis=-1)
    chroma = value - images.min(axis=-1)
    grey = chroma == 0
    saturation = chroma / np.where(value == 0, 1.0, value)
    safe = np.where(grey, 1.0, chroma)
    hue = np.where(
        value == r,
        (g - b) / safe,
        np.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
    )
    hue = np.where(grey, 0.0, hue / 6.0) % 1.0
    return hue, saturation, value


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    sector = np.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.astype(np.int64) % 6
    p = np.clip(value * (1.0 - saturation), 0.0, 1.0)
    q = np.clip(value * (1.0 - saturation * frac), 0.0, 1.0)
    t = np.clip(value * (1.0 - saturation * (1.0 - frac)), 0.0, 1.0)
    # (r, g, b) per sector 0..5: (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
    table = np.stack(
        [
            np.stack([value, q, p, p, t, value], axis=-1),
            np.stack([t, value, value, q, p, p], axis=-1),
            np.stack([p, p, t, value, value, q], axis=-1),
        ],
        axis=-2,
    )  # (..., 3, 6)
    index = np.broadcast_to(sector[..., None, None], (*sector.shape, 3, 1))
    return np.take_along_axis(table, index, axis=-1)[..., 0]


def _jitter_range(name: str, value: Any, *, hue: bool = False) -> tuple[float, float] | None:
    """torchvision ``ColorJitter._check_input``: a number or a ``(min, max)`` pair; None = off."""
    if is_real(value):
        if hue:
            x = check_float(name, value, low=0.0, high=0.5)
            lo, hi = -x, x
        else:
            x = check_float(name, value, low=0.0)
            lo, hi = max(0.0, 1.0 - x), 1.0 + x
    else:
        if hue:
            lo, hi = check_range_pair(name, value, low=-0.5, high=0.5, low_open=False)
        else:
            lo, hi = check_range_pair(name, value, low=0.0, low_open=False)
    if (hue and lo == hi == 0.0) or (not hue and lo == hi == 1.0):
        return None  # the identity, as torchvision (which then skips the op)
    return lo, hi


class ColorJitter:
    """torchvision's ``RandomApply([ColorJitter(b, c, s, h)], p)`` as a batch transform.

    With probability ``p`` per image, brightness, contrast, saturation and
    hue are changed in a random order drawn per image (as torchvision's
    ``ColorJitter``, which draws one order per call), with factors drawn per
    image: brightness ``f * x``; contrast ``f * x + (1 - f) * mean(gray(x))``
    (the mean over the image); saturation ``f * x + (1 - f) * gray(x)``;
    every one clamped to ``[0, 1]``; hue: ``h`` added to the hue in HSV
    (modulo 1). Factors are uniform in ``[max(0, 1 - v), 1 + v]`` for a
    strength ``v`` (or in a given ``(min, max)``), the hue shift in
    ``[-h, h]``. A strength of 0 is the identity.

    The defaults are the reference ``MINIMAL.md`` (``ColorJitter(0.8, 0.8,
    0.8, 0.2)`` applied with ``p=0.8``); the reference README's table gives
    ``(0.4, 0.4, 0.2, 0.1)``. Differences: the reference jitters PIL uint8
    images (rounded to integers after every step, the contrast mean rounded
    too); here the values stay float32 (torchvision's tensor semantics).

    Args:
        brightness, contrast, saturation: strength ``v >= 0`` or a
            ``(min, max)`` factor range with ``0 <= min <= max``.
        hue: strength in ``[0, 0.5]`` or a ``(min, max)`` shift range in
            ``[-0.5, 0.5]``.
        p: probability in ``[0, 1]`` of jittering an image.

    Call: ``jitter(images, rng)``, ``images`` ``(B, H, W, C)`` with values in
    ``[0, 1]`` and ``C`` 3 (RGB) or 1 (grayscale: brightness and contrast
    only; saturation and hue leave one channel unchanged, as torchvision's
    tensor ops); returns ``(B, H, W, C)`` float32 in ``[0, 1]``. Draws 9
    numbers per image (apply, order, four factors).

    Example:
        >>> jitter = ColorJitter(brightness=(0.5, 0.5), contrast=0, saturation=0, hue=0, p=1.0)
        >>> [round(v, 4) for v in jitter(np.full((1, 1, 1, 3), 0.8), rng=0)[0, 0, 0].tolist()]
        [0.4, 0.4, 0.4]
    """

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.8,
        contrast: float | tuple[float, float] = 0.8,
        saturation: float | tuple[float, float] = 0.8,
        hue: float | tuple[float, float] = 0.2,
        p: float = 0.8,
    ) -> None:
        self.brightness = _jitter_range("brightness", brightness)
        self.contrast = _jitter_range("contrast", contrast)
        self.saturation = _jitter_range("saturation", saturation)
        self.hue = _jitter_range("hue", hue, hue=True)
        self.p = _check_probability(p)

    @staticmethod
    def _adjust(op: int, images: np.ndarray, factor: np.ndarray) -> np.ndarray:
        if op == 0:  # brightness: blend with black
            return _blend(images, np.zeros((), np.float32), factor)
        rgb = images.shape[-1] == 3
        if op == 1:  # contrast: blend with the image's mean luma
            gray = _grayscale(images) if rgb else images
            return _blend(images, gray.mean(axis=(1, 2, 3), keepdims=True), factor)
        if not rgb:  # saturation, hue: no-ops on one channel (torchvision)
            return images
        if op == 2:  # saturation: blend with the luma
            return _blend(images, _grayscale(images), factor)
        hue, saturation, value = _rgb_to_hsv(images)
        hue = (hue + factor.reshape(-1, 1, 1)) % 1.0
        return _hsv_to_rgb(hue, saturation, value).astype(np.float32)

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_images(images)
        _check_channels(images, (1, 3), "RGB, or grayscale for brightness and contrast")
        images = _check_unit_range(images, "ColorJitter")
        rng = _generator(rng)
        batch = len(images)
        apply = rng.uniform(size=batch) < self.p
        order = np.argsort(rng.uniform(size=(batch, 4)), axis=1)  # a random permutation each
        unit = rng.uniform(size=(batch, 4))
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        out = np.array(images, dtype=np.float32, copy=True)
        for step in range(4):
            for op, bounds in enumerate(ranges):
                chosen = apply & (order[:, step] == op)
                if bounds is None or not chosen.any():
                    continue
                factor = bounds[0] + (bounds[1] - bounds[0]) * unit[chosen, op]
                out[chosen] = self._adjust(op, out[chosen], factor)
        return out

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}, p={self.p})"
        )


class RandomGrayscale:
    """torchvision's ``RandomGrayscale(p)`` as a batch transform.

    With probability ``p`` per image, RGB becomes its luma ``0.2989 R +
    0.587 G + 0.114 B`` (ITU-R 601-2, :data:`LUMA_WEIGHTS`, torchvision's
    ``rgb_to_grayscale``), copied to the three channels. One-channel images
    pass unchanged. Reference ``MINIMAL.md``: ``p=0.2``.

    Call: ``gray(images, rng)``, ``images`` ``(B, H, W, C)`` with ``C`` 1 or 3;
    returns ``(B, H, W, C)`` float32. Draws one number per image.

    Example:
        >>> gray = RandomGrayscale(p=1.0)(np.eye(3).reshape(3, 1, 1, 3), rng=0)
        >>> gray.shape, [round(v, 4) for v in gray[:, 0, 0, 0].tolist()]
        ((3, 1, 1, 3), [0.2989, 0.587, 0.114])
    """

    def __init__(self, p: float = 0.2) -> None:
        self.p = _check_probability(p)

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_images(images)
        _check_channels(images, (1, 3), "RGB, or grayscale (returned unchanged)")
        rng = _generator(rng)
        chosen = rng.uniform(size=len(images)) < self.p
        images = images.astype(np.float32, copy=False)
        if images.shape[-1] == 1:
            return np.array(images, copy=True)
        return _apply_where(images, chosen, lambda x, _: np.repeat(_grayscale(x), 3, axis=-1))

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"


def gaussian_kernels(kernel_size: int, sigma: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(B, kernel_size)`` normalised 1-D Gaussian kernels, one per ``sigma`` ``(B,)``.

    torchvision's ``_get_gaussian_kernel1d``: taps at ``x = -(k-1)/2 ..
    (k-1)/2``, weights ``exp(-x^2 / (2 sigma^2))`` divided by their sum.

    >>> gaussian_kernels(3, [1e-3]).round(6).tolist()
    [[0.0, 1.0, 0.0]]
    """
    kernel_size = check_int("kernel_size", kernel_size, low=1)
    sigma = np.asarray(sigma, np.float64).reshape(-1, 1)
    x = np.arange(kernel_size) - (kernel_size - 1) / 2
    weights = np.exp(-0.5 * np.square(x / sigma))
    return weights / weights.sum(axis=1, keepdims=True)


class GaussianBlur:
    """torchvision's ``RandomApply([GaussianBlur(kernel_size, sigma)], p)``, batched.

    With probability ``p`` per image, a separable Gaussian blur with
    ``sigma ~ U(sigma)`` drawn per image (the same along both axes, as
    torchvision), ``kernel_size`` taps per axis (:func:`gaussian_kernels`),
    and reflect padding (torchvision's ``padding_mode="reflect"``: the
    border pixel is not repeated), so a constant image stays constant.
    Reference ``MINIMAL.md``: ``kernel_size=7, sigma=(0.1, 2.0)`` in
    ``RandomApply`` with its default ``p=0.5``. Differences: the reference
    blurs PIL uint8 images (rounded back to integers); here float32 stays
    float32. Images smaller than half the kernel are reflected repeatedly
    (NumPy's ``reflect``) where torch refuses.

    Args:
        kernel_size: odd int >= 1 (taps per axis).
        sigma: ``(min, max)`` standard deviation in pixels, ``0 < min <= max``,
            or one number > 0.
        p: probability in ``[0, 1]`` of blurring an image.

    Call: ``blur(images, rng)``, ``images`` ``(B, H, W, C)``; returns
    ``(B, H, W, C)`` float32. Draws two numbers per image.

    Example:
        >>> impulse = np.zeros((1, 5, 5, 1)); impulse[0, 2, 2] = 1.0
        >>> out = GaussianBlur(3, sigma=1.0, p=1.0)(impulse, rng=0)[0, :, :, 0]
        >>> round(float(out.sum()), 6), round(float(out[2, 2]), 4)
        (1.0, 0.2042)
    """

    def __init__(
        self,
        kernel_size: int = 7,
        sigma: float | tuple[float, float] = (0.1, 2.0),
        p: float = 0.5,
    ) -> None:
        self.kernel_size = check_int("kernel_size", kernel_size, low=1)
        if self.kernel_size % 2 == 0:
            raise invalid("kernel_size", "an odd integer >= 1", kernel_size)
        if is_real(sigma):
            s = check_float("sigma", sigma, low=0.0, low_open=True)
            self.sigma = (s, s)
        else:
            self.sigma = check_range_pair("sigma", sigma, low=0.0)
        self.p = _check_probability(p)

    def _blur(self, images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        kernels = gaussian_kernels(self.kernel_size, sigma).astype(np.float32)  # (b, k)
        pad = self.kernel_size // 2
        height, width = images.shape[1:3]
        padded = np.pad(images, ((0, 0), (pad, pad), (0, 0), (0, 0)), mode="reflect")
        rows = sum(
            kernels[:, j, None, None, None] * padded[:, j : j + height]
            for j in range(self.kernel_size)
        )
        padded = np.pad(rows, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="reflect")
        return sum(
            kernels[:, j, None, None, None] * padded[:, :, j : j + width]
            for j in range(self.kernel_size)
        )

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_images(images).astype(np.float32, copy=False)
        rng = _generator(rng)
        draws = rng.uniform(size=(len(images), 2))
        chosen = draws[:, 0] < self.p
        sigma = self.sigma[0] + (self.sigma[1] - self.sigma[0]) * draws[:, 1]
        return _apply_where(images, chosen, lambda x, c: self._blur(x, sigma[c]))

    def __repr__(self) -> str:
        return f"GaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p})"


class RandomSolarize:
    """torchvision's ``RandomApply([RandomSolarize(threshold)], p)`` on ``[0, 1]`` images.

    With probability ``p`` per image, every value ``>= threshold`` becomes
    ``1 - value``. Reference ``MINIMAL.md``: ``threshold=128`` on uint8
    images with ``p=0.2``; on images ``k / 255`` the default ``0.5`` inverts
    the same pixels (``127/255 < 0.5 <= 128/255``).

    Args:
        threshold: in ``[0, 1]``.
        p: probability in ``[0, 1]`` of solarizing an image.

    Call: ``solarize(images, rng)``, ``images`` ``(B, H, W, C)`` in ``[0, 1]``;
    returns ``(B, H, W, C)`` float32. Draws one number per image.

    Example:
        >>> x = np.array([0.0, 0.25, 0.5, 0.75, 1.0]).reshape(1, 1, 5, 1)
        >>> RandomSolarize(0.5, p=1.0)(x, rng=0).ravel().tolist()
        [0.0, 0.25, 0.5, 0.25, 0.0]
    """

    def __init__(self, threshold: float = 0.5, p: float = 0.2) -> None:
        self.threshold = check_float("threshold", threshold, low=0.0, high=1.0)
        self.p = _check_probability(p)

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_unit_range(_check_images(images), "RandomSolarize")
        rng = _generator(rng)
        chosen = rng.uniform(size=len(images)) < self.p
        return _apply_where(images, chosen, lambda x, _: np.where(x >= self.threshold, 1.0 - x, x))

    def __repr__(self) -> str:
        return f"RandomSolarize(threshold={self.threshold}, p={self.p})"


class MultiView:
    """``V`` augmented views of every image: ``(B, H, W, C) -> (B, V, h, w, C)``.

    The LeJEPA / DINO multi-crop input: ``num_global`` views drawn with
    ``global_transform``, then ``num_local`` with ``local_transform``
    (global views first, as :class:`~jepa_components.backends.keras.LeJEPA`
    expects). Every view of every image is an independent draw: ``rng``
    gives one seed per view (``V`` draws), and view ``v`` is computed with
    its own generator, so the global views do not depend on ``num_local``.

    All views must come out the same size: the Keras ViT has one input
    size, so local views are smaller crops (lower ``scale``) resized to the
    global size. The paper and the reference README resize local views to
    96-98 px and feed them at that resolution (a ViT with interpolated
    position embeddings); here they are upsampled instead, which costs more
    compute per local view but keeps one batch array.

    Args:
        global_transform: batch transform ``(images, rng) -> (B, h, w, C)``.
        num_global: int >= 1.
        local_transform: None, or a batch transform with the same output size.
        num_local: int >= 0; > 0 exactly when ``local_transform`` is given.

    Call: ``views(images, rng)`` -> ``(B, V, h, w, C)`` float32, ``V =
    num_global + num_local``.

    Example:
        >>> views = MultiView(RandomResizedCrop(8), 2, RandomResizedCrop(8, scale=(0.05, 0.3)), 3)
        >>> out = views(np.random.default_rng(0).random((4, 16, 16, 1)), rng=0)
        >>> out.shape, out.dtype.name, views.num_views
        ((4, 5, 8, 8, 1), 'float32', 5)
    """

    def __init__(
        self,
        global_transform: Transform,
        num_global: int = 2,
        local_transform: Transform | None = None,
        num_local: int = 0,
    ) -> None:
        if not callable(global_transform):
            raise invalid(
                "global_transform", "a callable (images, rng) -> images", global_transform
            )
        if local_transform is not None and not callable(local_transform):
            raise invalid(
                "local_transform", "None or a callable (images, rng) -> images", local_transform
            )
        self.num_global = check_int("num_global", num_global, low=1)
        self.num_local = check_int("num_local", num_local, low=0)
        if (local_transform is None) != (self.num_local == 0):
            raise invalid(
                "num_local",
                "0 without a `local_transform`, >= 1 with one",
                f"{num_local} (local_transform={local_transform!r})",
            )
        self.global_transform, self.local_transform = global_transform, local_transform

    @property
    def num_views(self) -> int:
        """``V = num_global + num_local``."""
        return self.num_global + self.num_local

    def __call__(self, images: npt.ArrayLike, rng: RandomState) -> npt.NDArray[np.float32]:
        images = _check_images(images)
        rng = _generator(rng)
        seeds = rng.integers(2**63, size=self.num_views, dtype=np.int64)
        views: list[np.ndarray] = []
        for v, seed in enumerate(seeds.tolist()):
            transform = self.global_transform if v < self.num_global else self.local_transform
            view = np.asarray(cast(Transform, transform)(images, np.random.default_rng(seed)))
            if views and view.shape != views[0].shape:
                raise ValueError(
                    "Expected every view of the same shape (one input size for the encoder: "
                    "resize local crops to the global size). Received: view 0 of shape "
                    f"{views[0].shape} and view {v} of shape {view.shape}"
                )
            if view.ndim != 4 or view.shape[0] != len(images):
                raise ValueError(
                    f"Expected a view of shape ({len(images)}, h, w, C) from the transform. "
                    f"Received: view {v} of shape {view.shape}"
                )
            views.append(view)
        return np.stack(views, axis=1).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (
            f"MultiView({self.global_transform!r}, num_global={self.num_global}, "
            f"local_transform={self.local_transform!r}, num_local={self.num_local})"
        )


# Reference MINIMAL.md: ColorJitter(0.8, 0.8, 0.8, 0.2) with p=0.8, at 128 px.
_LEJEPA_JITTER = (0.8, 0.8, 0.8, 0.2)
_LEJEPA_BLUR_SIZE = 128


def lejepa_views(
    size: int | tuple[int, int],
    channels: int = 3,
    num_global: int = 2,
    num_local: int = 2,
    global_scale: tuple[float, float] = (0.3, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.3),
    normalize: Transform | None = None,
    *,
    color_jitter: tuple[float, float, float, float] = _LEJEPA_JITTER,
    blur_sigma: tuple[float, float] | None = None,
) -> MultiView:
    """The LeJEPA view recipe as a :class:`MultiView` (global views first).

    Per view (reference ``MINIMAL.md`` ``HFDataset``, the same for global and
    local views as the reference README's table):

    - RGB (``channels=3``): :class:`RandomResizedCrop` with a horizontal
      flip, ``ColorJitter(*color_jitter, p=0.8)``, ``RandomGrayscale(0.2)``,
      ``GaussianBlur(7, blur_sigma, p=0.5)``, ``RandomSolarize(0.5, 0.2)``,
      then ``normalize``. The reference flips last; a flip commutes with
      every later step (pixel-wise, or a symmetric blur), so it is done
      with the crop.
    - one channel (e.g. Fashion-MNIST): the crop with a flip and the blur,
      then ``normalize``: the colour steps have nothing to act on
      (saturation, hue, grayscale) or invert the images' polarity
      (solarize), so they are left out.

    Defaults and where they come from: ``num_global=2`` (paper, README);
    ``num_local=2``, so ``V=4`` views as ``MINIMAL.md``'s ``V`` (which crops
    all four with ``scale=(0.08, 1.0)``; the paper uses 8 local views, the
    README 6: more views cost compute linearly here, as every view is fed at
    ``size``); ``global_scale=(0.3, 1.0)`` and ``local_scale=(0.05, 0.3)``
    (reference README, "Data augmentation and views"); ``color_jitter``
    ``MINIMAL.md``'s ``(0.8, 0.8, 0.8, 0.2)`` (the README lists ``(0.4, 0.4,
    0.2, 0.1)``). ``blur_sigma`` None: ``(0.1, 2.0)`` (``MINIMAL.md``, at 128
    px) scaled by ``min(1, min(size) / 128)``, so a 32-px view is not
    blurred four times as hard as the reference's; the reference values at
    128 px and above. Local views come out at ``size`` too (see
    :class:`MultiView`; the paper feeds them at 96 px).

    Args:
        size: output side (int) or ``(h, w)`` of every view.
        channels: 3 (RGB in ``[0, 1]``) or 1.
        num_global: int >= 1; num_local: int >= 0.
        global_scale, local_scale: crop area fractions ``(min, max)``.
        normalize: None or a transform applied last (e.g.
            ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` as the reference, or a
            dataset's :func:`channel_mean_std`).
        color_jitter: ``(brightness, contrast, saturation, hue)`` strengths.
        blur_sigma: None (see above) or a ``(min, max)`` sigma in pixels.

    Returns:
        A :class:`MultiView` mapping ``(B, H, W, channels)`` images in
        ``[0, 1]`` to ``(B, num_global + num_local, h, w, channels)`` float32.

    Example:
        >>> views = lejepa_views(16, channels=1, num_global=2, num_local=2)
        >>> views(np.random.default_rng(0).random((3, 28, 28, 1)), rng=0).shape
        (3, 4, 16, 16, 1)
    """
    out_h, out_w = check_pair("size", size)
    channels = check_int("channels", channels, low=1)
    if channels not in (1, 3):
        raise invalid("channels", "1 (grayscale) or 3 (RGB)", channels)
    num_global = check_int("num_global", num_global, low=1)
    num_local = check_int("num_local", num_local, low=0)
    global_scale = check_range_pair("global_scale", global_scale, low=0.0, high=1.0)
    local_scale = check_range_pair("local_scale", local_scale, low=0.0, high=1.0)
    if normalize is not None and not callable(normalize):
        raise invalid("normalize", "None or a transform (images, rng) -> images", normalize)
    if not (isinstance(color_jitter, (tuple, list)) and len(color_jitter) == 4):
        raise invalid(
            "color_jitter", "four strengths (brightness, contrast, saturation, hue)", color_jitter
        )
    if blur_sigma is None:
        shrink = min(1.0, min(out_h, out_w) / _LEJEPA_BLUR_SIZE)
        blur_sigma = (0.1 * shrink, 2.0 * shrink)
    photometric: list[Transform]
    if channels == 3:
        photometric = [
            ColorJitter(*color_jitter, p=0.8),
            RandomGrayscale(p=0.2),
            GaussianBlur(7, blur_sigma, p=0.5),
            RandomSolarize(0.5, p=0.2),
        ]
    else:
        photometric = [GaussianBlur(7, blur_sigma, p=0.5)]
    tail = photometric + ([normalize] if normalize is not None else [])

    def recipe(scale: tuple[float, float]) -> Compose:
        crop = RandomResizedCrop((out_h, out_w), scale=scale, horizontal_flip=True)
        return Compose([crop, *tail])

    return MultiView(
        recipe(global_scale),
        num_global,
        recipe(local_scale) if num_local else None,
        num_local,
    )
