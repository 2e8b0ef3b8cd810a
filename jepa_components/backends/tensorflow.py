"""TensorFlow glue: add I-JEPA masks to a ``tf.data`` pipeline.

Example:
    >>> import tensorflow as tf
    >>> from jepa_components.masks import MultiBlockMaskSampler
    >>> from jepa_components.backends.tensorflow import add_masks
    >>> images = tf.data.Dataset.from_tensor_slices(tf.zeros((10, 32, 32, 3)))
    >>> sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
    >>> batch = next(iter(add_masks(images, sampler, batch_size=4)))
    >>> tuple(batch["images"].shape), tuple(batch["targets"].shape)
    ((4, 32, 32, 3), (4, 4, 4))
"""

from __future__ import annotations

try:
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - exercised without tensorflow
    raise ImportError(
        "jepa_components.backends.tensorflow needs TensorFlow: "
        'pip install "jepa-components[tensorflow]"'
    ) from error

from jepa_components._validation import check_pair
from jepa_components.masks import MaskSampler, check_sampler_grid

__all__ = ["add_masks"]

_KEYS = ("context", "context_valid", "targets", "targets_valid")


def _check_grid(dataset, sampler, grid_size):
    """The sampler and the images on the model's patch grid (``grid_size``), if given."""
    if grid_size is None:
        return
    expected = check_pair("grid_size", grid_size)
    check_sampler_grid(sampler, expected)
    shape = getattr(dataset.element_spec, "shape", None)
    if shape is None or shape.rank != 3 or None in shape.as_list()[:2]:
        return  # dicts, tuples or unknown sizes: nothing to compare
    height, width = shape.as_list()[:2]
    if height % expected[0] or width % expected[1] or height // expected[0] != width // expected[1]:
        raise ValueError(
            "Invalid value for argument `dataset`. Expected images whose size is a whole "
            f"number of square patches of the {expected} patch grid. Received: images of "
            f"size {(height, width)}"
        )


def add_masks(
    dataset: tf.data.Dataset,
    sampler: MaskSampler,
    batch_size: int,
    drop_remainder: bool = False,
    *,
    grid_size: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batch an *unbatched* dataset of images into I-JEPA training dicts.

    Element ``k`` of ``dataset`` (counted by ``enumerate``) gets the masks of
    sample ``k`` of the sampler's stream, so call it on a dataset already
    repeated (``images.repeat(epochs)``) for fresh masks every epoch; results
    do not depend on batch size or on ``tf.data`` parallelism. With the
    default ``ragged="pad"`` every mask tensor has a static shape.

    Returns a dataset of ``{"images": (B, H, W, C), "context": (B, Kc) int32,
    "context_valid": (B, Kc) bool, "targets": (B, M, Kt) int32,
    "targets_valid": (B, M, Kt) bool}``, ready for ``IJEPA.fit``.

    ``grid_size``: the model's patch grid (``encoder.grid_size``); when
    given, a sampler drawing on another grid is refused (its indices would
    address the wrong positions), and so is an image size of the dataset
    that is not a whole number of patches of that grid (a static shape only).
    """
    if not isinstance(sampler, MaskSampler):
        raise ValueError(
            "Invalid value for argument `sampler`. Expected a jepa_components.masks "
            f"sampler. Received: {type(sampler).__name__}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an int >= 1. "
            f"Received: {batch_size!r}"
        )
    _check_grid(dataset, sampler, grid_size)
    m = sampler.num_targets
    padded = sampler.ragged == "pad"
    kc = sampler.context_length if padded else None
    kt = sampler.target_length if padded else None

    def draw(ids):
        masks = sampler.sample_at(ids).as_dict()
        return tuple(masks[key] for key in _KEYS)

    def attach(ids, images):
        arrays = tf.numpy_function(draw, [ids], [tf.int32, tf.bool, tf.int32, tf.bool])
        out = {"images": images}
        for key, value in zip(_KEYS, arrays):
            rest = [kc] if key.startswith("context") else [m, kt]
            value.set_shape(ids.shape.concatenate(rest))
            out[key] = value
        return out

    return (
        dataset.enumerate()
        .batch(batch_size, drop_remainder=drop_remainder)
        .map(attach, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    )
