"""The IJEPA model: targets, loss against the NumPy core, padding, training, saving.

EMA exactness lives in ``test_callbacks.py``.
"""

import os
import warnings

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, pad, to_numpy, training_batch, weights_numpy

from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, VisionTransformer
from jepa_components.context import make_targets
from jepa_components.losses import jepa_loss

BATCH = training_batch(4)


def make_model(seed=0, **kwargs):
    kwargs.setdefault("momentum", 0.99)
    encoder = VisionTransformer(**TINY_VIT, seed=seed)
    predictor = Predictor(**TINY_PREDICTOR, seed=seed + 1)
    return IJEPA(encoder=encoder, predictor=predictor, **kwargs)


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_ijepa__parts_and_frozen_target_copy(model):
    assert isinstance(model.target_encoder, VisionTransformer)
    assert model.target_encoder is not model.encoder
    for a, b in zip(weights_numpy(model.target_encoder), weights_numpy(model.encoder)):
        np.testing.assert_array_equal(a, b)
    trainable = {id(w) for w in model.trainable_weights}
    assert not any(id(w) in trainable for w in model.target_encoder.weights)
    expected = {id(w) for w in model.encoder.weights + model.predictor.weights}
    assert trainable == expected


def test_ijepa__outputs_shapes_and_targets_from_the_core(model):
    out = model(BATCH)
    predictions, targets = to_numpy(out["predictions"]), to_numpy(out["targets"])
    assert predictions.shape == targets.shape == (4, 2, 3, 32)
    tokens = to_numpy(model.target_encoder(BATCH["images"]))
    np.testing.assert_allclose(
        targets, make_targets(tokens, BATCH["targets"]), rtol=1e-5, atol=1e-5
    )
    context = model.encoder(BATCH["images"], indices=BATCH["context"])
    expected = model.predictor(context, BATCH["context"], BATCH["targets"])
    np.testing.assert_allclose(predictions, to_numpy(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "loss, reduction", [("l2", "mean"), ("smooth_l1", "mean"), ("l2", "paper")]
)
def test_ijepa__loss_equals_numpy_core_loss(model, loss, reduction):
    batch = pad(BATCH)
    other = IJEPA(
        encoder=model.encoder,
        predictor=model.predictor,
        loss=loss,
        reduction=reduction,
        momentum=0.99,
    )
    out = other(batch)
    expected = jepa_loss(
        to_numpy(out["predictions"]).astype("float64"),
        to_numpy(out["targets"]).astype("float64"),
        valid=batch["targets_valid"],
        loss=loss,
        reduction=reduction,
    )
    got = to_numpy(other.compute_loss(x=batch, y_pred=out))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_ijepa__padding_changes_neither_valid_predictions_nor_loss(model):
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


def test_ijepa__fit_reduces_loss_and_evaluate_reports_the_same_loss():
    model = make_model(seed=3)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3))
    before = model.evaluate(BATCH, batch_size=4, verbose=0)
    expected = to_numpy(model.compute_loss(x=BATCH, y_pred=model(BATCH)))
    np.testing.assert_allclose(before, expected, rtol=1e-5)
    history = model.fit(BATCH, batch_size=2, epochs=4, verbose=0)
    after = model.evaluate(BATCH, batch_size=4, verbose=0)
    assert after < 0.9 * before
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.ema_update_count() == 8  # 8 optimizer steps, the last applied by fit


def test_ijepa__target_gets_no_gradient_and_no_optimizer_update():
    model = make_model(seed=4)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=0.5))
    target_before = weights_numpy(model.target_encoder)
    online_before = weights_numpy(model.encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "Gradients do not exist for variables"
        model.fit(
            BATCH,
            batch_size=2,
            epochs=1,
            verbose=0,
            callbacks=[TargetEMA(1.0, final_momentum=None)],
        )
    for a, b in zip(weights_numpy(model.target_encoder), target_before):
        np.testing.assert_array_equal(a, b)  # momentum 1: only the optimizer could move it
    assert any(not np.allclose(a, b) for a, b in zip(weights_numpy(model.encoder), online_before))
    # AdamW keeps two slots per variable it updates, plus its step and learning rate.
    assert len(model.optimizer.variables) == 2 * len(model.trainable_weights) + 2


def test_ijepa__fit_without_target_ema_warns_once_and_uses_constant_momentum():
    model = make_model(seed=5, momentum=None)
    model.compile(optimizer="adamw")
    with pytest.warns(UserWarning, match="TargetEMA"):
        model.fit(BATCH, batch_size=4, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(BATCH, batch_size=4, epochs=1, verbose=0)
    assert model.ema_update_count() == 2


def test_ijepa__fit_takes_positional_arguments_and_a_callback_list():
    model = make_model(seed=13, momentum=None)
    model.compile(optimizer="adamw")
    callbacks = keras.callbacks.CallbackList(
        [TargetEMA(0.5, 1.0, total_steps=4)], add_history=True, model=model
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the schedule set by TargetEMA counts
        model.fit(BATCH, None, 2, 2, 0, callbacks)  # x, y, batch_size, epochs, verbose
    assert model.ema_update_count() == 4  # the last update applied at the end of fit
    assert model.momentum_schedule() == {"start": 0.5, "end": 1.0, "total_steps": 4}


def test_ijepa__same_seed_same_initial_weights_and_first_loss():
    first, second = make_model(seed=11), make_model(seed=11)
    for a, b in zip(weights_numpy(first), weights_numpy(second)):
        np.testing.assert_array_equal(a, b)
    losses = [
        to_numpy(m.compute_loss(x=BATCH, y_pred=m(BATCH, training=False))) for m in (first, second)
    ]
    assert losses[0] == losses[1]
    assert not np.allclose(
        weights_numpy(make_model(seed=12).encoder)[0], weights_numpy(first.encoder)[0]
    )


def test_ijepa__save_load_round_trip(tmp_path):
    model = make_model(seed=6, loss="smooth_l1")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    model.fit(BATCH, batch_size=2, epochs=1, verbose=0, callbacks=[TargetEMA(0.9, 1.0, 10)])
    path = os.path.join(tmp_path, "ijepa.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, IJEPA) and loaded.loss_type == "smooth_l1"
    for a, b in zip(weights_numpy(loaded), weights_numpy(model)):
        np.testing.assert_array_equal(a, b)
    for key in ("predictions", "targets"):
        np.testing.assert_array_equal(to_numpy(loaded(BATCH)[key]), to_numpy(model(BATCH)[key]))
    assert loaded.ema_update_count() == model.ema_update_count() == 2
    loaded.fit(BATCH, batch_size=2, epochs=1, verbose=0, callbacks=[TargetEMA(0.9, 1.0, 10)])
    assert loaded.ema_update_count() == 4


def test_ijepa__features_are_mean_pooled_target_tokens(model):
    features = to_numpy(model.features(BATCH["images"]))
    tokens = to_numpy(model.target_encoder(BATCH["images"]))
    assert features.shape == (4, 32)
    np.testing.assert_allclose(features, tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert to_numpy(model.features(BATCH["images"], pooled=False)).shape == (4, 16, 32)


def test_ijepa__invalid_arguments_raise(model):
    encoder, predictor = model.encoder, model.predictor
    with pytest.raises(ValueError, match="Invalid value for argument `loss`"):
        IJEPA(encoder=encoder, predictor=predictor, loss="l1")
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        IJEPA(encoder=encoder, predictor=predictor, reduction="sum")
    with pytest.raises(ValueError, match="Invalid value for argument `momentum`"):
        IJEPA(encoder=encoder, predictor=predictor, momentum=1.5)
    wide = Predictor(**{**TINY_PREDICTOR, "embed_dim": 64})
    with pytest.raises(ValueError, match="Invalid value for argument `predictor`"):
        IJEPA(encoder=encoder, predictor=wide)
    with pytest.raises(ValueError, match="Invalid value for argument `inputs`"):
        model({"images": BATCH["images"]})


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="torch runs eagerly: no traces")
def test_ijepa__bucketed_masks_compile_a_bounded_number_of_shapes():
    """``ragged="bucket"``: a compiled step traces once per (context, target) bucket seen,
    never once per batch, and never more than ``padded_lengths()`` allows."""
    from jepa_components.backends.keras import MaskedImageDataset
    from jepa_components.masks import MultiBlockMaskSampler

    traces = []

    class CountingIJEPA(IJEPA):
        def train_step(self, *args, **kwargs):  # Python runs here only while tracing
            traces.append(1)
            return super().train_step(*args, **kwargs)

    images = np.random.default_rng(0).random((48, 32, 32, 3), dtype=np.float32)
    sampler = MultiBlockMaskSampler(grid_size=(8, 8), ragged="bucket", seed=0)  # paper's masks
    data = MaskedImageDataset(images, sampler, batch_size=4, seed=0)
    epochs = 3
    shapes = set()
    for epoch in range(epochs):
        data.set_epoch(epoch)
        shapes |= {
            (data[i]["context"].shape[1], data[i]["targets"].shape[2]) for i in range(len(data))
        }
    model = CountingIJEPA(
        encoder=VisionTransformer(**dict(TINY_VIT, image_size=32), seed=0),
        predictor=Predictor(**dict(TINY_PREDICTOR, num_patches=64), seed=1),
        momentum=0.99,
    )
    model.compile(optimizer="adamw")
    model.fit(data, epochs=epochs, verbose=0)
    context_lengths, target_lengths = sampler.padded_lengths()
    assert 1 < len(shapes) <= len(context_lengths) * len(target_lengths) < epochs * len(data)
    if keras.backend.backend() == "jax":
        assert len(traces) == len(shapes)  # one compile per bucket pair, then cache hits
    else:  # tf.function(reduce_retracing=True) may relax shapes: fewer traces still
        assert 1 <= len(traces) <= len(shapes)


def test_ijepa__remat_trains_as_without_it():
    """Blocks recomputed in the backward pass (``remat=True`` on both networks, padded keys
    included): the same losses and weights after two steps. (SGD: AdamW's first step,
    ``g / |g|``, would amplify float rounding in near-zero gradients.)"""
    runs = []
    for remat in (False, True):
        model = IJEPA(
            encoder=VisionTransformer(**TINY_VIT, remat=remat, seed=21),
            predictor=Predictor(**TINY_PREDICTOR, remat=remat, seed=22),
            momentum=0.9,
        )
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
        history = model.fit(pad(BATCH), batch_size=2, epochs=1, verbose=0, shuffle=False)
        runs.append((history.history["loss"], weights_numpy(model)))
    (plain_loss, plain_weights), (remat_loss, remat_weights) = runs
    np.testing.assert_allclose(remat_loss, plain_loss, rtol=1e-5)
    assert len(remat_weights) == len(plain_weights)
    for a, b in zip(remat_weights, plain_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ijepa__sigreg_regularizer_adds_its_weighted_statistic_of_pooled_context():
    from jepa_components.backends.keras import SIGReg
    from jepa_components.regularizers import sigreg

    model = make_model(regularizer=SIGReg(num_slices=16, seed=0), regularizer_weight=0.5)
    batch = pad(BATCH)  # padded context slots must not enter the pooled embedding
    out = model(batch)
    context = to_numpy(model.encoder(BATCH["images"], indices=BATCH["context"]))
    np.testing.assert_allclose(
        to_numpy(out["context_embeddings"]), context.mean(axis=1), rtol=1e-5, atol=1e-5
    )
    state = np.array(to_numpy(model.regularizer.seed_generator.state))
    total = float(to_numpy(model.compute_loss(x=batch, y_pred=out)))
    model.regularizer.seed_generator.state.assign(state)
    directions = to_numpy(model.regularizer.directions(32)).astype(np.float64)
    plain = jepa_loss(
        to_numpy(out["predictions"]), to_numpy(out["targets"]), valid=batch["targets_valid"]
    )
    expected = plain + 0.5 * sigreg(context.mean(axis=1).astype(np.float64), directions)
    np.testing.assert_allclose(total, expected, rtol=1e-4)


def test_ijepa__online_targets_are_the_online_encoders_own_tokens(tmp_path):
    from jepa_components.backends.keras import SIGReg

    model = make_model(
        seed=4, momentum=None, regularizer=SIGReg(num_slices=16, seed=0), target_encoder="online"
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    model.fit(BATCH, batch_size=2, epochs=1, verbose=0)
    assert model.momentum_schedule()["start"] == 0.0
    for a, b in zip(weights_numpy(model.target_encoder), weights_numpy(model.encoder)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)  # the target follows exactly
    with pytest.raises(ValueError, match="online"):
        model.fit(BATCH, batch_size=2, verbose=0, callbacks=[TargetEMA()])
    with pytest.raises(ValueError, match="momentum"):
        make_model(momentum=0.9, target_encoder="online")
    path = os.path.join(tmp_path, "online.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.target_encoder_kind == "online"
    assert isinstance(loaded.regularizer, SIGReg) and loaded.regularizer_weight == 0.05
    np.testing.assert_array_equal(
        to_numpy(loaded.regularizer.directions(4)), to_numpy(model.regularizer.directions(4))
    )
