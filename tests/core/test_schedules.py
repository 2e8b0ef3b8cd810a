"""Tests of jepa_components.schedules (official parity via a committed fixture)."""

import json
import math
import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.schedules import cosine_weight_decay, ema_momentum, warmup_cosine_lr

FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "official_schedules.json"
OFFICIAL = json.loads(FIXTURE.read_text())


def _lr_kwargs(case):
    return {k: case[k] for k in ("warmup_steps", "total_steps", "start_lr", "ref_lr", "final_lr")}


def _wd_kwargs(case):
    return {k: case[k] for k in ("total_steps", "ref_wd", "final_wd")}


@pytest.mark.parametrize("case", OFFICIAL["warmup_cosine_lr"], ids=lambda c: f"T{c['total_steps']}")
def test_warmup_cosine_lr__matches_official_kth_step_call(case):
    steps = np.arange(1, case["total_steps"] + 1)
    expected = np.array(case["values"])
    scalar = [warmup_cosine_lr(int(k), **_lr_kwargs(case)) for k in steps]
    np.testing.assert_allclose(scalar, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        warmup_cosine_lr(steps, **_lr_kwargs(case)), expected, rtol=1e-12, atol=0
    )


@pytest.mark.parametrize(
    "case", OFFICIAL["cosine_weight_decay"], ids=lambda c: f"T{c['total_steps']}"
)
def test_cosine_weight_decay__matches_official_kth_step_call(case):
    steps = np.arange(1, case["total_steps"] + 1)
    expected = np.array(case["values"])
    scalar = [cosine_weight_decay(int(k), **_wd_kwargs(case)) for k in steps]
    np.testing.assert_allclose(scalar, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        cosine_weight_decay(steps, **_wd_kwargs(case)), expected, rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("case", OFFICIAL["ema_momentum"], ids=lambda c: f"T{c['total_steps']}")
def test_ema_momentum__equals_official_generator_exactly(case):
    steps = np.arange(case["total_steps"] + 1)
    values = [ema_momentum(int(i), case["total_steps"], case["start"], case["end"]) for i in steps]
    assert values == case["values"]  # bitwise: same float operations as train.py
    array_values = ema_momentum(steps, case["total_steps"], case["start"], case["end"])
    assert array_values.tolist() == case["values"]


def test_ema_momentum__hand_values_and_hold_after_end():
    assert ema_momentum(0, 4) == 0.996
    assert ema_momentum(2, 4) == pytest.approx(0.998, abs=1e-15)
    assert ema_momentum(4, 4) == 1.0
    assert ema_momentum(100, 4) == ema_momentum(4, 4)
    assert ema_momentum(3, 3, start=0.5, end=0.5) == 0.5


def test_warmup_cosine_lr__hand_values():
    kwargs = dict(warmup_steps=2, total_steps=6, start_lr=0.1, ref_lr=0.5, final_lr=0.1)
    # warmup: 0.1 + k/2 * 0.4; cosine over 4 steps: 0.1 + 0.4 * 0.5 * (1 + cos(pi p))
    expected = [
        0.1,
        0.3,
        0.5,
        0.1 + 0.2 * (1 + math.cos(math.pi / 4)),
        0.3,
        0.1 + 0.2 * (1 + math.cos(3 * math.pi / 4)),
        0.1,
    ]
    np.testing.assert_allclose(
        [warmup_cosine_lr(k, **kwargs) for k in range(7)], expected, rtol=1e-14
    )


def test_warmup_cosine_lr__holds_final_value_after_total_steps():
    kwargs = dict(warmup_steps=3, total_steps=10, start_lr=0.0, ref_lr=1.0, final_lr=0.25)
    assert warmup_cosine_lr(10, **kwargs) == 0.25
    np.testing.assert_array_equal(warmup_cosine_lr(np.array([11, 15, 10_000]), **kwargs), 0.25)


def test_cosine_weight_decay__hand_values_and_hold():
    kwargs = dict(total_steps=4, ref_wd=0.04, final_wd=0.4)
    values = [cosine_weight_decay(k, **kwargs) for k in range(6)]
    np.testing.assert_allclose(
        values[:5],
        [0.04, 0.4 - 0.18 * (1 + math.sqrt(0.5)), 0.22, 0.4 - 0.18 * (1 - math.sqrt(0.5)), 0.4],
        rtol=1e-14,
    )
    assert values[5] == values[4] == 0.4


@given(
    total_steps=st.integers(1, 500),
    warmup_fraction=st.floats(0, 1),
    lrs=st.tuples(*[st.floats(0, 1)] * 3),
    data=st.data(),
)
def test_warmup_cosine_lr__stays_between_bounds_and_array_equals_scalar(
    total_steps, warmup_fraction, lrs, data
):
    start_lr, ref_lr, final_lr = lrs
    warmup_steps = int(warmup_fraction * total_steps)
    kwargs = dict(
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        start_lr=start_lr,
        ref_lr=ref_lr,
        final_lr=final_lr,
    )
    steps = np.array(data.draw(st.lists(st.integers(0, 2 * total_steps), min_size=1, max_size=20)))
    values = warmup_cosine_lr(steps, **kwargs)
    low = min(start_lr, ref_lr, final_lr)
    high = max(start_lr, ref_lr, final_lr)
    assert np.all(values >= low - 1e-12) and np.all(values <= high + 1e-12)
    assert values.tolist() == [warmup_cosine_lr(int(s), **kwargs) for s in steps]


@given(
    total_steps=st.integers(1, 500),
    wds=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    step=st.integers(0, 1000),
)
def test_cosine_weight_decay__monotone_towards_final(total_steps, wds, step):
    ref_wd, final_wd = wds
    kwargs = dict(total_steps=total_steps, ref_wd=ref_wd, final_wd=final_wd)
    here, after = cosine_weight_decay(step, **kwargs), cosine_weight_decay(step + 1, **kwargs)
    # moves towards final_wd, never past it (the official clamp)
    assert abs(after - final_wd) <= abs(here - final_wd) + 1e-15
    # (ref - final) + final may round one ulp past ref at step 0
    assert min(ref_wd, final_wd) - 1e-15 <= here <= max(ref_wd, final_wd) + 1e-15


@given(total_steps=st.integers(1, 10_000), step=st.integers(0, 20_000))
def test_ema_momentum__monotone_in_unit_interval(total_steps, step):
    here, after = ema_momentum(step, total_steps), ema_momentum(step + 1, total_steps)
    assert 0.996 <= here <= after <= 1.0


def test_scalar_step_returns_numpy_scalar():
    assert isinstance(ema_momentum(1, 10), float)
    assert isinstance(
        warmup_cosine_lr(1, warmup_steps=1, total_steps=2, start_lr=0.0, ref_lr=1.0), float
    )
    assert isinstance(cosine_weight_decay(1, total_steps=2, ref_wd=0.1, final_wd=0.2), float)
    assert warmup_cosine_lr(
        np.arange(3), warmup_steps=1, total_steps=2, start_lr=0.0, ref_lr=1.0
    ).shape == (3,)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ema_momentum(0, 0), r"`total_steps`.*>= 1.*total_steps=0"),
        (lambda: ema_momentum(0, 2.5), r"`total_steps`"),
        (lambda: ema_momentum(0, 10, start=1.2), r"`start`.*in \[0, 1\].*start=1.2"),
        (lambda: ema_momentum(0, 10, end=-0.1), r"`end`"),
        (lambda: ema_momentum(-1, 10), r"`step`.*>= 0.*step=-1"),
        (lambda: ema_momentum(np.array([1, np.nan]), 10), r"`step`.*finite"),
        (lambda: ema_momentum(np.array([True]), 10), r"`step`.*real"),
        (
            lambda: warmup_cosine_lr(0, warmup_steps=11, total_steps=10, start_lr=0, ref_lr=1),
            r"`warmup_steps`.*in \[0, 10\].*warmup_steps=11",
        ),
        (
            lambda: warmup_cosine_lr(0, warmup_steps=-1, total_steps=10, start_lr=0, ref_lr=1),
            r"`warmup_steps`",
        ),
        (
            lambda: warmup_cosine_lr(0, warmup_steps=1.5, total_steps=10, start_lr=0, ref_lr=1),
            r"`warmup_steps`",
        ),
        (
            lambda: warmup_cosine_lr(0, warmup_steps=1, total_steps=10, start_lr=-1e-3, ref_lr=1),
            r"`start_lr`",
        ),
        (
            lambda: warmup_cosine_lr(
                0, warmup_steps=1, total_steps=10, start_lr=0, ref_lr=math.nan
            ),
            r"`ref_lr`",
        ),
        (
            lambda: warmup_cosine_lr(
                0, warmup_steps=1, total_steps=10, start_lr=0, ref_lr=1, final_lr=-1
            ),
            r"`final_lr`",
        ),
        (lambda: cosine_weight_decay(0, total_steps=10, ref_wd=-0.1, final_wd=0.4), r"`ref_wd`"),
        (lambda: cosine_weight_decay(0, total_steps=10, ref_wd=0.1, final_wd=None), r"`final_wd`"),
        (
            lambda: cosine_weight_decay(0, total_steps=True, ref_wd=0.1, final_wd=0.4),
            r"`total_steps`",
        ),
    ],
)
def test_invalid_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ema_momentum__numpy_hyper_parameters_stay_validated_numbers():
    """Tensors are accepted only with another array namespace (the Keras EMA target passes
    its schedule variables with ``xp=keras.ops``); with NumPy the arguments are numbers."""
    for bad in (None, "10", np.array(10)):
        with pytest.raises(ValueError, match="`total_steps`"):
            ema_momentum(0, bad)
    with pytest.raises(ValueError, match="`start`"):
        ema_momentum(0, 10, start=np.array([0.5]))
    assert ema_momentum(3, np.int64(6), np.float32(0.5), 1.0) == 0.75
