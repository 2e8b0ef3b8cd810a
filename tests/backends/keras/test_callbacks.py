"""TargetEMA and the model's EMA state: the target is exactly the EMA of the online weights.

The expected target is computed by hand in float64 from the online weights
recorded after every optimizer step: ``t_0 = online at construction``,
``t_{k+1} = m_k * t_k + (1 - m_k) * online_{k+1}`` with ``m_k`` the known
momentum of update ``k``; the official code's order (update after step k,
targets of step k+1 from ``t_{k+1}``). A ``.keras`` round trip in the middle
of a run continues exactly as the run straight through.
"""

import os
import warnings

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, to_numpy, training_batch, weights_numpy

from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, VisionTransformer
from jepa_components.backends.keras.training.optimizers import make_adamw, total_optimizer_steps
from jepa_components.schedules import ema_momentum

BATCH = training_batch(4)


def make_model(seed=0, **compile_kwargs):
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=seed),
        predictor=Predictor(**TINY_PREDICTOR, seed=seed + 1),
        momentum=0.99,
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-2, **compile_kwargs))
    return model


class Recorder(keras.callbacks.Callback):
    """Online and target weights after every batch (syncs state: tests only)."""

    def __init__(self):
        super().__init__()
        self.online, self.target, self.validation_target = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.online.append(weights_numpy(self.model.encoder))
        self.target.append(weights_numpy(self.model.target_encoder))

    def on_test_begin(self, logs=None):  # runs after TargetEMA's (list order)
        self.validation_target.append(weights_numpy(self.model.target_encoder))


def expected_ema(initial, onlines, momenta):
    target = [w.astype("float64") for w in initial]
    history = [target]
    for online, m in zip(onlines, momenta):
        target = [m * t + (1.0 - m) * o.astype("float64") for t, o in zip(target, online)]
        history.append(target)
    return history


def assert_weights_close(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


def test_target_ema__linear_schedule_exact_across_two_fits():
    model = make_model(seed=0)
    initial = weights_numpy(model.encoder)
    recorder = Recorder()
    ema = TargetEMA(0.5, final_momentum=1.0, total_steps=8)  # far from 1: every update shows
    model.fit(BATCH, batch_size=2, epochs=1, verbose=0, callbacks=[ema, recorder])
    assert model.ema_update_count() == 2
    model.fit(BATCH, batch_size=2, epochs=2, verbose=0, callbacks=[ema, recorder])
    assert model.ema_update_count() == 6
    momenta = [ema_momentum(k, 8, 0.5, 1.0) for k in range(6)]
    history = expected_ema(initial, recorder.online, momenta)
    assert_weights_close(weights_numpy(model.target_encoder), history[-1])
    # During fit, step k's targets come from t_k: the update of step k is
    # still pending at the end of batch k (applied at the start of step k+1).
    for k, target in enumerate(recorder.target):
        assert_weights_close(target, history[k])


def test_target_ema__default_total_steps_and_validation_sees_current_target():
    model = make_model(seed=1)
    initial = weights_numpy(model.encoder)
    recorder = Recorder()
    model.fit(
        BATCH,
        batch_size=2,
        epochs=2,
        verbose=0,
        validation_data=BATCH,
        callbacks=[TargetEMA(0.6), recorder],
    )
    assert model.momentum_schedule() == {"start": 0.6, "end": 1.0, "total_steps": 4}
    momenta = [ema_momentum(k, 4, 0.6, 1.0) for k in range(4)]
    history = expected_ema(initial, recorder.online, momenta)
    assert_weights_close(weights_numpy(model.target_encoder), history[-1])
    # Validation after epoch 1 sees t_2 (the pending update flushed, not t_1),
    # and the next step does not apply it twice: batch 2 ends with t_2.
    assert_weights_close(recorder.validation_target[0], history[2])
    assert not np.allclose(recorder.validation_target[0][0], history[1][0])
    assert_weights_close(recorder.target[2], history[2])
    assert int(keras.ops.convert_to_numpy(model.ema_pending.value)) == 0


def test_target_ema__callable_momentum_is_exact():
    model = make_model(seed=2)
    initial = weights_numpy(model.encoder)
    recorder = Recorder()
    sequence = [0.3, 0.8, 0.5, 0.9]
    model.fit(
        BATCH,
        batch_size=1,
        epochs=1,
        verbose=0,
        callbacks=[TargetEMA(lambda step: sequence[step]), recorder],
    )
    assert_weights_close(
        weights_numpy(model.target_encoder), expected_ema(initial, recorder.online, sequence)[-1]
    )


def test_target_ema__gradient_accumulation_counts_optimizer_updates():
    model = make_model(seed=3, gradient_accumulation_steps=2)
    initial = weights_numpy(model.encoder)
    recorder = Recorder()
    model.fit(
        BATCH,
        batch_size=1,
        epochs=1,
        verbose=0,
        callbacks=[TargetEMA(0.5, 1.0, total_steps=4), recorder],
    )
    assert model.ema_update_count() == 2  # 4 micro-batches, 2 optimizer updates
    # Online weights move only on micro-batches 1 and 3.
    assert_weights_close(recorder.online[0], initial)
    updated = [recorder.online[1], recorder.online[3]]
    momenta = [ema_momentum(k, 4, 0.5, 1.0) for k in range(2)]
    assert_weights_close(
        weights_numpy(model.target_encoder), expected_ema(initial, updated, momenta)[-1]
    )


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_target_ema__needs_total_steps_when_fit_length_is_unknown():
    def generator():  # a python generator: fit does not know its length
        for start in (0, 2):
            yield ({k: v[start : start + 2] for k, v in BATCH.items()},)  # Keras wants tuples

    model = make_model(seed=5)
    with pytest.raises(ValueError, match="Invalid value for argument `total_steps`"):
        model.fit(generator(), epochs=1, verbose=0, shuffle=False, callbacks=[TargetEMA()])
    model.fit(
        generator(), epochs=1, verbose=0, shuffle=False, callbacks=[TargetEMA(total_steps=10)]
    )
    # One EMA update per optimizer update (tensorflow's generator adapter may
    # run a peeked batch once more: count against the optimizer, not the data).
    steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))
    assert steps >= 2 and model.ema_update_count() == steps


def test_target_ema__rejects_other_models():
    inputs = keras.Input((2,))
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    plain.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="IJEPA"):
        plain.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0, callbacks=[TargetEMA()])


def test_ijepa__momentum_formula_equals_the_core_schedule():
    model = make_model(seed=6)
    model.set_momentum_schedule(0.9, 0.999, total_steps=7)
    for k in range(10):  # past total_steps the core holds the end value
        np.testing.assert_allclose(
            to_numpy(model.current_momentum(k)), ema_momentum(k, 7, 0.9, 0.999), rtol=1e-6
        )
    model.set_momentum_schedule(0.97)  # constant
    assert model.momentum_schedule() == {"start": 0.97, "end": 0.97, "total_steps": 1}
    np.testing.assert_allclose(to_numpy(model.current_momentum(5)), 0.97, rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid value for argument `end`"):
        model.set_momentum_schedule(0.9, 1.5, total_steps=3)
    with pytest.raises(ValueError, match="Invalid value for argument `total_steps`"):
        model.set_momentum_schedule(0.9, 1.0, total_steps=0)


@pytest.mark.parametrize("ipe_scale, accumulation", [(1.0, 1), (1.25, 2)])
def test_target_ema__schedule_length_agrees_with_make_adamw(ipe_scale, accumulation):
    model = make_model(seed=7)
    optimizer = make_adamw(
        steps_per_epoch=4,
        epochs=3,
        warmup_epochs=1,
        ipe_scale=ipe_scale,
        gradient_accumulation_steps=accumulation if accumulation > 1 else None,
    )
    model.compile(optimizer=optimizer)
    # 4 batches per epoch, epochs 2..3 of 3: TargetEMA still covers the whole run.
    model.fit(
        BATCH,
        batch_size=1,
        epochs=3,
        initial_epoch=2,
        verbose=0,
        shuffle=False,
        callbacks=[TargetEMA(0.5, ipe_scale=ipe_scale)],
    )
    expected = total_optimizer_steps(4, 3, ipe_scale, accumulation)
    assert expected == int(ipe_scale * 3 * 4 / accumulation)  # 12, 7
    assert model.momentum_schedule()["total_steps"] == expected
    assert optimizer.weight_decay_schedule.total_steps == expected
    lr = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    assert lr.total_steps == expected


def _round_trip_model(seed):
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=seed),
        predictor=Predictor(**TINY_PREDICTOR, seed=seed + 1),
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-2))
    return model


def _assert_same_run(a, b):
    assert a.ema_update_count() == b.ema_update_count()
    assert a.momentum_schedule() == b.momentum_schedule()
    for x, y in ((a.target_encoder, b.target_encoder), (a.encoder, b.encoder)):
        for u, v in zip(weights_numpy(x), weights_numpy(y)):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_ema_state__keras_round_trip_after_fit_continues_without_the_callback(tmp_path):
    fit = dict(batch_size=2, verbose=0, shuffle=False)
    straight = _round_trip_model(seed=8)
    straight.fit(BATCH, epochs=3, callbacks=[TargetEMA(0.5, 1.0, total_steps=6)], **fit)

    first = _round_trip_model(seed=8)
    first.fit(BATCH, epochs=1, callbacks=[TargetEMA(0.5, 1.0, total_steps=6)], **fit)
    path = os.path.join(tmp_path, "half.keras")
    first.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.momentum_schedule() == {"start": 0.5, "end": 1.0, "total_steps": 6}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the saved schedule counts as set
        loaded.fit(BATCH, epochs=3, initial_epoch=1, **fit)  # no TargetEMA: the saved schedule
    assert loaded.ema_update_count() == 6
    _assert_same_run(loaded, straight)


class SaveAndStop(keras.callbacks.Callback):
    """Saves the model at the end of the first epoch (an update still pending) and stops."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        self.model.save(self.path)
        self.model.stop_training = True


def test_ema_state__checkpoint_inside_fit_keeps_the_pending_update(tmp_path):
    fit = dict(batch_size=2, verbose=0, shuffle=False)
    straight = _round_trip_model(seed=9)
    straight.fit(BATCH, epochs=3, callbacks=[TargetEMA(0.5, 1.0)], **fit)

    path = os.path.join(tmp_path, "epoch1.keras")
    first = _round_trip_model(seed=9)
    first.fit(BATCH, epochs=3, callbacks=[TargetEMA(0.5, 1.0), SaveAndStop(path)], **fit)
    loaded = keras.models.load_model(path)
    assert int(to_numpy(loaded.ema_pending)) == 1 and loaded.ema_update_count() == 1
    loaded.fit(BATCH, epochs=3, initial_epoch=1, callbacks=[TargetEMA(0.5, 1.0)], **fit)
    assert loaded.momentum_schedule()["total_steps"] == 6
    _assert_same_run(loaded, straight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(momentum=1.2), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(final_momentum=2.0), "final_momentum"),
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=2.5), "total_steps"),
        (dict(ipe_scale=0.0), "ipe_scale"),
    ],
)
def test_target_ema__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        TargetEMA(**kwargs)
