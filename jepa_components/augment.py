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

Example:

>>> crop = RandomResizedCrop(16)
>>> out = crop(np.zeros((4, 28, 28, 1), "float32"), rng=0)
>>> out.shape, out.dtype.name
((4, 16, 16, 1), 'float32')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from jepa_components._validation import (
    check_bool,
    check_int,
    check_pair,
    check_range_pair,
    invalid,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "Normalize",
    "RandomResizedCrop",
    "channel_mean_std",
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
