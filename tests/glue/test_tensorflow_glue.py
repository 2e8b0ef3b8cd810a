"""backends/tensorflow.py: tf.data masks keyed by element number, static shapes."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from jepa_components.backends.tensorflow import add_masks  # noqa: E402
from jepa_components.masks import MultiBlockMaskSampler  # noqa: E402


def test_add_masks__element_k_gets_sample_k():
    sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=3)
    images = tf.data.Dataset.from_tensor_slices(tf.zeros((10, 16, 16, 1))).repeat(2)
    batches = list(add_masks(images, sampler, batch_size=4))
    targets = np.concatenate([b["targets"].numpy() for b in batches])
    assert targets.shape[0] == 20
    assert np.array_equal(targets, sampler.sample(20, start=0).targets)
    assert batches[0]["targets"].shape[1:] == (4, sampler.target_length)


def test_add_masks__static_shapes():
    sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
    ds = add_masks(tf.data.Dataset.from_tensor_slices(tf.zeros((8, 16, 16, 3))), sampler, 4, True)
    spec = ds.element_spec
    assert spec["context"].shape.as_list() == [4, sampler.context_length]
    assert spec["targets_valid"].shape.as_list() == [4, 4, sampler.target_length]


def test_add_masks__validates():
    ds = tf.data.Dataset.from_tensor_slices(tf.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="batch_size"):
        add_masks(ds, MultiBlockMaskSampler(grid_size=(4, 4), min_context=2), 0)
    with pytest.raises(ValueError, match="sampler"):
        add_masks(ds, object(), 2)


def test_add_masks__refuses_a_sampler_or_images_off_the_models_grid():
    ds = tf.data.Dataset.from_tensor_slices(tf.zeros((4, 16, 16, 3)))
    wrong = MultiBlockMaskSampler(grid_size=(2, 8), min_context=2)
    with pytest.raises(
        ValueError,
        match=r"Expected a sampler on the encoder's \(4, 4\) patch "
        r"grid. Received: grid_size=\(2, 8\)",
    ):
        add_masks(ds, wrong, 2, grid_size=(4, 4))
    right = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2)
    add_masks(ds, right, 2, grid_size=(4, 4))  # accepted
    add_masks(ds, wrong, 2)  # no grid given: nothing checked
    odd = tf.data.Dataset.from_tensor_slices(tf.zeros((4, 16, 12, 3)))
    with pytest.raises(ValueError, match="Invalid value for argument `dataset`"):
        add_masks(odd, right, 2, grid_size=(4, 4))
