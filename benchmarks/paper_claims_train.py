"""Arms and wall-clock-budgeted training of benchmarks/paper_claims.py.

Every trained arm is built from the library (``VisionTransformer``,
``Predictor``, ``IJEPA`` or ``PixelBaseline``, ``TargetEMA``,
``MaskedImageDataset``, ``make_adamw``, ``masks.make_sampler``) with one
recipe (:data:`RECIPE`, found by a recipe search on this benchmark); arms differ
only in the target (representation vs pixels) and the mask strategy.

Equal time: an arm's LR, weight-decay and EMA schedules must know the run's
length in advance, so each arm kind (model x masks) is first *calibrated*:
a throwaway copy trains a few steps and gives the seconds per step; the run
then plans ``floor(budget / seconds per step)`` steps and stops at that step
or when its training clock reaches the budget, whichever comes first (the
steps reached and the planned steps are both reported). The clock
(:class:`StepClock`) counts the wall time of training steps only: not the
first step (XLA compilation), not the pauses for the curve snapshots.

Arms added for LeJEPA (Balestriero & LeCun 2025) and SIGReg on I-JEPA:

- ``lejepa``: the same ViT encoder as every arm, a projector and SIGReg on
  ``lejepa_views`` views (no masks, no predictor, no EMA); the reference's
  small-data recipe (``MINIMAL.md``) adapted to this encoder and budget (see
  the ``lejepa_*`` entries of :data:`RECIPE`). The evaluated encoder is the
  encoder (not the projector).
- ``ijepa_sigreg``: I-JEPA multi-block plus ``weight * SIGReg`` of the
  mean-pooled context embeddings, EMA target kept (the evaluated encoder is
  the target encoder, as I-JEPA's).
- ``ijepa_sigreg_online``: the same without the EMA target (the online
  encoder's own stop-gradient tokens are the targets; the evaluated encoder
  is the encoder).

Training images come in ``[0, 1]``; the masked arms standardize them
(``paper_claims_eval.normalize``) and LeJEPA standardizes every view after
its augmentations (crops and blur act on ``[0, 1]`` pixels).
"""

from __future__ import annotations

import math
import time

import numpy as np

# The recipe of the recipe search (see the benchmark's README section).
RECIPE = {
    "image_size": 28,
    "patch_size": 4,
    "embed_dim": 96,
    "depth": 4,
    "num_heads": 3,
    "patch_init_std": "fan_in",
    "predictor_embed_dim": 96,
    "predictor_depth": 4,
    "predictor_heads": 3,
    "batch_size": 64,
    "start_lr": 2e-4,
    "ref_lr": 1e-3,
    "final_lr": 1e-6,
    "warmup": 0.1,
    "weight_decay": 0.04,
    "final_weight_decay": 0.4,
    # EMA 0.99 -> 0.999 (paper: 0.996 -> 1.0, tuned for ~100k steps, not ~600)
    "ema": 0.99,
    "final_ema": 0.999,
    "loss": "l2",
    # multi-block masks: the paper's settings (on the 7x7 grid: targets of 7-10 patches)
    "num_targets": 4,
    "target_scale": (0.15, 0.2),
    "context_scale": (0.85, 1.0),
    "min_context": 10,
    # LeJEPA: the reference small-data recipe (MINIMAL.md: ViT-S/8, Imagenette 128 px,
    # V 4, proj_dim 16, lambda 0.02, 256 slices, AdamW lr 2e-3 and wd 0.05 at 256 images
    # per batch, linear warmup from 0.01 lr, cosine to 1e-3), adapted:
    # - views: lejepa_views(28, channels=1): 2 global (crop scale 0.3-1) + 2 local
    #   (0.05-0.3) views with flips and a light blur (V 4 as MINIMAL.md; the colour steps
    #   have nothing to act on in one channel); every view standardized after;
    # - batch: 64 images (the other arms' images per step; 256 views per step);
    # - projector: 96 -> 512 -> 512 -> 16 with BatchNorm (MINIMAL.md's 2048 hidden is 4x
    #   its 512-d embedding; ours is 96-d, and 2048 would double the step time);
    # - lambda 0.05 (the paper's default), not MINIMAL.md's 0.02: the SIGReg statistic's
    #   gradient per sample does not shrink with the batch while the invariance term's
    #   (a batch mean) does, so at a quarter of MINIMAL.md's batch 0.02 would regularize
    #   less (keeping the ratio would give ~0.075);
    # - peak lr 1e-3: MINIMAL.md's 2e-3 at 4x our batch, halved (square-root scaling),
    #   the same peak as the I-JEPA recipe; warmup 10% of the planned steps from 0.01
    #   peak (MINIMAL.md: 1 of 800 epochs; ours is < 1 epoch), cosine to half the peak
    #   (MINIMAL.md's eta_min 1e-3 of 2e-3); weight decay 0.05 constant.
    "lejepa_num_global": 2,
    "lejepa_num_local": 2,
    "lejepa_global_scale": (0.3, 1.0),
    "lejepa_local_scale": (0.05, 0.3),
    "lejepa_proj_dim": 16,
    "lejepa_proj_hidden": (512, 512),
    "lejepa_lambda": 0.05,
    "lejepa_slices": 256,
    "lejepa_start_lr": 1e-5,
    "lejepa_ref_lr": 1e-3,
    "lejepa_final_lr": 5e-4,
    "lejepa_weight_decay": 0.05,
    # I-JEPA + SIGReg: weight 0.05 (the paper's lambda) on the mean-pooled context
    # embeddings, 256 slices; everything else the I-JEPA recipe above.
    "sigreg_weight": 0.05,
    "sigreg_slices": 256,
}
# --quick: a smoke test of the whole pipeline, not a measurement.
QUICK_RECIPE = {
    **RECIPE,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "predictor_embed_dim": 32,
    "predictor_depth": 1,
    "predictor_heads": 2,
    "batch_size": 16,
    "lejepa_proj_hidden": (64,),
    "lejepa_slices": 32,
    "sigreg_slices": 32,
}

ARMS = {  # name -> (model kind, mask strategy)
    "ijepa_multiblock": ("ijepa", "multiblock"),
    "pixel_multiblock": ("pixel", "multiblock"),
    "ijepa_block": ("ijepa", "block"),
    "ijepa_raster": ("ijepa", "raster"),
    "ijepa_random": ("ijepa", "random"),
    "lejepa": ("lejepa", "views"),
    "ijepa_sigreg": ("ijepa_sigreg", "multiblock"),
    "ijepa_sigreg_online": ("ijepa_sigreg_online", "multiblock"),
    # the library's step on the official collator's masks (paper_claims_official)
    "ijepa_official_masks": ("ijepa", "official"),
    # multi-block with the context capped (MultiBlockMaskSampler(context_length=...)): of
    # the 43 context slots on the 7x7 grid (about 24 valid on average), 24 or 12 are kept
    "ijepa_context_cap24": ("ijepa", "multiblock:24"),
    "ijepa_context_cap12": ("ijepa", "multiblock:12"),
}


def make_sampler(masking, recipe, seed):
    from jepa_components.masks import make_sampler as library_sampler

    grid = recipe["image_size"] // recipe["patch_size"]
    if masking == "official":
        from paper_claims_official import OfficialMaskSampler

        return OfficialMaskSampler(recipe, seed)
    family, _, cap = masking.partition(":")  # "multiblock:K": context capped at K slots
    if family == "multiblock":
        return library_sampler(
            "multiblock",
            (grid, grid),
            seed=seed,
            num_targets=recipe["num_targets"],
            target_scale=recipe["target_scale"],
            context_scale=recipe["context_scale"],
            min_context=recipe["min_context"],
            context_length=int(cap) if cap else None,
        )
    # the paper's Table 6 settings of the other strategies (the library defaults)
    return library_sampler(masking, (grid, grid), seed=seed)


def build_model(kind, recipe, seed, total_steps):
    """(compiled model, the encoder to evaluate, its training callbacks).

    Every kind starts from the same encoder for a given ``seed`` (built
    first, same seed): the random-init reference is every arm's start.
    """
    from jepa_components.backends.keras import (
        IJEPA,
        PixelBaseline,
        Predictor,
        TargetEMA,
        VisionTransformer,
        make_adamw,
    )

    grid = recipe["image_size"] // recipe["patch_size"]
    encoder = VisionTransformer(
        image_size=recipe["image_size"],
        patch_size=recipe["patch_size"],
        in_channels=1,
        embed_dim=recipe["embed_dim"],
        depth=recipe["depth"],
        num_heads=recipe["num_heads"],
        patch_init_std=recipe["patch_init_std"],
        seed=seed,
    )
    if kind == "lejepa":
        return _build_lejepa(encoder, recipe, seed, total_steps)
    predictor = Predictor(
        num_patches=grid * grid,
        embed_dim=recipe["embed_dim"],
        predictor_embed_dim=recipe["predictor_embed_dim"],
        depth=recipe["predictor_depth"],
        num_heads=recipe["predictor_heads"],
        seed=seed + 1000,
    )
    ema = TargetEMA(recipe["ema"], final_momentum=recipe["final_ema"], total_steps=total_steps)
    if kind == "ijepa":
        model = IJEPA(encoder=encoder, predictor=predictor, loss=recipe["loss"])
        evaluated = model.target_encoder  # the official code evaluates the target encoder
        callbacks = [ema]
    elif kind in ("ijepa_sigreg", "ijepa_sigreg_online"):
        from jepa_components.backends.keras import SIGReg

        online = kind == "ijepa_sigreg_online"
        model = IJEPA(
            encoder=encoder,
            predictor=predictor,
            loss=recipe["loss"],
            regularizer=SIGReg(num_slices=recipe["sigreg_slices"], seed=seed + 3000),
            regularizer_weight=recipe["sigreg_weight"],
            target_encoder="online" if online else "ema",
        )
        # no EMA: the online encoder is the only one; with EMA: the target, as I-JEPA
        evaluated = model.encoder if online else model.target_encoder
        callbacks = [] if online else [ema]
    elif kind == "pixel":
        model = PixelBaseline(
            encoder=encoder, predictor=predictor, loss=recipe["loss"], seed=seed + 2000
        )
        evaluated, callbacks = model.encoder, []
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    optimizer = make_adamw(
        steps_per_epoch=total_steps,
        epochs=1,
        warmup_epochs=recipe["warmup"],
        start_lr=recipe["start_lr"],
        ref_lr=recipe["ref_lr"],
        final_lr=recipe["final_lr"],
        weight_decay=recipe["weight_decay"],
        final_weight_decay=recipe["final_weight_decay"],
    )
    model.compile(optimizer=optimizer)
    return model, evaluated, callbacks


def _build_lejepa(encoder, recipe, seed, total_steps):
    """LeJEPA on ``encoder``: projector, SIGReg weight and slices of :data:`RECIPE`."""
    from jepa_components.backends.keras import LeJEPA, make_adamw, make_projector

    projector = make_projector(
        recipe["lejepa_proj_dim"], tuple(recipe["lejepa_proj_hidden"]), seed=seed + 1000
    )
    model = LeJEPA(
        encoder,
        projector,
        num_global_views=recipe["lejepa_num_global"],
        sigreg_weight=recipe["lejepa_lambda"],
        num_slices=recipe["lejepa_slices"],
        seed=seed + 2000,
    )
    optimizer = make_adamw(
        steps_per_epoch=total_steps,
        epochs=1,
        warmup_epochs=recipe["warmup"],
        start_lr=recipe["lejepa_start_lr"],
        ref_lr=recipe["lejepa_ref_lr"],
        final_lr=recipe["lejepa_final_lr"],
        weight_decay=recipe["lejepa_weight_decay"],
        final_weight_decay=recipe["lejepa_weight_decay"],
    )
    model.compile(optimizer=optimizer)
    return model, model.encoder, []


def random_init_encoder(recipe, seed):
    """The encoder every trained arm of ``seed`` starts from (same seed, same weights)."""
    return build_model("pixel", recipe, seed, 1)[1]


class StepClock:
    """Counts training steps and their wall/CPU time against a budget.

    ``begin()`` before a step (a no-op while steps follow each other),
    ``end()`` after it; ``pause()`` between runs of steps (time until the next
    ``begin()`` is not counted). The first step (compilation) is timed
    separately and not counted. ``stopped`` turns True at the budget or at
    ``max_steps``.
    """

    def __init__(self, budget_seconds, max_steps):
        self.budget, self.max_steps = float(budget_seconds), int(max_steps)
        self.steps, self.seconds, self.cpu_seconds = 0, 0.0, 0.0
        self.first_step_seconds, self.stopped = None, False
        self._mark = self._cpu = None

    def begin(self):
        if self._mark is None:
            self._mark, self._cpu = time.perf_counter(), time.process_time()

    def end(self):
        now, cpu = time.perf_counter(), time.process_time()
        self.steps += 1
        if self.first_step_seconds is None:
            self.first_step_seconds = now - self._mark
        else:
            self.seconds += now - self._mark
            self.cpu_seconds += cpu - self._cpu
        self._mark, self._cpu = now, cpu
        if self.seconds >= self.budget or self.steps >= self.max_steps:
            self.stopped = True
        return self.stopped

    def pause(self):
        self._mark = None


def make_clock(budget_seconds, max_steps):
    """A :class:`StepClock` as a Keras callback that stops ``fit`` (built on first use)."""
    import keras

    class TrainClock(StepClock, keras.callbacks.Callback):
        """The clock of ``fit``: the model is touched only to stop it (on jax a state sync)."""

        def __init__(self):
            StepClock.__init__(self, budget_seconds, max_steps)
            keras.callbacks.Callback.__init__(self)

        def on_train_batch_begin(self, batch, logs=None):
            self.begin()

        def on_train_batch_end(self, batch, logs=None):
            if self.end():
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.pause()

    return TrainClock()


def lejepa_views(recipe):
    """The LeJEPA arm's views: ``(B, 28, 28, 1)`` in [0, 1] -> standardized ``(B, V, 28, 28, 1)``.

    ``lejepa_views`` for one channel: random resized crops with flips and a
    light blur (the colour steps have nothing to act on), then Fashion-MNIST's
    standardization of every view.
    """
    from paper_claims_eval import normalize

    from jepa_components.augment import lejepa_views as library_views

    return library_views(
        recipe["image_size"],
        channels=1,
        num_global=recipe["lejepa_num_global"],
        num_local=recipe["lejepa_num_local"],
        global_scale=tuple(recipe["lejepa_global_scale"]),
        local_scale=tuple(recipe["lejepa_local_scale"]),
        normalize=normalize,
    )


def views_per_step(masking, recipe):
    """Encoder inputs in one step: the batch times LeJEPA's views per image, or the batch."""
    if masking == "views":
        return recipe["batch_size"] * (recipe["lejepa_num_global"] + recipe["lejepa_num_local"])
    return recipe["batch_size"]


def _dataset(train_images, masking, recipe, seed, chunk):
    """Batches of one arm from ``train_images`` in [0, 1]: masked images or views."""
    if masking == "views":
        from jepa_components.backends.keras import MultiViewDataset

        return MultiViewDataset(
            train_images,
            lejepa_views(recipe),  # the views transform
            batch_size=recipe["batch_size"],
            shuffle=True,
            seed=seed,
            steps_per_epoch=chunk,
        )
    from paper_claims_eval import normalize

    from jepa_components.backends.keras import MaskedImageDataset

    return MaskedImageDataset(
        normalize(train_images),
        make_sampler(masking, recipe, seed),
        batch_size=recipe["batch_size"],
        shuffle=True,
        seed=seed,
        steps_per_epoch=chunk,
    )


def run_record(arm, model, masking, seed, recipe, clock, planned_steps, losses, max_steps=None):
    """The bookkeeping of one run: steps, images, time, why it stopped, the losses."""
    return {
        "arm": arm,
        "model": model,
        "masking": masking,
        "seed": seed,
        "planned_steps": planned_steps,
        "steps": clock.steps,
        "images_seen": clock.steps * recipe["batch_size"],
        "views_per_step": views_per_step(masking, recipe),
        "train_seconds": round(clock.seconds, 1),
        "cpu_seconds": round(clock.cpu_seconds, 1),
        "first_step_seconds": round(clock.first_step_seconds or 0.0, 1),
        "stopped_by": "budget" if clock.steps < (max_steps or planned_steps) else "planned steps",
        "final_loss": losses[-1]["loss"] if losses else None,
        "losses": losses,
    }


def median_step_seconds(times):
    """Median interval between step-end times, the first (compiling) step left out."""
    diffs = np.diff(times)
    return float(np.median(diffs[1:] if len(diffs) > 1 else diffs))


def calibrate(arm, recipe, train_images, steps, seed=0):
    """Median wall seconds per step of ``arm`` (a throwaway model, ``steps`` steps)."""
    kind, masking = ARMS[arm]
    model, _, callbacks = build_model(kind, recipe, seed, total_steps=max(steps, 1) + 1)
    clock = make_clock(math.inf, steps + 1)
    times = []

    import keras

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    data = _dataset(train_images, masking, recipe, seed, chunk=steps + 1)
    model.fit(data, epochs=1, verbose=0, callbacks=callbacks + [clock, Steps()])
    per_step = median_step_seconds(times)
    return {
        "seconds_per_step": per_step,
        "first_step_seconds": clock.first_step_seconds,
        "steps": len(times),
    }


def plan_steps(budget_seconds, seconds_per_step, chunk):
    """Steps an arm plans for its budget: a whole number of chunks, at least one."""
    return max(chunk, int(budget_seconds / seconds_per_step) // chunk * chunk)


def train_arm(
    arm,
    recipe,
    seed,
    train_images,
    *,
    budget_seconds,
    planned_steps,
    chunk,
    max_steps=None,
    snapshot_steps=(),
    common_step=None,
    on_snapshot=None,
    on_common=None,
):
    """Train one arm within ``budget_seconds``; evaluate along the way.

    Args:
        arm: a key of :data:`ARMS`.
        planned_steps: the schedules' length (a multiple of ``chunk``).
        chunk: steps per ``fit`` call (snapshots fall between calls).
        max_steps: None (``planned_steps``) or the step to stop at, before
            the schedules' end (the equal-steps arms).
        snapshot_steps: steps after which ``on_snapshot(encoder, step,
            train_seconds)`` runs (clock paused).
        common_step: the step after which ``on_common(encoder)`` runs.

    Returns:
        (the encoder to evaluate, a dict of the run's bookkeeping).
    """
    kind, masking = ARMS[arm]
    model, evaluated, callbacks = build_model(kind, recipe, seed, planned_steps)
    data = _dataset(train_images, masking, recipe, seed, chunk)
    clock = make_clock(budget_seconds, max_steps or planned_steps)
    losses, snapshots, common = [], [], None
    epoch = 0
    while not clock.stopped:
        history = model.fit(
            data, epochs=epoch + 1, initial_epoch=epoch, verbose=0, callbacks=callbacks + [clock]
        )
        epoch += 1
        losses.append(
            {
                "step": clock.steps,
                "seconds": round(clock.seconds, 2),
                "loss": float(history.history["loss"][-1]),
            }
        )
        if clock.stopped:
            break
        if clock.steps in snapshot_steps and on_snapshot is not None:
            snapshots.append(on_snapshot(evaluated, clock.steps, clock.seconds))
        if clock.steps == common_step and on_common is not None:
            common = on_common(evaluated)
    if clock.steps == common_step and on_common is not None and common is None:
        common = on_common(evaluated)
    run = run_record(arm, kind, masking, seed, recipe, clock, planned_steps, losses, max_steps)
    run.update(snapshots=snapshots, common_step=common_step, at_common_step=common)
    return evaluated, run
