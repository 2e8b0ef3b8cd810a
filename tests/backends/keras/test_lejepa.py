"""LeJEPA on the shared model base: forward, loss, training, round trip, data parallelism."""

import textwrap

import keras
import numpy as np
import pytest
from harness import run_on_two_cpu_devices
from keras import ops

from jepa_components.backends.keras import LeJEPA, VisionTransformer, make_projector
from jepa_components.regularizers import lejepa_invariance, sigreg


def _model(**kwargs):
    encoder = VisionTransformer(
        image_size=16, patch_size=4, in_channels=1, embed_dim=32, depth=1, num_heads=2, seed=0
    )
    kwargs.setdefault("seed", 2)
    kwargs.setdefault("num_slices", 16)
    return LeJEPA(encoder, make_projector(8, (32,), seed=1), **kwargs)


def _views(b=4, v=3, seed=0):
    return np.random.default_rng(seed).normal(size=(b, v, 16, 16, 1)).astype("float32")


def _weights(layer):
    return [np.array(ops.convert_to_numpy(w)) for w in layer.weights]


def test_forward__shapes_and_image_major_rows():
    model = _model(num_classes=3)
    views = _views()
    out = model({"views": views})
    assert tuple(out["projections"].shape) == (3, 4, 8)
    assert tuple(out["embeddings"].shape) == (12, 32)
    assert tuple(out["logits"].shape) == (12, 3)
    # row b * V + v of the embeddings is view v of image b
    direct = ops.mean(model.encoder(views[1, 2][None]), axis=1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(out["embeddings"][1 * 3 + 2]),
        ops.convert_to_numpy(direct[0]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_loss__lambda_sigreg_plus_one_minus_lambda_invariance():
    model = _model(sigreg_weight=0.3, num_global_views=2)
    out = model({"views": _views()})
    state = np.array(ops.convert_to_numpy(model.sigreg.seed_generator.state))  # before the draw
    terms = model.loss_terms(out)
    proj = np.asarray(ops.convert_to_numpy(out["projections"]), np.float64)
    model.sigreg.seed_generator.state.assign(state)  # draw the same directions again
    a = np.asarray(ops.convert_to_numpy(model.sigreg.directions(8)), np.float64)
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, rtol=1e-5)
    expected_sig = sigreg(proj, a)
    expected_inv = lejepa_invariance(proj, 2)
    np.testing.assert_allclose(float(terms["sigreg"]), expected_sig, rtol=1e-4)
    np.testing.assert_allclose(float(terms["invariance"]), expected_inv, rtol=1e-5)
    np.testing.assert_allclose(
        float(terms["lejepa"]), 0.3 * expected_sig + 0.7 * expected_inv, rtol=1e-4
    )


def test_directions__new_every_step():
    model = _model()
    a, b = model.sigreg.directions(8), model.sigreg.directions(8)
    assert not np.allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_fit__trains_encoder_and_projector_probe_sees_detached_features():
    model = _model(num_classes=3)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    encoder_before, projector_before = _weights(model.encoder), _weights(model.projector)
    data = {"views": _views(8), "labels": np.arange(8) % 3}
    history = model.fit(data, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
    assert any(np.abs(a - b).max() > 0 for a, b in zip(encoder_before, _weights(model.encoder)))
    assert any(np.abs(a - b).max() > 0 for a, b in zip(projector_before, _weights(model.projector)))
    # the probe's cross-entropy does not reach the encoder: same step with and without labels
    with_labels, without = _model(num_classes=3), _model(num_classes=3)
    for m, batch in ((with_labels, data), (without, {"views": data["views"]})):
        m.compile(optimizer=keras.optimizers.SGD(0.1))
        m.fit(batch, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(_weights(with_labels.encoder), _weights(without.encoder)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_round_trip__keras_file(tmp_path):
    model = _model(num_classes=3, num_global_views=2, sigreg_weight=0.02)
    views = _views()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.fit({"views": views}, batch_size=2, epochs=1, verbose=0)  # the directions move on
    before = ops.convert_to_numpy(model({"views": views})["projections"])
    path = str(tmp_path / "lejepa.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, LeJEPA)
    own = ("num_global_views", "sigreg_weight", "num_slices", "t_max", "num_knots")
    own += ("num_classes", "seed")
    assert {k: loaded.get_config()[k] for k in own} == {k: model.get_config()[k] for k in own}
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded({"views": views})["projections"]), before, rtol=1e-6
    )
    # the directions continue the same sequence after loading
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded.sigreg.directions(8)),
        ops.convert_to_numpy(model.sigreg.directions(8)),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigreg_weight": 1.5}, "sigreg_weight"),
        ({"num_slices": 0}, "num_slices"),
        ({"num_global_views": 0}, "num_global_views"),
        ({"t_max": -1.0}, "t_max"),
        ({"num_knots": 1}, "num_knots"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_constructor__refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_call__refuses_a_batch_without_views():
    with pytest.raises(ValueError, match="views"):
        _model()({"images": np.zeros((2, 16, 16, 1), "float32")})
    with pytest.raises(ValueError, match=r"rank-5"):
        _model()({"views": np.zeros((2, 16, 16, 1), "float32")})


# Runs in a fresh process: XLA_FLAGS must be set before jax starts.
SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import jax, keras
    from jepa_components.backends.keras import LeJEPA, VisionTransformer, make_projector
    from jepa_components.backends.keras.training.distribution import data_parallel

    def train(distributed):
        keras.distribution.set_distribution(None)
        if distributed:
            data_parallel(global_batch_size=8)
        encoder = VisionTransformer(image_size=16, patch_size=4, in_channels=1, embed_dim=32,
                                    depth=1, num_heads=2, seed=0)
        model = LeJEPA(encoder, make_projector(8, (32,), seed=1), num_slices=16, seed=2)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        views = np.random.default_rng(0).normal(size=(16, 3, 16, 16, 1)).astype("float32")
        history = model.fit({"views": views}, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return history.history["loss"], [np.asarray(w) for w in model.trainable_weights]

    one_loss, one = train(False)
    two_loss, two = train(True)
    print(json.dumps({
        "devices": len(jax.devices()),
        "loss": max(abs(a - b) for a, b in zip(one_loss, two_loss)),
        "weights": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "local": float(np.abs(one_loss[0]))}))
""")


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution needs jax")
def test_data_parallel__two_devices_give_the_global_batch_loss_and_gradients():
    result = run_on_two_cpu_devices(SCRIPT)
    assert result["devices"] == 2
    # losses and the weights after 4 steps equal those of one device on the global batch
    assert result["loss"] < 1e-4 * max(1.0, result["local"]), result
    assert result["weights"] < 1e-5, result
