"""MaskedImageDataset: batch contract, reproducible masks and order, fit on it."""

import keras
import numpy as np
import pytest

from jepa_components.masks import MultiBlockMaskSampler
from jepa_components.backends.keras import (
    IJEPA,
    MaskedImageDataset,
    Predictor,
    TargetEMA,
    VisionTransformer,
)
from harness import TINY_PREDICTOR, TINY_VIT, images

IMAGES = images(10, size=16)


def sampler(seed=0):
    return MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=seed)


def test_dataset__batches_follow_the_ijepa_batch_contract():
    data = MaskedImageDataset(IMAGES, sampler(), batch_size=4)
    assert len(data) == 2  # the incomplete last batch is dropped
    batch = data[1]
    assert sorted(batch) == ["context", "context_valid", "images", "targets", "targets_valid"]
    np.testing.assert_array_equal(batch["images"], IMAGES[4:8])
    assert batch["images"].dtype == np.float32
    assert batch["context"].shape[0] == 4 and batch["targets"].shape[:2] == (4, 4)
    assert batch["context_valid"].dtype == bool and batch["targets_valid"].dtype == bool


def test_dataset__masks_are_stream_samples_whatever_the_access_order():
    data = MaskedImageDataset(IMAGES, sampler(), batch_size=4)
    second, first = data[1], data[0]
    expected = sampler().sample(4, start=4).as_dict()
    for key, value in expected.items():
        np.testing.assert_array_equal(second[key], value)
    assert not np.array_equal(first["context"], second["context"])


def test_dataset__shuffle_is_reproducible_and_changes_per_epoch():
    first = MaskedImageDataset(IMAGES, sampler(), batch_size=5, shuffle=True, seed=3)
    second = MaskedImageDataset(IMAGES, sampler(), batch_size=5, shuffle=True, seed=3)
    np.testing.assert_array_equal(first[0]["images"], second[0]["images"])
    epoch0 = np.concatenate([first[i]["images"] for i in range(2)])
    assert not np.array_equal(epoch0, IMAGES)
    np.testing.assert_allclose(np.sort(epoch0.ravel()), np.sort(IMAGES.ravel()))
    masks0 = first[0]["context"]
    first.on_epoch_end()
    assert not np.array_equal(first[0]["images"], second[0]["images"])
    np.testing.assert_array_equal(first[0]["context"], sampler().sample(5, start=10).context)
    assert not np.array_equal(first[0]["context"], masks0)


def test_dataset__transform_and_sequence_input():
    seen = []

    def flip(batch, rng):
        seen.append(rng.integers(1 << 30))
        return batch[:, :, ::-1]

    data = MaskedImageDataset(list(IMAGES), sampler(), batch_size=2, transform=flip, seed=1)
    np.testing.assert_array_equal(data[0]["images"], IMAGES[:2, :, ::-1])
    data[0]
    assert seen[0] == seen[1]  # the rng depends on (seed, epoch, batch) only


def test_dataset__fit_on_it():
    model = IJEPA(encoder=VisionTransformer(**TINY_VIT, seed=0),
                  predictor=Predictor(**TINY_PREDICTOR, seed=1))
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    data = MaskedImageDataset(IMAGES, sampler(), batch_size=4, shuffle=True, seed=0)
    history = model.fit(data, epochs=2, verbose=0, callbacks=[TargetEMA()])
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert model.ema_update_count() == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=11), "images"),
        (dict(sampler=object()), "sampler"),
        (dict(transform=3), "transform"),
        (dict(seed=-2), "seed"),
    ],
)
def test_dataset__invalid_arguments_raise(kwargs, match):
    arguments = {**dict(images=IMAGES, sampler=sampler(), batch_size=2), **kwargs}
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        MaskedImageDataset(**arguments)
