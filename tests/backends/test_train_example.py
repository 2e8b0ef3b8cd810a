"""examples/train_ijepa.py on the current KERAS_BACKEND: outputs, resume, bad input.

Tiny settings throughout (16 px images, patch 2, a 1-block ViT of width
32, a few steps) so the whole module stays within seconds per backend.
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "train_ijepa.py")

TINY = ["--image-size", "16", "--patch-size", "2", "--embed-dim", "32", "--depth", "1",
        "--num-heads", "2", "--predictor-embed-dim", "16", "--predictor-depth", "1",
        "--batch-size", "8", "--monitor-every", "1"]


def _load_script():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    spec = importlib.util.spec_from_file_location("train_ijepa_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()
import _train_config as cfg  # noqa: E402  (examples/ is on sys.path now)


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


# ---------------------------------------------------------------- runs
# Three short trainings shared by the tests below (compilation dominates
# their cost): 2 epochs straight with evaluation; the same run stopped after
# epoch 1, then resumed. They call the script's main() in this process (a
# subprocess would pay the imports and every compilation again); the
# command line itself is checked in a subprocess by a quick test below.
COMMON = ["--epochs", "2", "--steps-per-epoch", "2", "--warmup-epochs", "1", *TINY]


def _quiet_main(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = script.main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_example")
    data = _image_folder(root / "images", corrupt=1)
    straight, split = root / "straight", root / "split"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = _quiet_main(["--data", data, "--output-dir", straight, *COMMON])
        first = _quiet_main(["--data", data, "--output-dir", split, "--stop-after-epochs", "1",
                             "--no-eval", *COMMON])
    paused_report = json.loads((split / "report.json").read_text())
    paused_state = json.loads((split / "train_state.json").read_text())
    second = _quiet_main(["--output-dir", split, "--resume", "--no-eval"])
    return {"data": data, "straight": straight, "split": split, "full": full, "first": first,
            "warnings": [str(w.message) for w in caught],
            "second": second, "paused_report": paused_report, "paused_state": paused_state}


def test_command_line__help_and_errors_in_a_subprocess(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "--masking" in result.stdout and "--resume" in result.stdout
    result = subprocess.run([sys.executable, SCRIPT, "--data", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    # one error line, no traceback (TensorFlow may log its own start-up lines before it)
    assert result.stderr.strip().splitlines()[-1] == f"error: image folder not found: {tmp_path / 'nope'}"
    assert "Traceback" not in result.stderr


def test_run__writes_outputs_that_parse(runs):
    """A folder of images with one corrupt file (skipped and counted), a few
    steps, evaluation, every output file."""
    (code, stdout, stderr), out = runs["full"], runs["straight"]
    assert code == 0, stderr[-3000:]
    for name in ("config.yaml", "metrics.csv", "checkpoint.keras", "train_state.json",
                 "loss.png", "masks.png", "report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    for key in ("linear_probe_accuracy", "random_init_probe_accuracy",
                "raw_pixel_probe_accuracy", "knn_accuracy", "final_loss", "epochs", "backend",
                "seconds", "feature_std", "random_init_feature_std", "effective_rank",
                "random_init_effective_rank"):
        assert key in report, key
    assert report["backend"] == os.environ["KERAS_BACKEND"]
    assert report["epochs"] == 2 and report["steps"] == 4 and report["status"] == "completed"
    assert 0 <= report["linear_probe_accuracy"] <= 1 and np.isfinite(report["final_loss"])
    assert report["skipped_images"] == 1
    assert "skipped 1 unreadable image file(s)" in stderr and "broken0.jpg" in stderr
    assert any("skipping unreadable image" in w and "broken0.jpg" in w for w in runs["warnings"])
    assert "Linear probe on" in stdout  # the verdict
    with open(out / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) and float(r["lr"]) > 0 for r in rows)
    assert all(float(r["feature_std"]) > 0 for r in rows)  # --monitor-every 1
    from PIL import Image

    for name in ("loss.png", "masks.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 100
    # The saved config reproduces the run's options.
    saved = cfg.read_config_file(str(out / "config.yaml"))
    assert saved["epochs"] == 2 and saved["data"] == str(runs["data"]) and saved["depth"] == 1
    assert "output_dir" not in saved and "resume" not in saved


def _weights(output_dir):
    import keras

    import jepa_components.backends.keras  # noqa: F401

    model = keras.saving.load_model(os.path.join(output_dir, "checkpoint.keras"))
    # Keys by position and the name within the layer (paths carry unique
    # layer names like "ijepa_1" that differ between runs of one process).
    values = {f"model/{i}/{w.name}": keras.ops.convert_to_numpy(w)
              for i, w in enumerate(model.weights)}
    values.update({f"opt/{i}/{v.name}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    return values


def test_resume__one_plus_one_epoch_equals_two_straight(runs):
    code, out, err = runs["first"]
    assert code == 0 and "--resume" in out, err
    assert runs["paused_report"]["status"] == "paused"
    assert runs["paused_state"]["step"] == 2 and runs["paused_state"]["epochs_done"] == 1
    code, out, err = runs["second"]
    assert code == 0 and "resuming" in out, err
    split, straight = runs["split"], runs["straight"]
    state = json.loads((split / "train_state.json").read_text())
    assert state["step"] == 4 and state["sampler"]["next_index"] == 4 * 8
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


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "{tmp}/missing"], "image folder not found"),
        (["--data", "{tmp}/empty"], "no images found"),
        (["--image-size", "30", "--patch-size", "4"], "not divisible by --patch-size"),
        (["--batch-size", "5000"], "larger than the training split"),
        (["--masking", "spiral"], "--masking must be one of"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--epochs", "two"], "invalid int value"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--config", "{tmp}/bad.yaml"], "unknown option in config file: 'learning_rate'"),
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


def test_bad_image_stop__one_error_line_and_exit_2(tmp_path):
    data = _image_folder(tmp_path / "images", per_class=3, corrupt=1)
    code, _, err = _quiet_main(["--data", data, "--on-bad-image", "stop", "--output-dir",
                                tmp_path / "run", "--epochs", "1", *TINY[:-4], "--batch-size", "4"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: cannot read image") and "broken0.jpg" in lines[0]


# ---------------------------------------------------------------- config
def test_config_file__same_names_as_flags_and_flags_win(tmp_path):
    (tmp_path / "run.toml").write_text('epochs = 3\nimage-size = 24\nmasking = "raster"\n')
    (tmp_path / "run.yaml").write_text("epochs: 3\nimage_size: 24\nmasking: raster\n")
    for name in ("run.toml", "run.yaml"):
        config, given = cfg.resolve(["--config", str(tmp_path / name), "--epochs", "5"])
        assert config["epochs"] == 5 and config["image_size"] == 24
        assert config["masking"] == "raster" and config["lr"] == cfg.OPTIONS["lr"][0]
        assert given == {"epochs"}


def test_config_file__every_option_round_trips(tmp_path):
    import yaml

    config, _ = cfg.resolve([])
    (tmp_path / "all.yaml").write_text(yaml.safe_dump(cfg.saved_options(config)))
    again, _ = cfg.resolve(["--config", str(tmp_path / "all.yaml")])
    assert cfg.saved_options(again) == cfg.saved_options(config)


# ---------------------------------------------------------------- monitor
class _FakeModel:
    target_encoder = "encoder"
    stop_training = False


def _monitor(tmp_path, std=0.5, threshold=1e-2):
    import _train_run as run

    checks = []

    def collapse_check(encoder):
        checks.append(encoder)
        return {"feature_std_mean": std, "effective_rank": 3.0}

    monitor = run.make_monitor(
        rows=[], start_step=0, steps_per_epoch=4, total_steps=8, lr_at=lambda i: 0.1 * i,
        momentum_at=lambda i: 0.99, collapse_check=collapse_check,
        collapse_threshold=threshold, monitor_every=2, output_dir=str(tmp_path),
        state_for=lambda step: {"step": step}, quiet=True)
    monitor.set_model(_FakeModel())
    monitor.on_train_begin()
    monitor.on_epoch_begin(0)
    return monitor, checks


def test_monitor__per_step_loss_from_running_mean_and_checks(tmp_path):
    monitor, checks = _monitor(tmp_path)
    for batch, running_mean in enumerate([4.0, 3.0, 2.0]):  # batch losses 4, 2, 0
        monitor.on_train_batch_end(batch, {"loss": running_mean})
    assert [r["loss"] for r in monitor.rows] == pytest.approx([4.0, 2.0, 0.0])
    assert [r["lr"] for r in monitor.rows] == pytest.approx([0.0, 0.1, 0.2])
    assert len(checks) == 1 and monitor.rows[1]["feature_std"] == 0.5  # every 2 steps
    assert monitor.stop_reason is None and not monitor.model.stop_training


def test_monitor__stops_on_nonfinite_loss_with_step(tmp_path, capsys):
    monitor, _ = _monitor(tmp_path)
    monitor.on_train_batch_end(0, {"loss": 1.0})
    monitor.on_train_batch_end(1, {"loss": float("inf")})
    assert monitor.stop_reason == "nonfinite_loss" and monitor.model.stop_training
    assert "non-finite loss" in capsys.readouterr().err and "step 2" in monitor.stop_message
    monitor.on_epoch_end(0)  # no checkpoint of broken weights
    assert not (tmp_path / "checkpoint.keras").exists()


def test_monitor__stops_on_collapse_with_step(tmp_path, capsys):
    monitor, _ = _monitor(tmp_path, std=1e-4)
    monitor.on_train_batch_end(0, {"loss": 1.0})
    monitor.on_train_batch_end(1, {"loss": 0.5})
    assert monitor.stop_reason == "collapse" and monitor.model.stop_training
    err = capsys.readouterr().err
    assert "representation collapse at step 2" in err and "1.00e-04" in err
