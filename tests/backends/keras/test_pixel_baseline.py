"""The pixel-target baseline: targets and loss from the NumPy core, training, saving."""

import os

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, mask_batch, pad, to_numpy, weights_numpy

from jepa_components.backends.keras import MaskedImageDataset, Predictor, VisionTransformer
from jepa_components.backends.keras.models.pixel_baseline import PixelBaseline
from jepa_components.losses import jepa_loss
from jepa_components.masks import MultiBlockMaskSampler
from jepa_components.pixels import make_pixel_targets


def make_model(seed=0, channels=3, **kwargs):
    encoder = VisionTransformer(**TINY_VIT, in_channels=channels, seed=seed)
    predictor = Predictor(**TINY_PREDICTOR, seed=seed + 1)
    return PixelBaseline(encoder=encoder, predictor=predictor, seed=seed + 2, **kwargs)


def structured_images(batch_size, channels=3, seed=0):
    """The same ramp in every 4x4 patch plus a little noise: a learnable pixel target."""
    ramp = np.tile(np.arange(4, dtype="float32"), 4)[None, :] * np.ones((16, 1), "float32")
    ramp = ramp + np.arange(16, dtype="float32")[:, None] % 4 * 0.5
    rng = np.random.default_rng(seed)
    images = np.repeat(ramp[None, :, :, None], batch_size, 0).repeat(channels, -1)
    return (images + 0.1 * rng.normal(size=images.shape)).astype("float32")


def batch_of(batch_size=4, seed=0, channels=3):
    batch = mask_batch(batch_size, seed)
    batch["images"] = structured_images(batch_size, channels, seed)
    return batch


BATCH = batch_of(4)


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_pixel_baseline__parts_trainable_and_no_target_encoder(model):
    assert not hasattr(model, "target_encoder")
    trainable = {id(w) for w in model.trainable_weights}
    expected = {
        id(w) for w in model.encoder.weights + model.predictor.weights + model.pixel_head.weights
    }
    assert trainable == expected
    assert model.pixel_head.kernel.shape == (32, 4 * 4 * 3)


def test_pixel_baseline__outputs_are_head_of_predictor_and_core_pixel_targets(model):
    out = model(BATCH)
    predictions, targets = to_numpy(out["predictions"]), to_numpy(out["targets"])
    assert predictions.shape == targets.shape == (4, 2, 3, 48)
    np.testing.assert_allclose(
        targets, make_pixel_targets(BATCH["images"], BATCH["targets"], 4), rtol=1e-4, atol=1e-4
    )
    context = model.encoder(BATCH["images"], indices=BATCH["context"])
    expected = model.pixel_head(model.predictor(context, BATCH["context"], BATCH["targets"]))
    np.testing.assert_allclose(predictions, to_numpy(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_pixel_baseline__loss_equals_numpy_core_definition(normalize):
    model = make_model(seed=1, normalize_targets=normalize)
    batch = pad(BATCH)
    out = model(batch)
    predictions = to_numpy(out["predictions"]).astype("float64")
    targets = make_pixel_targets(
        batch["images"].astype("float64"), batch["targets"], 4, normalize=normalize
    )
    expected = jepa_loss(predictions, targets, valid=batch["targets_valid"])
    got = to_numpy(model.compute_loss(x=batch, y_pred=out))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # MSE over valid tokens, written out.
    valid = batch["targets_valid"]
    manual = np.mean(np.square(predictions - targets).mean(-1)[valid])
    np.testing.assert_allclose(got, manual, rtol=1e-4)


def test_pixel_baseline__padding_changes_neither_valid_predictions_nor_loss(model):
    base = model(BATCH)
    padded_batch = pad(BATCH, extra_context=3, extra_targets=2)
    padded = model(padded_batch)
    np.testing.assert_allclose(
        to_numpy(padded["predictions"])[:, :, :3],
        to_numpy(base["predictions"]),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_numpy(model.compute_loss(x=padded_batch, y_pred=padded)),
        to_numpy(model.compute_loss(x=BATCH, y_pred=base)),
        rtol=1e-5,
    )


def test_pixel_baseline__fit_numpy_dict_loss_finite_and_decreasing():
    model = make_model(seed=3)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3))
    before = model.evaluate(BATCH, batch_size=4, verbose=0)
    history = model.fit(BATCH, batch_size=2, epochs=4, verbose=0)
    after = model.evaluate(BATCH, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert after < 0.8 * before
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_pixel_baseline__fit_on_masked_image_dataset_grayscale():
    model = make_model(seed=4, channels=1)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3))
    sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
    data = MaskedImageDataset(structured_images(16, channels=1), sampler, batch_size=8, seed=0)
    history = model.fit(data, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_pixel_baseline__features_read_the_online_encoder(model):
    features = to_numpy(model.features(BATCH["images"]))
    tokens = to_numpy(model.encoder(BATCH["images"]))
    np.testing.assert_allclose(features, tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert to_numpy(model.features(BATCH["images"], pooled=False)).shape == (4, 16, 32)


def test_pixel_baseline__same_seed_same_weights():
    first, second = make_model(seed=11), make_model(seed=11)
    for a, b in zip(weights_numpy(first), weights_numpy(second)):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(
        to_numpy(make_model(seed=12).pixel_head.kernel), to_numpy(first.pixel_head.kernel)
    )


def test_pixel_baseline__save_load_round_trip(tmp_path):
    model = make_model(seed=6, loss="smooth_l1", normalize_targets=False, target_eps=1e-4)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    model.fit(BATCH, batch_size=2, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "pixel.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, PixelBaseline)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(weights_numpy(loaded), weights_numpy(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        to_numpy(loaded(BATCH)["predictions"]), to_numpy(model(BATCH)["predictions"])
    )
    loaded.fit(BATCH, batch_size=2, epochs=1, verbose=0)  # trains on after loading


def test_pixel_baseline__invalid_arguments_raise(model):
    encoder, predictor = model.encoder, model.predictor
    with pytest.raises(ValueError, match="Invalid value for argument `loss`"):
        PixelBaseline(encoder=encoder, predictor=predictor, loss="l1")
    with pytest.raises(ValueError, match="Invalid value for argument `target_eps`"):
        PixelBaseline(encoder=encoder, predictor=predictor, target_eps=0.0)
    with pytest.raises(ValueError, match="Invalid value for argument `normalize_targets`"):
        PixelBaseline(encoder=encoder, predictor=predictor, normalize_targets="yes")
    with pytest.raises(ValueError, match="Invalid value for argument `encoder`"):
        PixelBaseline(encoder=keras.layers.Dense(3), predictor=predictor)
    wide = Predictor(**{**TINY_PREDICTOR, "embed_dim": 64})
    with pytest.raises(ValueError, match="Invalid value for argument `predictor`"):
        PixelBaseline(encoder=encoder, predictor=wide)
    with pytest.raises(ValueError, match="Invalid value for argument `inputs`"):
        model({"images": BATCH["images"]})
