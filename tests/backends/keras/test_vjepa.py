"""The VJEPA model: one V-JEPA training step on clips (every backend), its loss against the
NumPy core, the 3-D sampler check, saving.

Tiny: 4 frames of 16 x 16 px, tubelet 2, patch 8 (a (2, 2, 2) grid), width 32, one
block in the encoder and in the predictor.
"""

import os

import keras
import numpy as np
import pytest
from harness import to_numpy, weights_numpy

from jepa_components.backends.keras import IJEPA, VJEPA, Predictor, VisionTransformer
from jepa_components.context import make_targets
from jepa_components.losses import l1_loss
from jepa_components.masks import MultiBlock3DMaskSampler, MultiBlockMaskSampler

CLIP_VIT = dict(
    image_size=16, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32, depth=1, num_heads=2
)
GRID = (2, 2, 2)


def clips(batch_size=4, seed=0):
    return np.random.default_rng(seed).normal(size=(batch_size, 4, 16, 16, 3)).astype("float32")


def make_model(seed=0, **kwargs):
    kwargs.setdefault("momentum", 0.9)
    encoder = VisionTransformer(**CLIP_VIT, seed=seed)
    predictor = Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2, seed=seed + 1)
    return VJEPA(encoder=encoder, predictor=predictor, **kwargs)


def sampler(seed=0):
    # V-JEPA's short-range masks (8 blocks of 15% of the frame, tubes through all frames)
    return MultiBlock3DMaskSampler(grid_size=GRID, seed=seed)


def sampled_batch(batch_size=4, seed=0):
    batch = sampler(seed).sample(batch_size).as_dict()
    batch["images"] = clips(batch_size, seed)
    return batch


# A hand-made batch: a tube through both time steps (spatial patches 2, 3 of each),
# the second sample padded by one context and one target slot.
HAND = {
    "images": clips(2, 1),
    "context": np.array([[0, 1, 4, 5], [0, 4, 2, 0]], "int32"),
    "context_valid": np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool),
    "targets": np.array([[[2, 3, 6, 7]], [[1, 5, 3, 0]]], "int32"),
    "targets_valid": np.array([[[1, 1, 1, 1]], [[1, 1, 1, 0]]], bool),
}


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_vjepa__is_ijepa_with_the_l1_loss_on_a_clip_grid(model):
    assert isinstance(model, IJEPA) and model.loss_type == "l1"
    assert model.grid_size == model.predictor.grid_size == GRID
    assert VJEPA.LOSSES == ("l1", "l2", "smooth_l1")
    assert make_model(loss="smooth_l1").loss_type == "smooth_l1"
    with pytest.raises(ValueError, match=r"Invalid value for argument `loss`.*'l1'"):
        IJEPA(encoder=model.encoder, predictor=model.predictor, loss="l1")  # I-JEPA: unchanged


def test_vjepa__outputs_and_l1_loss_equal_the_numpy_core(model):
    out = model(HAND)
    predictions, targets = to_numpy(out["predictions"]), to_numpy(out["targets"])
    assert predictions.shape == targets.shape == (2, 1, 4, 32)
    tokens = to_numpy(model.target_encoder(HAND["images"]))
    np.testing.assert_allclose(targets, make_targets(tokens, HAND["targets"]), rtol=1e-5, atol=1e-5)
    context = model.encoder(HAND["images"], indices=HAND["context"], valid=HAND["context_valid"])
    expected = model.predictor(
        context,
        HAND["context"],
        HAND["targets"],
        context_valid=HAND["context_valid"],
        targets_valid=HAND["targets_valid"],
    )
    np.testing.assert_allclose(predictions, to_numpy(expected), rtol=1e-5, atol=1e-5)
    loss = to_numpy(model.compute_loss(x=HAND, y_pred=out))
    oracle = l1_loss(predictions.astype("float64"), targets, valid=HAND["targets_valid"])
    # V-JEPA's mean(|z - h|) over the 7 valid target tokens
    manual = np.abs(predictions - targets)[HAND["targets_valid"]].mean()
    np.testing.assert_allclose(loss, oracle, rtol=1e-5)
    np.testing.assert_allclose(loss, manual, rtol=1e-5)


def test_vjepa__one_training_step_on_sampled_3d_masks_moves_online_and_ema_target():
    """One V-JEPA step (fit, one batch): finite loss, encoder and predictor updated, the
    target equals the exact EMA m * target + (1 - m) * online of the updated weights."""
    model = make_model(seed=3, momentum=0.9)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-2))
    batch = sampled_batch(4, seed=5)
    assert batch["targets"].shape[:2] == (4, 1)  # the union of the blocks: one target row
    model.check_sampler(sampler())
    encoder_before, predictor_before = weights_numpy(model.encoder), weights_numpy(model.predictor)
    target_before = weights_numpy(model.target_encoder)
    history = model.fit(batch, batch_size=4, epochs=1, verbose=0, shuffle=False)
    [loss] = history.history["loss"]
    assert np.isfinite(loss) and loss > 0
    assert model.ema_update_count() == 1  # applied at the end of fit
    encoder_after = weights_numpy(model.encoder)
    predictor_after = weights_numpy(model.predictor)
    assert all(not np.allclose(a, b) for a, b in zip(encoder_after, encoder_before))
    assert all(not np.allclose(a, b) for a, b in zip(predictor_after, predictor_before))
    for target, start, online in zip(
        weights_numpy(model.target_encoder), target_before, encoder_after
    ):
        np.testing.assert_allclose(target, 0.9 * start + 0.1 * online, rtol=1e-6, atol=1e-7)
        assert not np.array_equal(target, start)


def test_vjepa__check_sampler_takes_3d_grids_only_on_clip_encoders(model):
    model.check_sampler(sampler())
    with pytest.raises(ValueError, match=r"\(2, 2, 2\) patch grid. Received: grid_size=\(2, 2\)"):
        model.check_sampler(MultiBlockMaskSampler(grid_size=(2, 2), min_context=1))
    with pytest.raises(
        ValueError, match=r"\(2, 2, 2\) patch grid. Received: grid_size=\(4, 2, 2\)"
    ):
        model.check_sampler(MultiBlock3DMaskSampler(grid_size=(4, 2, 2)))
    image = IJEPA(
        encoder=VisionTransformer(image_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2),
        predictor=Predictor(num_patches=4, embed_dim=32, predictor_embed_dim=16, depth=1,
                            num_heads=2),
        momentum=0.9,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"\(2, 2\) patch grid. Received: grid_size=\(2, 2, 2\)"):
        image.check_sampler(sampler())


def test_vjepa__image_predictor_on_a_clip_encoder_is_refused(model):
    flat = Predictor(num_patches=8, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2,
                     grid_size=(2, 4))  # fmt: skip
    with pytest.raises(ValueError, match=r"Expected grid_size=\(2, 2, 2\) \(the encoder's\)"):
        VJEPA(encoder=model.encoder, predictor=flat)


def test_vjepa__keras_file_round_trip(tmp_path):
    model = make_model(seed=6, momentum=0.95)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    model.fit(sampled_batch(2, seed=1), batch_size=2, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "vjepa.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is VJEPA and loaded.get_config() == model.get_config()
    assert loaded.encoder.grid_size == GRID and loaded.loss_type == "l1"
    for a, b in zip(weights_numpy(loaded), weights_numpy(model)):
        np.testing.assert_array_equal(a, b)
    for key in ("predictions", "targets"):
        np.testing.assert_allclose(
            to_numpy(loaded(HAND)[key]), to_numpy(model(HAND)[key]), rtol=1e-6, atol=1e-6
        )
    assert loaded.ema_update_count() == model.ema_update_count() == 1
