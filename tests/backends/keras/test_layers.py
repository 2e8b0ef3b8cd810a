"""Transformer building blocks: patch order, attention masking, exact GELU, configs."""

import math

import numpy as np
import pytest
from keras import ops

from jepa_components.backends.keras.layers import (
    MLP,
    Attention,
    PatchEmbed,
    TransformerBlock,
    derive_seed,
)
from harness import check_layer, to_numpy

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")


def test_patch_embed__harness_and_row_major_order():
    # 8 x 12 image, 4 px patches: a 2 x 3 grid. Every pixel of patch (r, c)
    # holds r * 3 + c; a summing kernel makes token i equal 16 * i.
    grid = np.arange(6, dtype="float32").reshape(2, 3)
    image = np.kron(grid, np.ones((4, 4), "float32"))[None, :, :, None]
    layer = check_layer(lambda: PatchEmbed(patch_size=4, embed_dim=2, seed=0),
                        lambda l: l(image), (1, 6, 2))
    layer.proj.kernel.assign(np.ones((4, 4, 1, 2), "float32"))
    tokens = to_numpy(layer(image))
    np.testing.assert_allclose(tokens[0, :, 0], 16.0 * np.arange(6))


def test_attention__equals_reference_softmax_attention():
    layer = check_layer(lambda: Attention(8, num_heads=2, seed=0), lambda l: l(X), X.shape)
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


def test_mlp__uses_exact_gelu():
    layer = check_layer(lambda: MLP(8, hidden_dim=16, seed=0), lambda l: l(X), X.shape)
    w1, b1, w2, b2 = [to_numpy(w) for w in layer.weights]
    hidden = X @ w1 + b1
    erf = np.vectorize(math.erf)
    expected = (0.5 * hidden * (1.0 + erf(hidden / math.sqrt(2.0)))) @ w2 + b2
    np.testing.assert_allclose(to_numpy(layer(X)), expected, rtol=1e-5, atol=1e-6)


def test_transformer_block__harness_and_pre_norm_residual():
    layer = check_layer(lambda: TransformerBlock(8, num_heads=2, seed=0), lambda l: l(X), X.shape)
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
    ],
)
def test_layers__invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        make()
