"""Train an I-JEPA end to end, evaluate its frozen features, resume it.

    KERAS_BACKEND=jax python examples/train_ijepa.py

With no arguments: scikit-learn's bundled handwritten digits (1,797 real
8x8 images, no download) upsampled to 32x32, a small ViT (patch 4, an 8x8
grid), the paper's multi-block masks, AdamW with warmup-cosine LR and
cosine weight decay, and the EMA target encoder (Assran et al. 2023). At the
end the trained target encoder, the same architecture at random
initialization and raw pixels are compared with a linear probe and k-NN on
a held-out split, and a short verdict says which is better.

Same script on ``KERAS_BACKEND=torch`` and ``tensorflow``. ``--help`` lists
every option; ``--config FILE`` (YAML/TOML) takes the same names, and the
``config.yaml`` written to the output directory reproduces a run.

Outputs (``--output-dir``, default ``runs/ijepa-<date-time>``):
``config.yaml``, ``metrics.csv``, ``checkpoint.keras`` + ``train_state.json``
(the full training state: ``--resume`` continues from it), ``loss.png``,
``masks.png``, ``report.json``.

Exit status: 0 done; 1 training stopped (non-finite loss or collapse; the
outputs are still written); 2 bad input (one ``error: ...`` line).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# TensorFlow (imported by Keras on every backend) logs a screen of INFO lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _train_config as cfg  # noqa: E402
import _train_data as data  # noqa: E402
import _train_run as run  # noqa: E402
from jepa_components import datasets  # noqa: E402

PER_INVOCATION = ("resume", "no_eval", "stop_after_epochs", "output_dir")


class InputError(Exception):
    """Bad input found after parsing (data, output directory, model sizes)."""


# ---------------------------------------------------------------- set-up
def prepare_config(argv):
    """Parse, merge with a resumed run, validate. Raises ConfigError/InputError."""
    config, given = cfg.resolve(argv)
    if config["resume"]:
        if config["output_dir"] is None:
            raise InputError("--resume needs --output-dir (the run to continue)")
        saved_path = os.path.join(config["output_dir"], "config.yaml")
        if run.load_train_state(config["output_dir"]) is None or not os.path.isfile(saved_path):
            raise InputError(f"nothing to resume in {config['output_dir']}: no "
                             f"{run.CHECKPOINT} / {run.TRAIN_STATE} / config.yaml there")
        saved = {name: cfg.OPTIONS[name][0] for name in cfg.OPTIONS}
        saved.update(cfg.read_config_file(saved_path))
        for name in PER_INVOCATION:
            saved[name] = config[name]
        config = cfg.merge_for_resume(saved, config, given - set(PER_INVOCATION))
    cfg.validate(config)
    if config["output_dir"] is None:
        config["output_dir"] = cfg.default_output_dir()
    if not config["resume"] and run.load_train_state(config["output_dir"]) is not None:
        raise InputError(f"{config['output_dir']} already holds a run ({run.CHECKPOINT}); pass "
                         "--resume to continue it or choose another --output-dir")
    return config


def encoder_sizes(config):
    from jepa_components.backends.keras import VIT_SIZES

    sizes = {**VIT_SIZES, **cfg.EXAMPLE_SIZES}
    embed_dim, depth, num_heads, mlp_ratio = sizes[config["model"]]
    embed_dim = config["embed_dim"] or embed_dim
    depth = config["depth"] or depth
    num_heads = config["num_heads"] or num_heads
    if embed_dim % num_heads or embed_dim % 4:
        raise InputError(f"embedding width {embed_dim} must be a multiple of 4 and of the "
                         f"{num_heads} attention heads (--embed-dim / --num-heads)")
    if config["predictor_embed_dim"] % num_heads or config["predictor_embed_dim"] % 4:
        raise InputError(f"--predictor-embed-dim {config['predictor_embed_dim']} must be a "
                         f"multiple of 4 and of the {num_heads} attention heads")
    return dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio)


def build_model(config, channels, steps_per_epoch):
    from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
    from jepa_components.backends.keras.optimizers import make_adamw

    sizes = encoder_sizes(config)
    encoder = VisionTransformer(image_size=config["image_size"], patch_size=config["patch_size"],
                                in_channels=channels, seed=config["seed"], name="encoder", **sizes)
    predictor = Predictor(
        num_patches=encoder.num_patches, embed_dim=sizes["embed_dim"],
        predictor_embed_dim=config["predictor_embed_dim"], depth=config["predictor_depth"],
        num_heads=sizes["num_heads"], mlp_ratio=sizes["mlp_ratio"], seed=config["seed"] + 1,
        name="predictor")
    model = IJEPA(encoder=encoder, predictor=predictor, loss=config["loss"])
    model.compile(optimizer=make_adamw(
        steps_per_epoch=steps_per_epoch, epochs=config["epochs"],
        warmup_epochs=config["warmup_epochs"], start_lr=config["start_lr"],
        ref_lr=config["lr"], final_lr=min(config["final_lr"], config["lr"]),
        weight_decay=config["weight_decay"], final_weight_decay=config["final_weight_decay"]))
    return model


def random_init_encoder(model):
    """The run's encoder at its (seeded) initialization: the baseline."""
    encoder = type(model.encoder).from_config(model.encoder.get_config())
    encoder.build(None)
    return encoder


def load_resumed(config, state, steps_per_epoch):
    import keras

    import jepa_components.backends.keras  # noqa: F401  (registers the classes)

    model = keras.saving.load_model(os.path.join(config["output_dir"], run.CHECKPOINT))
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if iterations != state["step"] or state["steps_per_epoch"] != steps_per_epoch:
        raise InputError(f"checkpoint and {run.TRAIN_STATE} in {config['output_dir']} disagree "
                         f"(optimizer step {iterations}, state step {state['step']}); "
                         "was the directory edited?")
    return model


def steps_for(config, source):
    available = len(source.train_indices) // config["batch_size"]
    if available < 1:
        raise InputError(f"--batch-size {config['batch_size']} is larger than the training "
                         f"split ({len(source.train_indices)} images)")
    if config["steps_per_epoch"] is not None:
        return min(available, config["steps_per_epoch"])
    return available


# ---------------------------------------------------------------- outputs
def save_config(config):
    import yaml

    options = {k: v for k, v in cfg.saved_options(config).items() if k not in PER_INVOCATION}
    path = os.path.join(config["output_dir"], "config.yaml")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("# Resolved options of this run; reproduce it with\n"
                     "#   python examples/train_ijepa.py --config config.yaml\n")
        yaml.safe_dump(options, stream, sort_keys=True)


def write_pictures(config, source, sampler, rows, masking):
    import _train_plots as plots

    if rows:
        plots.plot_loss(rows, os.path.join(config["output_dir"], "loss.png"))
    shown = source.train_indices[:8]
    plots.plot_masks(source.load_batch(shown), sampler.sample(len(shown), start=0),
                     config["patch_size"], os.path.join(config["output_dir"], "masks.png"),
                     f"{masking} masks, first batch of the run")


def evaluate(config, model, source):
    import _train_eval as evaluation

    train = data.subset(source.train_indices, config["eval_samples"], config["seed"])
    test = data.subset(source.test_indices, config["eval_samples"], config["seed"] + 1)
    train_images = source.normalize(source.load_batch(train))
    test_images = source.normalize(source.load_batch(test))
    baseline = random_init_encoder(model)
    if not source.labelled:
        trained = evaluation.target_collapse_metrics(model.target_encoder, test_images[:256])
        random = evaluation.target_collapse_metrics(baseline, test_images[:256])
        result = {"feature_std": trained["feature_std_mean"],
                  "effective_rank": trained["effective_rank"],
                  "random_init_feature_std": random["feature_std_mean"],
                  "random_init_effective_rank": random["effective_rank"]}
        return result, ["No labels (need >= 2 class subfolders): probes skipped."]
    result = evaluation.evaluate(
        model.target_encoder, baseline, train_images, source.labels[train], test_images,
        source.labels[test], last_n=config["probe_layers"])
    return result, evaluation.verdict(result)


# ---------------------------------------------------------------- main
class Session:
    """Everything one invocation sets up before ``fit``."""

    def __init__(self, config, started):
        from jepa_components.masks import make_sampler

        self.config, self.started = config, started
        self.source = data.make_source(config)
        self.steps_per_epoch = steps_for(config, self.source)
        grid = config["image_size"] // config["patch_size"]
        try:
            self.sampler = make_sampler(config["masking"], (grid, grid), seed=config["seed"])
            self.sampler.sample(config["batch_size"], start=0)
        except (ValueError, RuntimeError) as error:
            raise InputError(f"--masking {config['masking']} cannot mask a {grid}x{grid} patch "
                             f"grid: {str(error).splitlines()[0]}") from None
        # The fixed batch of the collapse checks; read first, so unreadable
        # files with --on-bad-image stop fail before any expensive set-up.
        self.probe_images = self.source.normalize(
            self.source.load_batch(self.source.train_indices[:128]))
        import keras  # only now: bad input above fails fast, without a framework

        self.backend = keras.backend.backend()
        self.total_steps = config["epochs"] * self.steps_per_epoch
        self.stop_epoch = min(config["epochs"], config["stop_after_epochs"] or config["epochs"])
        os.makedirs(config["output_dir"], exist_ok=True)
        # Every random choice is seeded explicitly (weights, data order, masks);
        # keras.utils.set_random_seed is not needed (and would import torch and TF).
        state = run.load_train_state(config["output_dir"]) if config["resume"] else None
        if state is None:
            self.model = build_model(config, self.source.channels, self.steps_per_epoch)
            self.start_epoch, self.rows, self.previous_seconds = 0, [], 0.0
            save_config(config)
        else:
            self.model = load_resumed(config, state, self.steps_per_epoch)
            self.start_epoch = state["epochs_done"]
            self.previous_seconds = state.get("train_seconds", 0.0)
            self.sampler.set_state(state["sampler"])
            self.rows = run.read_metrics(os.path.join(config["output_dir"], "metrics.csv"),
                                         state["step"])
            print(f"resuming {config['output_dir']} at epoch {self.start_epoch}, "
                  f"step {state['step']}")

    def state_for(self, step):
        """The ``train_state.json`` payload at optimizer step ``step``."""
        self.sampler.set_state({"seed": self.sampler.seed,
                                "next_index": step * self.config["batch_size"]})
        return {"epochs_done": step // self.steps_per_epoch, "step": step,
                "steps_per_epoch": self.steps_per_epoch, "sampler": self.sampler.state(),
                "backend": self.backend,
                "train_seconds": self.previous_seconds + time.time() - self.started}

    def describe(self):
        config, sizes = self.config, encoder_sizes(self.config)
        print(f"data: {self.source.name}; {len(self.source.train_indices)} train / "
              f"{len(self.source.test_indices)} held-out images")
        print(f"model: {config['model']} (embed {sizes['embed_dim']}, depth {sizes['depth']}, "
              f"heads {sizes['num_heads']}) at {config['image_size']}px, patch "
              f"{config['patch_size']}; {config['masking']} masks; backend {self.backend}")
        print(f"training epochs {self.start_epoch + 1}..{self.stop_epoch} of {config['epochs']}, "
              f"{self.steps_per_epoch} steps of {config['batch_size']} images each; outputs in "
              f"{config['output_dir']}", flush=True)

    def fit(self):
        """Train up to ``stop_epoch``; returns the monitor (steps, stop reason)."""
        import _train_eval as evaluation
        from jepa_components.backends.keras import TargetEMA
        from jepa_components.schedules import ema_momentum, warmup_cosine_lr

        config, total = self.config, self.total_steps
        lr_kwargs = dict(warmup_steps=int(config["warmup_epochs"] * self.steps_per_epoch),
                         total_steps=total, start_lr=config["start_lr"], ref_lr=config["lr"],
                         final_lr=min(config["final_lr"], config["lr"]))
        batches = data.make_batches(self.source, self.sampler, config, self.steps_per_epoch,
                                    self.start_epoch)
        monitor = run.make_monitor(
            rows=self.rows, start_step=self.start_epoch * self.steps_per_epoch,
            steps_per_epoch=self.steps_per_epoch, total_steps=total,
            # Optimizer step k (1-based) uses the official schedules' value at k
            # (see backends/keras/optimizers.py) and is followed by EMA update k - 1.
            lr_at=lambda i: float(warmup_cosine_lr(i + 1, **lr_kwargs)),
            momentum_at=lambda i: float(ema_momentum(i, total, config["ema_start"],
                                                     config["ema_end"])),
            collapse_check=lambda encoder: evaluation.target_collapse_metrics(
                encoder, self.probe_images),
            collapse_threshold=config["collapse_threshold"],
            monitor_every=config["monitor_every"], output_dir=config["output_dir"],
            state_for=self.state_for, data_error=lambda: batches.error)
        if self.start_epoch < self.stop_epoch:
            ema = TargetEMA(momentum=config["ema_start"], final_momentum=config["ema_end"],
                            total_steps=total)
            self.model.fit(batches, epochs=self.stop_epoch, initial_epoch=self.start_epoch,
                           shuffle=False, verbose=0, callbacks=[ema, monitor])
        if batches.error is not None:
            raise batches.error  # --on-bad-image stop: a clear one-line error, exit 2
        if monitor.stop_reason is None:
            # The final state, with the last EMA update applied.
            run.save_checkpoint(self.model, config["output_dir"], self.state_for(monitor.step))
        run.write_metrics(os.path.join(config["output_dir"], "metrics.csv"), self.rows)
        write_pictures(config, self.source, self.sampler, self.rows, config["masking"])
        return monitor

    def report(self, monitor):
        """Evaluate (unless skipped), write ``report.json``, print the verdict."""
        import keras

        config, source = self.config, self.source
        status = monitor.stop_reason or (
            "completed" if self.stop_epoch == config["epochs"] else "paused")
        report = {
            "status": status, "stop_message": getattr(monitor, "stop_message", None),
            "backend": self.backend, "keras_version": keras.__version__,
            "epochs": monitor.step // self.steps_per_epoch, "epochs_planned": config["epochs"],
            "steps": monitor.step, "steps_per_epoch": self.steps_per_epoch,
            "batch_size": config["batch_size"], "final_loss": run.final_loss(self.rows),
            "data": source.name, "num_train_images": int(len(source.train_indices)),
            "num_test_images": int(len(source.test_indices)),
            "model": {**encoder_sizes(config), "name": config["model"],
                      "image_size": config["image_size"], "patch_size": config["patch_size"]},
            "config": cfg.saved_options(config),
        }
        verdict = []
        if config["no_eval"] or status == "paused":
            report["evaluation"] = "skipped"
        elif monitor.stop_reason == "nonfinite_loss":
            report["evaluation"] = "skipped (non-finite loss: the weights are not usable)"
        else:
            print("evaluating frozen features (linear probe, k-NN, collapse figures)...",
                  flush=True)
            result, verdict = evaluate(config, self.model, source)
            report.update(result)
            report["verdict"] = verdict
        report["skipped_images"] = source.skipped
        if source.skipped:
            names = sorted(source.folder.skipped_files)
            print(f"warning: skipped {source.skipped} unreadable image file(s): "
                  f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}", file=sys.stderr)
        report["seconds"] = round(time.time() - self.started, 2)
        report["train_seconds_total"] = round(
            self.previous_seconds + time.time() - self.started, 2)
        run.write_json(os.path.join(config["output_dir"], "report.json"), report)
        for line in verdict:
            print(line)
        print(f"{status}: {monitor.step} steps in {report['seconds']:.0f}s; outputs in "
              f"{config['output_dir']} (report.json, metrics.csv, loss.png, masks.png, "
              f"{run.CHECKPOINT})")
        if status == "paused":
            print(f"continue with: python {sys.argv[0]} --resume --output-dir "
                  f"{config['output_dir']}")
        return 1 if monitor.stop_reason else 0


def main(argv=None):
    started = time.time()
    try:
        session = Session(prepare_config(argv), started)
        session.describe()
        return session.report(session.fit())
    except (cfg.ConfigError, InputError, datasets.DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last epoch's checkpoint is kept: continue with --resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
