"""Run bookkeeping of examples/train_ijepa.py: metrics, checkpoints, progress.

- :class:`RunLogger` (a Keras callback, built by :func:`make_logger`): the
  per-step loss into ``metrics.csv``, a progress bar with the throughput,
  one line per epoch and a checkpoint at each epoch end. The health checks
  themselves (collapse, non-finite loss) are the library's
  :class:`~jepa_components.backends.keras.HealthMonitor`; its values are
  copied into the rows of the steps it checked.
- :func:`save_checkpoint` / :func:`load_train_state`: ``checkpoint.keras``
  holds the whole model (I-JEPA: context and target encoders, predictor, the
  EMA schedule and counters; LeJEPA: encoder, projector, online probe) and
  the optimizer (its step counter drives the LR
  and weight decay schedules; the ``SIGReg`` layer saves the state of its
  random directions itself); ``train_state.json`` next to it holds the
  epoch and the step. Nothing else is needed to resume: the
  training batches (image order, crops, masks, views) are a pure function of the seed, the epoch and
  the step (``MaskedImageDataset``, ``MultiViewDataset``).

``metrics.csv`` columns: ``step`` (optimizer steps so far), ``epoch``
(1-based), ``loss`` (this step's batch loss: LeJEPA's includes its online
probe's cross-entropy when the data is labelled), ``seconds`` (since this
invocation's training began), and on the steps the health monitor checked
(every ``--monitor-every`` steps and at each epoch end): ``feature_std`` and
``effective_rank`` of the target encoder's mean-pooled features on a fixed
batch, ``learning_rate`` (``optimizer.learning_rate`` after the step: the
rate of the next update) and ``ema_momentum`` (the model's momentum of the
EMA update that follows the step; empty for a model without an EMA target:
LeJEPA, ``--target-encoder online``). Both are read from the optimizer and the
model, not recomputed; reading them at every step would cost a full state
sync per step on jax, hence only at the checks.

A folder given to ``--resume`` may come from a stranger: its files are read
only when they are regular files inside it (never a FIFO or a link out of
it), size-bounded, and strictly checked (:class:`RunFileError`, naming the
file, otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import zipfile

import _train_files as files
import numpy as np

from jepa_components._images import open_regular_file
from jepa_components.datasets import DatasetError

METRIC_FIELDS = (
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "ema_momentum",
    "feature_std",
    "effective_rank",
    "seconds",
)
HEALTH_FIELDS = ("learning_rate", "ema_momentum", "feature_std", "effective_rank")
CHECKPOINT = "checkpoint.keras"
TRAIN_STATE = "train_state.json"
MAX_STATE_BYTES = 64 * 1024  # train_state.json is ~150 bytes
MAX_METRICS_ROW_BYTES = 512  # a metrics.csv row is ~200 bytes at most


class RunFileError(ValueError):
    """A file of the output folder cannot be used; the message names it (one line)."""


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


def read_metrics(path, up_to_step, *, inside=None):
    """Rows of an earlier run's ``metrics.csv`` with ``step <= up_to_step``.

    The file must be a regular file (inside ``inside``) of a size that
    ``up_to_step`` explains; a row that does not parse is a
    :class:`RunFileError` naming the file and the line.
    """
    if not os.path.lexists(path):
        return []
    # The rows up to the checkpoint, plus at most as many of an interrupted epoch.
    limit = MAX_METRICS_ROW_BYTES * (2 * up_to_step + 2) + 65536
    content = files.read_bounded(
        path, limit=limit, inside=inside, error=RunFileError, what="metrics file"
    )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunFileError(f"metrics file {path} is not UTF-8 text (byte {error.start})") from None
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = {"step", "epoch", "loss"} - set(reader.fieldnames or ())
        if missing:
            raise RunFileError(f"metrics file {path} has no column {', '.join(sorted(missing))}")
        for row in reader:
            step, epoch = int(row["step"]), int(row["epoch"])
            if step > up_to_step:
                continue
            parsed = {
                k: (None if row.get(k) in (None, "") else float(row[k]))
                for k in METRIC_FIELDS
                if k not in ("step", "epoch")
            }
            if not all(math.isfinite(v) for v in parsed.values() if v is not None):
                raise ValueError(f"a non-finite value at step {step}")
            if step < 1 or epoch < 1:
                raise ValueError(f"step {step}, epoch {epoch}")
            rows.append({"step": step, "epoch": epoch, **parsed})
    except RunFileError:
        raise
    except (ValueError, TypeError, csv.Error) as error:
        line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise RunFileError(
            f"metrics file {path} has a bad row near line {reader.line_num}: {line}"
        ) from None
    return rows


def save_checkpoint(model, output_dir, state):
    """``checkpoint.keras`` (model + optimizer) and ``train_state.json``."""
    path = os.path.join(output_dir, CHECKPOINT)
    temporary = os.path.join(output_dir, "checkpoint.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    write_json(os.path.join(output_dir, TRAIN_STATE), state)


def holds_run(output_dir):
    """True when ``output_dir`` has both a checkpoint and a train state (of any kind)."""
    return all(
        os.path.lexists(os.path.join(output_dir, name)) for name in (CHECKPOINT, TRAIN_STATE)
    )


def load_train_state(output_dir):
    """The checked ``train_state.json`` of ``output_dir``; None when it holds no run.

    Raises :class:`RunFileError` (naming the file) when the file is not a
    regular file inside the folder, larger than :data:`MAX_STATE_BYTES`,
    not a JSON object, or lacks a key or has a value of the wrong type.
    """
    if not holds_run(output_dir):
        return None
    path = os.path.join(output_dir, TRAIN_STATE)
    content = files.read_bounded(
        path, limit=MAX_STATE_BYTES, inside=output_dir, error=RunFileError, what="train state"
    )

    def refuse(name):
        raise ValueError(f"non-standard constant {name}")

    try:
        state = json.loads(content.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise RunFileError(f"train state {path} is not valid JSON: {line}") from None
    if not isinstance(state, dict):
        raise RunFileError(f"train state {path} must hold a JSON object, not {files.shown(state)}")
    for key, low in (("step", 0), ("epochs_done", 0), ("steps_per_epoch", 1)):
        if key not in state:
            raise RunFileError(f"train state {path} lacks the key {key!r}")
        value = state[key]
        if type(value) is not int or value < low:
            raise RunFileError(
                f"train state {path}: {key!r} must be an integer >= {low}, got {files.shown(value)}"
            )
    seconds = state.setdefault("train_seconds", 0.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise RunFileError(
            f"train state {path}: 'train_seconds' must be a number >= 0, got {files.shown(seconds)}"
        )
    if state["epochs_done"] != state["step"] // state["steps_per_epoch"]:
        raise RunFileError(
            f"train state {path} is inconsistent: step {state['step']} of "
            f"{state['steps_per_epoch']} per epoch is not "
            f"{state['epochs_done']} epochs done"
        )
    return state


def check_checkpoint(output_dir):
    """Refuse a ``checkpoint.keras`` that is not a regular zip file inside ``output_dir``.

    Cheap (no Keras): so a broken resume fails before any data is read.
    """
    path = os.path.join(output_dir, CHECKPOINT)
    try:
        with open_regular_file(path, inside=output_dir) as stream:
            is_zip = zipfile.is_zipfile(stream)
    except FileNotFoundError:
        raise RunFileError(f"checkpoint not found: {path}") from None
    except DatasetError as problem:
        raise RunFileError(f"checkpoint {problem}") from None
    except OSError as problem:
        raise RunFileError(
            f"cannot read checkpoint {path}: {problem.strerror or problem}"
        ) from None
    if not is_zip:
        raise RunFileError(f"checkpoint {path} is not a .keras file (a zip archive): refused")


def final_loss(rows, last=10):
    """Mean loss of the last ``last`` steps (a single step is noisy)."""
    losses = [r["loss"] for r in rows[-last:] if r.get("loss") is not None]
    return float(np.mean(losses)) if losses else None


def make_health(probe_images, **kwargs):
    """The run's ``HealthMonitor`` (collapse and non-finite stop) on the evaluated encoder."""
    from jepa_components.backends.keras import HealthMonitor

    return HealthMonitor(probe_images, **kwargs)


def make_logger(**kwargs):
    """A :class:`RunLogger` (the class is built on first use: keras import)."""
    import keras

    class RunLogger(keras.callbacks.Callback):
        """Per-step rows, progress, throughput and epoch-end checkpoints.

        Args:
            rows: list the rows are appended to (an earlier run's rows on resume).
            start_step: optimizer steps done before this ``fit``.
            steps_per_epoch, total_steps, batch_size: of the run.
            health: the run's ``HealthMonitor`` (placed before this callback).
            output_dir: where the checkpoint and ``metrics.csv`` go.
            state_for: ``step -> train_state.json payload``.
            quiet: no progress bar or epoch lines.
            features: what the health check's features are, for the epoch lines.

        Throughput (:attr:`images_per_second`): steady state, the steps of
        this ``fit`` after its first one (which compiles the step), each
        timed from the end of the previous step (or the start of its
        epoch's first batch) to its own end, so data loading and the
        periodic health checks count and the epoch-end checkpoints do not.
        """

        def __init__(
            self,
            *,
            rows,
            start_step,
            steps_per_epoch,
            total_steps,
            batch_size,
            health,
            output_dir,
            state_for,
            quiet=False,
            features="target feature",
        ):
            super().__init__()
            self.rows, self.step = rows, start_step
            self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
            self.batch_size, self.health = batch_size, health
            self.output_dir, self.state_for, self.quiet = output_dir, state_for, quiet
            self.features = features
            self._bar = None
            self._started = self._epoch_started = self._last = time.perf_counter()
            self._previous_mean = 0.0
            self._timed_steps, self._timed_seconds, self._first_done = 0, 0.0, False

        @property
        def images_per_second(self):
            """Steady-state img/s of this ``fit`` (None before two steps)."""
            if not self._timed_steps:
                return None
            return self._timed_steps * self.batch_size / self._timed_seconds

        def _say(self, text):
            if self.quiet:
                return
            if self._bar is not None:
                self._bar.write(text)
            else:
                print(text, flush=True)

        def _merge_health(self, row):
            record = self.health.records[-1] if self.health.records else None
            if record is not None and record["step"] == row["step"]:
                row.update({k: record[k] for k in HEALTH_FIELDS if k in record})

        # -- keras hooks ---------------------------------------------------
        def on_train_begin(self, logs=None):
            self._started = time.perf_counter()
            if not self.quiet:
                from tqdm.auto import tqdm

                # disable=None: no bar when stderr is not a terminal (logs, CI).
                self._bar = tqdm(
                    total=self.total_steps,
                    initial=self.step,
                    unit="step",
                    dynamic_ncols=True,
                    disable=None,
                    leave=True,
                )
                if self._bar.disable:
                    self._bar = None

        def on_epoch_begin(self, epoch, logs=None):
            self._previous_mean = 0.0
            self._epoch_started = time.perf_counter()
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self._last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            # Keras reports the running mean of the epoch; recover this batch's.
            mean = float(logs["loss"])  # (also waits for the step to finish)
            loss = (batch + 1) * mean - batch * self._previous_mean
            self._previous_mean = mean
            now = time.perf_counter()
            if self._first_done:
                self._timed_steps += 1
                self._timed_seconds += now - self._last
            self._first_done, self._last = True, now
            self.step += 1
            row = {
                "step": self.step,
                "epoch": self.epoch + 1,
                "loss": loss if math.isfinite(mean) else mean,
                "seconds": round(now - self._started, 3),
            }
            self._merge_health(row)
            self.rows.append(row)
            if self._bar is not None:
                postfix = {"loss": f"{loss:.4f}"}
                checked = self.health.records[-1] if self.health.records else {}
                for key, name, form in (
                    ("learning_rate", "lr", ".2e"),
                    ("ema_momentum", "ema", ".5f"),
                    ("feature_std", "std", ".3f"),
                ):
                    if key in checked:
                        postfix[name] = format(checked[key], form)
                if self.images_per_second is not None:
                    postfix["img/s"] = f"{self.images_per_second:.0f}"
                self._bar.set_postfix(postfix, refresh=False)
                self._bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            if self.rows:
                self._merge_health(self.rows[-1])  # the epoch-end health check
            if self.health.stop_kind is not None:
                return  # an interrupted epoch: keep the last complete checkpoint
            last = self.rows[-1] if self.rows else {}
            std, rank = (
                float("nan") if last.get(k) is None else last[k]
                for k in ("feature_std", "effective_rank")
            )
            speed = self.images_per_second
            self._say(
                f"epoch {epoch + 1}: step {self.step}/{self.total_steps}, "
                f"loss {self._previous_mean:.4f} (epoch mean), {self.features} std {std:.3f}, "
                f"effective rank {rank:.1f}, "
                + (f"{speed:.0f} img/s, " if speed is not None else "")
                + f"{time.perf_counter() - self._epoch_started:.1f}s"
            )
            save_checkpoint(self.model, self.output_dir, self.state_for(self.step))
            write_metrics(os.path.join(self.output_dir, "metrics.csv"), self.rows)

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    return RunLogger(**kwargs)
