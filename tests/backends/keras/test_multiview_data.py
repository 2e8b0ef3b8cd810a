"""MultiViewDataset: the LeJEPA batch contract, a pure function of (seed, epoch, index), fit."""

import keras
import numpy as np
import pytest

from jepa_components.augment import MultiView, RandomResizedCrop, lejepa_views
from jepa_components.backends.keras import (
    LeJEPA,
    MaskedImageDataset,
    MultiViewDataset,
    VisionTransformer,
    make_projector,
)
from jepa_components.backends.keras.data import _ImageBatches

IMAGES = np.random.default_rng(0).random((12, 20, 20, 1)).astype("float32")
LABELS = np.arange(12) % 3


def views(num_local=1):
    return lejepa_views(16, channels=1, num_global=2, num_local=num_local)


def test_multiview__batches_follow_the_lejepa_batch_contract():
    data = MultiViewDataset(IMAGES, views(), batch_size=4, labels=LABELS)
    assert len(data) == 3 and isinstance(data, _ImageBatches)
    batch = data[1]
    assert sorted(batch) == ["labels", "views"]
    assert batch["views"].shape == (4, 3, 16, 16, 1) and batch["views"].dtype == np.float32
    assert batch["labels"].dtype == np.int32
    np.testing.assert_array_equal(batch["labels"], LABELS[4:8])
    assert sorted(MultiViewDataset(IMAGES, views(), batch_size=4)[0]) == ["views"]


def test_multiview__a_batch_is_a_pure_function_of_seed_epoch_and_index():
    make = dict(images=IMAGES, views_transform=views(), batch_size=4, shuffle=True, seed=5)
    data = MultiViewDataset(**make)
    later, first = data[2]["views"], data[0]["views"]  # any access order
    rows = data.order(0)[8:12]
    expected = views()(IMAGES[rows], np.random.default_rng([5, 0, 2]))
    np.testing.assert_array_equal(later, expected)
    np.testing.assert_array_equal(first, MultiViewDataset(**make)[0]["views"])
    data.set_epoch(3)
    epoch3 = data[1]["views"]
    assert not np.array_equal(epoch3, MultiViewDataset(**make)[1]["views"])
    resumed = MultiViewDataset(**make, initial_epoch=3)
    resumed.on_epoch_begin()  # as fit does when the resumed run starts
    assert resumed.epoch == 3
    np.testing.assert_array_equal(resumed[1]["views"], epoch3)
    other_seed = MultiViewDataset(**{**make, "seed": 6})
    assert not np.array_equal(other_seed[0]["views"], first)


def test_multiview__labels_follow_the_items_through_shuffle_and_load_batch():
    ids = np.arange(12)
    constant = np.broadcast_to((ids / 12.0)[:, None, None, None], (12, 8, 8, 1)).copy()
    crops = MultiView(RandomResizedCrop(4), 2)  # crops of a constant image are constant
    data = MultiViewDataset(
        load_batch=lambda rows: constant[rows],
        views_transform=crops,
        batch_size=3,
        shuffle=True,
        seed=1,
        labels=ids,
        indices=np.arange(2, 11),
    )
    seen = []
    for i in range(len(data)):
        batch = data[i]
        corner = batch["views"][:, :, 0, 0, 0]  # (3, V)
        expected = np.broadcast_to(batch["labels"][:, None] / 12.0, corner.shape)
        np.testing.assert_allclose(corner, expected, rtol=1e-6)
        seen += batch["labels"].tolist()
    assert sorted(seen) == list(range(2, 11))


def test_multiview__a_bad_transform_is_named_with_the_batch():
    data = MultiViewDataset(IMAGES, RandomResizedCrop(8), batch_size=4)  # no view axis
    with pytest.raises(ValueError, match=r"Expected views \(4, V, H, W, C\)") as raised:
        data[2]
    assert any("MultiViewDataset: epoch 0, batch 2" in note for note in raised.value.__notes__)
    assert data.error is raised.value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(views_transform=None), "views_transform"),
        (dict(views_transform=3), "views_transform"),
        (dict(labels=np.zeros((12, 1), int)), "labels"),
        (dict(labels=np.zeros(11, int)), "labels"),
        (dict(labels=np.zeros(12)), "labels"),
        (dict(batch_size=13), "images"),
        (dict(seed=-1), "seed"),
        (dict(images=None, load_batch=lambda rows: rows), "indices"),
        (dict(images=None, load_batch=lambda r: r, indices=[0, 5], labels=[0] * 5), "labels"),
    ],
)
def test_multiview__invalid_arguments_raise(kwargs, match):
    arguments = {**dict(images=IMAGES, views_transform=views(), batch_size=2), **kwargs}
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        MultiViewDataset(**arguments)


def test_multiview__masked_image_dataset_shares_the_base():
    assert issubclass(MaskedImageDataset, _ImageBatches)
    assert MaskedImageDataset.__getitem__ is MultiViewDataset.__getitem__
    hooks = MultiViewDataset(IMAGES, views(), batch_size=4).fit_hooks()
    assert hooks.shuffle is False and "MultiViewDataset" in hooks.shuffle_reason


def test_multiview__lejepa_fits_one_epoch_with_a_finite_loss():
    encoder = VisionTransformer(
        image_size=16, patch_size=4, in_channels=1, embed_dim=32, depth=1, num_heads=2, seed=0
    )
    model = LeJEPA(
        encoder,
        make_projector(8, (32,), seed=1),
        num_global_views=2,
        num_slices=16,
        num_classes=3,
        seed=2,
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    data = MultiViewDataset(
        IMAGES, views(), batch_size=4, shuffle=True, seed=0, labels=LABELS, initial_epoch=1
    )
    history = model.fit(data, epochs=2, initial_epoch=1, verbose=0)
    loss = history.history["loss"]
    assert len(loss) == 1 and np.isfinite(loss[0])
    assert data.epoch == 1
