"""Other mask families plug into the Keras training path unchanged.

MAE random masking, BEiT-style blockwise masking and data2vec 2.0 inverse
block masking: the samplers registered in ``jepa_components.masks.SAMPLERS``
feed ``MaskedImageDataset`` and train ``PixelBaseline`` one ``fit`` step with
a finite loss. Tiny: 32 px images, patch 8 (a 4x4 grid), embed 32, depth 1.
"""

import keras
import numpy as np
import pytest

from jepa_components.backends.keras import MaskedImageDataset, Predictor, VisionTransformer
from jepa_components.backends.keras.models.pixel_baseline import PixelBaseline
from jepa_components.masks import SAMPLERS, make_sampler

FAMILIES = [name for name in ("mae", "blockwise", "inverse_block") if name in SAMPLERS]
GRID = (4, 4)
OPTIONS = {  # every image masked, blocks small enough for a 4x4 grid
    "blockwise": {"mask_probability": 1.0, "mask_ratio": (0.25, 0.5), "min_block_patches": 2},
}


def tiny_model(seed=0):
    encoder = VisionTransformer(
        image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, seed=seed
    )
    predictor = Predictor(
        num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2, seed=seed + 1
    )
    return PixelBaseline(encoder=encoder, predictor=predictor, seed=seed + 2)


@pytest.mark.parametrize("name", FAMILIES)
def test_mask_family__masked_image_dataset_trains_pixel_baseline(name):
    sampler = make_sampler(name, grid_size=GRID, seed=0, **OPTIONS.get(name, {}))
    images = np.random.default_rng(0).random((8, 32, 32, 3), "float32")
    data = MaskedImageDataset(images, sampler, batch_size=4, seed=0, steps_per_epoch=1)
    batch = data[0]
    assert batch["images"].shape == (4, 32, 32, 3)
    assert batch["context"].shape[0] == 4 and batch["targets"].shape[:2] == (4, 1)
    assert batch["targets_valid"].any()  # something to predict
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    history = model.fit(data, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert np.isfinite(history.history["loss"]).all()


def test_masked_image_dataset__repeats_each_image_for_every_clone():
    from jepa_components.masks import InverseBlockMaskSampler

    images = np.arange(4 * 8 * 8, dtype="float32").reshape(4, 8, 8, 1)
    sampler = InverseBlockMaskSampler(grid_size=(4, 4), num_clones=3, seed=0)
    batch = MaskedImageDataset(images, sampler, batch_size=2)[0]
    assert batch["images"].shape == (6, 8, 8, 1) and batch["context"].shape[0] == 6
    np.testing.assert_array_equal(batch["images"], np.repeat(images[:2], 3, axis=0))
    np.testing.assert_array_equal(batch["context"], sampler.sample(2, start=0).context)
