"""Data-parallel training (keras.distribution) equals one-device training."""

import textwrap

import keras
import pytest
from harness import run_on_two_cpu_devices

from jepa_components.backends.keras.training.distribution import data_parallel, process_mask_start

# Runs in a fresh process: XLA_FLAGS must be set before jax starts.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import jax, keras
    from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, VisionTransformer
    from jepa_components.backends.keras.training.distribution import data_parallel
    from jepa_components.masks import MultiBlockMaskSampler

    seen = []

    def train(distributed):
        keras.distribution.set_distribution(None)
        if distributed:
            data_parallel(global_batch_size=8)
        encoder = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=2,
                                    num_heads=2, seed=0)
        predictor = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=1,
                              num_heads=2, seed=1)
        model = IJEPA(encoder=encoder, predictor=predictor)
        original_call = model.call

        def recording_call(inputs, training=False):
            if distributed and training:  # where do the images of the step live?
                jax.debug.inspect_array_sharding(
                    inputs["images"], callback=lambda s: seen.append(str(s)))
            return original_call(inputs, training=training)

        model.call = recording_call
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
        batch = sampler.sample(24).as_dict()
        batch["images"] = np.random.default_rng(0).normal(size=(24, 16, 16, 3)).astype("float32")
        model.fit(batch, batch_size=8, epochs=2, shuffle=False, verbose=0,
                  callbacks=[TargetEMA(0.9, final_momentum=1.0)])
        return ([np.asarray(w) for w in model.encoder.weights],
                [np.asarray(w) for w in model.target_encoder.weights],
                str(model.encoder.weights[0].value.sharding))

    one, one_target, _ = train(False)
    two, two_target, weight_sharding = train(True)
    print(json.dumps({
        "devices": len(jax.devices()),
        "online": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "target": max(float(np.abs(a - b).max()) for a, b in zip(one_target, two_target)),
        "moved": max(float(np.abs(a - b).max()) for a, b in zip(one_target, one)),
        "input_sharding": seen[:1], "weight_sharding": weight_sharding}))
""")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution needs jax")
def test_data_parallel__two_cpu_devices_equal_one_device():
    result = run_on_two_cpu_devices(SCRIPT)
    assert result["devices"] == 2
    assert result["online"] < 1e-5 and result["target"] < 1e-5, result
    assert result["moved"] > 1e-4, result  # the EMA did move the target off the online weights
    # The batch axis of the images is split over the two devices; weights are replicated.
    assert result["input_sharding"] and "spec=P('batch'," in result["input_sharding"][0], result
    assert "spec=P(None, None, None, None)" in result["weight_sharding"], result


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the error is for other backends")
def test_data_parallel__other_backends_refuse_clearly():
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        data_parallel()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution needs jax")
def test_data_parallel__batch_must_split_evenly():
    devices = keras.distribution.list_devices()
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        data_parallel(devices=devices * 3, global_batch_size=len(devices) * 3 + 1)
    keras.distribution.set_distribution(None)


def test_process_mask_start__processes_tile_the_global_stream():
    starts = [process_mask_start(5, 64, p, 4) for p in range(4)]
    assert starts == [320, 336, 352, 368]
    with pytest.raises(ValueError, match="process_index"):
        process_mask_start(0, 64, 4, 4)
    with pytest.raises(ValueError, match="multiple of num_processes=3"):
        process_mask_start(0, 64, 0, 3)
