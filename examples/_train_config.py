"""Command line and config files of examples/train_ijepa.py (no framework here).

Every option has one name, used three ways: ``--image-size`` on the command
line, ``image_size`` (or ``image-size``) in a ``--config`` YAML/TOML file, and
``image_size`` in the ``config.yaml`` a run writes to its output directory,
so ``--config runs/x/config.yaml`` reproduces run ``x``. Precedence:
built-in defaults < the dataset's defaults (:data:`DATASET_DEFAULTS`) <
config file < flags given on the command line.

Bad values raise :class:`ConfigError` with a one-line message; the script
prints it as ``error: ...`` and exits with status 2.

Config files may come from strangers ("Files you did not write" in the
design notes), so they are read strictly (:mod:`_train_files`: a bounded
regular file; YAML without anchors or aliases...), and every value must
have the type its option takes, nothing converted (``"32"``, ``8.9`` or
``true`` for an integer, ``"false"`` for a flag, a non-finite float: all
errors naming the file and the option).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import _train_files as files
from _train_files import shown

# vit_micro is this example's CPU size (embed 96, depth 4, 3 heads), not an
# official I-JEPA size; the others are the official table.
MODELS = ("vit_micro", "vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge", "vit_giant")
EXAMPLE_SIZES = {"vit_micro": (96, 4, 3, 4.0)}  # (embed_dim, depth, num_heads, mlp_ratio)
METHODS = ("ijepa", "lejepa", "ijepa-sigreg")
MASKINGS = ("multiblock", "block", "raster", "random")
LOSSES = ("l2", "smooth_l1")
DATASETS = ("digits", "fashion-mnist", "folder")
AUGMENTS = ("none", "crop")
DISTRIBUTES = ("none", "data")
PATCH_INIT_STDS = {"official": None, "fan_in": "fan_in"}  # VisionTransformer(patch_init_std=)
PATCH_INITS = tuple(PATCH_INIT_STDS)
REMATS = ("none", "predictor", "encoder", "both")
TARGET_ENCODERS = ("ema", "online")

# name: (default, type, help). Defaults suit the bundled digits on a 2-core CPU;
# DATASET_DEFAULTS overrides some of them per dataset.
OPTIONS = {
    "method": (
        "ijepa",
        str,
        f"one of {', '.join(METHODS)}: ijepa (masked-block prediction against an "
        "EMA target encoder, Assran et al. 2023), lejepa (an encoder and a projector "
        "on several augmented views, SIGReg + view invariance, no teacher; "
        "Balestriero & LeCun 2025) or ijepa-sigreg (the I-JEPA loss plus "
        "--sigreg-weight x SIGReg of the mean-pooled context embeddings). Each "
        "method has its own defaults (shown as 'lejepa: ...' below); an option of "
        "another method is refused",
    ),
    "dataset": (
        None,
        str,
        "digits (scikit-learn's bundled 8x8 digits, no download), "
        "fashion-mnist (the official 60k/10k split from local IDX files, never "
        "downloaded: see --data) or folder (--data PATH); default: folder when --data "
        "is given, else digits. Each dataset has its own defaults (shown as "
        "'fashion-mnist: ...' below)",
    ),
    "data": (
        None,
        str,
        "--dataset folder: a folder of images, one subfolder per class; "
        "--dataset fashion-mnist: the folder holding the four IDX files (default: "
        "$JEPA_DATA_DIR/fashion-mnist, ~/.keras/datasets/fashion-mnist, "
        "/usr/share/datasets/fashion-mnist)",
    ),
    "model": (
        "vit_micro",
        str,
        f"encoder size, one of {', '.join(MODELS)} (vit_micro: "
        "embed 96, depth 4, 3 heads, this example's CPU size)",
    ),
    "depth": (None, int, "override the model's number of encoder blocks"),
    "embed_dim": (None, int, "override the model's embedding width"),
    "num_heads": (None, int, "override the model's attention heads"),
    "predictor_depth": (
        4,
        int,
        "predictor blocks (a shallower predictor let the features "
        "collapse in our digits runs); its MLP ratio is always 4 (official)",
    ),
    "predictor_embed_dim": (96, int, "predictor width"),
    "image_size": (32, int, "images are resized to this square size"),
    "patch_size": (4, int, "ViT patch size; must divide --image-size"),
    "patch_init": (
        "official",
        str,
        f"patch-embedding init, one of {', '.join(PATCH_INITS)}: "
        "official (truncated normal, std 0.02) or fan_in (std 1/sqrt(p*p*C), so "
        "small grayscale patches are not drowned by the position table)",
    ),
    "remat": (
        "none",
        str,
        f"one of {', '.join(REMATS)}: the networks whose blocks are "
        "recomputed in the backward pass instead of kept (remat=True: the same "
        "training, less memory, one more forward of those blocks)",
    ),
    "epochs": (5, int, "training epochs (the schedules span all of them)"),
    "steps_per_epoch": (None, int, "cap on optimizer steps per epoch (quick runs, tests)"),
    "stop_after_epochs": (
        None,
        int,
        "stop (with a checkpoint) after this many epochs "
        "of the schedule; continue later with --resume",
    ),
    "batch_size": (32, int, "images per step (the global batch with --distribute data)"),
    "lr": (1e-3, float, "peak learning rate (AdamW), reached after warmup"),
    "start_lr": (2e-4, float, "learning rate at step 0 (paper: 2e-4)"),
    "final_lr": (1e-6, float, "learning rate at the end (paper: 1e-6)"),
    "warmup_epochs": (
        1.0,
        float,
        "linear warmup length in epochs, may be fractional (paper: 40 of 300)",
    ),
    "weight_decay": (0.04, float, "weight decay at step 0 (paper: 0.04)"),
    "final_weight_decay": (0.4, float, "weight decay at the end, cosine (paper: 0.4)"),
    "ema_start": (0.996, float, "target-encoder EMA momentum at step 0 (paper: 0.996)"),
    "ema_end": (1.0, float, "EMA momentum at the end, linear (paper: 1.0)"),
    "views": (
        None,
        int,
        "lejepa: global views per image (the centre of the invariance term); "
        "with --local-views 0 they crop 8-100%% of the image (MINIMAL.md: 4 views), "
        "else 30-100%%",
    ),
    "local_views": (
        None,
        int,
        "lejepa: local views per image (crops of 5-30%% of the image, reference "
        "README; the paper uses 8, MINIMAL.md none)",
    ),
    "proj_dim": (None, int, "lejepa: projector output width (MINIMAL.md: 16)"),
    "proj_hidden": (
        None,
        int,
        "lejepa: width of the projector's two hidden layers (Dense, BatchNorm, "
        "ReLU; MINIMAL.md: 2048)",
    ),
    "sigreg_weight": (
        None,
        float,
        "lejepa: lambda in loss = lambda SIGReg + (1 - lambda) invariance "
        "(MINIMAL.md: 0.02; paper: 0.05); ijepa-sigreg: weight of SIGReg added to "
        "the I-JEPA loss (library default 0.05)",
    ),
    "num_slices": (
        None,
        int,
        "lejepa, ijepa-sigreg: random directions SIGReg projects on per step "
        "(MINIMAL.md: 256; paper: 1024)",
    ),
    "target_encoder": (
        None,
        str,
        f"ijepa-sigreg: one of {', '.join(TARGET_ENCODERS)}: the EMA target "
        "encoder (I-JEPA's), or online: the online encoder's own stop-gradient "
        "tokens as targets (no EMA; SIGReg keeps them from collapsing)",
    ),
    "masking": (
        "multiblock",
        str,
        f"mask strategy, one of {', '.join(MASKINGS)} (the paper's ablation)",
    ),
    "loss": ("l2", str, f"one of {', '.join(LOSSES)} (paper: l2; official code: smooth_l1)"),
    "augment": (
        "none",
        str,
        "none, or crop: the official RandomResizedCrop (scale 0.3-1.0, "
        "aspect 3/4-4/3, no flip) on every training batch, seeded, before "
        "normalisation",
    ),
    "distribute": (
        "none",
        str,
        "none, or data: data-parallel training over all local "
        "devices (keras.distribution, KERAS_BACKEND=jax only); --batch-size is "
        "the global batch, split evenly over the devices",
    ),
    "seed": (0, int, "seed of weights, data order, masks, crops and the held-out split"),
    "test_fraction": (
        0.2,
        float,
        "held-out share of the data for evaluation (digits and "
        "folders; Fashion-MNIST uses its official test split)",
    ),
    "eval_samples": (4000, int, "cap on images embedded per split for evaluation"),
    "probe_layers": (4, int, "also probe the mean of the last N blocks' outputs"),
    "collapse_ratio": (
        0.01,
        float,
        "stop training when the mean per-dimension std of the "
        "target encoder's mean-pooled features (on 128 fixed training images) "
        "falls below this fraction of its value at random initialization "
        "(relative, not absolute; 0: never stop for collapse)",
    ),
    "monitor_every": (
        50,
        int,
        "steps between health checks (feature std, effective rank, "
        "learning rate and EMA momentum into metrics.csv); one at each epoch "
        "end too",
    ),
    "on_bad_image": ("skip", str, "unreadable image files: skip (warn and count) or stop"),
    "workers": (2, int, "image-reading threads for --data folders"),
    "output_dir": (None, str, "where outputs go (default: runs/ijepa-<date-time>)"),
}
FLAGS = {
    "resume": "continue from the checkpoint in --output-dir",
    "no_eval": "skip the probes and the verdict (quick runs, tests)",
}

# Each dataset's own defaults, over OPTIONS (config files and flags override them).
DATASET_DEFAULTS = {
    "digits": {},
    "folder": {},
    # The recipe of benchmarks/paper_claims.py (README "Does it learn?"): one epoch
    # (937 steps of 64), EMA 0.99 -> 0.999 for a run this short (the paper's
    # 0.996 -> 1.0 spans ~100k steps), fan-in patch init for 4x4 grayscale patches.
    "fashion-mnist": {
        "image_size": 28,
        "patch_size": 4,
        "model": "vit_micro",
        "patch_init": "fan_in",
        "predictor_embed_dim": 96,
        "predictor_depth": 4,
        "batch_size": 64,
        "epochs": 1,
        "warmup_epochs": 0.1,
        "ema_start": 0.99,
        "ema_end": 0.999,
    },
}
# Each method's own defaults, over OPTIONS and under the dataset's defaults.
# LeJEPA: the reference small-data recipe (anchors/lejepa/MINIMAL.md: V 4 all
# global, proj_dim 16, lambda 0.02, 256 slices, AdamW lr 2e-3 with weight decay
# 5e-2, a one-epoch linear warmup from 0.01 x lr (LinearLR start_factor 0.01),
# then cosine down to eta_min 1e-3), with a 2048-2048 projector. The weight decay
# is constant (MINIMAL.md: no decay schedule). ijepa-sigreg: the library's
# defaults (SIGReg weight 0.05, 256 slices, EMA target).
METHOD_DEFAULTS = {
    "ijepa": {},
    "lejepa": {
        "views": 4,
        "local_views": 0,
        "proj_dim": 16,
        "proj_hidden": 2048,
        "sigreg_weight": 0.02,
        "num_slices": 256,
        "lr": 2e-3,
        "start_lr": 2e-5,
        "final_lr": 1e-3,
        "weight_decay": 0.05,
        "final_weight_decay": 0.05,
        "warmup_epochs": 1.0,
    },
    "ijepa-sigreg": {"sigreg_weight": 0.05, "num_slices": 256, "target_encoder": "ema"},
}
IJEPA_METHODS = {"ijepa", "ijepa-sigreg"}
# Options only some methods take (every other option: all methods). Given for
# another method (flag or config file), they are refused.
METHOD_OPTIONS = {
    "predictor_depth": IJEPA_METHODS,
    "predictor_embed_dim": IJEPA_METHODS,
    "ema_start": IJEPA_METHODS,
    "ema_end": IJEPA_METHODS,
    "masking": IJEPA_METHODS,
    "loss": IJEPA_METHODS,
    "augment": IJEPA_METHODS,  # LeJEPA: the views are the augmentation
    "views": {"lejepa"},
    "local_views": {"lejepa"},
    "proj_dim": {"lejepa"},
    "proj_hidden": {"lejepa"},
    "sigreg_weight": {"lejepa", "ijepa-sigreg"},
    "num_slices": {"lejepa", "ijepa-sigreg"},
    "target_encoder": {"ijepa-sigreg"},
}

# Options a --resume may change; anything else must match the saved run.
RESUMABLE = {
    "output_dir",
    "stop_after_epochs",
    "workers",
    "on_bad_image",
    "eval_samples",
    "probe_layers",
    "data",
    "distribute",
}


# Bounds on integer options (inclusive): far above any run of this example, low
# enough that no value asks for unbounded memory or time before a model is built.
INT_RANGES = {
    "image_size": (1, 1024),
    "patch_size": (1, 1024),
    "epochs": (1, 100_000),
    "steps_per_epoch": (1, 10**9),
    "stop_after_epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "depth": (1, 256),
    "embed_dim": (1, 16_384),
    "num_heads": (1, 1024),
    "predictor_depth": (1, 256),
    "predictor_embed_dim": (1, 16_384),
    "eval_samples": (1, 10**7),
    "probe_layers": (1, 256),
    "monitor_every": (1, 10**9),
    "workers": (1, 256),
    "seed": (0, 2**31 - 2),  # the predictor's seed is seed + 1
    "views": (1, 64),
    "local_views": (0, 64),
    "proj_dim": (1, 16_384),
    "proj_hidden": (1, 65_536),
    "num_slices": (1, 65_536),
}


class ConfigError(ValueError):
    """Bad command line or config file; message is one line for the user."""


class _OneLineErrors(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (no usage block)."""

    def error(self, message):
        raise ConfigError(message)


def _shown_default(name, default):
    shown = [] if default is None else [f"default: {default}"]
    for method, values in METHOD_DEFAULTS.items():
        if name in values and values[name] != default:
            shown.append(f"{method}: {values[name]}")
    for dataset, values in DATASET_DEFAULTS.items():
        if name in values and values[name] != default:
            shown.append(f"{dataset}: {values[name]}")
    return f" ({'; '.join(shown)})" if shown else ""


def finite_float(text):
    """argparse type of the float options: a finite number (``inf``, ``nan`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {shown(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {shown(text)}")
    return value


def _command_line_type(kind):
    return finite_float if kind is float else kind


def build_parser():
    parser = _OneLineErrors(
        prog="train_ijepa.py",
        description="Train an I-JEPA (or a LeJEPA, or an I-JEPA with SIGReg) on real "
        "images, evaluate its frozen features, resume it.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        help="YAML, TOML or JSON file (at most 1 MiB) with the "
        "options below: a mapping of option names to values of their type",
    )
    for name, (default, kind, help_text) in OPTIONS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_command_line_type(kind),
            metavar=name.upper(),
            help=help_text + _shown_default(name, default),
        )
    for name, help_text in FLAGS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, action="store_true", help=help_text
        )
    return parser


def read_config_file(path, *, inside=None):
    """The ``{name: value}`` options of a .yaml/.yml/.toml/.json file, strictly checked.

    The file is read by :func:`_train_files.read_mapping` (bounded, no YAML
    aliases...); every value must have its option's type (see the module
    docstring). With ``inside`` the file must resolve inside that folder.
    Raises :class:`ConfigError` naming the file (and the option).
    """
    path = os.fspath(path)
    parsed = files.read_mapping(path, error=ConfigError, inside=inside, what="config file")
    options = {}
    for key, value in parsed.items():
        if not isinstance(key, str):
            raise ConfigError(f"config file {path}: option names are strings, got {shown(key)}")
        name = key.replace("-", "_")
        if name in options:
            raise ConfigError(f"config file {path} sets option {name!r} twice")
        options[name] = _coerce(name, value, path)
    return options


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(name, value, path):
    """``value`` if it has the type of option ``name`` (ints are accepted as floats)."""
    known = {**{k: v[1] for k, v in OPTIONS.items()}, **dict.fromkeys(FLAGS, bool)}
    if name not in known:
        raise ConfigError(f"config file {path}: unknown option {shown(name)}")
    kind = known[name]
    where = f"config file {path}: option {name!r}"
    if value is None:
        if name in OPTIONS and OPTIONS[name][0] is None:
            return None
        raise ConfigError(f"{where} cannot be empty")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"{where} must be a finite number, got {shown(value)}") from None
    # bool is a subclass of int: true is not an integer here, nor 1 a flag.
    if type(value) is not kind:
        raise ConfigError(f"{where} must be {_TYPE_NAMES[kind]}, got {shown(value)}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {shown(value)}")
    if kind is str and "\0" in value:
        raise ConfigError(f"{where} holds a NUL character")
    return value


def resolve(argv=None, *, sources=None):
    """Parse ``argv`` -> ``(config dict, names given on the command line)``.

    ``config["dataset"]`` is always resolved (folder when ``data`` is set,
    else digits) and that dataset's defaults are applied under the config
    file and the flags. ``sources``, a dict, receives ``{name: config file}``
    for the options whose value came from ``--config`` (for messages).
    """
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config", None)
    from_file = {} if config_file is None else read_config_file(config_file)
    if sources is not None:
        sources.update({name: config_file for name in from_file if name not in args})
    given = {**from_file, **args}
    dataset = given.get("dataset") or ("folder" if given.get("data") else "digits")
    if dataset not in DATASETS:
        where = f" (in {config_file})" if "dataset" in from_file and "dataset" not in args else ""
        raise ConfigError(
            f"--dataset must be one of {', '.join(DATASETS)}, got {shown(dataset)}{where}"
        )
    method = given.get("method") or OPTIONS["method"][0]
    if method not in METHODS:
        where = f" (in {config_file})" if "method" in from_file and "method" not in args else ""
        raise ConfigError(
            f"--method must be one of {', '.join(METHODS)}, got {shown(method)}{where}"
        )
    config = {name: spec[0] for name, spec in OPTIONS.items()}
    config.update(dict.fromkeys(FLAGS, False))
    config.update(METHOD_DEFAULTS[method])
    config.update(DATASET_DEFAULTS[dataset])
    config.update(given)
    config["dataset"], config["method"] = dataset, method
    return config, set(args)


def validate(config, sources=None, explicit=None):
    """Check types, ranges and combinations; raises :class:`ConfigError`.

    ``sources`` (``{name: config file}``, from :func:`resolve`): a message
    about an option set in a file names that file. ``explicit``: the names
    set by a flag or a config file; one of another method
    (:data:`METHOD_OPTIONS`) is refused.
    """
    sources = sources or {}
    explicit = set(explicit or ())

    def flag(name):
        return "--" + name.replace("_", "-")

    def need(condition, message, *names):
        if not condition:
            files = sorted({sources[n] for n in names if sources.get(n) is not None})
            raise ConfigError(message + (f" (set in {', '.join(files)})" if files else ""))

    for name, (default, kind, _) in OPTIONS.items():  # values given in Python, not parsed
        value = config[name]
        if value is None and default is None:
            continue
        if kind is float and type(value) is int:
            config[name] = value = float(value)
        need(
            type(value) is kind,
            f"{flag(name)} must be {_TYPE_NAMES[kind]}, got {shown(value)}",
            name,
        )
        if kind is float:
            need(math.isfinite(value), f"{flag(name)} must be a finite number, got {value}", name)
    for name, (low, high) in INT_RANGES.items():
        value = config[name]
        need(value is None or low <= value, f"{flag(name)} must be >= {low}, got {value}", name)
        need(
            value is None or value <= high,
            f"{flag(name)} must be <= {high}, got {shown(value)}",
            name,
        )

    def choice(name, allowed):
        need(
            config[name] in allowed,
            f"{flag(name)} must be one of {', '.join(allowed)}, got {shown(config[name])}",
            name,
        )

    choice("method", METHODS)
    method = config["method"]
    for name in sorted(explicit & set(METHOD_OPTIONS)):
        need(
            method in METHOD_OPTIONS[name],
            f"{flag(name)} is an option of --method "
            f"{' / '.join(m for m in METHODS if m in METHOD_OPTIONS[name])}, not of "
            f"--method {method}",
            name,
        )
    for name, methods in METHOD_OPTIONS.items():  # the method's own: never empty
        if method in methods and OPTIONS[name][0] is None:
            need(config[name] is not None, f"{flag(name)} cannot be empty for {method}", name)
    if method == "ijepa-sigreg" and config["target_encoder"] == "online":
        for name in sorted(explicit & {"ema_start", "ema_end"}):
            need(False, f"{flag(name)}: --target-encoder online has no EMA", name)
    if method == "lejepa":
        need(
            config["remat"] in ("none", "encoder"),
            f"--remat {config['remat']}: --method lejepa has no predictor (none or encoder)",
            "remat",
        )
        choice_sigreg = config["sigreg_weight"]
        need(
            0 <= choice_sigreg <= 1,
            f"--sigreg-weight must be in [0, 1] for lejepa (lambda), got {choice_sigreg}",
            "sigreg_weight",
        )
    if method == "ijepa-sigreg":
        choice("target_encoder", TARGET_ENCODERS)
        need(
            config["sigreg_weight"] >= 0,
            f"--sigreg-weight must be >= 0, got {config['sigreg_weight']}",
            "sigreg_weight",
        )
    choice("dataset", DATASETS)
    choice("model", MODELS)
    choice("masking", MASKINGS)
    choice("loss", LOSSES)
    choice("augment", AUGMENTS)
    choice("distribute", DISTRIBUTES)
    choice("patch_init", PATCH_INITS)
    choice("remat", REMATS)
    need(
        config["on_bad_image"] in ("skip", "stop"),
        f"--on-bad-image must be skip or stop, got {shown(config['on_bad_image'])}",
        "on_bad_image",
    )
    need(
        config["dataset"] != "folder" or config["data"] is not None,
        "--dataset folder needs --data PATH (a folder of images)",
        "dataset",
    )
    need(
        config["dataset"] != "digits" or config["data"] is None,
        "--data is for --dataset folder or fashion-mnist; the digits are bundled",
        "dataset",
        "data",
    )
    need(
        config["image_size"] % config["patch_size"] == 0,
        f"--image-size {config['image_size']} is not divisible by --patch-size "
        f"{config['patch_size']}",
        "image_size",
        "patch_size",
    )
    height, width = patch_grid(config)
    need(
        min(height, width) >= 2,
        f"--image-size / --patch-size gives a {height}x{width} patch grid; need at least 2x2",
        "image_size",
        "patch_size",
    )
    for name in ("lr", "start_lr", "final_lr", "weight_decay", "final_weight_decay"):
        need(config[name] >= 0, f"{flag(name)} must be >= 0, got {config[name]}", name)
    need(config["lr"] > 0, f"--lr must be > 0, got {config['lr']}", "lr")
    need(
        0 <= config["warmup_epochs"] <= config["epochs"],
        f"--warmup-epochs must be in [0, --epochs={config['epochs']}], "
        f"got {config['warmup_epochs']}",
        "warmup_epochs",
        "epochs",
    )
    for name in ("ema_start", "ema_end"):
        need(0 <= config[name] <= 1, f"{flag(name)} must be in [0, 1], got {config[name]}", name)
    need(
        0 < config["test_fraction"] < 1,
        f"--test-fraction must be in (0, 1), got {config['test_fraction']}",
        "test_fraction",
    )
    need(
        0 <= config["collapse_ratio"] < 1,
        f"--collapse-ratio must be in [0, 1), got {config['collapse_ratio']}",
        "collapse_ratio",
    )
    embed_dim, heads = config["embed_dim"], config["num_heads"]
    if embed_dim is not None and heads is not None:
        need(
            embed_dim % heads == 0,
            f"--embed-dim {embed_dim} is not divisible by --num-heads {heads}",
            "embed_dim",
            "num_heads",
        )
    if config["stop_after_epochs"] is not None:
        need(
            config["stop_after_epochs"] <= config["epochs"],
            f"--stop-after-epochs must be <= --epochs={config['epochs']}, "
            f"got {config['stop_after_epochs']}",
            "stop_after_epochs",
            "epochs",
        )
    if config["resume"]:
        need(config["output_dir"] is not None, "--resume needs --output-dir (the run to continue)")
    return config


def patch_grid(config):
    """``(H, W)``: the patch grid of the run's images, for the sampler made before the model.

    The model's encoder computes the same (``VisionTransformer.grid_size``),
    and ``fit`` refuses a sampler on another grid.
    """
    side = config["image_size"] // config["patch_size"]
    return (side, side)


def default_output_dir():
    return os.path.join("runs", "ijepa-" + time.strftime("%Y%m%d-%H%M%S"))


def method_takes(method, name):
    """Whether option ``name`` means something for ``method``."""
    return method in METHOD_OPTIONS.get(name, METHODS)


def saved_options(config):
    """The options worth saving (and reloading with --config): the method's own."""
    return {name: config[name] for name in OPTIONS if method_takes(config["method"], name)}


def merge_for_resume(saved, config, given):
    """The saved run's config with the few options a resume may change.

    Raises :class:`ConfigError` when a flag given now contradicts the run.
    """
    merged = {**saved}
    for name in given:
        if name in FLAGS:
            continue
        if name in RESUMABLE:
            merged[name] = config[name]
        elif config[name] != saved.get(name):
            raise ConfigError(
                f"--{name.replace('_', '-')}={config[name]} differs from the run being resumed "
                f"({saved.get(name)}); only {', '.join(sorted(RESUMABLE))} may change on --resume"
            )
    merged.update({name: config[name] for name in FLAGS})
    return merged
