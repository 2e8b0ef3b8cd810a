"""Hugging Face IJepa weights: parity, both key layouts, files, export, errors.

Fixture: ``tests/fixtures/hf_ijepa_tiny.npz``, written by
``tests/fixtures/make_hf_fixtures.py`` from a random-weight
``transformers.IJepaModel`` (random position table and LayerNorm parameters
included). The fixture tests need neither torch nor transformers; the tests
that run transformers itself (live parity, ``from_pretrained`` of the
export) skip without them; writing a ``.bin`` file needs torch, reading it not.
"""

import json
import os
import sys

import numpy as np
import pytest
from keras import ops

from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
from jepa_components.backends.keras.convert import (
    export_hf_checkpoint,
    hf_state_dict,
    load_hf_checkpoint,
    read_hf_checkpoint,
    read_safetensors,
    write_safetensors,
)

FIXTURE = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "fixtures", "hf_ijepa_tiny.npz"
)
TOLERANCE = 1e-4
POSITIONS = "embeddings.position_embeddings"
SMALL_PREDICTOR = dict(predictor_embed_dim=16, predictor_depth=1, seed=0)


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def config(fixture):
    return json.loads(str(fixture["config"]))


@pytest.fixture(scope="module")
def v5_state(fixture):
    return {k[len("v5/") :]: v for k, v in fixture.items() if k.startswith("v5/")}


@pytest.fixture(scope="module")
def v4_state(fixture, v5_state):
    return {str(v4): v5_state[str(v5)] for v4, v5 in zip(fixture["v4_keys"], fixture["v5_keys"])}


@pytest.fixture(scope="module")
def model(v4_state, config):
    return load_hf_checkpoint(v4_state, config=config, **SMALL_PREDICTOR)


def nhwc(images):
    return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))


def max_abs(ours, expected):
    ours = ops.convert_to_numpy(ours)
    assert ours.shape == expected.shape
    return float(np.max(np.abs(ours - expected)))


def write_folder(folder, config, state):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump(config, handle)
    write_safetensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    return folder


# ------------------------------------------------------------------ parity
def test_parity__hub_layout_both_encoders(model, fixture):
    images = nhwc(fixture["images"])
    assert max_abs(model.target_encoder(images), fixture["out_learned"]) < TOLERANCE
    assert max_abs(model.encoder(images), fixture["out_learned"]) < TOLERANCE
    assert isinstance(model, IJEPA) and model.encoder.pos_embed == "learned"


@pytest.mark.parametrize("layout", ["v5", "v4_prefixed"])
def test_parity__other_layouts(layout, v5_state, v4_state, config, fixture):
    state = v5_state if layout == "v5" else {f"ijepa.{k}": v for k, v in v4_state.items()}
    loaded = load_hf_checkpoint(state, config=config, **SMALL_PREDICTOR)
    assert (
        max_abs(loaded.target_encoder(nhwc(fixture["images"])), fixture["out_learned"]) < TOLERANCE
    )


def test_parity__sincos_table_uses_the_fixed_positions(v5_state, config, fixture):
    state = {**v5_state, POSITIONS: fixture["sincos_table"]}
    loaded = load_hf_checkpoint(state, config=config, **SMALL_PREDICTOR)
    assert loaded.encoder.pos_embed == loaded.target_encoder.pos_embed == "sincos"
    assert (
        max_abs(loaded.target_encoder(nhwc(fixture["images"])), fixture["out_sincos"]) < TOLERANCE
    )


def test_load__learned_table_holds_the_file_values(model, v4_state):
    for encoder in (model.encoder, model.target_encoder):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(encoder.position_table()), v4_state[POSITIONS]
        )


def test_load__learned_model_survives_keras_save(model, fixture, tmp_path):
    import keras

    model.save(tmp_path / "hf.keras")
    again = keras.models.load_model(tmp_path / "hf.keras")
    assert again.target_encoder.pos_embed == "learned"
    assert (
        max_abs(again.target_encoder(nhwc(fixture["images"])), fixture["out_learned"]) < TOLERANCE
    )


def test_load__config_fields(model, config):
    encoder, predictor = model.encoder, model.predictor
    assert (encoder.embed_dim, encoder.depth, encoder.num_heads) == (32, 2, 2)
    assert (encoder.image_size, encoder.patch_size, encoder.in_channels) == (16, 4, 3)
    assert encoder.blocks[0].mlp.hidden_dim == config["intermediate_size"] == 64
    assert (encoder.layer_norm_epsilon, encoder.activation, encoder.qkv_bias) == (
        1e-6,
        "gelu",
        True,
    )
    assert (predictor.predictor_embed_dim, predictor.depth, predictor.num_heads) == (16, 1, 2)
    assert predictor.num_patches == encoder.num_patches == 16


def test_load__activation_read_from_config(v5_state, config, fixture):
    loaded = load_hf_checkpoint(
        v5_state, config={**config, "hidden_act": "gelu_new"}, **SMALL_PREDICTOR
    )
    assert loaded.encoder.activation == "gelu_tanh"
    # the tanh approximation is really used: the outputs move off the exact-GELU ones
    assert max_abs(loaded.encoder(nhwc(fixture["images"])), fixture["out_learned"]) > TOLERANCE


def test_load__config_object_with_to_dict(v5_state, config):
    class Config:
        def to_dict(self):
            return dict(config)

    assert load_hf_checkpoint(v5_state, config=Config(), **SMALL_PREDICTOR).encoder.depth == 2


# ------------------------------------------------------------------- files
def test_folder__single_file_and_shards(v4_state, config, fixture, tmp_path):
    images = nhwc(fixture["images"])
    single = write_folder(tmp_path / "single", config, v4_state)
    loaded = load_hf_checkpoint(str(single), **SMALL_PREDICTOR)
    assert max_abs(loaded.target_encoder(images), fixture["out_learned"]) < TOLERANCE

    sharded = tmp_path / "sharded"
    os.makedirs(sharded)
    keys = sorted(v4_state)
    shards = {
        "model-00001-of-00002.safetensors": keys[::2],
        "model-00002-of-00002.safetensors": keys[1::2],
    }
    for name, names in shards.items():
        write_safetensors(sharded / name, {k: v4_state[k] for k in names}, {"format": "pt"})
    index = {"weight_map": {k: name for name, names in shards.items() for k in names}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    (sharded / "config.json").write_text(json.dumps(config))
    loaded = load_hf_checkpoint(sharded, **SMALL_PREDICTOR)
    assert max_abs(loaded.target_encoder(images), fixture["out_learned"]) < TOLERANCE


def test_safetensors__bfloat16_reads_as_float32(tmp_path):
    values = np.array([[1.0, -2.5], [0.15625, 3.0e5]], dtype=np.float32)
    top = (values.view(np.uint32) >> 16).astype("<u2")  # bfloat16 = the top 16 bits
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}})
    header = header.encode() + b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + top.tobytes())
    read = read_safetensors(path)["w"]
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, (top.astype(np.uint32) << 16).view(np.float32))


def test_safetensors__round_trip_and_truncation(tmp_path):
    arrays = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.arange(3),
        "c": np.ones((2,), np.float16),
    }
    path = tmp_path / "x.safetensors"
    write_safetensors(path, arrays, {"format": "pt"})
    read = read_safetensors(path)
    for key, value in arrays.items():
        assert read[key].dtype == value.dtype
        np.testing.assert_array_equal(read[key], value)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "text.safetensors").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(tmp_path / "text.safetensors")


def test_safetensors__reads_what_the_safetensors_package_writes(tmp_path):
    numpy_format = pytest.importorskip("safetensors.numpy", reason="needs the safetensors package")
    arrays = {"w": np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)}
    numpy_format.save_file(arrays, str(tmp_path / "p.safetensors"), metadata={"format": "pt"})
    np.testing.assert_array_equal(read_safetensors(tmp_path / "p.safetensors")["w"], arrays["w"])
    write_safetensors(tmp_path / "ours.safetensors", arrays, {"format": "pt"})
    np.testing.assert_array_equal(
        numpy_format.load_file(str(tmp_path / "ours.safetensors"))["w"], arrays["w"]
    )


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("which", ["target", "context"])
def test_export__hub_layout_keys_values_and_config(which, v4_state, config, tmp_path):
    loaded = load_hf_checkpoint(v4_state, config=config, **SMALL_PREDICTOR)
    for variable in loaded.encoder.weights:  # make the two encoders differ, so a swap shows
        variable.assign(ops.convert_to_numpy(variable) + 1.0)
    folder = export_hf_checkpoint(loaded, tmp_path / which, encoder=which)
    read_config, state = read_hf_checkpoint(folder)
    assert set(state) == set(v4_state)
    shift = 1.0 if which == "context" else 0.0
    for key, value in v4_state.items():
        np.testing.assert_allclose(state[key], value + shift, rtol=0, atol=1e-6, err_msg=key)
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "layer_norm_eps",
        "image_size",
        "patch_size",
        "num_channels",
        "qkv_bias",
        "model_type",
    ):
        assert read_config[key] == config[key], key


def test_export__round_trip_identical(model, tmp_path):
    folder = export_hf_checkpoint(model, tmp_path / "again")
    again = load_hf_checkpoint(folder, **SMALL_PREDICTOR)
    for ours, theirs in zip(model.target_encoder.weights, again.target_encoder.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(ours), ops.convert_to_numpy(theirs))


def test_export__vision_transformer_with_fixed_table(tmp_path):
    vit = VisionTransformer(
        image_size=(16, 24),
        patch_size=8,
        embed_dim=16,
        depth=1,
        num_heads=2,
        activation="relu",
        qkv_bias=False,
        seed=0,
    )
    config, state = hf_state_dict(vit)
    assert (config["image_size"], config["hidden_act"], config["qkv_bias"]) == (
        [16, 24],
        "relu",
        False,
    )
    assert not any(key.endswith("query.bias") for key in state)
    np.testing.assert_array_equal(state[POSITIONS], ops.convert_to_numpy(vit.position_table()))
    loaded = load_hf_checkpoint(export_hf_checkpoint(vit, tmp_path / "vit"), **SMALL_PREDICTOR)
    assert loaded.encoder.pos_embed == "sincos" and loaded.encoder.grid_size == (2, 3)
    assert loaded.predictor.grid_size == (2, 3)
    images = np.random.default_rng(0).standard_normal((1, 16, 24, 3)).astype(np.float32)
    assert max_abs(loaded.encoder(images), ops.convert_to_numpy(vit(images))) < 1e-6


# ------------------------------------------------------------------ errors
def test_error__hub_name_says_how_to_download():
    with pytest.raises(
        FileNotFoundError,
        match=r"never downloads.*hf download "
        r"facebook/ijepa_vith14_1k.*snapshot_download",
    ):
        load_hf_checkpoint("facebook/ijepa_vith14_1k")


def test_error__folder_contents(tmp_path, v4_state, config):
    folder = write_folder(tmp_path / "f", config, v4_state)
    with pytest.raises(FileNotFoundError, match="pass the folder"):
        load_hf_checkpoint(str(folder / "model.safetensors"))
    os.remove(folder / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="No weights in"):
        load_hf_checkpoint(folder)
    os.remove(folder / "config.json")
    with pytest.raises(FileNotFoundError, match=r"No config.json"):
        load_hf_checkpoint(folder)


def test_error__config_goes_with_a_state_dict_only(v4_state, config, tmp_path):
    with pytest.raises(ValueError, match="needs `config=`"):
        load_hf_checkpoint(v4_state)
    folder = write_folder(tmp_path / "f", config, v4_state)
    with pytest.raises(ValueError, match="`config` goes with a state dict"):
        load_hf_checkpoint(folder, config=config)


def test_error__missing_unexpected_and_shape_named(v4_state, config):
    broken = dict(v4_state)
    del broken["encoder.layer.1.output.dense.bias"]
    broken["pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    broken["encoder.layer.0.intermediate.dense.bias"] = np.zeros(65, np.float32)
    with pytest.raises(ValueError, match="nothing was loaded") as error:
        load_hf_checkpoint(broken, config=config)
    message = str(error.value)
    assert "missing keys ['layers.1.mlp.fc2.bias']" in message
    assert "unexpected keys ['pooler.dense.weight']" in message and "add_pooling_layer" in message
    assert "`layers.0.mlp.fc1.bias`: (65,) in the checkpoint, (64,) expected" in message


def test_error__config_and_weights_disagree(v4_state, config):
    with pytest.raises(ValueError, match=r"unexpected keys \['layers.1.attention.k_proj.bias'"):
        load_hf_checkpoint(v4_state, config={**config, "num_hidden_layers": 1})
    with pytest.raises(ValueError, match=r"missing keys \['layers.0.attention.k_proj.bias'"):
        load_hf_checkpoint(
            {k: v for k, v in v4_state.items() if not k.endswith("key.bias")}, config=config
        )
    with pytest.raises(ValueError, match=r"shape mismatch for `embeddings.position_embeddings`"):
        load_hf_checkpoint(v4_state, config={**config, "image_size": 20})


def test_error__classifier_head_and_duplicate_names(v4_state, v5_state, config):
    with_head = {f"ijepa.{k}": v for k, v in v4_state.items()}
    with_head["classifier.weight"] = np.zeros((10, 32), np.float32)
    with pytest.raises(ValueError, match="IJepaForImageClassification head"):
        load_hf_checkpoint(with_head, config=config)
    both = {**v4_state, "layers.0.mlp.fc1.weight": v5_state["layers.0.mlp.fc1.weight"]}
    with pytest.raises(ValueError, match=r"two names of the same tensor `layers.0.mlp.fc1.weight`"):
        load_hf_checkpoint(both, config=config)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"hidden_act": "gelu_10"}, "hidden_act='gelu_10' is not supported"),
        ({"patch_size": [4, 8]}, "only square patches"),
        ({"model_type": "vit"}, "model_type='vit'"),
        ({"head_dim": 8}, "head_dim"),
    ],
)
def test_error__unsupported_config(change, match, v4_state, config):
    with pytest.raises(ValueError, match=match):
        load_hf_checkpoint(v4_state, config={**config, **change})


def test_error__invalid_arguments(model, v4_state, config, tmp_path):
    with pytest.raises(ValueError, match="Invalid value for argument `source`"):
        load_hf_checkpoint(42)
    with pytest.raises(ValueError, match="Invalid value for argument `seed`"):
        load_hf_checkpoint(v4_state, config=config, seed=-1)
    with pytest.raises(ValueError, match="Invalid value for argument `predictor_num_heads`"):
        load_hf_checkpoint(v4_state, config=config, predictor_embed_dim=16, predictor_num_heads=3)
    with pytest.raises(ValueError, match="Invalid value for argument `encoder`"):
        export_hf_checkpoint(model, tmp_path / "x", encoder="online")
    with pytest.raises(ValueError, match="Invalid value for argument `model`"):
        export_hf_checkpoint(
            Predictor(num_patches=4, embed_dim=8, predictor_embed_dim=8, depth=1, num_heads=2),
            tmp_path / "x",
        )
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"pytorch_model.bin"):
        export_hf_checkpoint(model, tmp_path / "stale")


# ------------------------------------------------- transformers itself (skip without)
def transformers_or_skip():
    pytest.importorskip("torch", reason="the transformers parity tests need torch")
    return pytest.importorskip(
        "transformers",
        reason="the transformers parity tests need transformers (the dev extra installs it)",
    )


def random_ijepa(transformers, seed=0, **config):
    """An IJepaModel with every parameter random (position table and LayerNorms too)."""
    import torch

    torch.manual_seed(seed)
    model = transformers.IJepaModel(transformers.IJepaConfig(**config)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
        model.embeddings.position_embeddings.normal_(generator=generator)
    return model


def run_hf(model, images_nhwc):
    import torch

    with torch.no_grad():
        pixels = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
        return model(pixels).last_hidden_state.numpy()


LIVE_CONFIGS = {
    "hub_like": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=16,
        patch_size=4,
        layer_norm_eps=1e-6,
    ),
    "tanh_no_qkv_bias_rectangular": dict(
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=3,
        intermediate_size=40,
        image_size=[8, 16],
        patch_size=4,
        num_channels=2,
        hidden_act="gelu_pytorch_tanh",
        qkv_bias=False,
    ),  # layer_norm_eps: the IJepaConfig default 1e-12
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(LIVE_CONFIGS))
def test_transformers__model_and_folder_parity(name, tmp_path):
    transformers = transformers_or_skip()
    hf = random_ijepa(transformers, **LIVE_CONFIGS[name])
    hf.save_pretrained(tmp_path / "saved")  # the 4.x layout on disk
    channels = hf.config.num_channels
    size = LIVE_CONFIGS[name]["image_size"]
    height, width = (size, size) if isinstance(size, int) else size
    images = (
        np.random.default_rng(1).standard_normal((2, height, width, channels)).astype(np.float32)
    )
    expected = run_hf(hf, images)
    for source in (hf, str(tmp_path / "saved")):  # 5.x names in memory, 4.x on disk
        loaded = load_hf_checkpoint(source, predictor_embed_dim=24, predictor_depth=1, seed=0)
        assert loaded.encoder.pos_embed == "learned"
        assert max_abs(loaded.target_encoder(images), expected) < TOLERANCE
        assert max_abs(loaded.encoder(images), expected) < TOLERANCE


@pytest.mark.torch
def test_transformers__reads_the_v5_layout_too(tmp_path, fixture, v5_state, config):
    transformers = transformers_or_skip()
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4.x reads only the 4.x key layout")
    folder = write_folder(tmp_path / "v5", config, v5_state)
    hf, info = transformers.IJepaModel.from_pretrained(folder, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    images = nhwc(fixture["images"])
    assert np.abs(run_hf(hf, images) - fixture["out_learned"]).max() < 1e-5
    loaded = load_hf_checkpoint(folder, **SMALL_PREDICTOR)
    assert max_abs(loaded.target_encoder(images), fixture["out_learned"]) < TOLERANCE


@pytest.mark.torch
@pytest.mark.parametrize("table", ["learned", "sincos"])
def test_transformers__loads_the_export_strictly(table, tmp_path):
    transformers = transformers_or_skip()
    encoder = VisionTransformer(
        image_size=(16, 24),
        patch_size=4,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        pos_embed=table,
        seed=0,
    )
    encoder.build()
    rng = np.random.default_rng(0)
    for variable in encoder.weights:  # random LayerNorms, biases and table too
        value = ops.convert_to_numpy(variable)
        variable.assign(value + 0.1 * rng.standard_normal(value.shape).astype(np.float32))
    predictor = Predictor(
        num_patches=24,
        embed_dim=32,
        predictor_embed_dim=16,
        depth=1,
        num_heads=2,
        grid_size=(4, 6),
        seed=1,
    )
    model = IJEPA(encoder=encoder, predictor=predictor)
    folder = export_hf_checkpoint(model, tmp_path / "export")
    hf, info = transformers.IJepaModel.from_pretrained(folder, output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    images = rng.standard_normal((2, 16, 24, 3)).astype(np.float32)
    assert max_abs(model.target_encoder(images), run_hf(hf, images)) < TOLERANCE


@pytest.mark.torch
def test_pytorch_model_bin__read_without_torch(tmp_path, v4_state, config, fixture, monkeypatch):
    import torch

    folder = tmp_path / "bin"
    folder.mkdir()
    torch.save(
        {k: torch.from_numpy(v.copy()) for k, v in v4_state.items()}, folder / "pytorch_model.bin"
    )
    (folder / "config.json").write_text(json.dumps(config))
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
        read_hf_checkpoint(folder)
    loaded = load_hf_checkpoint(folder, **SMALL_PREDICTOR)
    assert (
        max_abs(loaded.target_encoder(nhwc(fixture["images"])), fixture["out_learned"]) < TOLERANCE
    )
