"""Train an I-JEPA (or a LeJEPA) end to end, evaluate its frozen features, resume it.

    KERAS_BACKEND=jax python examples/train_ijepa.py
    KERAS_BACKEND=jax python examples/train_ijepa.py --dataset fashion-mnist
    KERAS_BACKEND=jax python examples/train_ijepa.py --method lejepa

With no arguments: scikit-learn's bundled handwritten digits (1,797 real
8x8 images, no download) upsampled to 32x32, a small ViT (patch 4, an 8x8
grid), the paper's multi-block masks, AdamW with warmup-cosine LR and
cosine weight decay, and the EMA target encoder (Assran et al. 2023).
``--dataset fashion-mnist`` trains on Fashion-MNIST's official 60k/10k
split from local IDX files (never downloaded) with that dataset's own
defaults; ``--data PATH`` trains on a folder of images. At the end the
trained target encoder, the same architecture at random initialization and
raw pixels are compared with linear, k-NN and attentive probes on a
held-out split, and a short verdict says which is better.

``--method`` picks the training objective (same data, encoder, evaluation):

- ``ijepa`` (default): the above; predict the target encoder's tokens of
  masked blocks from a context block (``IJEPA``, ``TargetEMA``).
- ``lejepa`` (Balestriero & LeCun 2025): no masks, no predictor, no EMA.
  ``--views`` global (+ ``--local-views`` local) augmented views of every
  image (``augment.lejepa_views``) go through the encoder (mean-pooled) and a
  projector; loss = lambda SIGReg + (1 - lambda) view invariance
  (``LeJEPA``). Defaults: the reference small-data recipe (MINIMAL.md: 4
  global views, projection 16, lambda 0.02, AdamW 2e-3, weight decay 0.05,
  warmup then cosine). With labelled data an online linear probe trains on
  the detached embeddings (as the reference; it does not change the
  encoder) and its held-out accuracy joins the report. The evaluated
  encoder is the encoder itself.
- ``ijepa-sigreg``: I-JEPA plus ``--sigreg-weight`` x SIGReg of the
  mean-pooled context embeddings (``IJEPA(regularizer=SIGReg(...))``);
  ``--target-encoder online`` drops the EMA target for the online encoder's
  own stop-gradient tokens.

It is a thin script over the library: ``MaskedImageDataset`` /
``MultiViewDataset`` (batches, augmentation, resumable streams), ``IJEPA`` +
``TargetEMA`` / ``LeJEPA`` + ``make_projector``, ``make_adamw`` (the models
and their schedules), ``HealthMonitor`` (collapse and NaN stop),
``probes.encode_images`` and the probes (evaluation) and
``distribution.data_parallel`` (``--distribute data``).

Same script on ``KERAS_BACKEND=torch`` and ``tensorflow``. ``--help`` lists
every option; ``--config FILE`` (YAML/TOML/JSON) takes the same names, and the
``config.yaml`` written to the output directory reproduces a run.

Outputs (``--output-dir``, default ``runs/ijepa-<date-time>``):
``config.yaml``, ``metrics.csv``, ``checkpoint.keras`` + ``train_state.json``
(the full training state: ``--resume`` continues from it), ``loss.png``,
``masks.png`` (LeJEPA: ``views.png``), ``report.json``.

Exit status: 0 done; 1 training stopped (non-finite loss or collapse; the
outputs are still written); 2 bad input (one ``error: ...`` line naming the
file and the option: config files, a ``--resume`` folder and the data are
read as if a stranger wrote them, see ``_train_files.py``).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# TensorFlow (imported by Keras on every backend) logs a screen of INFO lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _train_config as cfg
import _train_data as data
import _train_run as run

from jepa_components import datasets

PER_INVOCATION = ("resume", "no_eval", "stop_after_epochs", "output_dir")
PROBE_BATCH = 128  # training images of the health checks


class InputError(Exception):
    """Bad input found after parsing (data, output directory, model sizes)."""


# ---------------------------------------------------------------- set-up
def prepare_config(argv):
    """Parse, merge with a resumed run, validate. Raises ConfigError/InputError/RunFileError.

    A ``--resume`` folder's files are checked here (regular files inside the
    folder, size-bounded, strictly parsed), before any data is read.
    """
    sources = {}  # option -> the config file that set it (for messages)
    config, given = cfg.resolve(argv, sources=sources)
    explicit = set(given)
    if config["resume"]:
        output_dir = config["output_dir"]
        if output_dir is None:
            raise InputError("--resume needs --output-dir (the run to continue)")
        saved_path = os.path.join(output_dir, "config.yaml")
        if not run.holds_run(output_dir) or not os.path.lexists(saved_path):
            raise InputError(
                f"nothing to resume in {output_dir}: no "
                f"{run.CHECKPOINT} / {run.TRAIN_STATE} / config.yaml there"
            )
        state = run.load_train_state(output_dir)
        run.check_checkpoint(output_dir)
        run.read_metrics(os.path.join(output_dir, "metrics.csv"), state["step"], inside=output_dir)
        from_file = cfg.read_config_file(saved_path, inside=output_dir)
        saved = {name: cfg.OPTIONS[name][0] for name in cfg.OPTIONS}
        saved.update(from_file)
        for name in PER_INVOCATION:
            saved[name] = config[name]
        changed = given - set(PER_INVOCATION)
        config = cfg.merge_for_resume(saved, config, changed)
        # A message about a saved option names the saved file (flags that changed it: none).
        sources = {n: saved_path for n in from_file if n not in changed & cfg.RESUMABLE}
    cfg.validate(config, sources, explicit | set(sources))
    if config["output_dir"] is None:
        config["output_dir"] = cfg.default_output_dir()
    if os.path.lexists(config["output_dir"]) and not os.path.isdir(config["output_dir"]):
        raise InputError(f"--output-dir {config['output_dir']} exists and is not a folder")
    if not config["resume"] and run.holds_run(config["output_dir"]):
        raise InputError(
            f"{config['output_dir']} already holds a run ({run.CHECKPOINT}); pass "
            "--resume to continue it or choose another --output-dir"
        )
    return config


def encoder_sizes(config):
    from jepa_components.backends.keras import VIT_SIZES

    sizes = {**VIT_SIZES, **cfg.EXAMPLE_SIZES}
    embed_dim, depth, num_heads, mlp_ratio = sizes[config["model"]]
    embed_dim = config["embed_dim"] or embed_dim
    depth = config["depth"] or depth
    num_heads = config["num_heads"] or num_heads
    if embed_dim % num_heads or embed_dim % 4:
        raise InputError(
            f"embedding width {embed_dim} must be a multiple of 4 and of the "
            f"{num_heads} attention heads (--embed-dim / --num-heads)"
        )
    if is_ijepa(config) and (
        config["predictor_embed_dim"] % num_heads or config["predictor_embed_dim"] % 4
    ):
        raise InputError(
            f"--predictor-embed-dim {config['predictor_embed_dim']} must be a "
            f"multiple of 4 and of the {num_heads} attention heads"
        )
    return dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio)


def is_ijepa(config):
    """I-JEPA methods (masks, a predictor): ijepa and ijepa-sigreg."""
    return config["method"] in cfg.IJEPA_METHODS


def has_ema(config):
    """Whether the run's model has an EMA target encoder (and TargetEMA runs)."""
    return is_ijepa(config) and config["target_encoder"] != "online"


def build_model(config, channels, steps_per_epoch, num_classes=None):
    """The run's model, compiled. ``num_classes``: LeJEPA's online probe (None: none)."""
    from jepa_components.backends.keras import VisionTransformer

    sizes = encoder_sizes(config)
    encoder = VisionTransformer(
        image_size=config["image_size"],
        patch_size=config["patch_size"],
        in_channels=channels,
        patch_init_std=cfg.PATCH_INIT_STDS[config["patch_init"]],
        remat=config["remat"] in ("encoder", "both"),
        seed=config["seed"],
        name="encoder",
        **sizes,
    )
    if config["method"] == "lejepa":
        model = lejepa_model(config, encoder, num_classes)
    else:
        model = ijepa_model(config, encoder, sizes)
    model.compile(optimizer=optimizer(config, steps_per_epoch))
    return model


def ijepa_model(config, encoder, sizes):
    from jepa_components.backends.keras import IJEPA, Predictor

    # The predictor's MLP ratio is 4 whatever the encoder's (official vit_predictor).
    predictor = Predictor.for_encoder(
        encoder,
        embed_dim=config["predictor_embed_dim"],
        depth=config["predictor_depth"],
        num_heads=sizes["num_heads"],
        mlp_ratio=4.0,
        remat=config["remat"] in ("predictor", "both"),
        seed=config["seed"] + 1,
        name="predictor",
    )
    if config["method"] == "ijepa":
        return IJEPA(encoder=encoder, predictor=predictor, loss=config["loss"])
    from jepa_components.backends.keras import SIGReg

    return IJEPA(
        encoder=encoder,
        predictor=predictor,
        loss=config["loss"],
        regularizer=SIGReg(num_slices=config["num_slices"], seed=config["seed"] + 1),
        regularizer_weight=config["sigreg_weight"],
        target_encoder=config["target_encoder"],
    )


def lejepa_model(config, encoder, num_classes):
    from jepa_components.backends.keras import LeJEPA, make_projector

    projector = make_projector(
        config["proj_dim"], (config["proj_hidden"],) * 2, seed=config["seed"] + 1
    )
    return LeJEPA(
        encoder,
        projector,
        num_global_views=config["views"],
        sigreg_weight=config["sigreg_weight"],
        num_slices=config["num_slices"],
        num_classes=num_classes,
        seed=config["seed"] + 1,
    )


def optimizer(config, steps_per_epoch):
    """AdamW with warmup-cosine LR and cosine weight decay (constant when both ends agree)."""
    from jepa_components.backends.keras.training.optimizers import make_adamw

    return make_adamw(
        steps_per_epoch=steps_per_epoch,
        epochs=config["epochs"],
        warmup_epochs=config["warmup_epochs"],
        start_lr=config["start_lr"],
        ref_lr=config["lr"],
        final_lr=min(config["final_lr"], config["lr"]),
        weight_decay=config["weight_decay"],
        final_weight_decay=config["final_weight_decay"],
    )


def probe_classes(config, source):
    """LeJEPA's online probe: the number of classes of labelled data, else None."""
    if config["method"] != "lejepa" or not source.labelled:
        return None
    return int(source.labels.max()) + 1


def random_init_encoder(model):
    """The run's encoder at its (seeded) initialization: the baseline."""
    encoder = type(model.encoder).from_config(model.encoder.get_config())
    encoder.build(None)
    return encoder


def load_resumed(config, state, steps_per_epoch):
    import keras

    import jepa_components.backends.keras  # noqa: F401  (registers the classes)

    path = os.path.join(config["output_dir"], run.CHECKPOINT)
    run.check_checkpoint(config["output_dir"])  # again: it may have changed since start-up
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # e.g. a checkpoint of the first release (other variables)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError(
            f"cannot load {path} (written by another version?): {first_line}"
        ) from None
    expected = "LeJEPA" if config["method"] == "lejepa" else "IJEPA"
    if type(model).__name__ != expected:
        raise InputError(
            f"{path} holds a {type(model).__name__} model, not the {expected} of "
            f"--method {config['method']} (config.yaml); was the directory edited?"
        )
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if iterations != state["step"] or state["steps_per_epoch"] != steps_per_epoch:
        raise InputError(
            f"checkpoint and {run.TRAIN_STATE} in {config['output_dir']} disagree "
            f"(optimizer step {iterations}, state step {state['step']}; "
            f"{state['steps_per_epoch']} vs {steps_per_epoch} steps per epoch); "
            "was the directory edited?"
        )
    return model


def steps_for(config, source):
    available = len(source.train_indices) // config["batch_size"]
    if available < 1:
        raise InputError(
            f"--batch-size {config['batch_size']} is larger than the training "
            f"split ({len(source.train_indices)} images)"
        )
    if config["steps_per_epoch"] is not None:
        return min(available, config["steps_per_epoch"])
    return available


def make_sampler(config):
    """The mask sampler of an I-JEPA method; None for LeJEPA (no masks)."""
    if not is_ijepa(config):
        return None
    from jepa_components.masks import make_sampler as make

    height, width = cfg.patch_grid(config)  # the encoder's grid; fit checks they agree
    try:  # infeasible configurations are refused here, never mid-run
        return make(config["masking"], (height, width), seed=config["seed"])
    except ValueError as error:
        raise InputError(
            f"--masking {config['masking']} cannot mask a {height}x{width} patch "
            f"grid: {str(error).splitlines()[0]}"
        ) from None


def distribute(config):
    """Set ``--distribute data``; returns the number of devices used."""
    if config["distribute"] == "none":
        return 1
    from jepa_components.backends.keras.training.distribution import data_parallel

    try:
        distribution = data_parallel(global_batch_size=config["batch_size"])
    except ValueError as error:
        raise InputError(f"--distribute data: {str(error).splitlines()[0]}") from None
    return int(distribution.device_mesh.devices.size)


# ---------------------------------------------------------------- outputs
def save_config(config):
    import yaml

    options = {k: v for k, v in cfg.saved_options(config).items() if k not in PER_INVOCATION}
    path = os.path.join(config["output_dir"], "config.yaml")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(
            "# Resolved options of this run; reproduce it with\n"
            "#   python examples/train_ijepa.py --config config.yaml\n"
        )
        yaml.safe_dump(options, stream, sort_keys=True)


LOSS_NAMES = {
    "ijepa": "I-JEPA loss",
    "lejepa": "LeJEPA loss (+ online probe)",
    "ijepa-sigreg": "I-JEPA loss + SIGReg",
}
PICTURES = {"ijepa": "masks.png", "lejepa": "views.png", "ijepa-sigreg": "masks.png"}


def write_pictures(config, source, sampler, rows):
    import _train_plots as plots

    if rows:
        plots.plot_loss(
            rows, os.path.join(config["output_dir"], "loss.png"), LOSS_NAMES[config["method"]]
        )
    shown = source.train_indices[:8]
    if sampler is None:  # LeJEPA: the views of the first images
        plots.plot_views(
            source.load_batch(shown[:6]),
            data.view_transform(config, source),
            source.normalize,
            os.path.join(config["output_dir"], PICTURES[config["method"]]),
            f"{config['views']} global + {config['local_views']} local views "
            "(seeded example draw; training draws anew every step)",
            seed=config["seed"],
        )
        return
    plots.plot_masks(
        source.load_batch(shown),
        sampler.sample(len(shown), start=0),
        config["patch_size"],
        os.path.join(config["output_dir"], "masks.png"),
        f"{config['masking']} masks, first batch of the run",
    )


def evaluate(config, model, source):
    import _train_eval as evaluation

    train = data.subset(source.train_indices, config["eval_samples"], config["seed"])
    test = data.subset(source.test_indices, config["eval_samples"], config["seed"] + 1)
    normalize = source.normalize
    result = evaluation.evaluate(
        model.feature_encoder(),
        random_init_encoder(model),
        normalize(source.load_batch(train)),
        source.labels[train],
        normalize(source.load_batch(test)),
        source.labels[test],
        last_n=config["probe_layers"],
        seed=config["seed"],
        labelled=source.labelled,
        encoder_name="target encoder" if has_ema(config) else "encoder",
    )
    if getattr(model, "probe", None) is not None and source.labelled:
        result["online_probe_accuracy"] = evaluation.online_probe_accuracy(
            model, normalize(source.load_batch(test)), source.labels[test]
        )
    if not source.labelled:
        return result, [
            "No labels (need >= 2 class subfolders): probes skipped.",
            evaluation.spread_line(result),
        ]
    return result, evaluation.verdict(result)


def model_report(config):
    """The ``model`` entry of ``report.json``."""
    entry = {
        **encoder_sizes(config),
        "name": config["model"],
        "image_size": config["image_size"],
        "patch_size": config["patch_size"],
    }
    if is_ijepa(config):
        entry.update(
            predictor_embed_dim=config["predictor_embed_dim"],
            predictor_depth=config["predictor_depth"],
            predictor_mlp_ratio=4.0,
        )
    else:
        entry.update(projector_dims=[config["proj_hidden"]] * 2 + [config["proj_dim"]])
    return entry


# ---------------------------------------------------------------- main
class Session:
    """Everything one invocation sets up before ``fit``."""

    def __init__(self, config, started):
        self.config, self.started = config, started
        self.source = data.make_source(config)
        self.steps_per_epoch = steps_for(config, self.source)
        self.sampler = make_sampler(config)
        # The fixed batch of the health checks; read first, so unreadable
        # files with --on-bad-image stop fail before any expensive set-up.
        self.probe_images = self.source.normalize(
            self.source.load_batch(self.source.train_indices[:PROBE_BATCH])
        )
        import keras  # only now: bad input above fails fast, without a framework

        self.backend = keras.backend.backend()
        self.devices = distribute(config)  # before any model is built or loaded
        self.total_steps = config["epochs"] * self.steps_per_epoch
        self.stop_epoch = min(config["epochs"], config["stop_after_epochs"] or config["epochs"])
        encoder_sizes(config)  # bad sizes: one error line before any output
        os.makedirs(config["output_dir"], exist_ok=True)
        # Every random choice is seeded explicitly (weights, data order, crops,
        # masks); keras.utils.set_random_seed is not needed.
        state = run.load_train_state(config["output_dir"]) if config["resume"] else None
        if state is None:
            self.model = build_model(
                config,
                self.source.channels,
                self.steps_per_epoch,
                probe_classes(config, self.source),
            )
            self.start_step, self.rows, self.previous_seconds = 0, [], 0.0
            save_config(config)
        else:
            self.model = load_resumed(config, state, self.steps_per_epoch)
            self.start_step = state["step"]
            self.previous_seconds = state.get("train_seconds", 0.0)
            self.rows = run.read_metrics(
                os.path.join(config["output_dir"], "metrics.csv"),
                state["step"],
                inside=config["output_dir"],
            )
            print(
                f"resuming {config['output_dir']} at epoch {state['epochs_done']}, "
                f"step {state['step']}"
            )
        self.start_epoch = self.start_step // self.steps_per_epoch

    def state_for(self, step):
        """The ``train_state.json`` payload at optimizer step ``step``."""
        return {
            "epochs_done": step // self.steps_per_epoch,
            "step": step,
            "steps_per_epoch": self.steps_per_epoch,
            "backend": self.backend,
            "train_seconds": self.previous_seconds + time.time() - self.started,
        }

    def method_line(self):
        config = self.config
        if config["method"] == "lejepa":
            probe = "" if self.model.probe is None else ", online linear probe"
            return (
                f"LeJEPA: {config['views']} global + {config['local_views']} local views, "
                f"projection {config['proj_dim']}, lambda {config['sigreg_weight']:g}{probe}"
            )
        if config["method"] == "ijepa-sigreg":
            return (
                f"I-JEPA + {config['sigreg_weight']:g} x SIGReg, {config['masking']} masks, "
                f"{config['target_encoder']} target encoder"
            )
        return f"I-JEPA, {config['masking']} masks"

    def describe(self):
        config, sizes = self.config, encoder_sizes(self.config)
        print(
            f"data: {self.source.name}; {len(self.source.train_indices)} train / "
            f"{len(self.source.test_indices)} held-out images"
            + ("; random resized crops" if config["augment"] == "crop" else "")
        )
        print(
            f"model: {config['model']} (embed {sizes['embed_dim']}, depth {sizes['depth']}, "
            f"heads {sizes['num_heads']}) at {config['image_size']}px, patch "
            f"{config['patch_size']}; {self.method_line()}; backend {self.backend}"
            + (
                f", data parallel over {self.devices} devices"
                if config["distribute"] == "data"
                else ""
            )
        )
        print(
            f"training epochs {self.start_epoch + 1}..{self.stop_epoch} of {config['epochs']}, "
            f"{self.steps_per_epoch} steps of {config['batch_size']} images each; outputs in "
            f"{config['output_dir']}",
            flush=True,
        )

    def fit(self):
        """Train up to ``stop_epoch``; returns ``(health monitor, run logger)``."""
        from jepa_components.backends.keras import TargetEMA

        config = self.config
        health = run.make_health(
            self.probe_images,
            every=config["monitor_every"],
            min_std_ratio=config["collapse_ratio"] or None,
            verbose=False,
        )
        logger = run.make_logger(
            rows=self.rows,
            start_step=self.start_step,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            batch_size=config["batch_size"],
            health=health,
            output_dir=config["output_dir"],
            state_for=self.state_for,
            features="target feature" if has_ema(config) else "feature",
        )
        if self.start_epoch < self.stop_epoch:
            if self.sampler is None:
                dataset = data.make_view_dataset(
                    config, self.source, self.steps_per_epoch, self.start_epoch
                )
            else:
                dataset = data.make_dataset(
                    config, self.source, self.sampler, self.steps_per_epoch, self.start_epoch
                )
            callbacks = [health, logger]
            if has_ema(config):
                # The momentum schedule spans the whole run, also when it is split
                # over invocations (--stop-after-epochs, --resume).
                ema = TargetEMA(
                    momentum=config["ema_start"],
                    final_momentum=config["ema_end"],
                    total_steps=self.total_steps,
                )
                callbacks.insert(0, ema)
            # A reader error (--on-bad-image stop) leaves fit as the reader's
            # own exception: main() turns it into one error line.
            self.model.fit(
                dataset,
                epochs=self.stop_epoch,
                initial_epoch=self.start_epoch,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        if health.stop_kind is not None:
            print(f"warning: stopping training: {health.stop_reason}", file=sys.stderr, flush=True)
        else:
            # The final state, with the last EMA update applied.
            run.save_checkpoint(self.model, config["output_dir"], self.state_for(logger.step))
        run.write_metrics(os.path.join(config["output_dir"], "metrics.csv"), self.rows)
        write_pictures(config, self.source, self.sampler, self.rows)
        return health, logger

    def report(self, health, logger):
        """Evaluate (unless skipped), write ``report.json``, print the verdict."""
        import keras

        config, source = self.config, self.source
        status = health.stop_kind or (
            "completed" if self.stop_epoch == config["epochs"] else "paused"
        )
        speed = logger.images_per_second
        report = {
            "status": status,
            "stop_message": health.stop_reason,
            "backend": self.backend,
            "keras_version": keras.__version__,
            "devices": self.devices,
            "epochs": logger.step // self.steps_per_epoch,
            "epochs_planned": config["epochs"],
            "steps": logger.step,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": config["batch_size"],
            "final_loss": run.final_loss(self.rows),
            "images_per_second": None if speed is None else round(speed, 2),
            "images_per_second_note": "steady state of this invocation's training: the first "
            "(compiling) step and the epoch-end checkpoints excluded",
            "dataset": config["dataset"],
            "data": source.name,
            "num_train_images": int(len(source.train_indices)),
            "num_test_images": int(len(source.test_indices)),
            "method": config["method"],
            "model": model_report(config),
            "config": cfg.saved_options(config),
        }
        verdict = []
        if config["no_eval"] or status == "paused":
            report["evaluation"] = "skipped"
        elif status in ("nonfinite_loss", "nonfinite_features"):
            report["evaluation"] = "skipped (non-finite values: the weights are not usable)"
        else:
            if config["distribute"] == "data":
                # Evaluation batches need not split evenly over the devices: one device.
                keras.distribution.set_distribution(None)
            print(
                "evaluating frozen features (linear, k-NN and attentive probes, collapse "
                "figures)...",
                flush=True,
            )
            result, verdict = evaluate(config, self.model, source)
            report.update(result)
            report["verdict"] = verdict
        report["skipped_images"] = source.skipped
        if source.skipped:
            names = sorted(source.folder.skipped_files)
            print(
                f"warning: skipped {source.skipped} unreadable image file(s): "
                f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}",
                file=sys.stderr,
            )
        report["seconds"] = round(time.time() - self.started, 2)
        report["train_seconds_total"] = round(self.previous_seconds + time.time() - self.started, 2)
        run.write_json(os.path.join(config["output_dir"], "report.json"), report)
        for line in verdict:
            print(line)
        print(
            f"{status}: {logger.step} steps in {report['seconds']:.0f}s"
            + (f" ({speed:.0f} img/s in training)" if speed is not None else "")
            + f"; outputs in {config['output_dir']} (report.json, metrics.csv, loss.png, "
            f"{PICTURES[config['method']]}, {run.CHECKPOINT})"
        )
        if status == "paused":
            print(
                f"continue with: python {sys.argv[0]} --resume --output-dir {config['output_dir']}"
            )
        return 1 if health.stop_kind else 0


# Bad input: one "error: ..." line and exit status 2. ConfigError and
# RunFileError cover the command line, config files and a --resume folder;
# DatasetError every data reader of the library (image folders, IDX files),
# also when a reader thread raises it inside fit.
BAD_INPUT = (cfg.ConfigError, run.RunFileError, InputError, datasets.DatasetError)


def _one_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


def main(argv=None):
    started = time.time()
    try:
        try:
            session = Session(prepare_config(argv), started)
        except OSError as error:  # set-up: an --output-dir that is a file, no access...
            where = f"{error.filename}: " if error.filename else ""
            raise InputError(f"{where}{error.strerror or error}") from None
        session.describe()
        return session.report(*session.fit())
    except BAD_INPUT as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; the last epoch's checkpoint is kept: continue with --resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
