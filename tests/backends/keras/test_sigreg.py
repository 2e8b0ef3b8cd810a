"""The SIGReg layer: the core statistic on its own directions, new directions per call, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from jepa_components.backends.keras import SIGReg
from jepa_components.regularizers import sigreg


def _gauss(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype("float32")


def test_sigreg_layer__equals_the_core_statistic_on_its_directions():
    layer = SIGReg(num_slices=32, t_max=4.0, num_knots=21, seed=3)
    x = _gauss(128, 8) * 1.5 + 0.2
    state = np.array(ops.convert_to_numpy(layer.seed_generator.state))
    value = float(layer(x))
    layer.seed_generator.state.assign(state)
    directions = np.asarray(ops.convert_to_numpy(layer.directions(8)), np.float64)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-5)
    expected = sigreg(x.astype(np.float64), directions, t_max=4.0, num_knots=21)
    np.testing.assert_allclose(value, expected, rtol=1e-4)


def test_sigreg_layer__new_directions_every_call_same_sequence_for_the_same_seed():
    a, b = SIGReg(num_slices=8, seed=1), SIGReg(num_slices=8, seed=1)
    first, second = (ops.convert_to_numpy(a.directions(4)) for _ in range(2))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, ops.convert_to_numpy(b.directions(4)))


def test_sigreg_layer__float32_under_mixed_precision():
    layer = SIGReg(num_slices=16, seed=0, dtype="mixed_bfloat16")
    out = layer(ops.convert_to_tensor(_gauss(64, 8), "bfloat16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert SIGReg(num_slices=16).compute_dtype == "float32"  # default: float32 policy


def test_sigreg_layer__config_round_trip():
    layer = SIGReg(num_slices=12, t_max=2.5, num_knots=9, seed=7, name="reg")
    clone = SIGReg.from_config(layer.get_config())
    assert (clone.num_slices, clone.t_max, clone.num_knots, clone.seed) == (12, 2.5, 9, 7)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(clone.directions(5)), ops.convert_to_numpy(layer.directions(5))
    )
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_slices": 0}, "num_slices"), ({"t_max": 0}, "t_max"), ({"seed": -1}, "seed")],
)
def test_sigreg_layer__refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SIGReg(**kwargs)
