"""The predictor: shapes, padding invariance, independent target blocks, config."""

import keras
import numpy as np
import pytest

from jepa_components.positional import sincos_2d_positions
from jepa_components.backends.keras import Predictor
from harness import TINY_PREDICTOR, check_layer, mask_batch, pad, to_numpy

MASKS = mask_batch(2)
CONTEXT_TOKENS = np.random.default_rng(0).normal(size=(2, 6, 32)).astype("float32")


@pytest.fixture(scope="module")
def predictor():
    layer = Predictor(**TINY_PREDICTOR, seed=0)
    layer.build()
    return layer


def call(layer, masks=MASKS, tokens=CONTEXT_TOKENS, valid=True):
    return to_numpy(layer(
        tokens, masks["context"], masks["targets"],
        context_valid=masks["context_valid"] if valid else None,
        targets_valid=masks["targets_valid"] if valid else None))


def test_predictor__harness_shape_and_dtype():
    layer = check_layer(lambda: Predictor(**TINY_PREDICTOR, seed=0), call, (2, 2, 3, 32))
    out = layer(CONTEXT_TOKENS, MASKS["context"], MASKS["targets"])
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_predictor__several_targets_and_no_masks_equals_all_valid(predictor):
    masks = dict(MASKS, targets=np.concatenate([MASKS["targets"]] * 2, axis=1),
                 targets_valid=np.ones((2, 4, 3), bool))
    out = call(predictor, masks)
    assert out.shape == (2, 4, 3, 32)
    np.testing.assert_allclose(out, call(predictor, masks, valid=False), rtol=1e-6, atol=1e-6)
    # Repeated blocks give repeated predictions: blocks are separate sequences.
    np.testing.assert_allclose(out[:, :2], out[:, 2:], rtol=1e-5, atol=1e-5)


def test_predictor__target_blocks_do_not_see_each_other(predictor):
    base = call(predictor)
    other = dict(MASKS, targets=MASKS["targets"].copy())
    other["targets"][:, 1] = (other["targets"][:, 1] + 1) % 16
    out = call(predictor, other)
    np.testing.assert_allclose(out[:, 0], base[:, 0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[:, 1], base[:, 1])


def test_predictor__padding_changes_no_valid_prediction(predictor):
    base = call(predictor)
    padded_masks = pad(MASKS, extra_context=3, extra_targets=2)
    noise = np.random.default_rng(2).normal(size=(2, 3, 32)).astype("float32") * 5
    padded_tokens = np.concatenate([CONTEXT_TOKENS, noise], axis=1)
    out = call(predictor, padded_masks, tokens=padded_tokens)
    assert out.shape == (2, 2, 5, 32)
    np.testing.assert_allclose(out[:, :, :3], base, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out))


def test_predictor__mask_token_plus_positions_feed_the_blocks(predictor):
    # Same target position in two blocks, same context: same prediction for it.
    masks = dict(MASKS, targets=np.array([[[4, 5, 6], [6, 7, 8]]] * 2, "int32"))
    out = call(predictor, masks)
    assert not np.allclose(out[:, 0, 0], out[:, 0, 1])  # positions differ
    assert predictor.mask_token.shape == (1, 1, 16)
    np.testing.assert_allclose(predictor._pos_embed_numpy, sincos_2d_positions(16, 4))


def test_predictor__non_square_grid():
    layer = Predictor(num_patches=8, embed_dim=32, predictor_embed_dim=16, depth=1,
                      num_heads=2, grid_size=(2, 4), seed=0)
    np.testing.assert_allclose(layer._pos_embed_numpy, sincos_2d_positions(16, (2, 4)))
    out = layer(CONTEXT_TOKENS, np.zeros((2, 6), "int32"), np.full((2, 1, 2), 7, "int32"))
    assert to_numpy(out).shape == (2, 1, 2, 32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_patches=15), "grid_size"),
        (dict(grid_size=(3, 4)), "grid_size"),
        (dict(predictor_embed_dim=18), "predictor_embed_dim"),
        (dict(depth=0), "depth"),
        (dict(seed="x"), "seed"),
    ],
)
def test_predictor__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        Predictor(**{**TINY_PREDICTOR, **kwargs})
