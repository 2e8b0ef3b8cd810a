"""Transformer building blocks: patch order, attention masking, activations, configs."""

import math

import numpy as np
import pytest
from harness import check_layer, to_numpy
from keras import ops

from jepa_components.backends.keras.layers import (
    ACTIVATIONS,
    MLP,
    Attention,
    PatchEmbed,
    TransformerBlock,
    derive_seed,
    output_init_stds,
)

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")


def test_patch_embed__harness_and_row_major_order():
    # 8 x 12 image, 4 px patches: a 2 x 3 grid. Every pixel of patch (r, c)
    # holds r * 3 + c; a summing kernel makes token i equal 16 * i.
    grid = np.arange(6, dtype="float32").reshape(2, 3)
    image = np.kron(grid, np.ones((4, 4), "float32"))[None, :, :, None]
    layer = check_layer(
        lambda: PatchEmbed(patch_size=4, embed_dim=2, seed=0), lambda layer: layer(image), (1, 6, 2)
    )
    layer.proj.kernel.assign(np.ones((4, 4, 1, 2), "float32"))
    tokens = to_numpy(layer(image))
    np.testing.assert_allclose(tokens[0, :, 0], 16.0 * np.arange(6))


def test_attention__equals_reference_softmax_attention():
    layer = check_layer(lambda: Attention(8, num_heads=2, seed=0), lambda layer: layer(X), X.shape)
    qkv_w, qkv_b, proj_w, proj_b = [to_numpy(w) for w in layer.weights]
    qkv = (X @ qkv_w + qkv_b).reshape(2, 5, 3, 2, 4).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv  # (B, heads, T, hd)
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(4)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = (weights @ v).transpose(0, 2, 1, 3).reshape(2, 5, 8) @ proj_w + proj_b
    np.testing.assert_allclose(to_numpy(layer(X)), expected, rtol=1e-4, atol=1e-5)


def test_attention__padded_keys_change_no_valid_output():
    layer = Attention(8, num_heads=2, seed=0)
    base = to_numpy(layer(X))
    noise = np.random.default_rng(1).normal(size=(2, 3, 8)).astype("float32") * 10
    padded = np.concatenate([X, noise], axis=1)
    key_mask = np.concatenate([np.ones((2, 5), bool), np.zeros((2, 3), bool)], axis=1)
    out = to_numpy(layer(padded, key_mask=key_mask))
    np.testing.assert_allclose(out[:, :5], base, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(out))  # padded queries see valid keys: no NaN rows


_erf = np.vectorize(math.erf)

# Numpy references of every activation (float64).
REFERENCE_ACTIVATIONS = {
    "gelu": lambda h: 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0))),
    "gelu_tanh": lambda h: (
        0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h**3)))
    ),
    "quick_gelu": lambda h: h / (1.0 + np.exp(-1.702 * h)),
    "relu": lambda h: np.maximum(h, 0.0),
    "silu": lambda h: h / (1.0 + np.exp(-h)),
    "swish": lambda h: h / (1.0 + np.exp(-h)),
}


def test_activations__reference_table_covers_every_name():
    assert set(REFERENCE_ACTIVATIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp__activation_matches_its_formula_and_no_other(activation):
    # init_std=1 puts the hidden units at |h| ~ 1-8, where exact and tanh GELU
    # differ by ~1e-3 (with the default std 0.02 every GELU is the same).
    layer = check_layer(
        lambda: MLP(8, hidden_dim=16, init_std=1.0, activation=activation, seed=0),
        lambda layer: layer(X),
        X.shape,
    )
    assert layer.get_config()["activation"] == activation
    w1, b1, w2, b2 = [to_numpy(w).astype("float64") for w in layer.weights]
    hidden = X.astype("float64") @ w1 + b1
    out = to_numpy(layer(X))
    for name, reference in REFERENCE_ACTIVATIONS.items():
        expected = reference(hidden) @ w2 + b2
        same_function = ACTIVATIONS[name] is ACTIVATIONS[activation]
        assert np.allclose(out, expected, rtol=1e-5, atol=1e-5) == same_function, name


def test_mlp__default_is_exact_gelu():
    assert MLP(8, hidden_dim=16).activation == "gelu"
    assert TransformerBlock(8, num_heads=2).mlp.activation == "gelu"


def test_transformer_block__activation_reaches_the_mlp():
    block = TransformerBlock(8, num_heads=2, activation="quick_gelu", seed=0)
    assert block.mlp.activation == "quick_gelu"
    assert TransformerBlock.from_config(block.get_config()).mlp.activation == "quick_gelu"


def test_transformer_block__harness_and_pre_norm_residual():
    layer = check_layer(
        lambda: TransformerBlock(8, num_heads=2, seed=0), lambda layer: layer(X), X.shape
    )
    x = ops.convert_to_tensor(X)
    h = x + layer.attn(layer.norm1(x))
    expected = h + layer.mlp(layer.norm2(h))
    np.testing.assert_allclose(to_numpy(layer(X)), to_numpy(expected), rtol=1e-6, atol=1e-6)
    assert layer.norm1.epsilon == 1e-6 and layer.mlp.hidden_dim == 32


def test_transformer_block__output_init_std_scales_output_projections():
    block = TransformerBlock(64, num_heads=2, init_std=0.02, output_init_std=0.005, seed=3)
    block.build((None, None, 64))
    assert abs(np.std(to_numpy(block.attn.qkv.kernel)) - 0.02) < 0.002
    assert abs(np.std(to_numpy(block.attn.proj.kernel)) - 0.005) < 0.0005
    assert abs(np.std(to_numpy(block.mlp.fc2.kernel)) - 0.005) < 0.0005
    assert np.all(to_numpy(block.attn.qkv.bias) == 0)
    default = TransformerBlock(64, num_heads=2, seed=3)  # output_init_std=None: init_std
    default.build((None, None, 64))
    assert abs(np.std(to_numpy(default.mlp.fc2.kernel)) - 0.02) < 0.002


def test_output_init_stds__official_fix_init_weight_or_none():
    assert output_init_stds(0.02, 3, depth_scaled_init=False) == [None, None, None]
    np.testing.assert_allclose(
        output_init_stds(0.02, 3, depth_scaled_init=True),
        [0.02 / math.sqrt(2), 0.02 / 2, 0.02 / math.sqrt(6)],
    )


def test_layers__same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        layer = TransformerBlock(8, num_heads=2, seed=seed)
        layer.build((None, None, 8))
        return np.concatenate([to_numpy(w).ravel() for w in layer.weights])

    np.testing.assert_array_equal(weights(5), weights(5))
    assert not np.allclose(weights(5), weights(6))


def test_derive_seed__deterministic_and_path_dependent():
    assert derive_seed(None, 1) is None
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, i) for i in range(50)}) == 50
    assert 0 <= derive_seed(123, 4) < 2**31


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Attention(10, num_heads=3), "num_heads"),
        (lambda: Attention(0), "dim"),
        (lambda: PatchEmbed(patch_size=0), "patch_size"),
        (lambda: MLP(8, hidden_dim=16, init_std=-1.0), "init_std"),
        (lambda: TransformerBlock(8, 2, mlp_ratio=0), "mlp_ratio"),
        (lambda: TransformerBlock(8, 2, seed=-1), "seed"),
        (lambda: TransformerBlock(8, 2, activation="gelu_new"), "activation"),
        (lambda: MLP(8, 16, activation=None), "activation"),
        (lambda: Attention(8, 2, qkv_bias="yes"), "qkv_bias"),
        (lambda: MLP(8, 16, output_init_std=0.0), "output_init_std"),
        (lambda: TransformerBlock(8, 2, layer_norm_epsilon=0), "layer_norm_epsilon"),
        (lambda: TransformerBlock(8, 2, remat="yes"), "remat"),
    ],
)
def test_layers__invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        make()
