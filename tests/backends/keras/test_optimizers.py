"""Optimizer helpers: official LR / weight-decay sequences, decay exclusions, configs.

Official sequences come from ``tests/fixtures/official_schedules.json``
(written from facebookresearch/ijepa's schedulers): ``values[k - 1]`` is the
value of optimizer step ``k``, i.e. of Keras ``iterations = k - 1``.
"""

import json
import os

import keras
import numpy as np
import pytest
from harness import to_numpy
from keras import ops

from jepa_components.backends.keras import (
    CosineWeightDecay,
    ScheduledAdamW,
    WarmupCosine,
    make_adamw,
)
from jepa_components.backends.keras.training.optimizers import total_optimizer_steps
from jepa_components.schedules import cosine_weight_decay, warmup_cosine_lr

FIXTURE = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "fixtures", "official_schedules.json"
)


@pytest.fixture(scope="module")
def official():
    with open(FIXTURE) as handle:
        return json.load(handle)


def test_warmup_cosine__matches_official_steps(official):
    for case in official["warmup_cosine_lr"]:
        values = case.pop("values")
        schedule = WarmupCosine(**case)
        got = [float(to_numpy(schedule(ops.convert_to_tensor(i)))) for i in range(len(values))]
        np.testing.assert_allclose(got, values, rtol=1e-5)


def test_cosine_weight_decay__matches_official_steps(official):
    for case in official["cosine_weight_decay"]:
        values = case.pop("values")
        schedule = CosineWeightDecay(**case)
        got = [float(to_numpy(schedule(ops.convert_to_tensor(i)))) for i in range(len(values))]
        np.testing.assert_allclose(got, values, rtol=1e-5)


def _dense_model():
    inputs = keras.Input((3,))
    layer = keras.layers.Dense(2, bias_initializer="ones")
    norm = keras.layers.LayerNormalization()
    return keras.Model(inputs, norm(layer(inputs))), layer, norm


def test_scheduled_adamw__decays_only_matrices_with_the_scheduled_value():
    model, dense, norm = _dense_model()
    lr = WarmupCosine(warmup_steps=2, total_steps=10, start_lr=0.1, ref_lr=0.2, final_lr=0.0)
    wd = CosineWeightDecay(total_steps=10, ref_wd=0.5, final_wd=0.9)
    optimizer = ScheduledAdamW(learning_rate=lr, weight_decay=wd)
    optimizer.build(model.trainable_variables)
    kernel = to_numpy(dense.kernel)
    zeros = [ops.zeros(v.shape, v.dtype) for v in model.trainable_variables]  # Adam step is 0
    optimizer.apply(zeros, model.trainable_variables)
    factor = 1.0 - to_numpy(lr(0)) * to_numpy(wd(0))
    np.testing.assert_allclose(to_numpy(dense.kernel), kernel * factor, rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(dense.bias), 1.0)
    np.testing.assert_array_equal(to_numpy(norm.gamma), 1.0)
    optimizer.apply(zeros, model.trainable_variables)
    factor *= 1.0 - to_numpy(lr(1)) * to_numpy(wd(1))
    np.testing.assert_allclose(to_numpy(dense.kernel), kernel * factor, rtol=1e-6)


def test_scheduled_adamw__float_decay_and_no_exclusion_option():
    model, dense, _ = _dense_model()
    optimizer = ScheduledAdamW(learning_rate=0.1, weight_decay=0.5, exclude_biases_and_1d=False)
    optimizer.build(model.trainable_variables)
    optimizer.apply(
        [ops.zeros(v.shape, v.dtype) for v in model.trainable_variables], model.trainable_variables
    )
    np.testing.assert_allclose(to_numpy(dense.bias), 0.95, rtol=1e-6)
    assert optimizer.epsilon == 1e-8


def test_scheduled_adamw__config_round_trip():
    optimizer = make_adamw(steps_per_epoch=10, epochs=3, warmup_epochs=1)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, ScheduledAdamW)
    assert restored.get_config() == optimizer.get_config()
    for step in (0, 9, 29):
        np.testing.assert_allclose(
            to_numpy(restored.weight_decay_schedule(step)),
            to_numpy(optimizer.weight_decay_schedule(step)),
        )


def test_make_adamw__official_recipe_over_scaled_steps():
    optimizer = make_adamw(steps_per_epoch=10, epochs=4, warmup_epochs=1, ipe_scale=1.25)
    lr = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    wd = optimizer.weight_decay_schedule
    assert (lr.warmup_steps, lr.total_steps) == (10, 50)
    assert (lr.start_lr, lr.ref_lr, lr.final_lr) == (2e-4, 1e-3, 1e-6)
    assert (wd.total_steps, wd.ref_wd, wd.final_wd) == (50, 0.04, 0.4)


def test_total_optimizer_steps__exact_values():
    assert total_optimizer_steps(100, 10) == 1000
    assert total_optimizer_steps(7, 3, ipe_scale=1.25) == 26  # int(26.25)
    assert total_optimizer_steps(100, 10, ipe_scale=1.25, accumulation_steps=4) == 312
    assert total_optimizer_steps(3, 1, ipe_scale=0.1) == 1  # at least one step


@pytest.mark.parametrize(
    "ipe, epochs, ipe_scale", [(10, 4, 1.25), (7, 3, 1.25), (5, 2, 1.0), (3, 3, 0.7)]
)
def test_total_optimizer_steps__is_the_official_schedule_length(
    official_code, ipe, epochs, ipe_scale
):
    import torch

    helper = official_code("src.helper")
    _, _, lr, wd = helper.init_opt(
        encoder=torch.nn.Linear(2, 2),
        predictor=torch.nn.Linear(2, 2),
        iterations_per_epoch=ipe,
        start_lr=2e-4,
        ref_lr=1e-3,
        warmup=1,
        num_epochs=epochs,
        ipe_scale=ipe_scale,
    )
    expected = total_optimizer_steps(ipe, epochs, ipe_scale)
    assert wd.T_max == lr.T_max + lr.warmup_steps == expected
    # src/train.py: the momentum generator yields int(ipe * num_epochs * ipe_scale) + 1 values.
    assert int(ipe * epochs * ipe_scale) == expected
    optimizer = make_adamw(steps_per_epoch=ipe, epochs=epochs, warmup_epochs=1, ipe_scale=ipe_scale)
    assert optimizer.weight_decay_schedule.total_steps == expected


def test_schedules__count_optimizer_updates_under_gradient_accumulation():
    lr = WarmupCosine(
        warmup_steps=2, total_steps=5, start_lr=0.1, ref_lr=0.5, final_lr=0.0, accumulation_steps=3
    )
    wd = CosineWeightDecay(total_steps=5, ref_wd=0.1, final_wd=0.5, accumulation_steps=3)
    for iterations in range(15):
        update = iterations // 3 + 1  # micro-batches 3k-3 .. 3k-1 belong to update k
        np.testing.assert_allclose(
            to_numpy(lr(iterations)),
            warmup_cosine_lr(update, warmup_steps=2, total_steps=5, start_lr=0.1, ref_lr=0.5),
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            to_numpy(wd(iterations)),
            cosine_weight_decay(update, total_steps=5, ref_wd=0.1, final_wd=0.5),
            rtol=1e-6,
        )


def test_scheduled_adamw__accumulated_updates_use_the_values_of_their_update_number():
    model, dense, _ = _dense_model()
    kwargs = dict(warmup_steps=1, total_steps=4, start_lr=0.05, ref_lr=0.2, final_lr=0.01)
    lr = WarmupCosine(**kwargs, accumulation_steps=2)
    wd = CosineWeightDecay(total_steps=4, ref_wd=0.5, final_wd=0.9, accumulation_steps=2)
    optimizer = ScheduledAdamW(learning_rate=lr, weight_decay=wd, gradient_accumulation_steps=2)
    optimizer.build(model.trainable_variables)
    kernel = to_numpy(dense.kernel)
    zeros = [ops.zeros(v.shape, v.dtype) for v in model.trainable_variables]
    for _ in range(6):  # 6 micro-batches: optimizer updates 1, 2 and 3
        optimizer.apply(zeros, model.trainable_variables)
    factor = 1.0
    for update in (1, 2, 3):
        factor *= 1.0 - warmup_cosine_lr(update, **kwargs) * cosine_weight_decay(
            update, total_steps=4, ref_wd=0.5, final_wd=0.9
        )
    np.testing.assert_allclose(to_numpy(dense.kernel), kernel * factor, rtol=1e-6)


def test_make_adamw__schedules_count_optimizer_updates_under_accumulation():
    optimizer = make_adamw(
        steps_per_epoch=10, epochs=4, warmup_epochs=1, gradient_accumulation_steps=2
    )
    lr = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    wd = optimizer.weight_decay_schedule
    assert (lr.warmup_steps, lr.total_steps, lr.accumulation_steps) == (5, 20, 2)
    assert (wd.total_steps, wd.accumulation_steps) == (20, 2)
    assert optimizer.gradient_accumulation_steps == 2


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: make_adamw(steps_per_epoch=10, epochs=2), "warmup_epochs"),
        (lambda: make_adamw(steps_per_epoch=0, epochs=2), "steps_per_epoch"),
        (
            lambda: make_adamw(steps_per_epoch=10, epochs=2, warmup_epochs=1, ipe_scale=0),
            "ipe_scale",
        ),
        (lambda: ScheduledAdamW(weight_decay=-1.0), "weight_decay"),
        (
            lambda: WarmupCosine(warmup_steps=5, total_steps=2, start_lr=0.0, ref_lr=1.0),
            "warmup_steps",
        ),
        (lambda: CosineWeightDecay(total_steps=0, ref_wd=0.1, final_wd=0.2), "total_steps"),
        (
            lambda: CosineWeightDecay(
                total_steps=5, ref_wd=0.1, final_wd=0.2, accumulation_steps=0
            ),
            "accumulation_steps",
        ),
        (lambda: total_optimizer_steps(10, 0), "epochs"),
        (lambda: total_optimizer_steps(10, 2, accumulation_steps=1.5), "accumulation_steps"),
    ],
)
def test_optimizers__invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        make()
