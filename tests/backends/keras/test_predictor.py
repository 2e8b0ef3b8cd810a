"""The predictor: shapes, padding invariance, independent target blocks, the
mask token, config. (Its initialization is compared with the official
``init_model`` in test_vit.py, which builds encoder and predictor together.)"""

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, check_layer, mask_batch, pad, to_numpy
from keras import ops

from jepa_components.backends.keras import Predictor
from jepa_components.positional import sincos_2d_positions

MASKS = mask_batch(2)
CONTEXT_TOKENS = np.random.default_rng(0).normal(size=(2, 6, 32)).astype("float32")


@pytest.fixture(scope="module")
def predictor():
    layer = Predictor(**TINY_PREDICTOR, seed=0)
    layer.build()
    return layer


def call(layer, masks=MASKS, tokens=CONTEXT_TOKENS, valid=True):
    return to_numpy(
        layer(
            tokens,
            masks["context"],
            masks["targets"],
            context_valid=masks["context_valid"] if valid else None,
            targets_valid=masks["targets_valid"] if valid else None,
        )
    )


def test_predictor__harness_shape_and_dtype():
    layer = check_layer(lambda: Predictor(**TINY_PREDICTOR, seed=0), call, (2, 2, 3, 32))
    out = layer(CONTEXT_TOKENS, MASKS["context"], MASKS["targets"])
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_predictor__several_targets_and_no_masks_equals_all_valid(predictor):
    masks = dict(
        MASKS,
        targets=np.concatenate([MASKS["targets"]] * 2, axis=1),
        targets_valid=np.ones((2, 4, 3), bool),
    )
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


def test_predictor__valid_predictions_ignore_what_the_padding_holds(predictor):
    base = call(predictor)
    outputs = []
    for seed in (2, 3):  # two different paddings: other indices, other tokens
        rng = np.random.default_rng(seed)
        padded = pad(MASKS, extra_context=3, extra_targets=2)
        padded["context"][:, 6:] = rng.integers(0, 16, size=(2, 3))
        padded["targets"][:, :, 3:] = rng.integers(0, 16, size=(2, 2, 2))
        noise = rng.normal(size=(2, 3, 32)).astype("float32") * 5
        out = call(predictor, padded, tokens=np.concatenate([CONTEXT_TOKENS, noise], axis=1))
        assert out.shape == (2, 2, 5, 32) and np.all(np.isfinite(out))
        outputs.append(out)
    np.testing.assert_allclose(outputs[0][:, :, :3], base, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[1][:, :, :3], base, rtol=1e-5, atol=1e-5)
    # The padded slots themselves did change: the padding was really different.
    assert not np.allclose(outputs[0][:, :, 3:], outputs[1][:, :, 3:], atol=1e-4)


def test_predictor__equal_queries_give_equal_predictions(predictor):
    # A block holding one position three times: three identical queries
    # (mask token + the same position) in one sequence, identical predictions.
    masks = dict(MASKS, targets=np.array([[[6, 6, 6], [4, 5, 6]]] * 2, "int32"))
    out = call(predictor, masks)
    np.testing.assert_allclose(out[:, 0, 1], out[:, 0, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 0, 2], out[:, 0, 0], rtol=1e-5, atol=1e-5)
    # Different positions in a block: different predictions.
    assert not np.allclose(out[:, 1, 0], out[:, 1, 1], atol=1e-4)
    # Reordering a block's slots reorders its predictions, nothing else.
    permuted = dict(masks, targets=masks["targets"][:, :, [2, 0, 1]])
    np.testing.assert_allclose(
        call(predictor, permuted), out[:, :, [2, 0, 1]], rtol=1e-5, atol=1e-5
    )


def test_predictor__positions_are_the_fixed_sincos_table(predictor):
    np.testing.assert_allclose(predictor._pos_embed_numpy, sincos_2d_positions(16, 4))
    assert not [w for w in predictor.weights if "pos_embed" in w.path]


def _gradient(variable, loss):
    """d loss() / d variable as numpy, on the current Keras backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def of(value):
            with keras.StatelessScope(state_mapping=[(variable, value)]):
                return loss()

        return np.asarray(jax.grad(of)(variable.value))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss()
        return tape.gradient(value, variable.value).numpy()
    variable.value.grad = None
    loss().backward()
    return variable.value.grad.detach().cpu().numpy()


def test_predictor__mask_token_is_used_and_trained():
    layer = Predictor(**TINY_PREDICTOR, seed=0)
    layer.build()
    assert layer.mask_token.trainable and tuple(layer.mask_token.shape) == (1, 1, 16)
    assert any(w is layer.mask_token for w in layer.trainable_weights)
    base = call(layer)

    def loss():
        out = layer(CONTEXT_TOKENS, MASKS["context"], MASKS["targets"])
        return ops.sum(ops.square(out))

    gradient = _gradient(layer.mask_token, loss)
    assert gradient.shape == (1, 1, 16) and np.all(np.isfinite(gradient))
    assert np.abs(gradient).max() > 1e-6
    layer.mask_token.assign(np.random.default_rng(4).normal(size=(1, 1, 16)).astype("float32"))
    changed = call(layer)
    assert np.abs(changed - base).max() > 1e-3  # every block's predictions move


def test_predictor__non_square_grid():
    layer = Predictor(
        num_patches=8,
        embed_dim=32,
        predictor_embed_dim=16,
        depth=1,
        num_heads=2,
        grid_size=(2, 4),
        seed=0,
    )
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
        (dict(grid_size=4), "grid_size"),
        (dict(activation="gelu_new"), "activation"),
        (dict(depth_scaled_init="no"), "depth_scaled_init"),
        (dict(remat=1), "remat"),
    ],
)
def test_predictor__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        Predictor(**{**TINY_PREDICTOR, **kwargs})


def test_predictor__options_in_config_and_blocks():
    layer = Predictor(
        **TINY_PREDICTOR, activation="silu", depth_scaled_init=True, remat=True, seed=0
    )
    config = layer.get_config()
    assert (config["activation"], config["depth_scaled_init"], config["remat"]) == (
        "silu",
        True,
        True,
    )
    assert all(b.mlp.activation == "silu" and b.remat for b in layer.predictor_blocks)
    assert layer.predictor_blocks[0].attn.output_init_std == pytest.approx(0.02 / np.sqrt(2))
    assert Predictor.from_config(config).get_config() == config
    default = Predictor(**TINY_PREDICTOR)
    assert (default.activation, default.depth_scaled_init, default.remat) == ("gelu", False, False)
    assert default.predictor_blocks[0].attn.output_init_std is None


def test_predictor__grid_size_attribute_is_resolved_and_config_keeps_the_argument():
    square = Predictor(**TINY_PREDICTOR)
    assert square.grid_size == (4, 4) and square.get_config()["grid_size"] is None
    wide = Predictor(**{**TINY_PREDICTOR, "grid_size": (2, 8)})
    assert wide.grid_size == (2, 8) and wide.get_config()["grid_size"] == (2, 8)
    assert Predictor.from_config(wide.get_config()).grid_size == (2, 8)


def test_predictor__for_encoder_takes_size_width_and_grid_from_the_encoder():
    from jepa_components.backends.keras import VisionTransformer

    encoder = VisionTransformer(
        image_size=(8, 16), patch_size=4, embed_dim=32, depth=1, num_heads=2
    )
    layer = Predictor.for_encoder(encoder, embed_dim=16, depth=2, num_heads=4, seed=3, remat=True)
    assert (layer.num_patches, layer.embed_dim, layer.predictor_embed_dim) == (8, 32, 16)
    assert layer.grid_size == encoder.grid_size == (2, 4)
    assert (layer.depth, layer.num_heads, layer.seed, layer.remat) == (2, 4, 3, True)
    np.testing.assert_allclose(layer._pos_embed_numpy, sincos_2d_positions(16, (2, 4)))
    assert Predictor.from_config(layer.get_config()).get_config() == layer.get_config()
    square = Predictor.for_encoder(
        VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2),
        embed_dim=16,
        depth=1,
        num_heads=2,
    )
    assert square.grid_size == (4, 4) and square.num_patches == 16


def test_predictor__for_encoder_refuses_what_the_encoder_decides():
    from jepa_components.backends.keras import VisionTransformer

    encoder = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    for name, value in (("num_patches", 16), ("predictor_embed_dim", 16), ("grid_size", (4, 4))):
        with pytest.raises(ValueError, match="Invalid value for argument `kwargs`"):
            Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2, **{name: value})
    with pytest.raises(ValueError, match="Invalid value for argument `encoder`"):
        Predictor.for_encoder(keras.layers.Dense(4), embed_dim=16, depth=1, num_heads=2)


# ------------------------------------------------------------ clips (V-JEPA)
def test_predictor_clips__for_encoder_3d_grid_and_table():
    from jepa_components.backends.keras import VisionTransformer
    from jepa_components.positional import sincos_3d_positions

    clip_encoder = VisionTransformer(
        image_size=16, patch_size=8, num_frames=4, embed_dim=32, depth=1, num_heads=2
    )
    layer = Predictor.for_encoder(clip_encoder, embed_dim=16, depth=1, num_heads=2, seed=0)
    assert layer.grid_size == (2, 2, 2) and layer.num_patches == 8 and not layer.uniform_power
    np.testing.assert_array_equal(layer._pos_embed_numpy, sincos_3d_positions(16, (2, 2, 2)))
    context = np.array([[0, 1, 4, 5], [0, 2, 4, 6]], "int32")
    targets = np.array([[[2, 3, 6, 7]], [[1, 3, 5, 7]]], "int32")
    tokens = np.random.default_rng(1).normal(size=(2, 4, 32)).astype("float32")
    built = check_layer(
        lambda: Predictor.for_encoder(clip_encoder, embed_dim=16, depth=1, num_heads=2, seed=0),
        lambda layer: layer(tokens, context, targets),
        (2, 1, 4, 32),
    )
    config = built.get_config()
    assert config["grid_size"] == (2, 2, 2) and Predictor.from_config(config).grid_size == (2, 2, 2)
    # the queries carry the 3-D positions: other target indices, other predictions
    moved = np.array([[[3, 2, 7, 6]], [[1, 3, 5, 7]]], "int32")
    first = to_numpy(built(tokens, context, targets))
    second = to_numpy(built(tokens, context, moved))
    np.testing.assert_allclose(second[0, 0, [1, 0, 3, 2]], first[0, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(second[1], first[1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(first[0, 0, 0], first[0, 0, 1], atol=1e-4)  # positions 2 and 3
    # uniform_power follows the encoder unless given
    uniform = VisionTransformer(
        image_size=16, patch_size=8, num_frames=4, embed_dim=36, depth=1, num_heads=3,
        uniform_power=True,
    )  # fmt: skip
    assert Predictor.for_encoder(uniform, embed_dim=12, depth=1, num_heads=2).uniform_power
    np.testing.assert_array_equal(
        Predictor.for_encoder(uniform, embed_dim=12, depth=1, num_heads=2)._pos_embed_numpy,
        sincos_3d_positions(12, (2, 2, 2), uniform_power=True),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid_size=(2, 2, 3)), r"`grid_size`.*T \* H \* W = num_patches=8"),
        (dict(grid_size=(2, 2, 2, 1)), r"`grid_size`"),
        (dict(predictor_embed_dim=12, num_heads=2), r"`predictor_embed_dim`.*multiple of 8"),
        (dict(grid_size=(2, 4), uniform_power=True), r"`uniform_power`.*2-D"),
    ],
)
def test_predictor_clips__invalid_arguments_raise(kwargs, match):
    base = dict(num_patches=8, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=match):
        Predictor(**{**base, "grid_size": (2, 2, 2), **kwargs})
