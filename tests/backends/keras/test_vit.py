"""The ViT encoder: shapes, index selection, padding, positions, init, sizes,
intermediate layers.

Also holds the initialization parity test of the encoder *and* the predictor
against the official ``init_model``, which builds both at once.
"""

import functools
import re

import keras
import numpy as np
import pytest
from harness import TINY_VIT, check_layer, images, to_numpy, weights_numpy
from keras import ops

from jepa_components.backends.keras import (
    VIT_SIZES,
    Predictor,
    VisionTransformer,
    vit_base,
    vit_giant,
    vit_huge,
    vit_large,
    vit_small,
    vit_tiny,
)
from jepa_components.positional import sincos_2d_positions

IMAGES = images(2)
TABLE = np.random.default_rng(5).normal(size=(1, 16, 32)).astype("float32")


@pytest.fixture(scope="module")
def encoder():
    layer = VisionTransformer(**TINY_VIT, seed=0)
    layer.build()
    return layer


@pytest.fixture(scope="module")
def deep_encoder():
    layer = VisionTransformer(**dict(TINY_VIT, depth=3), seed=0)
    layer.build()
    return layer


def learned_encoder(table=None, **kwargs):
    layer = VisionTransformer(**{**TINY_VIT, **kwargs}, pos_embed="learned", seed=0)
    layer.build()
    if table is not None:
        layer.pos_embed_weight.assign(table)
    return layer


def test_vit__harness_full_image_shape_and_dtype():
    layer = check_layer(
        lambda: VisionTransformer(**TINY_VIT, seed=0), lambda layer: layer(IMAGES), (2, 16, 32)
    )
    assert keras.backend.standardize_dtype(layer(IMAGES).dtype) == "float32"


def test_vit__indices_keep_only_those_tokens(encoder):
    indices = np.array([[0, 5, 15], [3, 3, 7]], "int32")
    out = to_numpy(encoder(IMAGES, indices=indices))
    assert out.shape == (2, 3, 32)
    # All indices in order reproduce the full-image output.
    all_indices = np.tile(np.arange(16, dtype="int32"), (2, 1))
    np.testing.assert_allclose(
        to_numpy(encoder(IMAGES, indices=all_indices)),
        to_numpy(encoder(IMAGES)),
        rtol=1e-5,
        atol=1e-5,
    )
    # Duplicated index 3 of sample 1 gives twice the same token.
    np.testing.assert_allclose(out[1, 0], out[1, 1], rtol=1e-6, atol=1e-6)


def test_vit__padded_context_changes_no_valid_token(encoder):
    indices = np.array([[0, 5, 15], [3, 4, 7]], "int32")
    base = to_numpy(encoder(IMAGES, indices=indices))
    padded = np.concatenate([indices, np.zeros((2, 2), "int32")], axis=1)
    valid = np.concatenate([np.ones((2, 3), bool), np.zeros((2, 2), bool)], axis=1)
    out = to_numpy(encoder(IMAGES, indices=padded, valid=valid))
    np.testing.assert_allclose(out[:, :3], base, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos_embed", ["sincos", "learned"])
def test_vit__positions_added_once_before_selection(pos_embed):
    if pos_embed == "sincos":
        layer, table = VisionTransformer(**TINY_VIT, seed=0), sincos_2d_positions(32, (4, 4))[None]
    else:
        layer, table = learned_encoder(TABLE), TABLE
    indices = np.array([[2, 9], [14, 1]], "int32")
    tokens = to_numpy(layer.patch_embed(IMAGES)) + table
    x = np.take_along_axis(tokens, indices[..., None], axis=1)
    for block in layer.blocks:
        x = block(x)
    expected = to_numpy(layer.norm(x))
    np.testing.assert_allclose(
        to_numpy(layer(IMAGES, indices=indices)), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(to_numpy(layer.position_table()), table, rtol=1e-6, atol=1e-6)


def test_vit__learned_table_is_one_trainable_weight_starting_at_sincos(encoder):
    layer = learned_encoder()
    [weight] = [w for w in layer.weights if w.name == "pos_embed"]
    assert weight is layer.pos_embed_weight and weight.trainable
    assert tuple(weight.shape) == (1, 16, 32)
    assert len(layer.trainable_weights) == len(encoder.trainable_weights) + 1
    assert encoder.pos_embed_weight is None and encoder.pos_embed == "sincos"
    assert not [w for w in encoder.weights if "pos_embed" in w.path]
    np.testing.assert_allclose(to_numpy(weight), sincos_2d_positions(32, 4)[None], atol=1e-7)
    # Same seed, fresh table: the same function as the fixed table.
    np.testing.assert_allclose(
        to_numpy(layer(IMAGES)), to_numpy(encoder(IMAGES)), rtol=1e-6, atol=1e-6
    )
    layer.pos_embed_weight.assign(TABLE)
    assert not np.allclose(to_numpy(layer(IMAGES)), to_numpy(encoder(IMAGES)), atol=1e-3)


def test_vit__learned_table_harness_and_keras_file_round_trip(tmp_path):
    layer = check_layer(lambda: learned_encoder(TABLE), lambda layer: layer(IMAGES), (2, 16, 32))
    assert layer.get_config()["pos_embed"] == "learned"
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "vit.keras")
    restored = keras.models.load_model(tmp_path / "vit.keras")
    [vit] = [layer for layer in restored.layers if isinstance(layer, VisionTransformer)]
    np.testing.assert_array_equal(to_numpy(vit.pos_embed_weight), TABLE)
    np.testing.assert_allclose(
        to_numpy(restored(IMAGES)), to_numpy(model(IMAGES)), rtol=1e-6, atol=1e-6
    )


def test_vit__learned_table_read_through_stateless_scope():
    layer = learned_encoder()
    with keras.StatelessScope(
        state_mapping=[(layer.pos_embed_weight, ops.convert_to_tensor(TABLE))]
    ):
        stateless = to_numpy(layer(IMAGES))
        stateless_inter = to_numpy(layer.intermediate_layers(IMAGES, layers=1)[0])
    layer.pos_embed_weight.assign(TABLE)
    np.testing.assert_allclose(stateless, to_numpy(layer(IMAGES)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stateless_inter, stateless, rtol=1e-6, atol=1e-6)


def test_vit__non_square_images():
    layer = VisionTransformer(
        image_size=(8, 16), patch_size=4, embed_dim=32, depth=1, num_heads=2, seed=0
    )
    assert layer.grid_size == (2, 4) and layer.num_patches == 8
    out = to_numpy(layer(images(2, size=(8, 16))))
    assert out.shape == (2, 8, 32)
    np.testing.assert_allclose(layer._pos_embed_numpy, sincos_2d_positions(32, (2, 4)))


@pytest.mark.parametrize("depth_scaled_init", [False, True])
def test_vit__init_std_of_output_projections(depth_scaled_init):
    layer = VisionTransformer(
        image_size=16,
        patch_size=4,
        embed_dim=128,
        depth=3,
        num_heads=2,
        depth_scaled_init=depth_scaled_init,
        seed=0,
    )
    layer.build()
    for i, block in enumerate(layer.blocks):
        expected = 0.02 / np.sqrt(2.0 * (i + 1)) if depth_scaled_init else 0.02
        for kernel in (block.attn.proj.kernel, block.mlp.fc2.kernel):
            assert abs(np.std(to_numpy(kernel)) - expected) < 0.1 * expected
        assert abs(np.std(to_numpy(block.attn.qkv.kernel)) - 0.02) < 0.002
    assert abs(np.std(to_numpy(layer.patch_embed.proj.kernel)) - 0.02) < 0.002
    np.testing.assert_array_equal(to_numpy(layer.norm.gamma), 1.0)


# ------------------------------------------------ init parity with the official code
INIT_SIZES = dict(
    image_size=16,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    predictor_embed_dim=32,
    predictor_depth=4,
)


def _official_key(path):
    """Keras weight path -> official parameter name (the layouts differ, not the stats)."""
    key = path.split("/", 1)[1]  # drop the top layer's name
    key = re.sub(r"blocks_(\d+)", r"blocks.\1", key).replace("/", ".")
    leaf = {"kernel": "weight", "gamma": "weight", "beta": "bias"}
    head, _, last = key.rpartition(".")
    return f"{head}.{leaf.get(last, last)}" if head else last


def _stats(named_arrays):
    return {name: (float(np.std(a)), float(np.mean(a)), a.size) for name, a in named_arrays}


def _official_models(official_code, monkeypatch, depth_scaled_init):
    """Official encoder and predictor at INIT_SIZES: built by ``helper.init_model``
    (what ``train.py`` does), or by the model classes alone (``fix_init_weight``)."""
    import torch

    vit = official_code("src.models.vision_transformer")
    helper = official_code("src.helper")
    s = INIT_SIZES
    make_encoder = functools.partial(
        vit.VisionTransformer,
        embed_dim=s["embed_dim"],
        depth=s["depth"],
        num_heads=s["num_heads"],
        mlp_ratio=4,
        qkv_bias=True,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
    )
    torch.manual_seed(0)
    if not depth_scaled_init:
        # init_model builds encoders by name from the module's namespace.
        monkeypatch.setattr(vit, "vit_init_parity", make_encoder, raising=False)
        return helper.init_model(
            device="cpu",
            patch_size=s["patch_size"],
            model_name="vit_init_parity",
            crop_size=s["image_size"],
            pred_depth=s["predictor_depth"],
            pred_emb_dim=s["predictor_embed_dim"],
        )
    encoder = make_encoder(img_size=[s["image_size"]], patch_size=s["patch_size"])
    predictor = vit.vit_predictor(
        num_patches=encoder.patch_embed.num_patches,
        embed_dim=s["embed_dim"],
        predictor_embed_dim=s["predictor_embed_dim"],
        depth=s["predictor_depth"],
        num_heads=s["num_heads"],
    )
    return encoder, predictor


@pytest.mark.parametrize("depth_scaled_init", [False, True])
def test_init__weight_statistics_match_the_official_code(
    official_code, monkeypatch, depth_scaled_init
):
    """Per-tensor std and mean of every initial weight, encoder and predictor.

    Default (False) against ``src/helper.py::init_model`` (every Linear
    re-drawn with std 0.02 after ``fix_init_weight``), True against the
    model classes alone. Two independent draws of ``n`` values with std
    ``s`` have stds differing by ~``s / sqrt(n)`` and means by
    ``s * sqrt(2 / n)``: the tolerance is 6 of those (0 for constant
    tensors: biases, norms). Runs on every Keras backend: each one draws
    the Keras weights with its own random generator.
    """
    s = INIT_SIZES
    encoder = VisionTransformer(
        image_size=s["image_size"],
        patch_size=s["patch_size"],
        embed_dim=s["embed_dim"],
        depth=s["depth"],
        num_heads=s["num_heads"],
        depth_scaled_init=depth_scaled_init,
        seed=0,
    )
    predictor = Predictor(
        num_patches=encoder.num_patches,
        embed_dim=s["embed_dim"],
        predictor_embed_dim=s["predictor_embed_dim"],
        depth=s["predictor_depth"],
        num_heads=s["num_heads"],
        depth_scaled_init=depth_scaled_init,
        seed=1,
    )
    encoder.build(), predictor.build()
    official = _official_models(official_code, monkeypatch, depth_scaled_init)
    for ours, theirs in zip((encoder, predictor), official):
        expected = _stats(
            (name, p.detach().numpy()) for name, p in theirs.named_parameters() if p.requires_grad
        )  # not the fixed sin-cos tables
        got = _stats((_official_key(w.path), to_numpy(w)) for w in ours.weights)
        assert set(got) == set(expected)
        for name, (std, mean, size) in expected.items():
            tolerance = 6.0 * std / np.sqrt(size)
            assert abs(got[name][0] - std) <= tolerance, (name, got[name], expected[name])
            assert abs(got[name][1] - mean) <= tolerance * np.sqrt(2.0), (
                name,
                got[name],
                expected[name],
            )
    # The parity is not vacuous: with the default, the last block's output
    # projection starts at std 0.02, with the rescaling at 0.02 / sqrt(8).
    last_proj = np.std(to_numpy(encoder.blocks[-1].attn.proj.kernel))
    assert abs(last_proj - (0.02 / np.sqrt(8.0) if depth_scaled_init else 0.02)) < 0.002


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
    [
        (vit_tiny, "vit_tiny"),
        (vit_small, "vit_small"),
        (vit_base, "vit_base"),
        (vit_large, "vit_large"),
        (vit_huge, "vit_huge"),
        (vit_giant, "vit_giant"),
    ],
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
        "vit_tiny": (192, 12, 3),
        "vit_small": (384, 12, 6),
        "vit_base": (768, 12, 12),
        "vit_large": (1024, 24, 16),
        "vit_huge": (1280, 32, 16),
        "vit_giant": (1408, 40, 16),
    }


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=30), "patch_size"),
        (dict(image_size=(16,)), "image_size"),
        (dict(embed_dim=30), "embed_dim"),
        (dict(depth=0), "depth"),
        (dict(num_heads=3), "embed_dim"),
        (dict(seed=1.5), "seed"),
        (dict(pos_embed="interpolated"), "pos_embed"),
        (dict(activation="gelu_new"), "activation"),
        (dict(depth_scaled_init=1), "depth_scaled_init"),
        (dict(remat=None), "remat"),
        (dict(layer_norm_epsilon=0.0), "layer_norm_epsilon"),
    ],
)
def test_vit__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        VisionTransformer(**{**TINY_VIT, **kwargs})


def test_vit__options_in_config_and_blocks():
    layer = VisionTransformer(
        **TINY_VIT,
        activation="gelu_tanh",
        depth_scaled_init=True,
        pos_embed="learned",
        remat=True,
        seed=0,
    )
    config = layer.get_config()
    assert (
        config["activation"],
        config["depth_scaled_init"],
        config["pos_embed"],
        config["remat"],
    ) == ("gelu_tanh", True, "learned", True)
    assert all(block.mlp.activation == "gelu_tanh" and block.remat for block in layer.blocks)
    assert VisionTransformer.from_config(config).get_config() == config
    defaults = VisionTransformer(**TINY_VIT).get_config()
    assert (
        defaults["activation"],
        defaults["depth_scaled_init"],
        defaults["pos_embed"],
        defaults["remat"],
    ) == ("gelu", False, "sincos", False)


# ------------------------------------------------------------ intermediate layers
def _manual_block_outputs(layer, images, indices=None, valid=None):
    x = layer._tokens(images, indices)
    outputs = []
    for block in layer.blocks:
        x = block(x, key_mask=valid)
        outputs.append(to_numpy(x))
    return outputs


def test_intermediate_layers__last_with_norm_equals_the_forward_pass(deep_encoder):
    np.testing.assert_allclose(
        to_numpy(deep_encoder.intermediate_layers(IMAGES, layers=1)[0]),
        to_numpy(deep_encoder(IMAGES)),
        rtol=1e-6,
        atol=1e-6,
    )
    indices = np.array([[0, 5, 15, 0], [3, 4, 7, 0]], "int32")
    valid = np.array([[True, True, True, False]] * 2)
    [last] = deep_encoder.intermediate_layers(IMAGES, layers=[-1], indices=indices, valid=valid)
    np.testing.assert_allclose(
        to_numpy(last),
        to_numpy(deep_encoder(IMAGES, indices=indices, valid=valid)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_intermediate_layers__chosen_blocks_in_the_order_asked(deep_encoder):
    blocks = _manual_block_outputs(deep_encoder, IMAGES)
    raw = deep_encoder.intermediate_layers(IMAGES, layers=[2, 0, -2], norm=False)
    for out, i in zip(raw, [2, 0, 1]):
        np.testing.assert_allclose(to_numpy(out), blocks[i], rtol=1e-6, atol=1e-6)
    normed = deep_encoder.intermediate_layers(IMAGES, layers=2)  # the last two, in order
    assert len(normed) == 2
    for out, i in zip(normed, [1, 2]):
        np.testing.assert_allclose(
            to_numpy(out), to_numpy(deep_encoder.norm(blocks[i])), rtol=1e-6, atol=1e-6
        )
    assert not np.allclose(blocks[0], blocks[1], atol=1e-3)


def test_intermediate_layers__inside_compiled_functions(deep_encoder):
    """In a Keras model's ``predict`` (compiled on jax and tensorflow) and under
    the backend's own compiler: ``jax.jit``, ``tf.function(jit_compile=True)``.
    On torch Keras runs eagerly; ``torch.compile`` of Keras layers takes ~25 s
    on a 2-core CPU (graph breaks in Keras' attribute hooks), too slow here."""
    eager = [to_numpy(x) for x in deep_encoder.intermediate_layers(IMAGES, layers=[0, 2])]

    class Features(keras.Model):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def call(self, images):
            return self.encoder.intermediate_layers(images, layers=[0, 2])

    predicted = Features(deep_encoder).predict(IMAGES, batch_size=2, verbose=0)
    backend = keras.backend.backend()
    compiled = None
    if backend == "jax":
        import jax

        compiled = jax.jit(lambda x: deep_encoder.intermediate_layers(x, layers=[0, 2]))(IMAGES)
    elif backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(
            lambda x: deep_encoder.intermediate_layers(x, layers=[0, 2]), jit_compile=True
        )(IMAGES)
    for outputs in (predicted, compiled) if compiled is not None else (predicted,):
        assert len(outputs) == 2
        for out, expected in zip(outputs, eager):
            np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [0, 4, [], [3], [-4], [0.5], "last", None])
def test_intermediate_layers__invalid_layers_raise(deep_encoder, layers):
    with pytest.raises(ValueError, match="Invalid value for argument `layers`"):
        deep_encoder.intermediate_layers(IMAGES, layers=layers)


@pytest.mark.parametrize("patch_init_std, expected", [(None, 0.02), ("fan_in", 0.25), (0.1, 0.1)])
def test_vit__patch_init_std(patch_init_std, expected):
    vit = VisionTransformer(
        image_size=32,
        patch_size=4,
        in_channels=1,
        embed_dim=256,
        depth=1,
        num_heads=4,
        patch_init_std=patch_init_std,
        seed=0,
    )
    vit.build()
    kernel = keras.ops.convert_to_numpy(vit.patch_embed.proj.kernel)  # (4, 4, 1, 256): 4096
    assert abs(kernel.std() / expected - 1) < 0.06  # 6 sigma of a std estimate on 4096 draws
    again = VisionTransformer.from_config(vit.get_config())
    assert again.patch_init_std == vit.patch_init_std


@pytest.mark.parametrize("bad", ["fanin", 0.0, -1.0, float("nan"), True])
def test_vit__patch_init_std_rejects(bad):
    with pytest.raises(ValueError, match="Invalid value for argument `patch_init_std`"):
        VisionTransformer(
            image_size=32, patch_size=4, embed_dim=32, depth=1, num_heads=2, patch_init_std=bad
        )


def test_vit_sizes__one_table_for_the_library_and_the_benchmarks():
    import importlib.util
    import os

    from jepa_components.backends.keras.models import sizes, vit

    assert VIT_SIZES is vit.VIT_SIZES is sizes.VIT_SIZES
    root = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir)
    spec = importlib.util.spec_from_file_location(
        "_bench_workloads", os.path.join(root, "benchmarks", "_workloads.py")
    )
    workloads = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workloads)
    assert workloads.SIZES == {name.removeprefix("vit_"): dims for name, dims in VIT_SIZES.items()}


def test_vit__grid_size_is_the_patch_grid():
    layer = VisionTransformer(image_size=(8, 24), patch_size=4, embed_dim=32, depth=1, num_heads=2)
    assert layer.grid_size == (2, 6) and layer.num_patches == 12


# ------------------------------------------------------------ clips (V-JEPA)
CLIP_VIT = dict(
    image_size=16, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32, depth=1, num_heads=2
)
CLIPS = np.random.default_rng(7).normal(size=(2, 4, 16, 16, 3)).astype("float32")


def test_vit_clips__harness_grid_and_shapes():
    layer = check_layer(
        lambda: VisionTransformer(**CLIP_VIT, seed=0), lambda layer: layer(CLIPS), (2, 8, 32)
    )
    assert layer.grid_size == (2, 2, 2) and layer.num_patches == 8
    config = layer.get_config()
    assert (config["num_frames"], config["tubelet_size"], config["uniform_power"]) == (4, 2, False)
    assert tuple(layer(CLIPS, indices=np.array([[0, 7], [3, 3]])).shape) == (2, 2, 32)
    # an image encoder's config says so; its weights keep their names and shapes
    image = VisionTransformer(**TINY_VIT, seed=0, name="vit")
    image.build()
    assert image.get_config()["num_frames"] is None
    assert [(w.path, tuple(w.shape)) for w in image.weights[:2]] == [
        ("vit/patch_embed/proj/kernel", (4, 4, 3, 32)),
        ("vit/patch_embed/proj/bias", (32,)),
    ]
    assert [(w.path, tuple(w.shape)) for w in layer.weights[:2]] == [
        (f"{layer.name}/patch_embed/proj/kernel", (2 * 8 * 8 * 3, 32)),
        (f"{layer.name}/patch_embed/proj/bias", (32,)),
    ]


def test_vit_clips__tokens_are_a_conv3d_plus_the_3d_table_time_major():
    """V-JEPA's PatchEmbed3D (Conv3d, kernel = stride = (tubelet, p, p), then flatten(2))
    plus get_3d_sincos_pos_embed: a Keras Conv3D with the same kernel, non-square frames."""
    from jepa_components.positional import sincos_3d_positions

    layer = VisionTransformer(
        **{**CLIP_VIT, "image_size": (8, 12), "patch_size": 4, "num_frames": 6}, seed=1
    )
    layer.build()
    assert layer.grid_size == (3, 2, 3)
    clips = np.random.default_rng(8).normal(size=(2, 6, 8, 12, 3)).astype("float32")
    embed = layer.patch_embed
    embed.proj.bias.assign(np.linspace(-1, 1, 32).astype("float32"))
    conv = keras.layers.Conv3D(32, (2, 4, 4), strides=(2, 4, 4), padding="valid")
    conv.build((None, 6, 8, 12, 3))
    conv.set_weights(
        [to_numpy(embed.proj.kernel).reshape(2, 4, 4, 3, 32), to_numpy(embed.proj.bias)]
    )
    expected = to_numpy(conv(clips)).reshape(2, 18, 32)  # (B, T', H', W', D): time-major
    expected = expected + sincos_3d_positions(32, (3, 2, 3))[None]
    np.testing.assert_allclose(to_numpy(layer._tokens(clips, None)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        to_numpy(layer.position_table())[0], sincos_3d_positions(32, (3, 2, 3))
    )


def test_vit_clips__uniform_power_learned_table_and_keras_file_round_trip(tmp_path):
    from jepa_components.positional import sincos_3d_positions

    layer = VisionTransformer(
        **{**CLIP_VIT, "embed_dim": 36, "num_heads": 3},
        uniform_power=True,
        pos_embed="learned",
        patch_init_std="fan_in",
        seed=2,
    )
    layer.build()
    np.testing.assert_array_equal(
        to_numpy(layer.pos_embed_weight)[0], sincos_3d_positions(36, (2, 2, 2), uniform_power=True)
    )
    assert layer._patch_std() == pytest.approx(1 / np.sqrt(2 * 8 * 8 * 3))
    inputs = keras.Input((4, 16, 16, 3))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "clip_vit.keras")
    restored = keras.models.load_model(tmp_path / "clip_vit.keras")
    [vit] = [layer for layer in restored.layers if isinstance(layer, VisionTransformer)]
    assert vit.get_config() == layer.get_config()
    np.testing.assert_allclose(
        to_numpy(restored(CLIPS)), to_numpy(model(CLIPS)), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_frames=3), r"`num_frames`.*multiple of tubelet_size=2.*num_frames=3"),
        (dict(num_frames=0), r"`num_frames`"),
        (dict(tubelet_size=0), r"`tubelet_size`"),
        (dict(embed_dim=36, num_heads=2), r"`embed_dim`.*multiple of 8.*embed_dim=36"),
        (dict(num_frames=None, uniform_power=True), r"`uniform_power`.*images"),
        (dict(uniform_power="yes"), r"`uniform_power`"),
    ],
)
def test_vit_clips__invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VisionTransformer(**{**CLIP_VIT, **kwargs})
