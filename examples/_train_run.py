"""Run bookkeeping of examples/train_ijepa.py: monitor, metrics, checkpoints.

- :class:`TrainingMonitor` (a Keras callback): per-step loss, learning rate
  and EMA momentum into ``metrics.csv`` and a progress bar; a collapse check
  (per-dimension std and effective rank of the target features on a fixed
  batch) every ``monitor_every`` steps and at each epoch end; a stop, with
  the step number, on a non-finite loss or collapse; a checkpoint at each
  epoch end.
- :func:`save_checkpoint` / :func:`load_train_state`: ``checkpoint.keras``
  holds the whole model (context and target encoders, predictor, the EMA
  counters) and the optimizer (its step counter drives the LR and weight
  decay schedules); ``train_state.json`` next to it holds the epoch, the
  step and the mask sampler's stream position.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time

import numpy as np

METRIC_FIELDS = ("step", "epoch", "loss", "lr", "momentum", "feature_std",
                 "effective_rank", "seconds")
CHECKPOINT = "checkpoint.keras"
TRAIN_STATE = "train_state.json"


def write_json(path, payload):
    """Write JSON atomically (a crash never leaves half a file)."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(payload, stream, indent=2, sort_keys=True)
        stream.write("\n")
    os.replace(temporary, path)


def write_metrics(path, rows):
    temporary = path + ".tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
    os.replace(temporary, path)


def read_metrics(path, up_to_step):
    """Rows of an earlier run's ``metrics.csv`` with ``step <= up_to_step``."""
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            parsed = {k: (None if row.get(k) in (None, "") else float(row[k])) for k in METRIC_FIELDS}
            parsed["step"], parsed["epoch"] = int(parsed["step"]), int(parsed["epoch"])
            if parsed["step"] <= up_to_step:
                rows.append(parsed)
    return rows


def save_checkpoint(model, output_dir, state):
    """``checkpoint.keras`` (model + optimizer) and ``train_state.json``."""
    path = os.path.join(output_dir, CHECKPOINT)
    temporary = os.path.join(output_dir, "checkpoint.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    write_json(os.path.join(output_dir, TRAIN_STATE), state)


def load_train_state(output_dir):
    path = os.path.join(output_dir, TRAIN_STATE)
    if not os.path.isfile(os.path.join(output_dir, CHECKPOINT)) or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _keras_callback_base():
    import keras

    return keras.callbacks.Callback


def make_monitor(**kwargs):
    """A :class:`TrainingMonitor` (the class is built on first use: keras import)."""
    base = _keras_callback_base()

    class TrainingMonitor(base):
        """See the module docstring. ``state_for(step, epochs_done)`` makes the
        ``train_state.json`` payload; ``collapse_check(encoder)`` returns the
        collapse metrics dict of the fixed monitoring batch."""

        def __init__(self, *, rows, start_step, steps_per_epoch, total_steps, lr_at,
                     momentum_at, collapse_check, collapse_threshold, monitor_every,
                     output_dir, state_for, data_error=lambda: None, quiet=False):
            super().__init__()
            self.rows = rows
            self.step = start_step
            self.steps_per_epoch = steps_per_epoch
            self.total_steps = total_steps
            self.lr_at, self.momentum_at = lr_at, momentum_at
            self.collapse_check = collapse_check
            self.collapse_threshold = collapse_threshold
            self.monitor_every = monitor_every
            self.output_dir = output_dir
            self.state_for = state_for
            self.data_error = data_error
            self.quiet = quiet
            self.stop_reason = None
            self.last_collapse = None
            self._previous_mean = 0.0
            self._bar = None
            self._started = time.time()
            self._epoch_started = time.time()

        # -- helpers -------------------------------------------------------
        def _say(self, text):
            if self.quiet:
                return
            if self._bar is not None:
                self._bar.write(text)
            else:
                print(text, flush=True)

        def _check_collapse(self, row):
            metrics = self.collapse_check(self.model.target_encoder)
            self.last_collapse = metrics
            row["feature_std"] = metrics["feature_std_mean"]
            row["effective_rank"] = metrics["effective_rank"]
            if not math.isfinite(metrics["feature_std_mean"]) or (
                    metrics["feature_std_mean"] < self.collapse_threshold):
                self._stop(
                    "collapse",
                    f"representation collapse at step {self.step}: mean per-dimension std "
                    f"of the target features {metrics['feature_std_mean']:.2e} < "
                    f"{self.collapse_threshold:g} (effective rank "
                    f"{metrics['effective_rank']:.1f})")

        def _stop(self, kind, message):
            if self.stop_reason is None:
                self.stop_reason = kind
                self.stop_message = message
                if kind != "bad_image":  # that one ends the run with an error line
                    print(f"warning: stopping training: {message}", file=sys.stderr, flush=True)
            self.model.stop_training = True

        # -- keras hooks ---------------------------------------------------
        def on_train_begin(self, logs=None):
            if not self.quiet:
                from tqdm.auto import tqdm

                # disable=None: no bar when stderr is not a terminal (logs, CI).
                self._bar = tqdm(total=self.total_steps, initial=self.step, unit="step",
                                 dynamic_ncols=True, disable=None, leave=True)
                if self._bar.disable:
                    self._bar = None

        def on_epoch_begin(self, epoch, logs=None):
            self._previous_mean = 0.0
            self._epoch_started = time.time()
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            # Keras reports the running mean of the epoch; recover this batch's.
            mean = float(logs["loss"])
            loss = (batch + 1) * mean - batch * self._previous_mean
            self._previous_mean = mean
            self.step += 1
            if self.data_error() is not None:
                self._stop("bad_image", str(self.data_error()))
                return
            row = {"step": self.step, "epoch": self.epoch + 1, "loss": loss,
                   "lr": self.lr_at(self.step - 1), "momentum": self.momentum_at(self.step - 1),
                   "seconds": round(time.time() - self._started, 3)}
            self.rows.append(row)
            if not math.isfinite(loss) or not math.isfinite(mean):
                self._stop("nonfinite_loss", f"non-finite loss ({loss}) at step {self.step}")
                return
            end_of_epoch = batch + 1 == self.steps_per_epoch
            if self.step % self.monitor_every == 0 or end_of_epoch:
                self._check_collapse(row)
            if self._bar is not None:
                postfix = {"loss": f"{loss:.4f}", "lr": f"{row['lr']:.2e}",
                           "ema": f"{row['momentum']:.5f}"}
                if self.last_collapse is not None:
                    postfix["std"] = f"{self.last_collapse['feature_std_mean']:.3f}"
                self._bar.set_postfix(postfix, refresh=False)
                self._bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            if self.stop_reason is not None:
                return  # an interrupted epoch: keep the last complete checkpoint
            collapse = self.last_collapse or {}
            self._say(
                f"epoch {epoch + 1}: step {self.step}/{self.total_steps}, "
                f"loss {self._previous_mean:.4f} (epoch mean), "
                f"target feature std {collapse.get('feature_std_mean', float('nan')):.3f}, "
                f"effective rank {collapse.get('effective_rank', float('nan')):.1f}, "
                f"{time.time() - self._epoch_started:.1f}s")
            save_checkpoint(self.model, self.output_dir, self.state_for(self.step))
            write_metrics(os.path.join(self.output_dir, "metrics.csv"), self.rows)

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    return TrainingMonitor(**kwargs)


def final_loss(rows, last=10):
    """Mean loss of the last ``last`` steps (a single step is noisy)."""
    losses = [r["loss"] for r in rows[-last:] if r.get("loss") is not None]
    return float(np.mean(losses)) if losses else None
