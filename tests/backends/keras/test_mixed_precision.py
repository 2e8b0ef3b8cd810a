"""bf16 mixed precision (``mixed_bfloat16``): compute in bfloat16; weights, targets,
loss and the target EMA in float32, on every backend."""

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, to_numpy, training_batch

from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer


@pytest.fixture
def mixed_bfloat16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


def _weights(layer):
    return [np.asarray(to_numpy(w), np.float64) for w in layer.weights]


def test_mixed_bfloat16__finite_loss_float32_state_and_exact_ema(mixed_bfloat16):
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=0),
        predictor=Predictor(**TINY_PREDICTOR, seed=1),
        momentum=0.9,
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    batch = training_batch(8)
    out = model(batch, training=False)
    assert keras.backend.standardize_dtype(out["predictions"].dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(out["targets"].dtype) == "float32"
    target_before = _weights(model.target_encoder)
    online = []

    class RecordOnline(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            online.append(_weights(self.model.encoder))

    history = model.fit(
        batch, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[RecordOnline()]
    )  # two optimizer steps
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(
        keras.backend.standardize_dtype(w.dtype) == "float32"
        for w in model.weights
        if "float" in str(w.dtype)
    )
    # Two EMA updates with momentum 0.9 (the last one applied when fit ends), computed
    # in float64 from the recorded online weights: exact to float32 rounding. Under
    # bf16 rounding of the momentum or the weights the error would be ~1e-3.
    first, second = online
    expected = [
        0.9 * (0.9 * t + 0.1 * a) + 0.1 * b for t, a, b in zip(target_before, first, second)
    ]
    error = max(np.abs(a - b).max() for a, b in zip(_weights(model.target_encoder), expected))
    moved = max(np.abs(a - b).max() for a, b in zip(_weights(model.target_encoder), target_before))
    assert moved > 1e-4 and error < 1e-6, (moved, error)
