"""Official I-JEPA checkpoints: parity, round trip, files, errors.

Fixtures: ``tests/fixtures/official_tiny.npz`` and
``official_tiny_ddp.pth.tar``, written by
``tests/fixtures/make_official_fixtures.py`` from the official code. The
suite runs from them alone; tests reading or writing ``.pth`` files need
torch, the ``init_model`` test also the official code (skipped otherwise).
"""

import copy
import os
import sys
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
from jepa_components.backends.keras.convert import (
    export_official_checkpoint,
    infer_official_architecture,
    load_official_checkpoint,
    official_state_dicts,
    read_official_checkpoint,
)

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "fixtures")
NPZ = os.path.join(FIXTURES, "official_tiny.npz")
PTH = os.path.join(FIXTURES, "official_tiny_ddp.pth.tar")
PARTS = ("encoder", "predictor", "target_encoder")
# fp32 parity with the official modules: measured <= 7.2e-7 on jax, torch and tensorflow;
# the README states this bound.
TOLERANCE = 2e-6


@pytest.fixture(scope="module")
def fixture():
    with np.load(NPZ) as data:
        return dict(data)


@pytest.fixture(scope="module")
def state(fixture):
    return {
        part: {k[len(part) + 1 :]: v for k, v in fixture.items() if k.startswith(part + "/")}
        for part in PARTS
    }


@pytest.fixture(scope="module")
def model(state, fixture):
    return load_official_checkpoint(state, num_heads=int(fixture["num_heads"]))


def fresh_state(state):
    return {part: dict(values) for part, values in state.items()}


def nhwc(images):
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def max_abs(ours, official):
    ours = ops.convert_to_numpy(ours)
    assert ours.shape == official.shape
    return float(np.max(np.abs(ours - official)))


def weights_of(model):
    return [ops.convert_to_numpy(v) for v in model.weights]


# ------------------------------------------------------------------ parity
def test_parity__encoder_full_image(model, fixture):
    assert max_abs(model.encoder(nhwc(fixture["images"])), fixture["out_encoder_full"]) < TOLERANCE


def test_parity__encoder_context_indices(model, fixture):
    out = model.encoder(nhwc(fixture["images"]), indices=fixture["masks_enc"])
    assert max_abs(out, fixture["out_encoder_context"]) < TOLERANCE


def test_parity__target_encoder(model, fixture):
    out = model.target_encoder(nhwc(fixture["images"]))
    assert max_abs(out, fixture["out_target_full"]) < TOLERANCE
    # the fixture's target differs from its encoder: a swap would show
    assert np.abs(fixture["out_target_full"] - fixture["out_encoder_full"]).max() > 1e-2


def official_order(predictions):
    """Ours ``(B, M, Kt, D)`` -> official ``(M * B, Kt, D)``, mask-major."""
    predictions = ops.convert_to_numpy(predictions)
    batch, blocks, size, dim = predictions.shape
    return predictions.transpose(1, 0, 2, 3).reshape(blocks * batch, size, dim)


def test_parity__predictor_several_target_blocks(model, fixture):
    targets = fixture["masks_pred"].transpose(1, 0, 2)  # official (M, B, Kt) -> (B, M, Kt)
    assert targets.shape[1] == 3
    out = model.predictor(fixture["out_encoder_context"], fixture["masks_enc"], targets)
    assert max_abs(official_order(out), fixture["out_predictor"]) < TOLERANCE


def test_parity__encoder_then_predictor(model, fixture):
    context = model.encoder(nhwc(fixture["images"]), indices=fixture["masks_enc"])
    out = model.predictor(context, fixture["masks_enc"], fixture["masks_pred"].transpose(1, 0, 2))
    assert max_abs(official_order(out), fixture["out_predictor"]) < TOLERANCE


# ------------------------------------------------------ architecture, round trip
def test_load__infers_architecture(model):
    encoder, predictor = model.encoder, model.predictor
    assert (encoder.image_size, encoder.patch_size, encoder.embed_dim, encoder.depth) == (
        32,
        8,
        32,
        2,
    )
    assert (encoder.num_heads, encoder.mlp_ratio, encoder.in_channels) == (2, 4.0, 3)
    assert (predictor.predictor_embed_dim, predictor.depth, predictor.num_heads) == (16, 2, 2)
    assert isinstance(model, IJEPA)


def test_round_trip__import_export_import_identical(model, state, fixture):
    exported = official_state_dicts(model)
    for part in PARTS:
        assert set(exported[part]) == set(state[part])
        for key, value in state[part].items():
            np.testing.assert_array_equal(exported[part][key], value, err_msg=f"{part} {key}")
    again = load_official_checkpoint(exported, num_heads=int(fixture["num_heads"]))
    for ours, theirs in zip(weights_of(model), weights_of(again)):
        np.testing.assert_array_equal(ours, theirs)


def test_load__ddp_prefix_and_extra_entries(state, fixture):
    prefixed = {
        part: {f"module.{k}": v for k, v in values.items()} for part, values in state.items()
    }
    prefixed.update(opt=None, scaler=None, epoch=7, lr=1e-3)
    loaded = load_official_checkpoint(prefixed, num_heads=int(fixture["num_heads"]))
    assert (
        max_abs(loaded.target_encoder(nhwc(fixture["images"])), fixture["out_target_full"])
        < TOLERANCE
    )


def test_load__bare_encoder_state_dict(state, fixture):
    with pytest.warns(UserWarning, match="encoder only"):
        loaded = load_official_checkpoint(
            state["target_encoder"], num_heads=2, predictor_embed_dim=16, predictor_depth=1, seed=0
        )
    images = nhwc(fixture["images"])
    assert max_abs(loaded.encoder(images), fixture["out_target_full"]) < TOLERANCE
    assert max_abs(loaded.target_encoder(images), fixture["out_target_full"]) < TOLERANCE
    assert (loaded.predictor.predictor_embed_dim, loaded.predictor.depth) == (16, 1)


def test_load__fills_given_model(model, state, fixture):
    encoder = VisionTransformer(
        image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, seed=3
    )
    predictor = Predictor(
        num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=2, num_heads=2, seed=4
    )
    target = IJEPA(encoder=encoder, predictor=predictor)
    assert load_official_checkpoint(state, model=target) is target
    for ours, theirs in zip(weights_of(model), weights_of(target)):
        np.testing.assert_array_equal(ours, theirs)


def zeros(*shape):
    return np.broadcast_to(np.float32(0), shape)  # shapes only, no memory


def shape_only_checkpoint(dim, depth, patch, grid, hidden, pred_dim, pred_depth):
    encoder = {
        "patch_embed.proj.weight": zeros(dim, 3, patch, patch),
        "pos_embed": zeros(1, grid * grid, dim),
    }
    for i in range(depth):
        encoder[f"blocks.{i}.mlp.fc1.weight"] = zeros(hidden, dim)
        encoder[f"blocks.{i}.attn.qkv.bias"] = zeros(3 * dim)
    predictor = {"predictor_embed.weight": zeros(pred_dim, dim)}
    for i in range(pred_depth):
        predictor[f"predictor_blocks.{i}.mlp.fc1.weight"] = zeros(4 * pred_dim, pred_dim)
        predictor[f"predictor_blocks.{i}.attn.qkv.bias"] = zeros(3 * pred_dim)
    return {"encoder": encoder, "predictor": predictor, "target_encoder": encoder}


def test_infer__official_vit_huge_14():
    checkpoint = shape_only_checkpoint(1280, 32, 14, 16, 5120, 384, 12)
    encoder, predictor = infer_official_architecture(checkpoint)
    assert encoder == dict(
        image_size=224,
        patch_size=14,
        in_channels=3,
        embed_dim=1280,
        depth=32,
        num_heads=16,
        mlp_ratio=4.0,
        qkv_bias=True,
    )
    assert predictor == dict(
        embed_dim=1280,
        num_heads=16,
        predictor_embed_dim=384,
        depth=12,
        mlp_ratio=4.0,
        qkv_bias=True,
    )


def test_infer__vit_giant_mlp_ratio_gives_exact_hidden_width():
    checkpoint = shape_only_checkpoint(1408, 1, 16, 14, 6144, 384, 1)
    encoder, _ = infer_official_architecture(checkpoint)
    assert int(1408 * encoder["mlp_ratio"]) == 6144
    assert encoder["num_heads"] == 16


def test_infer__explicit_values_win():
    checkpoint = shape_only_checkpoint(192, 1, 16, 14, 768, 96, 1)
    encoder, predictor = infer_official_architecture(
        checkpoint, image_size=448, num_heads=6, predictor_num_heads=4
    )
    assert (encoder["image_size"], encoder["num_heads"], predictor["num_heads"]) == (448, 6, 4)


def test_infer__unknown_width_needs_num_heads(state):
    with pytest.raises(ValueError, match="num_heads"):
        infer_official_architecture(state)
    with pytest.raises(ValueError, match="model_name"):
        infer_official_architecture(state, model_name="vit_enormous")


# ------------------------------------------------------------------- files
def test_file__official_ddp_training_checkpoint(fixture, monkeypatch):
    loaded = load_official_checkpoint(PTH, num_heads=int(fixture["file/num_heads"]))
    out = loaded.target_encoder(nhwc(fixture["file/images"]))
    assert max_abs(out, fixture["file/out_target_full"]) < TOLERANCE
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "torch", None)  # reading needs no torch
        checkpoint = read_official_checkpoint(PTH)
    assert checkpoint["epoch"] == 3 and "opt" in checkpoint
    assert all(not k.startswith("module.") for k in checkpoint["encoder"])


@pytest.mark.torch
def test_file__export_then_import_identical(model, fixture, tmp_path):
    import torch

    path = tmp_path / "exported.pth.tar"
    export_official_checkpoint(model, path, epoch=5, ddp_prefix=True)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 5 and raw["opt"] is None
    assert all(k.startswith("module.") for part in PARTS for k in raw[part])
    again = load_official_checkpoint(str(path), num_heads=int(fixture["num_heads"]))
    for ours, theirs in zip(weights_of(model), weights_of(again)):
        np.testing.assert_array_equal(ours, theirs)


def test_export__loads_into_official_init_model_strict(tmp_path, official_code):
    # The file does not depend on the backend; building a 12-block vit_tiny
    # costs ~10 s of initializer compilation on jax, ~2 s elsewhere.
    if keras.backend.backend() == "jax":
        pytest.skip("backend-independent file format; checked on torch and tensorflow")
    helper = official_code("src.helper")
    import torch

    encoder = VisionTransformer(
        image_size=32, patch_size=16, embed_dim=192, depth=12, num_heads=3, seed=0
    )  # official vit_tiny
    predictor = Predictor(
        num_patches=4, embed_dim=192, predictor_embed_dim=12, depth=1, num_heads=3, seed=1
    )
    model = IJEPA(encoder=encoder, predictor=predictor)
    path = tmp_path / "for_official.pth.tar"
    export_official_checkpoint(model, path, epoch=2)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    official_encoder, official_predictor = helper.init_model(
        device="cpu",
        patch_size=16,
        model_name="vit_tiny",
        crop_size=32,
        pred_depth=1,
        pred_emb_dim=12,
    )
    official_target = copy.deepcopy(official_encoder)
    official_encoder.load_state_dict(checkpoint["encoder"], strict=True)
    official_predictor.load_state_dict(checkpoint["predictor"], strict=True)
    official_target.load_state_dict(checkpoint["target_encoder"], strict=True)
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = official_encoder.eval()(torch.from_numpy(images)).numpy()
    assert max_abs(model.encoder(nhwc(images)), expected) < TOLERANCE


# ------------------------------------------------------------------ errors
def test_error__text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match="is not a PyTorch file"):
        load_official_checkpoint(str(path))


def test_error__corrupt_zip(tmp_path):
    path = tmp_path / "noise.pth.tar"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="Could not read"):
        load_official_checkpoint(path)


def test_error__truncated_file(tmp_path):
    with open(PTH, "rb") as handle:
        data = handle.read()
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_official_checkpoint(path, num_heads=2)


def test_error__missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(str(tmp_path / "absent.pth.tar"))


def test_error__torch_missing_hint(monkeypatch, model, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    hint = r'pip install "jepa-components\[torch\]"'
    with pytest.raises(ImportError, match=hint):  # trusting a file means torch.load
        load_official_checkpoint(PTH, weights_only=False)
    with pytest.raises(ImportError, match=hint):
        export_official_checkpoint(model, tmp_path / "out.pth.tar")


def test_error__checkpoint_without_encoder(state):
    checkpoint = {"predictor": state["predictor"], "target_encoder": state["target_encoder"]}
    with pytest.raises(ValueError, match=r"misses the key\(s\) \['encoder'\]"):
        load_official_checkpoint(checkpoint, num_heads=2)


def test_error__not_a_checkpoint_dict():
    with pytest.raises(ValueError, match="Not an official I-JEPA checkpoint"):
        load_official_checkpoint({"state_dict": {}, "model": 1})
    with pytest.raises(ValueError, match="path_or_state"):
        load_official_checkpoint(42)


def test_error__missing_key_named(state):
    broken = fresh_state(state)
    del broken["encoder"]["blocks.1.norm2.bias"]
    with pytest.raises(
        ValueError, match=r"checkpoint\['encoder'\]: missing keys \['blocks.1.norm2.bias'\]"
    ):
        load_official_checkpoint(broken, num_heads=2)


def test_error__unexpected_key_named(state):
    broken = fresh_state(state)
    broken["predictor"]["predictor_blocks.0.attn.q_norm.weight"] = np.zeros(16, np.float32)
    with pytest.raises(
        ValueError, match=r"unexpected keys \['predictor_blocks.0.attn.q_norm.weight'\]"
    ):
        load_official_checkpoint(broken, num_heads=2)


def test_error__shape_mismatch_names_key_and_both_shapes(state):
    broken = fresh_state(state)
    broken["target_encoder"]["blocks.0.mlp.fc1.bias"] = np.zeros(100, np.float32)
    with pytest.raises(
        ValueError,
        match=r"`blocks.0.mlp.fc1.bias`: \(100,\) in the checkpoint, "
        r"\(128,\) expected",
    ):
        load_official_checkpoint(broken, num_heads=2)


def test_error__wrong_architecture_for_given_model_loads_nothing(model, state):
    encoder = VisionTransformer(
        image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, seed=3
    )
    predictor = Predictor(
        num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2, seed=4
    )  # the checkpoint's predictor has 2 blocks
    target = IJEPA(encoder=encoder, predictor=predictor)
    before = weights_of(target)
    with pytest.raises(
        ValueError,
        match=r"checkpoint\['predictor'\]: unexpected keys "
        r"\['predictor_blocks.1.attn.proj.bias'",
    ):
        load_official_checkpoint(state, model=target)
    for old, new in zip(before, weights_of(target)):  # never a partial load
        np.testing.assert_array_equal(old, new)


def test_error__mismatch_names_the_file():
    encoder = VisionTransformer(image_size=32, patch_size=8, embed_dim=8, depth=1, num_heads=2)
    predictor = Predictor(num_patches=16, embed_dim=8, predictor_embed_dim=8, depth=1, num_heads=2)
    with pytest.raises(
        ValueError,
        match=r"official_tiny_ddp\.pth\.tar' does not match the "
        r"model; nothing was loaded",
    ):
        load_official_checkpoint(PTH, model=IJEPA(encoder=encoder, predictor=predictor))


def test_mapping__a_table_covers_every_weight(model):
    from jepa_components.backends.keras.convert.mapping import table_entries
    from jepa_components.backends.keras.convert.official import ENCODER_ROWS

    assert [row[0] for row in ENCODER_ROWS[-2:]] == ["norm.weight", "norm.bias"]
    with pytest.raises(ValueError, match=r"leaves weights .*norm/gamma"):
        table_entries(model.encoder, ENCODER_ROWS[:-2])  # the final norm left out


def learned_state(state, seed=0):
    """The fixture with random (not sin-cos) encoder and target tables."""
    rng = np.random.default_rng(seed)
    out = fresh_state(state)
    for part in ("encoder", "target_encoder"):
        out[part]["pos_embed"] = rng.standard_normal(out[part]["pos_embed"].shape).astype(
            np.float32
        )
    return out


def test_load__learned_tables_build_learned_encoders(state, fixture):
    tables = learned_state(state)
    loaded = load_official_checkpoint(tables, num_heads=2)
    for part in ("encoder", "target_encoder"):
        layer = getattr(loaded, part)
        assert layer.pos_embed == "learned"
        np.testing.assert_array_equal(
            ops.convert_to_numpy(layer.position_table()), tables[part]["pos_embed"]
        )
    # export writes the tables back unchanged, and they load again
    exported = official_state_dicts(loaded)
    for part in PARTS:
        for key, value in tables[part].items():
            np.testing.assert_array_equal(exported[part][key], value, err_msg=f"{part} {key}")
    again = load_official_checkpoint(exported, num_heads=2)
    for ours, theirs in zip(weights_of(loaded), weights_of(again)):
        np.testing.assert_array_equal(ours, theirs)


def test_load__sincos_table_into_learned_model_gives_official_outputs(state, fixture):
    encoder = VisionTransformer(
        image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, pos_embed="learned", seed=3
    )
    predictor = Predictor(
        num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=2, num_heads=2, seed=4
    )
    target = load_official_checkpoint(state, model=IJEPA(encoder=encoder, predictor=predictor))
    out = target.target_encoder(nhwc(fixture["images"]))
    assert max_abs(out, fixture["out_target_full"]) < TOLERANCE


def test_load__table_within_float32_rounding_is_the_fixed_one(state):
    close = fresh_state(state)
    for part in ("encoder", "target_encoder"):
        close[part]["pos_embed"] = close[part]["pos_embed"] + np.float32(2e-6)
    assert load_official_checkpoint(close, num_heads=2).encoder.pos_embed == "sincos"
    close["encoder"]["pos_embed"] = close["encoder"]["pos_embed"] + np.float32(1e-4)
    assert load_official_checkpoint(close, num_heads=2).encoder.pos_embed == "learned"


def test_error__learned_table_into_fixed_model_refused(model, state):
    before = weights_of(model)
    with pytest.raises(
        ValueError,
        match=r"checkpoint\['encoder'\]: `pos_embed` is not the "
        r"official fixed 2-D sin-cos table .*"
        r"pos_embed=\"learned\"",
    ):
        load_official_checkpoint(learned_state(state), model=model)
    for old, new in zip(before, weights_of(model)):
        np.testing.assert_array_equal(old, new)


def test_error__learned_table_not_interpolated(state):
    with pytest.raises(ValueError, match="tables are not interpolated"):
        load_official_checkpoint(learned_state(state), num_heads=2, image_size=48)


def test_error__predictor_table_must_be_sincos(state):
    broken = fresh_state(state)
    broken["predictor"]["predictor_pos_embed"] = broken["predictor"]["predictor_pos_embed"] + 0.5
    with pytest.raises(
        ValueError,
        match=r"`predictor_pos_embed` is not the official fixed 2-D "
        r"sin-cos table.*only has fixed sin-cos positions",
    ):
        load_official_checkpoint(broken, num_heads=2)


def test_export__learned_table_loads_into_official_encoder(state, tmp_path, official_code):
    vit = official_code("src.models.vision_transformer")
    import torch

    loaded = load_official_checkpoint(learned_state(state, seed=1), num_heads=2)
    path = tmp_path / "learned.pth.tar"
    export_official_checkpoint(loaded, path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    official = vit.VisionTransformer(
        img_size=[32],
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        qkv_bias=True,
        mlp_ratio=4,
        norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6),
    )
    official.load_state_dict(checkpoint["target_encoder"], strict=True)
    assert not official.pos_embed.requires_grad  # a fixed buffer there, holding our table
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = official.eval()(torch.from_numpy(images)).numpy()
    assert max_abs(loaded.target_encoder(nhwc(images)), expected) < TOLERANCE
    # the random table matters: the fixed one gives other outputs
    with torch.no_grad():
        official.pos_embed.copy_(torch.from_numpy(state["target_encoder"]["pos_embed"]))
        other = official(torch.from_numpy(images)).numpy()
    assert np.abs(other - expected).max() > 1e-2


def test_error__invalid_arguments(model, state):
    with pytest.raises(ValueError, match="either `model` or architecture"):
        load_official_checkpoint(state, model=model, num_heads=2)
    with pytest.raises(ValueError, match="Expected None or an IJEPA"):
        load_official_checkpoint(state, model=object())
    with pytest.raises(ValueError, match="Invalid value for argument `epoch`"):
        export_official_checkpoint(model, "x.pth", epoch=-1)
    with pytest.raises(ValueError, match="Invalid value for argument `model`"):
        official_state_dicts(object())


def test_load__other_image_size_uses_new_grid(state, fixture):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_official_checkpoint(state, num_heads=2, image_size=48)
    assert loaded.encoder.num_patches == 36 and loaded.predictor.num_patches == 36
    assert any("sin-cos positions" in str(w.message) for w in caught)
