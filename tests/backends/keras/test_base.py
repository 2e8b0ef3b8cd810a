"""JEPAModel, the shared base: compile fast paths, the data-hook protocol, grids, config.

Every test runs on IJEPA and PixelBaseline where both apply: what the base
owns, both subclasses get.
"""

import contextlib
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, images, to_numpy, training_batch
from keras import ops

from jepa_components.backends.keras import (
    IJEPA,
    FitHooks,
    JEPAModel,
    MaskedImageDataset,
    PixelBaseline,
    Predictor,
    VisionTransformer,
    compat,
)
from jepa_components.backends.keras.models import base as base_module
from jepa_components.masks import MultiBlockMaskSampler

BACKEND = keras.backend.backend()
BATCH = training_batch(4)
GRID_MESSAGE = (
    r"Invalid value for argument `sampler`. Expected a sampler on the encoder's "
    r"\(4, 4\) patch grid. Received: grid_size=\(2, 8\)"
)


def make(kind, seed=0, **kwargs):
    encoder = VisionTransformer(**TINY_VIT, seed=seed)
    predictor = Predictor(**TINY_PREDICTOR, seed=seed + 1)
    if kind == "ijepa":
        return IJEPA(encoder=encoder, predictor=predictor, momentum=0.99, **kwargs)
    return PixelBaseline(encoder=encoder, predictor=predictor, seed=seed + 2, **kwargs)


KINDS = ["ijepa", "pixel"]


@pytest.mark.parametrize("kind", KINDS)
def test_base__compile_and_train_function_fast_paths_for_every_method(kind, monkeypatch):
    """XLA on tensorflow by default, the jax CPU step (jax) and one heap release per fresh
    train function (jax, tensorflow): PixelBaseline gets them as IJEPA does."""
    steps, releases = [], []
    jit = base_module.jax_train_step_jit

    def recording(model):
        steps.append(model)
        return jit(model)

    monkeypatch.setattr(base_module, "jax_train_step_jit", recording)
    monkeypatch.setattr(compat, "release_free_heap", lambda: releases.append(1) or True)
    model = make(kind)
    assert isinstance(model, JEPAModel)
    model.compile(optimizer="adamw")
    assert model.jit_compile is (True if BACKEND in ("jax", "tensorflow") else False)
    history = model.fit(BATCH, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert steps == [model]  # asked once, for the one fresh train function
    assert len(releases) == (1 if BACKEND in ("jax", "tensorflow") else 0)
    if BACKEND == "jax":
        assert jit(model) is not None  # CPU: the memory-ordered step is the one used


def test_base__public_paths_of_the_keras_internals_train_the_same():
    """Without ``_make_function`` / ``_distribute_strategy`` (probes off) the model trains
    with Keras' own train function and the same compile choice."""
    losses = []
    for names in ((), ("model_train_function", "model_distribute_strategy")):
        with compat.public_paths(*names):
            model = make("pixel", seed=3)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
            if BACKEND == "tensorflow":
                assert model.jit_compile is True
            losses.append(
                model.fit(BATCH, batch_size=2, epochs=1, verbose=0, shuffle=False).history["loss"]
            )
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_base__fit_refuses_a_sampler_on_another_grid(kind):
    model = make(kind)
    model.compile(optimizer="adamw")
    wrong = MultiBlockMaskSampler(grid_size=(2, 8), min_context=2, seed=0)  # 16 patches too
    data = MaskedImageDataset(images(8), wrong, batch_size=4, seed=0)
    with pytest.raises(ValueError, match=GRID_MESSAGE):
        model.fit(data, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=GRID_MESSAGE):
        model.check_sampler(wrong)
    model.check_sampler(MultiBlockMaskSampler(grid_size=(4, 4), min_context=2))  # accepted
    model.check_sampler(None)  # no sampler: nothing to check
    assert model.grid_size == (4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_base__refuses_a_predictor_on_another_grid(kind):
    encoder = VisionTransformer(**TINY_VIT, seed=0)
    other = Predictor(**TINY_PREDICTOR, grid_size=(2, 8))  # same num_patches, other grid
    cls = IJEPA if kind == "ijepa" else PixelBaseline
    with pytest.raises(ValueError, match=r"Expected grid_size=\(4, 4\) \(the encoder's\)"):
        cls(encoder=encoder, predictor=other)
    model = cls(
        encoder=encoder,
        predictor=Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2),
    )
    assert model.predictor.grid_size == encoder.grid_size == (4, 4)


class _Recorder(keras.callbacks.Callback):
    def __init__(self, log, name):
        super().__init__()
        self.log, self.name = log, name

    def on_train_begin(self, logs=None):
        self.log.append(self.name)


class _HookedData(keras.utils.PyDataset):
    """A dataset of another kind that speaks the ``fit_hooks`` protocol."""

    def __init__(self, log):
        super().__init__()
        self.log, self.asked = log, []

    def __len__(self):
        return 2

    def __getitem__(self, index):
        batch = training_batch(2, seed=index)
        return batch

    @contextlib.contextmanager
    def _inside(self):
        self.log.append("enter")
        yield
        self.log.append("exit")

    def fit_hooks(self, model):
        self.asked.append(model)
        return FitHooks(
            callbacks=(_Recorder(self.log, "dataset"),),
            context=self._inside,
            shuffle=False,
            shuffle_reason="a _HookedData",
        )


@pytest.mark.parametrize("kind", KINDS)
def test_base__fit_uses_any_datasets_fit_hooks(kind):
    log = []
    data = _HookedData(log)
    model = make(kind)
    model.compile(optimizer="adamw")
    model.fit(data, epochs=1, verbose=0, callbacks=[_Recorder(log, "user")])
    assert data.asked == [model]
    assert log == ["enter", "dataset", "user", "exit"]  # the dataset's callbacks first
    with pytest.raises(ValueError, match="Expected False with a _HookedData"):
        model.fit(data, epochs=1, verbose=0, shuffle=True)


def test_base__masked_image_dataset_hooks():
    data = MaskedImageDataset(
        images(8), MultiBlockMaskSampler(grid_size=(4, 4), min_context=2), batch_size=4
    )
    hooks = data.fit_hooks(None)
    assert hooks.shuffle is False and "MaskedImageDataset" in hooks.shuffle_reason
    assert len(hooks.callbacks) == 1
    with hooks.context():
        pass


@pytest.mark.parametrize("kind", KINDS)
def test_base__features_read_the_feature_encoder(kind):
    model = make(kind)
    expected = model.target_encoder if kind == "ijepa" else model.encoder
    assert model.feature_encoder() is expected
    np.testing.assert_allclose(
        to_numpy(model.features(BATCH["images"])),
        to_numpy(expected(BATCH["images"])).mean(axis=1),
        rtol=1e-5,
        atol=1e-6,
    )


def test_base__saved_weight_paths_keep_the_layer_names(tmp_path):
    """Keras saves a model's layers under its public attribute names, in name order (then
    ``layers``): a property returning the target encoder would move its weights to a new
    path, and ``.keras`` files written before would no longer load."""
    model = make("ijepa")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(os.path.join(tmp_path, "model.weights.h5"), "r") as weights:
        top = set(weights.keys())
        listed = len(weights["layers"].keys())
        own = len(weights["vars"].keys())
    assert top == {"encoder", "layers", "vars"}  # the layout of the files already written
    assert listed == 2  # predictor and target encoder
    assert own == 6  # the EMA state variables


@pytest.mark.parametrize(
    "kind, own",
    [
        ("ijepa", {"target_eps", "momentum"}),
        ("pixel", {"normalize_targets", "target_eps", "init_std", "seed"}),
    ],
)
def test_base__config_is_layers_loss_and_the_methods_own_arguments(kind, own):
    model = make(kind, loss="smooth_l1")
    config = model.get_config()
    assert set(config) == {"name", "trainable", "encoder", "predictor", "loss", "reduction"} | own
    clone = type(model).from_config(config)
    assert clone.get_config() == config and clone.loss_type == "smooth_l1"


@pytest.mark.parametrize("kind", KINDS)
def test_base__batch_checks(kind):
    model = make(kind)
    with pytest.raises(
        ValueError,
        match=r"Invalid value for argument `inputs`.*"
        r"context_valid, targets_valid optional",
    ):
        model({"images": BATCH["images"], "context": BATCH["context"]})
    with pytest.raises(ValueError, match="Invalid value for argument `inputs`"):
        model(BATCH["images"])


@keras.saving.register_keras_serializable(package="jepa_components_tests")
class _NoPredictor(JEPAModel):
    """A method without predictor or EMA target (as LeJEPA will be): the base needs neither."""

    LAYER_ARGUMENTS = ("encoder",)
    REQUIRED_KEYS = ("images",)
    BATCH_KEYS = ("images",)

    def __init__(self, encoder, scale=1.0, **kwargs):
        super().__init__(encoder, None, **kwargs)
        self.scale = scale
        self.built = True

    def _forward_batch(self, batch, training):
        tokens = ops.expand_dims(self.encoder(batch["images"]), 1)  # one "block": all tokens
        return {"predictions": tokens, "targets": ops.stop_gradient(tokens * self.scale)}

    def _own_config(self):
        return {"scale": self.scale}


def test_base__a_method_without_predictor():
    model = _NoPredictor(VisionTransformer(**TINY_VIT, seed=0), scale=0.5)
    out = model({"images": BATCH["images"]})
    assert tuple(out["predictions"].shape) == (4, 1, 16, 32)
    assert float(to_numpy(model.compute_loss(x={"images": BATCH["images"]}, y_pred=out))) > 0
    clone = _NoPredictor.from_config(model.get_config())
    assert clone.predictor is None and clone.scale == 0.5
    assert tuple(to_numpy(clone.features(BATCH["images"])).shape) == (4, 32)
