"""The EMA target module: saved state, the schedule formula (the core's), micro-batch counting.

EMA exactness over training lives in ``test_callbacks.py``.
"""

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, to_numpy
from keras import ops

from jepa_components.backends.keras import IJEPA, EMATarget, Predictor, VisionTransformer
from jepa_components.backends.keras.training.ema import DEFAULT_MOMENTUM, accumulation_steps
from jepa_components.schedules import ema_momentum

STATE = (
    "ema_updates",
    "ema_pending",
    "accumulation_step",
    "momentum_start",
    "momentum_end",
    "momentum_total_steps",
)


def make_model(**kwargs):
    return IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0),
        predictor=Predictor(**TINY_PREDICTOR, seed=1),
        **kwargs,
    )


def test_ema_state__the_models_non_trainable_variables_with_stable_names():
    model = make_model()
    assert isinstance(model, EMATarget)
    own = [
        w
        for w in model.non_trainable_weights
        if not any(w is t for t in model.target_encoder.weights)
    ]
    assert [w.name for w in own] == list(STATE)
    assert [w.path for w in own] == [f"{model.name}/{name}" for name in STATE]
    assert all(getattr(model, name) is w for name, w in zip(STATE, own))


@pytest.mark.parametrize("start, end, total", [(0.996, 1.0, 7), (0.5, 0.9, 3), (0.9, 0.9, 1)])
def test_ema_momentum__tensor_arguments_match_numpy(start, end, total):
    """One formula: the core function on ``keras.ops`` tensors (what the compiled step
    reads from the schedule variables) equals its NumPy values."""
    steps = np.arange(total + 3, dtype="float32")
    got = ema_momentum(
        ops.convert_to_tensor(steps),
        ops.convert_to_tensor(float(total)),
        ops.convert_to_tensor(np.float32(start)),
        ops.convert_to_tensor(np.float32(end)),
        xp=ops,
    )
    np.testing.assert_allclose(to_numpy(got), ema_momentum(steps, total, start, end), rtol=1e-6)


def test_current_momentum__uses_the_core_schedule_and_the_unset_default():
    model = make_model()  # momentum=None: never set, the constant default
    assert model.momentum_schedule()["total_steps"] == 0
    np.testing.assert_allclose(to_numpy(model.current_momentum()), DEFAULT_MOMENTUM, rtol=1e-7)
    model.set_momentum_schedule(0.5, 1.0, total_steps=4)
    for k in range(6):
        np.testing.assert_allclose(
            to_numpy(model.current_momentum(k)), ema_momentum(k, 4, 0.5, 1.0), rtol=1e-6
        )
    model.ema_updates.assign(2)
    np.testing.assert_allclose(to_numpy(model.current_momentum()), 0.75, rtol=1e-6)


def test_accumulation_steps__reads_wrapped_optimizers():
    assert accumulation_steps(None) == 1
    assert accumulation_steps(keras.optimizers.SGD()) == 1
    assert accumulation_steps(keras.optimizers.SGD(gradient_accumulation_steps=3)) == 3
    wrapped = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(gradient_accumulation_steps=2)
    )
    assert accumulation_steps(wrapped) == 2


def test_compile__a_new_optimizer_counts_micro_batches_from_zero():
    model = make_model(momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(gradient_accumulation_steps=2))
    model.accumulation_step.assign(1)
    model.compile(optimizer=keras.optimizers.SGD(gradient_accumulation_steps=2))
    assert int(to_numpy(model.accumulation_step)) == 0
    assert model.accumulation_steps() == 2


def test_apply_pending_ema__blends_once():
    model = make_model(momentum=0.5)
    model.encoder.weights[0].assign(np.ones(model.encoder.weights[0].shape, "float32"))
    before = to_numpy(model.target_encoder.weights[0])
    assert model.apply_pending_ema() is False  # nothing pending
    model.ema_pending.assign(1)
    assert model.apply_pending_ema() is True
    np.testing.assert_allclose(
        to_numpy(model.target_encoder.weights[0]), 0.5 * before + 0.5, rtol=1e-6
    )
    assert model.ema_update_count() == 1 and model.apply_pending_ema() is False
