"""examples/train_ijepa.py refuses hostile input: one ``error:`` line naming the file, exit 2.

The files a user hands the script may come from strangers (``--config``,
a ``--resume`` folder, the data): each case crafts one in ``tmp_path`` and
runs the script's ``main(argv)``. Every refusal here happens before any
data is loaded, Keras imported or a model built, so each case takes
milliseconds; the "billion laughs" runs in a fresh process under memory and
time caps (``tests/security/hostile.py``), so a regression fails instead of
swapping the machine.
"""

import contextlib
import importlib.util
import io
import json
import os
import sys
import zipfile

import pytest
import yaml

from jepa_components.fashion_mnist import write_idx_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
SCRIPT = os.path.join(EXAMPLES, "train_ijepa.py")
sys.path.insert(0, os.path.join(ROOT, "tests", "security"))

from hostile import assert_accepted, make_fifo, run_isolated  # noqa: E402


def _load_script():
    sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location("train_ijepa_hostile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()
import _train_config as cfg  # noqa: E402  (examples/ is on sys.path now)


def _main(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = script.main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


def _assert_one_error_line(code, err, path=None, match=None):
    """Exit 2, exactly one stderr line ``error: ...`` naming ``path`` (and ``match``)."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    if path is not None:
        assert str(path) in lines[0], lines[0]
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


def _refused(argv, path=None, match=None):
    code, _, err = _main(argv)
    return _assert_one_error_line(code, err, path, match)


# ---------------------------------------------------------------- 1. YAML bombs, nesting
BILLION_LAUGHS = """\
masking:
  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  - &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  - &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  - &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  - &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  - &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""  # 9**9 strings once expanded: str() of it needs tens of GiB


def test_config_yaml__billion_laughs_refused_in_bounded_memory_and_time(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    assert path.stat().st_size < 700
    result = run_isolated(
        f"""
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    status = train_ijepa.main(["--config", {str(path)!r}])
result = {{"status": status, "stderr": err.getvalue()}}
""",
        setup=f"import contextlib, io, sys, yaml\nsys.path.insert(0, {EXAMPLES!r})\n"
        "import train_ijepa",
        memory_mib=64,
        timeout_s=20,
    )
    value = assert_accepted(result)  # within 64 MiB and 20 s, no exception out of main
    line = _assert_one_error_line(value["status"], value["stderr"], path, "anchor")
    assert "aliases and anchors are refused" in line
    assert result.elapsed_s < 5


STRUCTURE_CASES = [
    ("alias.yaml", "epochs: 3\nmasking: *x\n", "alias"),  # an undefined alias, too
    ("anchor.yaml", "epochs: &n 3\n", "anchor (&n)"),
    ("merge.yaml", "<<: {epochs: 3}\n", "merge key"),
    ("deep.yaml", "epochs: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than"),
    ("deep_map.yaml", "epochs: " + "{a: " * 100_000 + "1" + "}" * 100_000, "nested"),
    ("deep.json", '{"epochs": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("deep.toml", "epochs = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ("many.yaml", "epochs: [" + "1," * 20_000 + "1]\n", "more than 10000 values"),
    ("twice.yaml", "epochs: 3\nepochs: 4\n", "repeats the key 'epochs'"),
    ("twice.json", '{"epochs": 3, "epochs": 4}', "repeats the key 'epochs'"),
    ("spelled.yaml", "image-size: 16\nimage_size: 16\n", "sets option 'image_size' twice"),
    ("latin1.yaml", "data: caf\xe9\n", "not UTF-8"),
    ("list.yaml", "- epochs\n- 3\n", "must hold a mapping"),
    ("python.yaml", "epochs: !!python/object/apply:os.system [ls]\n", "cannot parse"),
]


@pytest.mark.parametrize(
    "name, text, match", STRUCTURE_CASES, ids=[case[0] for case in STRUCTURE_CASES]
)
def test_config_file__structure_refused(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if "latin1" in name else "utf-8"))
    _refused(["--config", path], path, match)


def test_config_file__size_bounded_and_regular_files_only(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 120_000 + "epochs: 3\n")  # 1.2 MB
    _refused(["--config", big], big, "larger than 1048576 bytes")
    fifo = tmp_path / "fifo.yaml"
    make_fifo(fifo)  # opening it would block: refused without opening
    _refused(["--config", fifo], fifo, "FIFO")
    _refused(["--config", tmp_path], tmp_path, "must end in .yaml")
    _refused(["--config", tmp_path / "missing.yaml"], tmp_path / "missing.yaml", "not found")


# ---------------------------------------------------------------- 2. strict coercion
VALUE_CASES = [
    ("float.yaml", "batch_size: 8.9\n", "'batch_size' must be an integer, got 8.9"),
    ("whole.yaml", "epochs: 5.0\n", "'epochs' must be an integer, got 5.0"),
    ("quoted.yaml", 'image_size: "32"\n', "'image_size' must be an integer, got '32'"),
    ("bool.yaml", "epochs: true\n", "'epochs' must be an integer, got True"),
    ("boolfloat.yaml", "lr: false\n", "'lr' must be a number, got False"),
    ("flag.yaml", 'no_eval: "false"\n', "'no_eval' must be true or false, got 'false'"),
    ("flag1.yaml", "resume: 1\n", "'resume' must be true or false, got 1"),
    ("inf.yaml", "lr: .inf\n", "'lr' must be a finite number, got inf"),
    ("nan.yaml", "weight_decay: .nan\n", "'weight_decay' must be a finite number"),
    ("huge.yaml", f"lr: {10**400}\n", "'lr' must be a finite number, got an integer of"),
    ("str.yaml", "masking: 3\n", "'masking' must be a string, got 3"),
    ("date.yaml", "data: 2024-01-01\n", "'data' must be a string, got a date"),
    ("list.yaml", "epochs: [1, 2]\n", "'epochs' must be an integer, got a list"),
    ("map.yaml", "masking: {a: 1}\n", "'masking' must be a string, got a mapping"),
    ("empty.yaml", "epochs:\n", "'epochs' cannot be empty"),
    ("nul.yaml", 'data: "a\\0b"\n', "'data' holds a NUL character"),
    ("key.yaml", "3: epochs\n", "option names are strings, got 3"),
    ("inf.toml", "lr = inf\n", "'lr' must be a finite number"),
    ("float.toml", "batch_size = 8.9\n", "'batch_size' must be an integer"),
    ("nan.json", '{"lr": NaN}', "non-standard JSON constant NaN"),
    ("exp.json", '{"lr": 1e999}', "'lr' must be a finite number, got inf"),
    ("str.json", '{"epochs": "3"}', "'epochs' must be an integer, got '3'"),
    ("range.yaml", "epochs: 0\n", "--epochs must be >= 1, got 0"),
    ("big.yaml", "image_size: 100000\n", "--image-size must be <= 1024"),
    ("choice.yaml", "masking: spiral\n", "--masking must be one of"),
]


@pytest.mark.parametrize("name, text, match", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_config_file__values_of_the_wrong_type_or_range_refused(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    _refused(["--config", path], path, match)


def test_config_file__valid_values_load_as_before(tmp_path):
    """Numbers written the YAML 1.2 / JSON way, ints for floats, nulls for optional options."""
    (tmp_path / "a.yaml").write_text(
        "lr: 1e-3\nfinal_lr: 2.5E-7\nweight_decay: 0\ndepth: null\nresume: false\nimage-size: 24\n"
    )
    (tmp_path / "a.json").write_text('{"lr": 1e-3, "epochs": 3, "data": null}')
    (tmp_path / "a.toml").write_text("lr = 1e-3\nepochs = 3\n")
    options = cfg.read_config_file(tmp_path / "a.yaml")
    assert options == {
        "lr": 1e-3,
        "final_lr": 2.5e-7,
        "weight_decay": 0.0,
        "depth": None,
        "resume": False,
        "image_size": 24,
    }
    assert type(options["weight_decay"]) is float
    assert cfg.read_config_file(tmp_path / "a.json") == {"lr": 1e-3, "epochs": 3, "data": None}
    assert cfg.read_config_file(tmp_path / "a.toml") == {"lr": 1e-3, "epochs": 3}
    for dataset in ("digits", "fashion-mnist"):  # what a run writes reads back the same
        config, _ = cfg.resolve(["--dataset", dataset, "--lr", "3e-4", "--data", "x"])
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg.saved_options(config)))
        again, _ = cfg.resolve(["--config", str(tmp_path / "run.yaml")])
        assert cfg.saved_options(again) == cfg.saved_options(config)


# ---------------------------------------------------------------- 3. command-line numbers
COMMAND_LINE_CASES = [
    (["--lr", "inf"], "argument --lr: must be a finite number, got 'inf'"),
    (["--weight-decay", "inf"], "argument --weight-decay: must be a finite number"),
    (["--ema-start", "nan"], "argument --ema-start: must be a finite number, got 'nan'"),
    (["--warmup-epochs=-inf"], "argument --warmup-epochs: must be a finite number"),
    (["--lr", "1e999"], "argument --lr: must be a finite number"),
    (["--lr", "fast"], "argument --lr: invalid number: 'fast'"),
    (["--image-size", "1e300"], "argument --image-size: invalid int value: '1e300'"),
    (["--image-size", "9" * 30], "--image-size must be <= 1024"),
    (["--epochs", "-3"], "--epochs must be >= 1, got -3"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--seed", str(2**40)], "--seed must be <= 2147483646"),
    (["--batch-size", "10000000"], "--batch-size must be <= 65536"),
    (["--lr", "-0.1"], "--lr must be >= 0, got -0.1"),
    (["--final-weight-decay", "-1"], "--final-weight-decay must be >= 0"),
    (["--image-size", "1024", "--patch-size", "16"], "would hold 7.0 GiB of images"),
]


@pytest.mark.parametrize(
    "argv, match",
    COMMAND_LINE_CASES,
    ids=[" ".join(argv)[:40] for argv, _ in COMMAND_LINE_CASES],
)
def test_command_line__non_finite_huge_or_negative_numbers_refused(argv, match):
    _refused(argv, match=match)


# ---------------------------------------------------------------- 4. --resume folders
def _resume_folder(root):
    """A folder that passes every check made before data is read (it holds no model)."""
    config, _ = cfg.resolve([])
    options = {k: v for k, v in cfg.saved_options(config).items() if k not in script.PER_INVOCATION}
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(options))
    (root / "train_state.json").write_text(
        json.dumps(
            {
                "epochs_done": 1,
                "step": 2,
                "steps_per_epoch": 2,
                "backend": "jax",
                "train_seconds": 1.5,
            }
        )
    )
    with zipfile.ZipFile(root / "checkpoint.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    (root / "metrics.csv").write_text("step,epoch,loss\n1,1,0.5\n2,1,0.4\n")
    return root


def test_resume__the_folder_fixture_passes_the_checks(tmp_path):
    run = _resume_folder(tmp_path / "run")
    config = script.prepare_config(["--resume", "--output-dir", str(run)])
    assert config["resume"] and config["epochs"] == cfg.OPTIONS["epochs"][0]


RESUME_CASES = [
    ("train_state.json", "{not json", "is not valid JSON"),
    ("train_state.json", "[1, 2, 3]", "must hold a JSON object, not a list"),
    ("train_state.json", '{"step": 2, "steps_per_epoch": 2}', "lacks the key 'epochs_done'"),
    (
        "train_state.json",
        '{"step": "2", "epochs_done": 1, "steps_per_epoch": 2}',
        "'step' must be an integer >= 0, got '2'",
    ),
    (
        "train_state.json",
        '{"step": 2.0, "epochs_done": 1, "steps_per_epoch": 2}',
        "'step' must be an integer >= 0, got 2.0",
    ),
    (
        "train_state.json",
        '{"step": 2, "epochs_done": 1, "steps_per_epoch": 0}',
        "'steps_per_epoch' must be an integer >= 1",
    ),
    (
        "train_state.json",
        '{"step": 2, "epochs_done": 1, "steps_per_epoch": 2, "train_seconds": NaN}',
        "not valid JSON: non-standard constant NaN",
    ),
    (
        "train_state.json",
        '{"step": 9, "epochs_done": 1, "steps_per_epoch": 2}',
        "is inconsistent",
    ),
    ("train_state.json", "[" * 30_000 + "]" * 30_000, "not valid JSON"),
    ("train_state.json", " " * 70_000 + "{}", "larger than 65536 bytes"),
    ("checkpoint.keras", "garbage, not a zip", "is not a .keras file (a zip archive)"),
    ("config.yaml", "a: &a [1]\nb: *a\n", "YAML anchor (&a)"),
    ("config.yaml", "batch_size: 8.9\n", "'batch_size' must be an integer, got 8.9"),
    ("config.yaml", 'image_size: "32"\n', "'image_size' must be an integer, got '32'"),
    ("config.yaml", "epochs: " + "[" * 100_000 + "]" * 100_000, "nested more than"),
    ("config.yaml", "epochs: 0\n", "--epochs must be >= 1, got 0"),
    ("metrics.csv", "step,epoch,loss\n1,1,lots\n", "bad row near line 2"),
    ("metrics.csv", "step,epoch,loss\n1.5,1,0.3\n", "bad row near line 2"),
    ("metrics.csv", "step,loss\n1,0.3\n", "has no column epoch"),
    ("metrics.csv", "step,epoch,loss\n" + "1,1,0.5\n" * 20_000, "larger than"),
]


@pytest.mark.parametrize(
    "name, content, match",
    RESUME_CASES,
    ids=[f"{name}:{match[:24]}" for name, _, match in RESUME_CASES],
)
def test_resume__bad_files_in_the_folder_refused(tmp_path, name, content, match):
    run = _resume_folder(tmp_path / "run")
    (run / name).write_text(content)
    _refused(["--resume", "--output-dir", run], run / name, match)


@pytest.mark.parametrize(
    "name", ["train_state.json", "checkpoint.keras", "config.yaml", "metrics.csv"]
)
def test_resume__fifos_and_links_out_of_the_folder_refused(tmp_path, name):
    run = _resume_folder(tmp_path / "run")
    (run / name).unlink()
    make_fifo(run / name)  # opening it would block forever: refused without opening
    _refused(["--resume", "--output-dir", run], run / name, "FIFO")
    (run / name).unlink()
    (tmp_path / name).write_bytes(b"")
    (run / name).symlink_to(tmp_path / name)
    _refused(["--resume", "--output-dir", run], run / name, "outside the folder")


# ---------------------------------------------------------------- 5. data and output paths
def test_data__hostile_fashion_mnist_files_one_error_line(tmp_path):
    folder = tmp_path / "fmnist"
    write_idx_fixture(folder, num_train=40, num_test=24, gzipped=False)
    labels = folder / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:20])  # fewer labels than the header declares
    _refused(
        ["--dataset", "fashion-mnist", "--data", folder, "--output-dir", tmp_path / "o"], labels
    )
    labels.unlink()
    make_fifo(labels)
    _refused(
        ["--dataset", "fashion-mnist", "--data", folder, "--output-dir", tmp_path / "o"],
        labels,
        "FIFO",
    )


def test_data__image_folder_and_output_dir_that_cannot_be_used(tmp_path):
    fifo = tmp_path / "images"
    make_fifo(fifo)
    _refused(["--data", fifo], fifo, "not a folder")
    (tmp_path / "file").write_text("x")
    _refused(["--output-dir", tmp_path / "file"], tmp_path / "file", "is not a folder")
