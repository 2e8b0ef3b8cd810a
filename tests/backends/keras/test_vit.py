"""The ViT encoder: shapes, index selection, padding, positions, init, sizes."""

import keras
import numpy as np
import pytest

from jepa_components.positional import sincos_2d_positions
from jepa_components.backends.keras import (
    VIT_SIZES,
    VisionTransformer,
    vit_base,
    vit_giant,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from harness import TINY_VIT, check_layer, images, to_numpy, weights_numpy

IMAGES = images(2)


@pytest.fixture(scope="module")
def encoder():
    layer = VisionTransformer(**TINY_VIT, seed=0)
    layer.build()
    return layer


def test_vit__harness_full_image_shape_and_dtype():
    layer = check_layer(lambda: VisionTransformer(**TINY_VIT, seed=0), lambda l: l(IMAGES),
                        (2, 16, 32))
    assert keras.backend.standardize_dtype(layer(IMAGES).dtype) == "float32"


def test_vit__indices_keep_only_those_tokens(encoder):
    indices = np.array([[0, 5, 15], [3, 3, 7]], "int32")
    out = to_numpy(encoder(IMAGES, indices=indices))
    assert out.shape == (2, 3, 32)
    # All indices in order reproduce the full-image output.
    all_indices = np.tile(np.arange(16, dtype="int32"), (2, 1))
    np.testing.assert_allclose(to_numpy(encoder(IMAGES, indices=all_indices)),
                               to_numpy(encoder(IMAGES)), rtol=1e-5, atol=1e-5)
    # Duplicated index 3 of sample 1 gives twice the same token.
    np.testing.assert_allclose(out[1, 0], out[1, 1], rtol=1e-6, atol=1e-6)


def test_vit__padded_context_changes_no_valid_token(encoder):
    indices = np.array([[0, 5, 15], [3, 4, 7]], "int32")
    base = to_numpy(encoder(IMAGES, indices=indices))
    padded = np.concatenate([indices, np.zeros((2, 2), "int32")], axis=1)
    valid = np.concatenate([np.ones((2, 3), bool), np.zeros((2, 2), bool)], axis=1)
    out = to_numpy(encoder(IMAGES, indices=padded, valid=valid))
    np.testing.assert_allclose(out[:, :3], base, rtol=1e-5, atol=1e-5)


def test_vit__positions_are_the_core_sincos_table_added_before_selection(encoder):
    indices = np.array([[2, 9], [14, 1]], "int32")
    tokens = to_numpy(encoder.patch_embed(IMAGES)) + sincos_2d_positions(32, (4, 4))[None]
    x = np.take_along_axis(tokens, indices[..., None], axis=1)
    for block in encoder.blocks:
        x = block(x)
    expected = to_numpy(encoder.norm(x))
    np.testing.assert_allclose(to_numpy(encoder(IMAGES, indices=indices)), expected,
                               rtol=1e-5, atol=1e-5)


def test_vit__non_square_images():
    layer = VisionTransformer(image_size=(8, 16), patch_size=4, embed_dim=32, depth=1,
                              num_heads=2, seed=0)
    assert layer.grid_size == (2, 4) and layer.num_patches == 8
    out = to_numpy(layer(images(2, size=(8, 16))))
    assert out.shape == (2, 8, 32)
    np.testing.assert_allclose(layer._pos_embed_numpy, sincos_2d_positions(32, (2, 4)))


def test_vit__init_follows_official_depth_rescaling():
    layer = VisionTransformer(image_size=16, patch_size=4, embed_dim=128, depth=3, num_heads=2,
                              seed=0)
    layer.build()
    for i, block in enumerate(layer.blocks):
        expected = 0.02 / np.sqrt(2.0 * (i + 1))
        for kernel in (block.attn.proj.kernel, block.mlp.fc2.kernel):
            assert abs(np.std(to_numpy(kernel)) - expected) < 0.1 * expected
        assert abs(np.std(to_numpy(block.attn.qkv.kernel)) - 0.02) < 0.002
    assert abs(np.std(to_numpy(layer.patch_embed.proj.kernel)) - 0.02) < 0.002
    np.testing.assert_array_equal(to_numpy(layer.norm.gamma), 1.0)


def test_vit__same_seed_same_weights():
    first, second = (VisionTransformer(**TINY_VIT, seed=7) for _ in range(2))
    first.build(), second.build()
    for a, b in zip(weights_numpy(first), weights_numpy(second)):
        np.testing.assert_array_equal(a, b)
    other = VisionTransformer(**TINY_VIT, seed=8)
    other.build()
    assert not np.allclose(weights_numpy(first)[0], weights_numpy(other)[0])


@pytest.mark.parametrize(
    "factory, name",
    [(vit_tiny, "vit_tiny"), (vit_small, "vit_small"), (vit_base, "vit_base"),
     (vit_large, "vit_large"), (vit_huge, "vit_huge"), (vit_giant, "vit_giant")],
)
def test_vit_factories__official_sizes_any_patch_and_image(factory, name):
    layer = factory(image_size=32, patch_size=8)  # not built: no weights allocated
    embed_dim, depth, heads, mlp_ratio = VIT_SIZES[name]
    assert (layer.embed_dim, layer.depth, layer.num_heads) == (embed_dim, depth, heads)
    assert layer.mlp_ratio == pytest.approx(mlp_ratio) and layer.num_patches == 16
    assert layer.blocks[0].mlp.hidden_dim == int(embed_dim * mlp_ratio)
    assert vit_tiny(image_size=224, patch_size=14).num_patches == 256


def test_vit_sizes__match_official_table():
    assert {k: v[:3] for k, v in VIT_SIZES.items()} == {
        "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
        "vit_large": (1024, 24, 16), "vit_huge": (1280, 32, 16), "vit_giant": (1408, 40, 16)}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=30), "patch_size"),
        (dict(image_size=(16,)), "image_size"),
        (dict(embed_dim=30), "embed_dim"),
        (dict(depth=0), "depth"),
        (dict(num_heads=3), "embed_dim"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_vit__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        VisionTransformer(**{**TINY_VIT, **kwargs})
