"""Shared helpers for the Keras layer tests: tiny configs, batches, a layer harness.

``check_layer`` runs the checks every layer must pass: it builds, gives the
expected output shape, ``from_config(get_config())`` rebuilds an identical
layer (same config, same outputs once weights are copied), and a
serialize/deserialize round trip through ``keras.saving`` does the same.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
from keras import ops

TINY_VIT = dict(image_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
TINY_PREDICTOR = dict(num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2)


def to_numpy(x):
    if isinstance(x, keras.Variable):
        x = x.value
    return np.asarray(ops.convert_to_numpy(x))


def weights_numpy(layer):
    return [to_numpy(w) for w in layer.weights]


def images(batch_size=2, size=16, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    if isinstance(size, int):
        size = (size, size)
    return rng.normal(size=(batch_size, *size, channels)).astype("float32")


def mask_batch(batch_size=2, seed=0):
    """A hand-built batch on a 4x4 grid: 6 context patches, 2 blocks of 3 targets.

    Sample b uses disjoint index sets drawn from ``seed``; no padding.
    """
    rng = np.random.default_rng(seed)
    context, targets = [], []
    for _ in range(batch_size):
        order = rng.permutation(16)
        context.append(order[:6])
        targets.append(order[6:12].reshape(2, 3))
    return {
        "context": np.asarray(context, "int32"),
        "context_valid": np.ones((batch_size, 6), bool),
        "targets": np.asarray(targets, "int32"),
        "targets_valid": np.ones((batch_size, 2, 3), bool),
    }


def training_batch(batch_size=2, seed=0):
    batch = mask_batch(batch_size, seed)
    batch["images"] = images(batch_size, seed=seed)
    return batch


def pad(batch, extra_context=2, extra_targets=2):
    """The same batch with padded (invalid) slots appended; padded indices hold 0."""
    out = dict(batch)
    b, _ = batch["context"].shape
    _, m, _ = batch["targets"].shape
    out["context"] = np.concatenate([batch["context"], np.zeros((b, extra_context), "int32")], 1)
    out["context_valid"] = np.concatenate(
        [batch["context_valid"], np.zeros((b, extra_context), bool)], 1
    )
    out["targets"] = np.concatenate([batch["targets"], np.zeros((b, m, extra_targets), "int32")], 2)
    out["targets_valid"] = np.concatenate(
        [batch["targets_valid"], np.zeros((b, m, extra_targets), bool)], 2
    )
    return out


def check_layer(make_layer, call, expected_shape):
    """Build, shape, config round trip and keras serialization round trip.

    Args:
        make_layer: zero-argument callable returning a fresh layer.
        call: ``layer -> output`` (calls the layer on fixed inputs).
        expected_shape: tuple, the output shape.
    """
    layer = make_layer()
    out = to_numpy(call(layer))
    assert out.shape == tuple(expected_shape)
    assert np.all(np.isfinite(out))

    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    call(clone)  # builds it
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(call(clone)), out, rtol=1e-6, atol=1e-6)

    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    call(restored)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(call(restored)), out, rtol=1e-6, atol=1e-6)
    return layer


def run_on_two_cpu_devices(script):
    """Run ``script`` in a fresh jax process with two CPU devices; its last line as JSON.

    A fresh process: ``XLA_FLAGS`` must be set before jax starts. Fails the
    test (with the end of stderr) when the script fails.
    """
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        TF_CPP_MIN_LOG_LEVEL="3",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
