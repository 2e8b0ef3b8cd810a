"""TargetEMA: the target is exactly the EMA of the recorded online weights.

The expected target is computed by hand in float64 from the online weights
recorded after every optimizer step: ``t_0 = online at construction``,
``t_{k+1} = m_k * t_k + (1 - m_k) * online_{k+1}`` with ``m_k`` the known
momentum of update ``k``; the official code's order (update after step k,
targets of step k+1 from ``t_{k+1}``).
"""

import keras
import numpy as np
import pytest

from jepa_components.schedules import ema_momentum
from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, VisionTransformer
from harness import TINY_PREDICTOR, TINY_VIT, training_batch, weights_numpy

BATCH = training_batch(4)


def make_model(seed=0, **compile_kwargs):
    model = IJEPA(encoder=VisionTransformer(**TINY_VIT, seed=seed),
                  predictor=Predictor(**TINY_PREDICTOR, seed=seed + 1), momentum=0.99)
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
    model.fit(BATCH, batch_size=2, epochs=2, verbose=0, validation_data=BATCH,
              callbacks=[TargetEMA(0.6), recorder])
    assert model._momentum_schedule == (0.6, 1.0, 4)  # epochs * steps
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
    model.fit(BATCH, batch_size=1, epochs=1, verbose=0,
              callbacks=[TargetEMA(lambda step: sequence[step]), recorder])
    assert_weights_close(weights_numpy(model.target_encoder),
                         expected_ema(initial, recorder.online, sequence)[-1])


def test_target_ema__gradient_accumulation_counts_optimizer_updates():
    model = make_model(seed=3, gradient_accumulation_steps=2)
    initial = weights_numpy(model.encoder)
    recorder = Recorder()
    model.fit(BATCH, batch_size=1, epochs=1, verbose=0,
              callbacks=[TargetEMA(0.5, 1.0, total_steps=4), recorder])
    assert model.ema_update_count() == 2  # 4 micro-batches, 2 optimizer updates
    # Online weights move only on micro-batches 1 and 3.
    assert_weights_close(recorder.online[0], initial)
    updated = [recorder.online[1], recorder.online[3]]
    momenta = [ema_momentum(k, 4, 0.5, 1.0) for k in range(2)]
    assert_weights_close(weights_numpy(model.target_encoder),
                         expected_ema(initial, updated, momenta)[-1])


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_target_ema__needs_total_steps_when_fit_length_is_unknown():
    def generator():  # a python generator: fit does not know its length
        for start in (0, 2):
            yield ({k: v[start:start + 2] for k, v in BATCH.items()},)  # Keras wants tuples

    model = make_model(seed=5)
    with pytest.raises(ValueError, match="Invalid value for argument `total_steps`"):
        model.fit(generator(), epochs=1, verbose=0, shuffle=False, callbacks=[TargetEMA()])
    model.fit(generator(), epochs=1, verbose=0, shuffle=False,
              callbacks=[TargetEMA(total_steps=10)])
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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(momentum=1.2), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(final_momentum=2.0), "final_momentum"),
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=2.5), "total_steps"),
    ],
)
def test_target_ema__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        TargetEMA(**kwargs)
