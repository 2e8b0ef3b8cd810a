"""The official I-JEPA code as arms of benchmarks/paper_claims.py.

The official PyTorch modules and training step (facebookresearch/ijepa,
found as every benchmark finds it: ``--official-code PATH``, else
``$IJEPA_OFFICIAL_CODE``, else ``../shared/anchors/ijepa``; see
``_official``) train on the same Fashion-MNIST images as the library's
arms, with the same recipe (:data:`paper_claims_train.RECIPE`):

- model: the official ``VisionTransformer`` at the recipe's size (1 input
  channel, 28 px, patch 4, width 96, depth 4, 3 heads) and
  ``vit_predictor``, built and initialized by the official ``init_model``;
  the patch-embedding kernel re-drawn with the recipe's std (``"fan_in"``:
  ``1 / sqrt(4 * 4 * 1)``), as the library's arms;
- masks: the official ``MaskCollator`` with the recipe's multi-block
  settings (4 targets of scale 0.15-0.2, aspect 0.75-1.5, context 0.85-1.0,
  no overlap) except ``min_keep``: the collator requires *more than*
  ``min_keep`` patches of the target blocks too, not only of the context,
  and redraws until it gets them; on the 7x7 grid the targets have 6-9
  patches, so the recipe's 10 never succeeds and the collator loops forever.
  :data:`OFFICIAL_MIN_KEEP` (5, the largest that terminates) is used; its
  counter starts at ``seed * 10**6`` (0
  for seed 0, as ``train.py``), block positions come from torch's global
  generator, seeded with ``seed`` before the model is built;
- step: ``_official.OfficialStep`` (``train.py::train_step``): AdamW from
  ``init_opt`` with the recipe's warmup-cosine LR (warmup 10% of the planned
  steps) and cosine weight decay, the recipe's EMA schedule, the recipe's
  loss (``"l2"``: ``F.mse_loss``), layer-normed targets;
- data: the standardized images in a new permutation every epoch
  (``default_rng([seed, epoch])``), full batches, collated in this process;
  the collator's time counts as step time, as the library's data pipeline.

The arms:

- ``official_multiblock`` (equal steps): the planned and reached steps of
  the library's ``ijepa_multiblock`` run of the same seed, so both runs
  follow the same LR, weight-decay and EMA schedules step by step; snapshots
  at that arm's points. This is the fidelity comparison.
- ``official_multiblock_time`` (equal time): calibrated and planned like
  every arm, under the same wall-clock budget.
- ``ijepa_official_masks`` (equal steps, a diagnostic): the library's model
  and step fed by the official collator (:class:`OfficialMaskSampler`), to
  tell the masks apart from the rest of the training path.

Every evaluation reads the official target encoder through the library's
converter (``load_official_checkpoint``) into a Keras ``VisionTransformer``
and runs the benchmark's protocol on it, unchanged.
"""

from __future__ import annotations

import math
import time

import numpy as np
from _official import (
    OfficialStep,
    import_official,
    register_model,
)
from paper_claims_train import StepClock, median_step_seconds, run_record

OFFICIAL_ARMS = ("official_multiblock", "official_multiblock_time")  # the official step
MODEL_NAME = "paper_claims_vit"
# the official collator's min_keep bounds the targets too (see the module docstring)
OFFICIAL_MIN_KEEP = 5


def _patch_std(recipe):
    std = recipe["patch_init_std"]
    if std == "fan_in":
        return 1.0 / math.sqrt(recipe["patch_size"] ** 2 * 1)
    return std  # None (the official 0.02) or a float


def build_official(recipe, seed, planned_steps, anchors=None):
    """The official model, optimizer, schedules and EMA of ``recipe`` (``OfficialStep``)."""
    if recipe["predictor_heads"] != recipe["num_heads"]:
        raise ValueError(
            "the official init_model gives the predictor the encoder's heads: "
            f"predictor_heads {recipe['predictor_heads']} != num_heads {recipe['num_heads']}"
        )
    name = register_model(
        MODEL_NAME,
        anchors,
        in_chans=1,
        embed_dim=recipe["embed_dim"],
        depth=recipe["depth"],
        num_heads=recipe["num_heads"],
    )
    return OfficialStep(
        name,
        image_size=recipe["image_size"],
        patch_size=recipe["patch_size"],
        pred_depth=recipe["predictor_depth"],
        pred_emb_dim=recipe["predictor_embed_dim"],
        steps_per_epoch=planned_steps,
        epochs=1,
        warmup_epochs=recipe["warmup"],
        ema=(recipe["ema"], recipe["final_ema"]),
        anchors=anchors,
        seed=seed,
        optimizer={
            "wd": recipe["weight_decay"],
            "final_wd": recipe["final_weight_decay"],
            "start_lr": recipe["start_lr"],
            "ref_lr": recipe["ref_lr"],
            "final_lr": recipe["final_lr"],
        },
        loss=recipe["loss"],
        patch_init_std=_patch_std(recipe),
    )


def make_collator(factory, recipe):
    """``factory`` (the official ``MaskCollator``) with the recipe's multi-block settings."""
    return factory(
        input_size=(recipe["image_size"], recipe["image_size"]),
        patch_size=recipe["patch_size"],
        enc_mask_scale=tuple(recipe["context_scale"]),
        pred_mask_scale=tuple(recipe["target_scale"]),
        aspect_ratio=(0.75, 1.5),
        nenc=1,
        npred=recipe["num_targets"],
        min_keep=min(recipe["min_context"], OFFICIAL_MIN_KEEP),
        allow_overlap=False,
    )


class OfficialMaskSampler:
    """The official collator's masks as a library sampler (``sample(B, start)`` -> MaskBatch).

    The collator cuts every image's context and each target block to the
    batch minimum, so lengths change from batch to batch; here they are
    padded to fixed lengths (the largest context and target block the
    collator can draw on the grid) with ``*_valid`` False on the padding,
    which the library's model excludes, so one compiled shape computes what
    the cut batch computes. Batch ``i`` is drawn with the collator's counter
    at ``seed * 10**6 + i`` and torch's generator seeded from ``(seed, i)``.
    """

    def __init__(self, recipe, seed, anchors=None):
        multiblock = import_official(anchors)[1]
        self.collator = make_collator(multiblock.MaskCollator, recipe)
        self.seed = int(seed)
        grid = recipe["image_size"] // recipe["patch_size"]
        self.grid_size = (grid, grid)
        # the largest blocks: context (grid - 1)^2 (the collator keeps h, w < grid),
        # targets h * w over the scale and aspect ranges (checked on every batch)
        self.context_length = (grid - 1) ** 2
        self.target_length = max(
            self._block_area(scale, ratio)
            for scale in np.linspace(*recipe["target_scale"], 41)
            for ratio in np.linspace(0.75, 1.5, 41)
        )

    def _block_area(self, scale, ratio):
        keep = int(self.grid_size[0] * self.grid_size[1] * scale)
        h = min(int(round(math.sqrt(keep * ratio))), self.grid_size[0] - 1)
        w = min(int(round(math.sqrt(keep / ratio))), self.grid_size[1] - 1)
        return h * w

    def sample(self, batch_size, start=0):
        import torch

        from jepa_components.masks import MaskBatch

        index = int(start) // int(batch_size)
        torch.manual_seed(self.seed * 10**6 + index)
        self.collator._itr_counter.value = self.seed * 10**6 + index - 1
        _, (enc,), pred = self.collator([(torch.zeros(1),) for _ in range(batch_size)])
        context = enc.numpy().astype(np.int32)
        targets = np.stack([p.numpy() for p in pred], axis=1).astype(np.int32)
        kc, kt = context.shape[1], targets.shape[2]
        if kc > self.context_length or kt > self.target_length:
            raise ValueError(
                f"official collator drew a context of {kc} or target blocks of {kt} patches, "
                f"more than the padding ({self.context_length}, {self.target_length})"
            )
        padded_context = np.zeros((batch_size, self.context_length), np.int32)
        padded_context[:, :kc] = context
        padded_targets = np.zeros((batch_size, targets.shape[1], self.target_length), np.int32)
        padded_targets[:, :, :kt] = targets
        return MaskBatch(
            context=padded_context,
            context_valid=np.arange(self.context_length)[None, :].repeat(batch_size, 0) < kc,
            targets=padded_targets,
            targets_valid=np.broadcast_to(
                np.arange(self.target_length) < kt, padded_targets.shape
            ).copy(),
            grid_size=self.grid_size,
        )


class OfficialBatches:
    """Batches of the official arm: (images NCHW, context masks, target masks).

    A new permutation of ``images`` every epoch (``default_rng([seed,
    epoch])``), full batches; masks from the official ``MaskCollator``.
    """

    def __init__(self, official, images, recipe, seed):
        import torch
        from paper_claims_eval import normalize

        self.images = torch.as_tensor(np.ascontiguousarray(normalize(images).transpose(0, 3, 1, 2)))
        self.batch_size, self.seed = recipe["batch_size"], int(seed)
        self.collator = make_collator(official.collator, recipe)
        self.collator._itr_counter.value = self.seed * 10**6 - 1
        self.epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def next(self):
        if len(self._order) < self.batch_size:
            self.epoch += 1
            rng = np.random.default_rng([self.seed, self.epoch])
            full = len(self.images) // self.batch_size * self.batch_size
            self._order = rng.permutation(len(self.images))[:full]
        rows, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        (imgs,), masks_enc, masks_pred = self.collator([(self.images[i],) for i in rows])
        return imgs, masks_enc, masks_pred


class KerasView:
    """The official target encoder as a Keras ``VisionTransformer`` (for the probes).

    One Keras ``IJEPA`` of the recipe's architecture, refilled from the
    official state dicts by ``load_official_checkpoint`` at every call.
    """

    def __init__(self, recipe, seed):
        from paper_claims_train import build_model

        self.model = build_model("ijepa", recipe, seed, 1)[0]

    def __call__(self, official):
        from jepa_components.backends.keras import load_official_checkpoint

        state = {
            key: {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
            for key, module in (
                ("encoder", official.encoder),
                ("predictor", official.predictor),
                ("target_encoder", official.target_encoder),
            )
        }
        load_official_checkpoint(state, model=self.model)
        return self.model.target_encoder


def calibrate_official(recipe, train_images, steps, seed=0, anchors=None):
    """Median wall seconds per official step (a throwaway model, ``steps`` steps)."""
    official = build_official(recipe, seed, max(steps, 1) + 1, anchors)
    batches = OfficialBatches(official, train_images, recipe, seed)
    times = []
    for _ in range(steps + 1):
        official.step(*batches.next())
        times.append(time.perf_counter())
    return {"seconds_per_step": median_step_seconds(times)}


def train_official(
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
    anchors=None,
):
    """Train one official arm; the arguments and the result are ``train_arm``'s.

    ``max_steps`` (default ``planned_steps``) stops the run earlier than its
    schedules' length: the equal-steps arm stops where the library's run of
    the same seed stopped.
    """
    official = build_official(recipe, seed, planned_steps, anchors)
    batches = OfficialBatches(official, train_images, recipe, seed)
    view = KerasView(recipe, seed)
    clock = StepClock(budget_seconds, max_steps or planned_steps)
    losses, window, snapshots, common = [], [], [], None
    while not clock.stopped:
        clock.begin()
        window.append(official.step(*batches.next()))
        clock.end()
        if clock.steps % chunk and not clock.stopped:
            continue
        losses.append(
            {
                "step": clock.steps,
                "seconds": round(clock.seconds, 2),
                "loss": float(np.mean(window)),
            }
        )
        window = []
        clock.pause()
        if clock.stopped:
            break
        if clock.steps in snapshot_steps and on_snapshot is not None:
            snapshots.append(on_snapshot(view(official), clock.steps, clock.seconds))
        if clock.steps == common_step and on_common is not None:
            common = on_common(view(official))
    if clock.steps == common_step and on_common is not None and common is None:
        common = on_common(view(official))
    run = run_record(
        arm, "official", "multiblock", seed, recipe, clock, planned_steps, losses, max_steps
    )
    run.update(snapshots=snapshots, common_step=common_step, at_common_step=common)
    return view(official), run
