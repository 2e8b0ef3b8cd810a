"""Frozen-encoder probes: one feature pass, all probes at once (attentive: test_attentive_probe)."""

import keras
import numpy as np
import pytest
from harness import to_numpy

from jepa_components import diagnostics
from jepa_components.backends.keras import VisionTransformer
from jepa_components.backends.keras.evaluation import attentive_probe
from jepa_components.backends.keras.evaluation.probes import encode_images, probe_encoder

# --- features ------------------------------------------------------------------------


def test_encode_images__one_pass_gives_every_view():
    vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=3, num_heads=2, seed=0)
    images = np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype("float32")
    out = encode_images(vit, images, last_n=2, batch_size=2)
    tokens = to_numpy(vit(images))
    np.testing.assert_allclose(out["tokens"], tokens, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["pooled"], tokens.mean(axis=1), rtol=1e-4, atol=1e-5)
    assert out["pooled_last_layers"].shape == (5, 64)
    np.testing.assert_allclose(
        out["pooled_last_layers"][:, 32:], out["pooled"], rtol=1e-5, atol=1e-6
    )
    assert set(encode_images(vit, images, tokens=False)) == {"pooled"}
    assert encode_images(vit, images, last_n=9)["pooled_last_layers"].shape == (5, 96)


def test_encode_images__uses_the_encoders_own_position_table():
    vit = VisionTransformer(
        image_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, pos_embed="learned", seed=0
    )
    vit.build()
    table = np.random.default_rng(1).normal(size=(1, 16, 32)).astype("float32")
    vit.pos_embed_weight.assign(table)  # not the sin-cos table: it must be the one used
    images = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    out = encode_images(vit, images, last_n=2)
    np.testing.assert_allclose(out["tokens"], to_numpy(vit(images)), rtol=1e-4, atol=1e-5)


def test_encode_images__validates():
    vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="Invalid value for argument `encoder`"):
        encode_images(keras.layers.Dense(2), np.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="Invalid value for argument `last_n`"):
        encode_images(vit, np.zeros((1, 16, 16, 3)), last_n=0)
    with pytest.raises(ValueError, match="Invalid value for argument `images`"):
        encode_images(vit, np.zeros((16, 16, 3)))


# --- all probes from one pass ------------------------------------------------------------


def test_probe_encoder__same_numbers_as_the_core_probes_on_cached_features():
    vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, seed=0)
    rng = np.random.default_rng(0)
    labels = np.arange(48) % 3
    images = rng.uniform(size=(48, 16, 16, 3)).astype("float32")
    images[..., 0] += labels[:, None, None] * 0.5  # the red channel tells the class
    result = probe_encoder(
        vit,
        images[:32],
        labels[:32],
        images[32:],
        labels[32:],
        last_n=2,
        probes=("linear", "knn"),
        knn_k=5,
    )
    features = encode_images(vit, images, last_n=2, tokens=False)
    expected = diagnostics.probe_accuracies(
        features["pooled"][:32], labels[:32], features["pooled"][32:], labels[32:], knn_k=5
    )
    assert result["linear"] == expected["linear"] and result["knn"] == expected["knn"]
    assert {"linear_last_layers", "knn_last_layers"} <= set(result)
    assert set(result["protocols"]) == {"linear", "knn"}
    with pytest.raises(ValueError, match="Invalid value for argument `probes`"):
        probe_encoder(vit, images[:32], labels[:32], images[32:], labels[32:], probes=("svm",))


def test_probe_encoder__attentive_probe_on_the_cached_last_layer_tokens():
    vit = VisionTransformer(image_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2, seed=0)
    rng = np.random.default_rng(1)
    labels = np.arange(40) % 2
    images = rng.uniform(size=(40, 16, 16, 3)).astype("float32")
    settings = {"epochs": 1, "num_heads": 2, "batch_size": 16, "seed": 3}
    result = probe_encoder(
        vit,
        images[:32],
        labels[:32],
        images[32:],
        labels[32:],
        probes=("attentive",),
        attentive=settings,
    )
    tokens = encode_images(vit, images)["tokens"]
    expected = attentive_probe.attentive_probe_accuracy(
        tokens[:32], labels[:32], tokens[32:], labels[32:], **settings
    )
    assert set(result) == {"attentive", "protocols"}
    assert result["attentive"] == expected


def test_probes__reexports_the_attentive_probe():
    from jepa_components.backends.keras.evaluation import probes

    for name in (
        "AttentivePooler",
        "AttentiveProbe",
        "attentive_probe_accuracy",
        "train_attentive_probe",
        "token_statistics",
    ):
        assert getattr(probes, name) is getattr(attentive_probe, name)
