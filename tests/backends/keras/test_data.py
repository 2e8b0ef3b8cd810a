"""MaskedImageDataset: batch contract, reproducible masks and order, epochs, sources, fit on it."""

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, images

from jepa_components.backends.keras import (
    IJEPA,
    MaskedImageDataset,
    Predictor,
    TargetEMA,
    VisionTransformer,
)
from jepa_components.masks import MultiBlockMaskSampler

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
    first.set_epoch(1)
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
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0), predictor=Predictor(**TINY_PREDICTOR, seed=1)
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    data = MaskedImageDataset(IMAGES, sampler(), batch_size=4, shuffle=True, seed=0)
    history = model.fit(data, epochs=2, verbose=0, callbacks=[TargetEMA()])
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert model.ema_update_count() == 4


def _expected_batch(data, epoch, idx):
    rows = data.order(epoch)[idx * data.batch_size : (idx + 1) * data.batch_size]
    masks = sampler().sample(data.batch_size, start=(epoch * len(data) + idx) * data.batch_size)
    return rows, masks


def test_dataset__epochs_start_at_initial_epoch_and_advance_on_epoch_begin():
    data = MaskedImageDataset(
        IMAGES, sampler(), batch_size=4, shuffle=True, seed=5, initial_epoch=2
    )
    assert data.epoch == 2
    data.on_epoch_end()  # Keras calls it once when fit starts: no effect
    for epoch in (2, 3):
        data.on_epoch_begin()
        assert data.epoch == epoch
        for idx in range(len(data)):
            rows, masks = _expected_batch(data, epoch, idx)
            batch = data[idx]
            np.testing.assert_array_equal(batch["images"], IMAGES[rows])
            np.testing.assert_array_equal(batch["context"], masks.context)
            np.testing.assert_array_equal(batch["targets"], masks.targets)
    assert not np.array_equal(data.order(2), data.order(3))
    data.set_epoch(0)
    data.on_epoch_begin()
    assert data.epoch == 0
    np.testing.assert_array_equal(data[0]["images"], IMAGES[data.order(0)[:4]])


def test_dataset__steps_per_epoch_caps_the_epoch_and_the_mask_stream_follows():
    data = MaskedImageDataset(
        IMAGES, sampler(), batch_size=2, shuffle=True, seed=1, steps_per_epoch=3
    )
    assert len(data) == 3  # 5 available
    data.set_epoch(2)
    expected = sampler().sample(2, start=(2 * 3 + 1) * 2)  # epoch 2 of 3-batch epochs, batch 1
    np.testing.assert_array_equal(data[1]["context"], expected.context)
    np.testing.assert_array_equal(data[1]["images"], IMAGES[data.order(2)[2:4]])
    assert len(MaskedImageDataset(IMAGES, sampler(), batch_size=4, steps_per_epoch=9)) == 2


def test_dataset__load_batch_source_equals_the_array_source():
    asked = []

    def load_batch(rows):
        asked.append(np.asarray(rows).tolist())
        return IMAGES[rows]

    train = np.array([7, 1, 3, 9, 4, 0])
    reader = MaskedImageDataset(
        load_batch=load_batch, sampler=sampler(), batch_size=2, indices=train, shuffle=True, seed=2
    )
    array = MaskedImageDataset(IMAGES, sampler(), batch_size=2, indices=train, shuffle=True, seed=2)
    assert len(reader) == len(array) == 3
    for idx in range(3):
        got = reader[idx]
        for key, value in array[idx].items():
            np.testing.assert_array_equal(got[key], value)
    asked_items = [item for batch in asked for item in batch]
    assert sorted(asked_items) == sorted(train.tolist())  # every item once per epoch


class BrokenImage(Exception):
    pass


def test_dataset__a_reader_error_reaches_the_caller_with_the_batch_named():
    def load_batch(rows):
        if 5 in rows:
            raise BrokenImage("cannot decode item 5")
        return IMAGES[rows]

    data = MaskedImageDataset(
        load_batch=load_batch, sampler=sampler(), batch_size=2, indices=np.arange(10)
    )
    data[0]
    with pytest.raises(BrokenImage, match="cannot decode item 5") as raised:
        data[2]
    assert data.error is raised.value
    assert any("epoch 0, batch 2, items [4, 5]" in note for note in raised.value.__notes__)

    def wrong_shape(rows):
        return IMAGES[rows][0]

    bad = MaskedImageDataset(
        load_batch=wrong_shape, sampler=sampler(), batch_size=2, indices=np.arange(10)
    )
    with pytest.raises(ValueError, match=r"Expected a batch of images \(2, H, W, C\)"):
        bad[0]


def _tiny_model():
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0),
        predictor=Predictor(**TINY_PREDICTOR, seed=1),
        momentum=0.99,
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    return model


@pytest.mark.parametrize("workers", [1, 2])
def test_dataset__fit_with_initial_epoch_continues_the_epoch_streams(workers):
    served = []

    def load_batch(rows):
        served.append((data.epoch, tuple(int(i) for i in rows)))
        return IMAGES[rows]

    # A fresh dataset, as in a resumed run: fit's initial_epoch decides.
    data = MaskedImageDataset(
        load_batch=load_batch,
        sampler=sampler(),
        batch_size=4,
        indices=np.arange(8),
        shuffle=True,
        seed=3,
        workers=workers,
    )
    _tiny_model().fit(data, epochs=3, initial_epoch=1, verbose=0, shuffle=False)
    expected = [
        (e, tuple(int(i) for i in data.order(e)[4 * b : 4 * b + 4])) for e in (1, 2) for b in (0, 1)
    ]
    # (tensorflow reads two batches before training to learn the shapes: the
    # training batches are the last ones.)
    assert sorted(served[-4:]) == expected
    assert data.epoch == 2


def test_dataset__fit_serves_batches_in_order_and_refuses_fits_own_shuffle():
    served = []

    def load_batch(rows):
        served.append(tuple(int(i) for i in rows))
        return IMAGES[rows]

    data = MaskedImageDataset(
        load_batch=load_batch,
        sampler=sampler(),
        batch_size=4,
        indices=np.arange(8),
        shuffle=True,
        seed=3,
    )
    model = _tiny_model()
    model.fit(data, epochs=1, verbose=0)  # fit's shuffle defaults to False here
    assert served[-2:] == [
        tuple(int(i) for i in data.order(0)[4 * b : 4 * b + 4]) for b in range(2)
    ]
    with pytest.raises(ValueError, match="Invalid value for argument `shuffle`"):
        model.fit(data, epochs=1, verbose=0, shuffle=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_dataset__a_reader_error_in_fit_is_raised_as_raised(workers):
    def load_batch(rows):
        if data.epoch == 1:
            raise BrokenImage(f"cannot decode items {list(rows)}")
        return IMAGES[rows]

    data = MaskedImageDataset(
        load_batch=load_batch,
        sampler=sampler(),
        batch_size=4,
        indices=np.arange(8),
        workers=workers,
    )
    with pytest.raises(BrokenImage, match="cannot decode items") as raised:
        _tiny_model().fit(data, epochs=2, verbose=0, shuffle=False)
    assert data.error is raised.value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=11), "images"),
        (dict(sampler=object()), "sampler"),
        (dict(transform=3), "transform"),
        (dict(seed=-2), "seed"),
        (dict(images=None), "images"),
        (dict(load_batch=lambda rows: rows), "images"),
        (dict(images=None, load_batch=lambda rows: rows), "indices"),
        (dict(images=None, load_batch=3), "load_batch"),
        (dict(indices=[0, 10]), "indices"),
        (dict(indices=[[0, 1]]), "indices"),
        (dict(initial_epoch=-1), "initial_epoch"),
        (dict(steps_per_epoch=0), "steps_per_epoch"),
    ],
)
def test_dataset__invalid_arguments_raise(kwargs, match):
    arguments = {**dict(images=IMAGES, sampler=sampler(), batch_size=2), **kwargs}
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        MaskedImageDataset(**arguments)
