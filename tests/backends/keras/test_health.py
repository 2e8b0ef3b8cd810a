"""HealthMonitor: logged values read from the run, NaN and collapse stops, arguments."""

import keras
import numpy as np
import pytest
from harness import TINY_PREDICTOR, TINY_VIT, images, to_numpy, training_batch

from jepa_components import diagnostics
from jepa_components.backends.keras import IJEPA, Predictor, TargetEMA, VisionTransformer
from jepa_components.backends.keras.training.health import HealthMonitor
from jepa_components.backends.keras.training.optimizers import make_adamw
from jepa_components.schedules import ema_momentum, warmup_cosine_lr

BATCH = training_batch(4)
PROBE = images(6, size=16, seed=1)
KEYS = {"feature_std", "feature_std_min", "effective_rank", "learning_rate", "ema_momentum"}


def make_model(seed=0, optimizer=None):
    model = IJEPA(
        encoder=VisionTransformer(**TINY_VIT, seed=seed),
        predictor=Predictor(**TINY_PREDICTOR, seed=seed + 1),
        momentum=0.99,
    )
    model.compile(optimizer=optimizer or keras.optimizers.AdamW(learning_rate=1e-3))
    return model


class BatchLogs(keras.callbacks.Callback):
    """After the monitor: its batch logs, and the metrics of the features computed directly."""

    def __init__(self):
        super().__init__()
        self.logs, self.direct = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))
        features = to_numpy(self.model.features(PROBE)).astype("float64")
        self.direct.append(diagnostics.collapse_metrics(features))


def test_health_monitor__logs_values_read_from_the_optimizer_and_the_model():
    lr_kwargs = dict(warmup_steps=2, total_steps=4, start_lr=1e-4, ref_lr=1e-3, final_lr=1e-6)
    optimizer = make_adamw(
        steps_per_epoch=2, epochs=2, warmup_epochs=1, start_lr=1e-4, ref_lr=1e-3, final_lr=1e-6
    )
    model = make_model(seed=2, optimizer=optimizer)
    labels = np.array([0, 1, 0, 1])
    knn = (images(4, size=16, seed=2), labels, images(2, size=16, seed=3), labels[:2])
    monitor = HealthMonitor(PROBE, every=1, knn_data=knn, knn_k=3, knn_every=2, verbose=False)
    recorder = BatchLogs()
    history = model.fit(
        BATCH,
        batch_size=2,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[TargetEMA(0.5, 1.0), monitor, recorder],
    )
    assert KEYS | {"knn_accuracy", "loss"} == set(history.history)
    assert [r["step"] for r in monitor.records] == [1, 2, 3, 4]
    assert [r["epoch"] for r in monitor.records] == [0, 0, 1, 1]
    for step, record, logs, direct in zip(
        (1, 2, 3, 4), monitor.records, recorder.logs, recorder.direct
    ):
        assert KEYS <= set(logs) and all(logs[k] == record[k] for k in KEYS)
        assert ("knn_accuracy" in logs) == (step % 2 == 0)
        # The next optimizer update's LR and the pending EMA update's momentum.
        np.testing.assert_allclose(
            record["learning_rate"], warmup_cosine_lr(step + 1, **lr_kwargs), rtol=1e-5
        )
        np.testing.assert_allclose(
            record["ema_momentum"], ema_momentum(step - 1, 4, 0.5, 1.0), rtol=1e-6
        )
        np.testing.assert_allclose(record["feature_std"], direct["feature_std_mean"], rtol=1e-4)
        np.testing.assert_allclose(record["effective_rank"], direct["effective_rank"], rtol=1e-4)
    assert 0.0 <= monitor.records[-1]["knn_accuracy"] <= 1.0
    assert history.history["feature_std"] == [
        monitor.records[1]["feature_std"],
        monitor.records[3]["feature_std"],
    ]
    assert monitor.stop_reason is None and monitor.reference["feature_std_mean"] > 0


def test_health_monitor__stops_on_a_nonfinite_loss_naming_the_step():
    model = make_model(seed=3)
    batch = dict(
        BATCH,
        images=np.where(np.arange(4)[:, None, None, None] == 2, np.nan, BATCH["images"]).astype(
            "float32"
        ),
    )
    monitor = HealthMonitor(PROBE, every=10, verbose=False)
    history = model.fit(
        batch, batch_size=2, epochs=3, verbose=0, shuffle=False, callbacks=[monitor]
    )
    assert monitor.stop_kind == "nonfinite_loss" and monitor.stop_step == 2
    assert "at step 2" in monitor.stop_reason
    assert int(to_numpy(model.optimizer.iterations)) == 2  # nothing after the bad step
    assert len(history.history["loss"]) == 1


def test_health_monitor__stops_on_a_collapsed_constant_target_encoder():
    model = make_model(seed=4)
    target = model.target_encoder
    target.set_weights([np.zeros(w.shape, "float32") for w in target.weights])
    monitor = HealthMonitor(PROBE, every=1, verbose=False)
    model.fit(
        BATCH,
        batch_size=2,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[TargetEMA(1.0, final_momentum=None), monitor],
    )  # target stays constant
    assert monitor.stop_kind == "collapse" and monitor.stop_step == 1
    assert "collapse at step 1" in monitor.stop_reason
    assert monitor.records[0]["feature_std"] == 0.0
    assert monitor.reference["feature_std_mean"] > 0  # the random initialization is healthy
    assert int(to_numpy(model.optimizer.iterations)) == 1


def test_health_monitor__a_rank_ratio_stops_on_dimensional_collapse():
    model = make_model(seed=5)
    # A reference rank of 100 (given, not measured): the rank of 6 probe images
    # cannot exceed 6 < 0.99 * 100.
    monitor = HealthMonitor(
        PROBE,
        every=1,
        min_std_ratio=None,
        min_rank_ratio=0.99,
        reference={"feature_std_mean": 1.0, "effective_rank": 100.0},
        verbose=False,
    )
    model.fit(BATCH, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.stop_kind == "collapse" and "effective_rank" in monitor.stop_reason


def test_health_monitor__needs_a_jepa_model():
    inputs = keras.Input((2,))
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    plain.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="JEPA model"):
        plain.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0, callbacks=[HealthMonitor(PROBE)])


def test_health_monitor__watches_a_lejepa_encoder_without_ema_momentum():
    from jepa_components.backends.keras import LeJEPA, make_projector

    encoder = VisionTransformer(**TINY_VIT, seed=0)
    model = LeJEPA(encoder, make_projector(8, (16,), seed=1), num_slices=8, seed=2)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    views = np.stack([images(4, size=16, seed=s) for s in range(2)], axis=1)
    monitor = HealthMonitor(PROBE, every=1, verbose=False)
    model.fit({"views": views}, batch_size=2, epochs=1, verbose=0, callbacks=[monitor])
    assert len(monitor.records) >= 2 and "ema_momentum" not in monitor.records[0]
    expected = diagnostics.collapse_metrics(np.asarray(to_numpy(model.features(PROBE)), np.float64))
    np.testing.assert_allclose(
        monitor.records[-1]["effective_rank"], expected["effective_rank"], rtol=1e-4
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(probe_images=PROBE[:1]), "probe_images"),
        (dict(probe_images=PROBE[0]), "probe_images"),
        (dict(every=0), "every"),
        (dict(min_std_ratio=1.0), "min_std_ratio"),
        (dict(min_rank_ratio=-0.1), "min_rank_ratio"),
        (dict(knn_data=(PROBE, [0, 1])), "knn_data"),
        (dict(knn_data=(PROBE, [0, 1], PROBE, [0] * 6)), "knn_data"),
        (dict(knn_data=(PROBE[:2], [0, 1], PROBE, [0] * 6)), "knn_data"),  # fewer than k
        (dict(knn_k=0), "knn_k"),
        (dict(reference={"feature_std_mean": 1.0}), "reference"),
        (dict(verbose="yes"), "verbose"),
    ],
)
def test_health_monitor__invalid_arguments_raise(kwargs, match):
    arguments = {"probe_images": PROBE, **kwargs}
    with pytest.raises(ValueError, match=f"Invalid value for argument `{match}`"):
        HealthMonitor(**arguments)
