"""examples/train_ijepa.py on the current KERAS_BACKEND: outputs, resume, datasets, bad input.

Tiny settings throughout (16 px images, patch 2, a 1-block ViT of width
32, a few steps, a few dozen images evaluated) to keep the module short on
every backend. Most runs call the script's main() in this process (a
subprocess would pay the imports and every compilation again); the command
line itself and the two-device run (XLA_FLAGS must be set before jax
starts) are checked in subprocesses.
"""

import contextlib
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from jepa_components.fashion_mnist import fashion_mnist_search_paths, write_idx_fixture
from jepa_components.schedules import ema_momentum, warmup_cosine_lr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_ijepa.py")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

TINY = [
    "--image-size",
    "16",
    "--patch-size",
    "2",
    "--embed-dim",
    "32",
    "--depth",
    "1",
    "--num-heads",
    "2",
    "--predictor-embed-dim",
    "16",
    "--predictor-depth",
    "1",
    "--batch-size",
    "8",
]
TINY_EVAL = [
    "--epochs",
    "1",
    "--steps-per-epoch",
    "2",
    "--warmup-epochs",
    "0.5",
    "--eval-samples",
    "24",
    *TINY,
]


def _load_script():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    spec = importlib.util.spec_from_file_location("train_ijepa_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()
import _train_config as cfg  # noqa: E402  (examples/ is on sys.path now)
import _train_run as run  # noqa: E402


def _image_folder(root, per_class=12, corrupt=0):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["bars", "dots"]):
        os.makedirs(root / name)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (20, 20, 3)).astype(np.uint8)
            if label == 0:
                pixels[:, ::4] = 250
            else:
                pixels[::5, ::5] = 250
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    for i in range(corrupt):
        (root / "dots" / f"broken{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _quiet_main(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = script.main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


def _env(**extra):
    return dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", **extra)


# ---------------------------------------------------------------- runs
# Short trainings shared by the tests below (compilation dominates their
# cost): digits 2 epochs straight with a tiny evaluation; the same run
# stopped after epoch 1, then resumed; a Fashion-MNIST IDX fixture with a
# tiny evaluation.
COMMON = ["--epochs", "2", "--steps-per-epoch", "2", "--warmup-epochs", "1", *TINY]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_example")
    straight, split, fashion = root / "straight", root / "split", root / "fashion"
    full = _quiet_main(
        ["--output-dir", straight, "--eval-samples", "24", "--monitor-every", "1", *COMMON]
    )
    first = _quiet_main(["--output-dir", split, "--stop-after-epochs", "1", "--no-eval", *COMMON])
    paused_report = json.loads((split / "report.json").read_text())
    paused_state = json.loads((split / "train_state.json").read_text())
    second = _quiet_main(["--output-dir", split, "--resume", "--no-eval"])
    write_idx_fixture(root / "fmnist", num_train=40, num_test=24, seed=0)
    fashion_run = _quiet_main(
        [
            "--dataset",
            "fashion-mnist",
            "--data",
            root / "fmnist",
            "--augment",
            "crop",
            "--output-dir",
            fashion,
            *TINY_EVAL,
        ]
    )
    return {
        "straight": straight,
        "split": split,
        "fashion": fashion,
        "full": full,
        "first": first,
        "second": second,
        "fashion_run": fashion_run,
        "paused_report": paused_report,
        "paused_state": paused_state,
    }


def test_command_line__help_and_errors_in_a_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert result.returncode == 0
    for flag in (
        "--masking",
        "--resume",
        "--dataset",
        "--augment",
        "--distribute",
        "--collapse-ratio",
    ):
        assert flag in result.stdout, flag
    help_text = " ".join(result.stdout.split())
    assert "fashion-mnist: 28" in help_text  # the per-dataset defaults are shown
    assert "of its value at random initialization (relative, not absolute" in help_text
    result = subprocess.run(
        [sys.executable, SCRIPT, "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 2
    # one error line, no traceback (TensorFlow may log its own start-up lines before it)
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == f"error: image folder not found: {tmp_path / 'nope'}"
    assert "Traceback" not in result.stderr


def test_run__writes_outputs_that_parse(runs):
    """Digits, 2 epochs of 2 steps, every output file."""
    (code, stdout, stderr), out = runs["full"], runs["straight"]
    assert code == 0, stderr[-3000:]
    for name in (
        "config.yaml",
        "metrics.csv",
        "checkpoint.keras",
        "train_state.json",
        "loss.png",
        "masks.png",
        "report.json",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == BACKEND and report["devices"] == 1
    assert report["epochs"] == 2 and report["steps"] == 4 and report["status"] == "completed"
    assert report["dataset"] == "digits" and np.isfinite(report["final_loss"])
    assert (
        report["images_per_second"] > 0
        and "first (compiling) step" in (report["images_per_second_note"])
    )
    assert report["skipped_images"] == 0
    assert "img/s" in stdout  # epoch lines and the last line
    with open(out / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    # --monitor-every 1: every step has the health figures, read from the optimizer
    # (after step k: the rate of update k + 1; warmup over 2 steps, then cosine) and
    # from the model (the momentum of EMA update k - 1, 0-based, which follows step k).
    assert all(float(r["feature_std"]) > 0 for r in rows)
    schedule = dict(warmup_steps=2, total_steps=4, start_lr=2e-4, ref_lr=1e-3, final_lr=1e-6)
    np.testing.assert_allclose(
        [float(r["learning_rate"]) for r in rows],
        [warmup_cosine_lr(k + 1, **schedule) for k in (1, 2, 3, 4)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        [float(r["ema_momentum"]) for r in rows],
        [ema_momentum(k - 1, 4, 0.996, 1.0) for k in (1, 2, 3, 4)],
        rtol=1e-6,
    )
    from PIL import Image

    for name in ("loss.png", "masks.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 100
    # The saved config reproduces the run's options.
    saved = cfg.read_config_file(str(out / "config.yaml"))
    assert saved["epochs"] == 2 and saved["depth"] == 1 and saved["data"] is None
    assert saved["dataset"] == "digits" and saved["collapse_ratio"] == 0.01
    assert "output_dir" not in saved and "resume" not in saved


def test_evaluation__probes_with_protocols_and_an_honest_verdict(runs):
    (code, stdout, stderr), out = runs["full"], runs["straight"]
    assert code == 0, stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["num_probe_train"] == 24 and report["num_probe_test"] == 24
    for prefix in ("", "random_init_"):
        for key in (
            "linear_probe_accuracy",
            "knn_accuracy",
            "attentive_probe_accuracy",
            "linear_probe_accuracy_last_layers",
            "knn_accuracy_last_layers",
        ):
            assert 0 <= report[prefix + key] <= 1, prefix + key
        for key in (
            "feature_std",
            "effective_rank",
            "target_token_feature_std",
            "target_token_effective_rank",
        ):
            assert report[prefix + key] > 0, prefix + key
    assert 0 <= report["raw_pixel_probe_accuracy"] <= 1
    assert 0 <= report["raw_pixel_knn_accuracy"] <= 1
    assert not any(k.startswith("raw_pixel_attentive") for k in report)
    protocols = report["probe_protocols"]
    assert {"linear", "knn", "attentive"} <= set(protocols)
    assert "standardized with the train split" in protocols["knn"]
    assert "raw pixels: not applicable" in protocols["attentive"]
    lines = stdout.splitlines()
    assert any(
        line.startswith("Linear probe (logistic regression") and "raw pixels" in line
        for line in lines
    )
    assert any(
        line.startswith("Attentive probe") and "raw pixels: not applicable" in line
        for line in lines
    )
    assert any(
        line.startswith(("Training helped", "Training hurt", "Training made no")) for line in lines
    )
    assert report["verdict"] == [line for line in lines if line in report["verdict"]]


def test_fashion_mnist__same_report_keys_as_digits(runs):
    """The DESIGN contract, on an IDX fixture (with --augment crop): report.json
    holds the same keys as the digits run."""
    code, stdout, stderr = runs["fashion_run"]
    assert code == 0, stderr[-3000:]
    assert "Fashion-MNIST" in stdout and "random resized crops" in stdout
    digits = json.loads((runs["straight"] / "report.json").read_text())
    fashion = json.loads((runs["fashion"] / "report.json").read_text())
    assert fashion["dataset"] == "fashion-mnist" and fashion["num_train_images"] == 40
    assert fashion["num_test_images"] == 24  # the official test split, not --test-fraction
    assert set(fashion) == set(digits)
    for key in ("model", "config", "probe_protocols"):
        assert set(fashion[key]) == set(digits[key]), key


@pytest.mark.skipif(
    not any(
        os.path.isfile(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
        or os.path.isfile(os.path.join(folder, "t10k-labels-idx1-ubyte"))
        for folder in fashion_mnist_search_paths()
    ),
    reason="the real Fashion-MNIST files are not installed",
)
def test_fashion_mnist__real_files_smoke(tmp_path):
    """One step on the real 60k/10k files (tiny model), no evaluation."""
    code, _, stderr = _quiet_main(
        [
            "--dataset",
            "fashion-mnist",
            "--steps-per-epoch",
            "1",
            "--no-eval",
            "--output-dir",
            tmp_path / "run",
            *TINY,
        ]
    )
    assert code == 0, stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["num_train_images"] == 60000 and report["num_test_images"] == 10000
    assert report["steps"] == 1 and report["status"] == "completed"


def _weights(output_dir):
    import keras

    import jepa_components.backends.keras  # noqa: F401

    model = keras.saving.load_model(os.path.join(output_dir, "checkpoint.keras"))
    # Keys by position and the name within the layer (paths carry unique
    # layer names like "ijepa_1" that differ between runs of one process).
    values = {
        f"model/{i}/{w.name}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights)
    }
    values.update(
        {
            f"opt/{i}/{v.name}": keras.ops.convert_to_numpy(v)
            for i, v in enumerate(model.optimizer.variables)
        }
    )
    return values


def test_resume__one_plus_one_epoch_equals_two_straight(runs):
    """fit(initial_epoch=1) on a fresh dataset continues its stream (order, masks)."""
    code, out, err = runs["first"]
    assert code == 0 and "--resume" in out, err
    assert runs["paused_report"]["status"] == "paused"
    assert runs["paused_state"]["step"] == 2 and runs["paused_state"]["epochs_done"] == 1
    code, out, err = runs["second"]
    assert code == 0 and "resuming" in out, err
    split, straight = runs["split"], runs["straight"]
    state = json.loads((split / "train_state.json").read_text())
    assert state["step"] == 4 and state["epochs_done"] == 2
    assert "sampler" not in state  # the mask stream position is the step: no extra state
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)
    loss_a = [r.split(",")[2] for r in (straight / "metrics.csv").read_text().splitlines()]
    loss_b = [r.split(",")[2] for r in (split / "metrics.csv").read_text().splitlines()]
    np.testing.assert_allclose(np.float64(loss_a[1:]), np.float64(loss_b[1:]), rtol=1e-5)


def test_resume__refuses_changed_options_and_reruns(runs):
    split = runs["split"]
    code, _, err = _quiet_main(["--output-dir", split, "--resume", "--lr", "0.1"])
    assert code == 2 and err.startswith("error: --lr=0.1 differs from the run being resumed")
    code, _, err = _quiet_main(["--output-dir", split, *COMMON])
    assert code == 2 and "already holds a run" in err and "--resume" in err
    # Resuming a finished run trains nothing and says so.
    code, out, _ = _quiet_main(["--output-dir", split, "--resume", "--no-eval"])
    assert code == 0 and "completed: 4 steps" in out


def test_collapse_stop__on_a_folder_with_a_bad_file(tmp_path, monkeypatch):
    """The library's HealthMonitor stops the run; the script reports it (exit 1).
    The data: a folder with one corrupt file (skipped and counted), read in two
    worker threads."""
    import jepa_components.backends.keras as library

    class Collapsing(library.HealthMonitor):
        def __init__(self, *args, **kwargs):
            # A random-init reference far above any real value: collapse at the first check.
            super().__init__(
                *args, **kwargs, reference={"feature_std_mean": 1e9, "effective_rank": 1e9}
            )

    monkeypatch.setattr(library, "HealthMonitor", Collapsing)
    # 21 files: the broken one (last in file order) falls in the training split
    # (seed 0), whose first images the health checks read at start-up.
    data = _image_folder(tmp_path / "images", per_class=10, corrupt=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = _quiet_main(
            [
                "--data",
                data,
                "--workers",
                "2",
                "--output-dir",
                tmp_path / "run",
                "--no-eval",
                *COMMON,
            ]
        )
    assert code == 1
    # The first check is at the end of epoch 1 (--monitor-every 50 > 2 steps).
    assert "warning: stopping training: representation collapse at step 2" in err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["status"] == "collapse" and report["steps"] == 2
    assert report["dataset"] == "folder" and report["skipped_images"] == 1
    assert "skipped 1 unreadable image file(s)" in err and "broken0.jpg" in err
    assert any(
        "skipping unreadable image" in str(w.message) and "broken0.jpg" in str(w.message)
        for w in caught
    )
    assert not (tmp_path / "run" / "checkpoint.keras").exists()  # no complete epoch to keep


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution needs jax")
def test_distribute_data__two_cpu_devices_in_a_subprocess(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--distribute",
            "data",
            "--output-dir",
            str(out),
            "--no-eval",
            *TINY_EVAL,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data parallel over 2 devices" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["devices"] == 2 and report["steps"] == 2 and report["status"] == "completed"


@pytest.mark.skipif(BACKEND == "jax", reason="jax supports --distribute data")
def test_distribute_data__other_backends_one_error_line():
    code, _, err = _quiet_main(["--distribute", "data", *TINY])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --distribute data:")
    assert "KERAS_BACKEND=jax" in lines[0]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{tmp}/missing"], "image folder not found"),
        (["--data", "{tmp}/empty"], "no images found"),
        (["--image-size", "30", "--patch-size", "4"], "not divisible by --patch-size"),
        (["--image-size", "8", "--patch-size", "2"], "--masking multiblock cannot mask a 4x4"),
        (["--batch-size", "5000"], "larger than the training split"),
        (["--masking", "spiral"], "--masking must be one of"),
        (["--dataset", "mnist"], "--dataset must be one of digits, fashion-mnist, folder"),
        (["--dataset", "folder"], "--dataset folder needs --data"),
        (["--dataset", "digits", "--data", "{tmp}"], "--data is for --dataset folder"),
        (["--dataset", "fashion-mnist", "--data", "{tmp}/empty"], "Fashion-MNIST not found"),
        (["--augment", "flip"], "--augment must be one of none, crop"),
        (["--patch-init", "xavier"], "--patch-init must be one of official, fan_in"),
        (["--remat", "all"], "--remat must be one of none, predictor, encoder, both"),
        (["--collapse-ratio", "1"], "--collapse-ratio must be in [0, 1)"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--epochs", "two"], "invalid int value"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--config", "{tmp}/bad.yaml"], "bad.yaml: unknown option 'learning_rate'"),
        (["--config", "{tmp}/broken.toml"], "cannot parse config file"),
        (["--resume", "--output-dir", "{tmp}/nothing"], "nothing to resume"),
        (["--resume"], "--resume needs --output-dir"),
        (["--embed-dim", "30", "--num-heads", "4"], "not divisible by --num-heads"),
    ],
)
def test_bad_input__one_error_line_and_exit_2(tmp_path, argv, message):
    (tmp_path / "empty" / "class_a").mkdir(parents=True)
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    (tmp_path / "broken.toml").write_text("epochs = = 3\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _quiet_main(argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("where", ["start-up", "fit"])
def test_bad_image_stop__one_error_line_and_exit_2(tmp_path, monkeypatch, where):
    """Found while reading the health-check batch, or by a reader thread inside
    fit (the library re-raises the reader's own exception)."""
    if where == "fit":
        # 21 files, 17 for training: the bad one is not among the first 2 (the
        # health-check batch here) and is in the first batch of 9 (seed 0).
        monkeypatch.setattr(script, "PROBE_BATCH", 2)
    data = _image_folder(tmp_path / "images", per_class=10 if where == "fit" else 3, corrupt=1)
    code, out, err = _quiet_main(
        [
            "--data",
            data,
            "--on-bad-image",
            "stop",
            "--output-dir",
            tmp_path / "run",
            "--epochs",
            "1",
            *TINY[:-2],
            "--batch-size",
            "9" if where == "fit" else "4",
        ]
    )
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: cannot read image") and "broken0.jpg" in lines[0]
    assert ("training epochs" in out) == (where == "fit")


# ---------------------------------------------------------------- config
def test_config_file__same_names_as_flags_and_flags_win(tmp_path):
    (tmp_path / "run.toml").write_text('epochs = 3\nimage-size = 24\nmasking = "raster"\n')
    (tmp_path / "run.yaml").write_text("epochs: 3\nimage_size: 24\nmasking: raster\n")
    for name in ("run.toml", "run.yaml"):
        config, given = cfg.resolve(["--config", str(tmp_path / name), "--epochs", "5"])
        assert config["epochs"] == 5 and config["image_size"] == 24
        assert config["masking"] == "raster" and config["lr"] == cfg.OPTIONS["lr"][0]
        assert given == {"epochs"}


def test_config__dataset_defaults_under_config_file_and_flags(tmp_path):
    config, _ = cfg.resolve([])
    assert config["dataset"] == "digits" and config["image_size"] == 32
    assert cfg.resolve(["--data", "x"])[0]["dataset"] == "folder"
    fashion = cfg.DATASET_DEFAULTS["fashion-mnist"]
    config, _ = cfg.resolve(["--dataset", "fashion-mnist"])
    assert {k: config[k] for k in fashion} == fashion
    (tmp_path / "run.yaml").write_text("dataset: fashion-mnist\nbatch_size: 16\n")
    config, _ = cfg.resolve(["--config", str(tmp_path / "run.yaml"), "--epochs", "3"])
    assert config["image_size"] == fashion["image_size"]  # the dataset's default
    assert config["batch_size"] == 16 and config["epochs"] == 3  # file, then flag


def test_config_file__every_option_round_trips(tmp_path):
    import yaml

    for argv in ([], ["--dataset", "fashion-mnist"]):
        config, _ = cfg.resolve(argv)
        (tmp_path / "all.yaml").write_text(yaml.safe_dump(cfg.saved_options(config)))
        again, _ = cfg.resolve(["--config", str(tmp_path / "all.yaml")])
        assert cfg.saved_options(again) == cfg.saved_options(config)


def test_build_model__predictor_mlp_ratio_is_always_4():
    config, _ = cfg.resolve(
        [
            "--model",
            "vit_giant",
            "--embed-dim",
            "32",
            "--depth",
            "1",
            "--num-heads",
            "2",
            "--predictor-embed-dim",
            "16",
            "--predictor-depth",
            "1",
            "--image-size",
            "16",
        ]
    )
    model = script.build_model(config, channels=1, steps_per_epoch=1)
    assert model.encoder.get_config()["mlp_ratio"] == pytest.approx(48 / 11)
    assert model.predictor.get_config()["mlp_ratio"] == 4.0


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], None),
        (["--dataset", "fashion-mnist"], "fan_in"),
        (["--patch-init", "fan_in"], "fan_in"),
    ],
)
def test_build_model__patch_init(argv, expected):
    config, _ = cfg.resolve(argv + ["--depth", "1", "--predictor-depth", "1"])
    model = script.build_model(config, channels=1, steps_per_epoch=1)
    assert model.encoder.patch_init_std == expected


@pytest.mark.parametrize(
    "remat, encoder, predictor",
    [
        ("none", False, False),
        ("predictor", False, True),
        ("encoder", True, False),
        ("both", True, True),
    ],
)
def test_build_model__remat(remat, encoder, predictor):
    config, _ = cfg.resolve(["--remat", remat, "--depth", "1", "--predictor-depth", "1"])
    model = script.build_model(config, channels=1, steps_per_epoch=1)
    assert (model.encoder.remat, model.predictor.remat) == (encoder, predictor)


# ---------------------------------------------------------------- run logger
class _FakeHealth:
    """The parts of HealthMonitor the logger reads."""

    def __init__(self):
        self.records, self.stop_kind = [], None


def _logger(tmp_path, health):
    logger = run.make_logger(
        rows=[],
        start_step=0,
        steps_per_epoch=4,
        total_steps=8,
        batch_size=8,
        health=health,
        output_dir=str(tmp_path),
        state_for=lambda step: {"step": step},
        quiet=True,
    )
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    return logger


def test_run_logger__per_step_loss_health_values_and_steady_throughput(tmp_path):
    health = _FakeHealth()
    logger = _logger(tmp_path, health)
    for batch, running_mean in enumerate([4.0, 3.0, 2.0]):  # batch losses 4, 2, 0
        logger.on_train_batch_begin(batch)
        if batch == 1:  # the monitor checked step 2 (it runs before the logger)
            health.records.append(
                {
                    "step": 2,
                    "learning_rate": 0.5,
                    "ema_momentum": 0.99,
                    "feature_std": 0.25,
                    "effective_rank": 3.0,
                }
            )
        logger.on_train_batch_end(batch, {"loss": running_mean})
    assert [r["loss"] for r in logger.rows] == pytest.approx([4.0, 2.0, 0.0])
    assert [r.get("learning_rate") for r in logger.rows] == [None, 0.5, None]
    assert logger.rows[1]["feature_std"] == 0.25 and logger.rows[1]["ema_momentum"] == 0.99
    # Steady state: the first (compiling) step is not timed, the two others are.
    assert logger._timed_steps == 2 and logger.images_per_second > 0


def test_run_logger__no_checkpoint_after_a_stop(tmp_path):
    health = _FakeHealth()
    logger = _logger(tmp_path, health)
    logger.on_train_batch_begin(0)
    logger.on_train_batch_end(0, {"loss": float("nan")})
    health.stop_kind = "nonfinite_loss"
    logger.on_epoch_end(0)  # no checkpoint of broken weights
    assert not (tmp_path / "checkpoint.keras").exists()
    assert logger.images_per_second is None  # one step: nothing steady to time


# ---------------------------------------------------------------- --method
# LeJEPA: a 32-wide projector, 16 SIGReg slices and 2 global + 1 local views
# keep the runs as small as the I-JEPA ones above.
LEJEPA_OPTIONS = [
    "--method",
    "lejepa",
    "--proj-hidden",
    "32",
    "--num-slices",
    "16",
    "--views",
    "2",
    "--local-views",
    "1",
]
# TINY less the predictor flags (refused for lejepa)
LEJEPA_TINY = [a for i, a in enumerate(TINY) if "--predictor" not in TINY[i - (i % 2)]]
LEJEPA = [
    *LEJEPA_OPTIONS,
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--warmup-epochs",
    "1",
    *LEJEPA_TINY,
]


@pytest.fixture(scope="module")
def lejepa_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_example_lejepa")
    straight, split = root / "straight", root / "split"
    full = _quiet_main(
        ["--output-dir", straight, "--eval-samples", "24", "--monitor-every", "1", *LEJEPA]
    )
    first = _quiet_main(["--output-dir", split, "--stop-after-epochs", "1", "--no-eval", *LEJEPA])
    second = _quiet_main(["--output-dir", split, "--resume", "--no-eval"])
    return {"straight": straight, "split": split, "full": full, "first": first, "second": second}


def test_lejepa__outputs_report_and_online_probe(lejepa_runs):
    (code, stdout, stderr), out = lejepa_runs["full"], lejepa_runs["straight"]
    assert code == 0, stderr[-3000:]
    for name in ("config.yaml", "metrics.csv", "checkpoint.keras", "train_state.json"):
        assert (out / name).is_file(), name
    for name in ("loss.png", "views.png", "report.json"):
        assert (out / name).is_file(), name
    assert not (out / "masks.png").exists()
    assert "LeJEPA: 2 global + 1 local views" in stdout and "online linear probe" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "lejepa" and report["status"] == "completed"
    assert report["steps"] == 4 and np.isfinite(report["final_loss"])
    assert report["model"]["projector_dims"] == [32, 32, 16]
    assert "predictor_depth" not in report["model"]
    # The same probes as I-JEPA on the encoder itself, plus the online probe.
    for key in ("linear_probe_accuracy", "random_init_linear_probe_accuracy", "knn_accuracy"):
        assert 0 <= report[key] <= 1, key
    assert 0 <= report["raw_pixel_probe_accuracy"] <= 1
    assert 0 <= report["online_probe_accuracy"] <= 1
    assert "the encoder's last-layer tokens" in report["probe_protocols"]["features"]
    assert any(line.startswith("LeJEPA's online linear probe") for line in report["verdict"])
    with open(out / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["feature_std"]) > 0 and r["ema_momentum"] == "" for r in rows)
    # MINIMAL.md's schedule: warmup from 0.01 x 2e-3 over one epoch, cosine to 1e-3.
    schedule = dict(warmup_steps=2, total_steps=4, start_lr=2e-5, ref_lr=2e-3, final_lr=1e-3)
    np.testing.assert_allclose(
        [float(r["learning_rate"]) for r in rows],
        [warmup_cosine_lr(k + 1, **schedule) for k in (1, 2, 3, 4)],
        rtol=1e-5,
    )
    saved = cfg.read_config_file(str(out / "config.yaml"))
    assert saved["method"] == "lejepa" and saved["sigreg_weight"] == 0.02
    assert saved["views"] == 2 and saved["local_views"] == 1 and saved["proj_dim"] == 16
    assert not {"masking", "predictor_depth", "ema_start", "augment"} & set(saved)


def test_lejepa__resume_one_plus_one_epoch_equals_two_straight(lejepa_runs):
    code, out, err = lejepa_runs["first"]
    assert code == 0 and "--resume" in out, err
    code, out, err = lejepa_runs["second"]
    assert code == 0 and "resuming" in out, err
    split, straight = lejepa_runs["split"], lejepa_runs["straight"]
    state = json.loads((split / "train_state.json").read_text())
    assert state["step"] == 4
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys() and len(a) > 20
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)
    loss_a = [r.split(",")[2] for r in (straight / "metrics.csv").read_text().splitlines()]
    loss_b = [r.split(",")[2] for r in (split / "metrics.csv").read_text().splitlines()]
    np.testing.assert_allclose(np.float64(loss_a[1:]), np.float64(loss_b[1:]), rtol=1e-5)
    # The method is part of the run.
    code, _, err = _quiet_main(["--output-dir", split, "--resume", "--method", "ijepa"])
    assert code == 2 and err.startswith("error: --method=ijepa differs from the run"), err


def test_lejepa__image_folder_unlabelled_views(tmp_path):
    """RGB files read on demand; one class folder: no labels, no online probe."""
    data = _image_folder(tmp_path / "images", per_class=10)
    for path in (data / "dots").iterdir():
        path.rename(data / "bars" / f"d{path.name}")
    (data / "dots").rmdir()
    argv = ["--data", data, "--output-dir", tmp_path / "run", "--no-eval", "--epochs", "1"]
    code, out, err = _quiet_main([*argv, "--steps-per-epoch", "2", *LEJEPA_OPTIONS, *LEJEPA_TINY])
    assert code == 0, err[-3000:]
    assert "online linear probe" not in out and "views.png" in out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["method"] == "lejepa" and report["steps"] == 2


def test_lejepa__fashion_mnist_idx_files(tmp_path):
    """The third dataset: Fashion-MNIST's IDX files (one channel, labelled: online probe)."""
    write_idx_fixture(tmp_path / "fmnist", num_train=40, num_test=24, seed=0)
    argv = ["--dataset", "fashion-mnist", "--data", tmp_path / "fmnist", "--no-eval"]
    argv += ["--output-dir", tmp_path / "run", "--epochs", "1", "--steps-per-epoch", "2"]
    code, out, err = _quiet_main([*argv, *LEJEPA_OPTIONS, *LEJEPA_TINY])
    assert code == 0, err[-3000:]
    assert "Fashion-MNIST" in out and "online linear probe" in out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["method"] == "lejepa" and report["dataset"] == "fashion-mnist"
    assert report["steps"] == 2


def _sigreg_ijepa_available():
    try:
        from jepa_components.backends.keras import SIGReg  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _sigreg_ijepa_available(), reason="IJEPA(regularizer=SIGReg) not there")
@pytest.mark.parametrize("target", ["ema", "online"])
def test_ijepa_sigreg__runs_and_reports(tmp_path, target):
    out = tmp_path / "run"
    code, stdout, err = _quiet_main(
        [
            "--method",
            "ijepa-sigreg",
            "--target-encoder",
            target,
            "--num-slices",
            "16",
            "--output-dir",
            out,
            *TINY_EVAL,
        ]
    )
    assert code == 0, err[-3000:]
    assert f"SIGReg, multiblock masks, {target} target encoder" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "ijepa-sigreg" and report["steps"] == 2
    assert 0 <= report["linear_probe_accuracy"] <= 1 and (out / "masks.png").is_file()
    with open(out / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert (float(rows[-1]["ema_momentum"]) == 0.0) == (target == "online")
    saved = cfg.read_config_file(str(out / "config.yaml"))
    assert saved["sigreg_weight"] == 0.05 and saved["target_encoder"] == target


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "mae"], "--method must be one of ijepa, lejepa, ijepa-sigreg"),
        (["--views", "2"], "--views is an option of --method lejepa, not of --method ijepa"),
        (["--sigreg-weight", "0.1"], "--sigreg-weight is an option of --method lejepa / ijepa"),
        (
            ["--method", "lejepa", "--masking", "block"],
            "--masking is an option of --method ijepa / ijepa-sigreg, not of --method lejepa",
        ),
        (["--method", "lejepa", "--predictor-depth", "2"], "--predictor-depth is an option"),
        (["--method", "lejepa", "--augment", "crop"], "--augment is an option of --method ijepa"),
        (["--method", "lejepa", "--target-encoder", "online"], "--target-encoder is an option"),
        (["--method", "lejepa", "--remat", "both"], "--method lejepa has no predictor"),
        (["--method", "lejepa", "--sigreg-weight", "1.5"], "--sigreg-weight must be in [0, 1]"),
        (["--method", "lejepa", "--views", "0"], "--views must be >= 1"),
        (["--method", "ijepa-sigreg", "--views", "2"], "--views is an option of --method lejepa"),
        (["--method", "ijepa-sigreg", "--target-encoder", "x"], "--target-encoder must be one of"),
        (
            ["--method", "ijepa-sigreg", "--target-encoder", "online", "--ema-start", "0.9"],
            "--ema-start: --target-encoder online has no EMA",
        ),
        (["--config", "{tmp}/lejepa.yaml"], "--masking is an option of --method ijepa"),
    ],
)
def test_method__options_of_another_method_refused(tmp_path, argv, message):
    (tmp_path / "lejepa.yaml").write_text("method: lejepa\nmasking: block\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _quiet_main(argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    if "lejepa.yaml" in " ".join(argv):
        assert "(set in" in lines[0] and "lejepa.yaml" in lines[0]


def test_method__defaults_config_file_and_round_trip(tmp_path):
    import yaml

    config, _ = cfg.resolve(["--method", "lejepa"])
    assert config["method"] == "lejepa" and config["lr"] == 2e-3 and config["views"] == 4
    assert config["sigreg_weight"] == 0.02 and config["weight_decay"] == 0.05
    assert cfg.resolve([])[0]["method"] == "ijepa" and cfg.resolve([])[0]["views"] is None
    # The dataset's defaults win over the method's (one Fashion-MNIST epoch: short warmup).
    config, _ = cfg.resolve(["--method", "lejepa", "--dataset", "fashion-mnist"])
    assert config["warmup_epochs"] == 0.1 and config["lr"] == 2e-3
    (tmp_path / "run.yaml").write_text("method: lejepa\nviews: 3\n")
    config, _ = cfg.resolve(["--config", str(tmp_path / "run.yaml")])
    assert config["method"] == "lejepa" and config["views"] == 3 and config["proj_dim"] == 16
    for argv in (["--method", "lejepa"], ["--method", "ijepa-sigreg"]):
        config, _ = cfg.resolve(argv)
        (tmp_path / "all.yaml").write_text(yaml.safe_dump(cfg.saved_options(config)))
        again, _ = cfg.resolve(["--config", str(tmp_path / "all.yaml")])
        cfg.validate(again, explicit=set(cfg.saved_options(again)))
        assert cfg.saved_options(again) == cfg.saved_options(config)
    help_text = " ".join(cfg.build_parser().format_help().split())
    assert "lejepa: 0.002" in help_text and "--local-views" in help_text
