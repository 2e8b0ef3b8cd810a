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
