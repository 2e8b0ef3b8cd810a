"""PyTorch glue: ``DataLoader`` collate functions that add I-JEPA and V-JEPA masks.

Masks are keyed by *which example* is being masked, not by a counter shared
across worker processes (a counter forked into every worker repeats the same
masks in each of them; the official ``MaskCollator`` works around it with a
shared-memory counter, which still ties masks to batch order). Wrap the
dataset in :class:`IndexedDataset`, and :class:`MaskCollator` draws the masks
of example ``i`` in epoch ``e`` as sample ``e * len(dataset) + i`` of the
sampler's stream: the same under any number of workers, batch size or
shuffling.

:class:`OfficialMaskCollator` is the other way in: a drop-in replacement for
the official ``src.masks.multiblock.MaskCollator`` (same constructor, same
``(collated_batch, masks_enc, masks_pred)``), for code built around it.
:class:`VJEPAMaskCollator` and :class:`VJEPARandomTubeCollator` are the same
for V-JEPA's ``src/masks/multiblock3d.py`` and ``random_tube.py``
collators (video masks on the ``(T, H, W)`` tubelet grid, one
``(masks_enc, masks_pred)`` pair of tensors per mask configuration).

Example:
    >>> import torch
    >>> from jepa_components.masks import MultiBlockMaskSampler
    >>> from jepa_components.backends.torch import IndexedDataset, MaskCollator
    >>> images = torch.zeros(10, 3, 32, 32)
    >>> data = IndexedDataset(torch.utils.data.TensorDataset(images))
    >>> sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
    >>> collate = MaskCollator(sampler, len(data))
    >>> loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate)
    >>> batch = next(iter(loader))
    >>> sorted(batch), tuple(batch["targets"].shape)[:2]
    (['context', 'context_valid', 'images', 'targets', 'targets_valid'], (4, 4))
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from typing import cast

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset, default_collate
except ImportError as error:  # pragma: no cover - exercised without torch
    raise ImportError(
        'jepa_components.backends.torch needs PyTorch: pip install "jepa-components[torch]"'
    ) from error

from jepa_components._validation import (
    check_bool,
    check_int,
    check_pair,
    check_range_pair,
    check_seed,
    invalid,
)
from jepa_components.masks import (
    MaskBatch,
    MaskSampler,
    MultiBlockMaskSampler,
    RandomTubeMaskSampler,
    check_sampler_grid,
    vjepa_samplers,
)

__all__ = [
    "IndexedDataset",
    "MaskCollator",
    "OfficialMaskCollator",
    "VJEPAMaskCollator",
    "VJEPARandomTubeCollator",
    "check_sampler_grid",
    "to_official_masks",
]


class IndexedDataset(Dataset):
    """Wraps a map-style dataset so item ``i`` comes back as ``(i, dataset[i])``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return index, self.dataset[index]


class MaskCollator:
    """``collate_fn`` returning the batch dict: images plus their masks.

    Keys ``{"images", "context", "context_valid", "targets", "targets_valid"}``.

    Items must be ``(index, item)`` pairs (see :class:`IndexedDataset`); the
    image is ``item`` itself or, for tuples such as ``TensorDataset`` rows or
    ``(image, label)``, ``item[0]``. Index arrays become ``int64`` tensors
    (``torch.gather`` wants them), valid flags ``bool`` tensors.

    Call :meth:`set_epoch` before each epoch (as with
    ``DistributedSampler``) for fresh masks every epoch; workers pick the
    value up when the loader starts them (the default
    ``persistent_workers=False``).

    ``grid_size``: the model's patch grid (``encoder.grid_size``, i.e.
    ``(H // patch_size, W // patch_size)``); when given, a sampler drawing on
    another grid is refused, since its patch indices would address the wrong
    positions.
    """

    def __init__(
        self, sampler: MaskSampler, dataset_size: int, *, grid_size: tuple[int, int] | None = None
    ):
        if not isinstance(sampler, MaskSampler):
            raise ValueError(
                "Invalid value for argument `sampler`. Expected a "
                f"jepa_components.masks sampler. Received: {type(sampler).__name__}"
            )
        check_sampler_grid(sampler, grid_size)
        if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
            raise ValueError(
                "Invalid value for argument `dataset_size`. Expected an int >= 1. "
                f"Received: dataset_size={dataset_size!r}"
            )
        self.sampler = sampler
        self.dataset_size = dataset_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, batch):
        try:
            indices, items = zip(*batch)
        except (TypeError, ValueError):
            raise ValueError(
                "MaskCollator expects (index, item) pairs: wrap the dataset in "
                "IndexedDataset(dataset)."
            ) from None
        images = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
        ids = self.epoch * self.dataset_size + np.asarray(indices, dtype=np.int64)
        masks = self.sampler.sample_at(ids)
        out = {"images": default_collate(images)}
        for key, value in masks.as_dict().items():
            out[key] = torch.from_numpy(value.astype(np.int64) if value.dtype != bool else value)
        return out


def to_official_masks(batch: MaskBatch):
    """``(masks_enc, masks_pred)`` lists of ``(B, K)`` int64 tensors, as the official code takes.

    facebookresearch/ijepa has no padding: this raises if any slot is
    padding. Draw with ``ragged="truncate"`` for its cut-to-minimum shapes.
    """
    if not (batch.context_valid.all() and batch.targets_valid.all()):
        raise ValueError(
            "The official I-JEPA code cannot take padded masks: sample with "
            'ragged="truncate" (every slot valid) to feed it.'
        )
    enc = [torch.from_numpy(batch.context.astype(np.int64))]
    pred = [
        torch.from_numpy(batch.targets[:, m].astype(np.int64)) for m in range(batch.num_targets)
    ]
    return enc, pred


# Sample numbers of batch ``g`` of process-group rank ``r``: ``(g * _RANKS + r) * _BATCH + i``.
_RANKS, _BATCH = 1 << 12, 1 << 16
# Slots of the counters shared by the collator's copies in the loader's workers.
_MADE, _TOKEN, _GENERATION, _SEEN_GENERATION, _STARTED, _BASE = range(6)


def _process_group_rank():
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_rank())
    return 0


class _BatchNumbering:
    """Batch numbers shared by a collator's copies in the ``DataLoader`` workers.

    The machinery behind the worker invariance of :class:`OfficialMaskCollator`
    and :class:`VJEPAMaskCollator` (described in the former's docstring):
    batch ``g`` of rank ``r`` draws samples ``(g * 4096 + r) * 65536 + i``.
    Subclasses call :meth:`_init_batch_numbering` in ``__init__`` and
    :meth:`_sample_ids` in ``__call__``.
    """

    def _init_batch_numbering(self, rank):
        self.rank = (
            _process_group_rank()
            if rank is None
            else check_int("rank", rank, low=0, high=_RANKS - 1)
        )
        # Spawn-context shared memory also works in forked workers; the reverse does not.
        self._shared = multiprocessing.get_context("spawn").Array("q", 6)
        self._shared[_TOKEN] = -1  # no pass of workers seen yet (base seeds are >= 0)
        self._generation = None  # per process: the set_epoch generation this worker follows
        self._base = self._count = 0

    @staticmethod
    def _check_batch_size(owner, size):
        if not 1 <= size <= _BATCH:
            raise ValueError(
                f"{owner} takes batches of 1 to {_BATCH} items. Received: {size} items"
            )

    def _sample_ids(self, size):
        """Sample numbers of the batch being collated (``size`` items), int64."""
        first = (self._batch_number() * _RANKS + self.rank) * _BATCH
        return np.arange(first, first + size, dtype=np.int64)

    @property
    def batches_made(self):
        """Batch numbers used so far (made or skipped with :meth:`step`), all processes."""
        return int(self._shared[_MADE])

    def step(self):
        """Skip one batch number (the official ``train.py`` does so on resume); returns it."""
        with self._shared.get_lock():
            self._shared[_MADE] += 1
            return int(self._shared[_MADE]) - 1

    def set_epoch(self, epoch):
        """Mark the start of a pass over the data (needed with ``persistent_workers``).

        Masks depend on the batch number over the whole run, not on
        ``epoch``: it is only checked (an int >= 0).
        """
        check_int("epoch", epoch, low=0)
        with self._shared.get_lock():
            self._shared[_GENERATION] += 1

    def _batch_number(self):
        """``g`` of the batch being collated (see the class docstring)."""
        info = torch.utils.data.get_worker_info()
        shared = self._shared
        with shared.get_lock():
            if info is None:  # the loading process itself: batches come in order
                number = int(shared[_MADE])
            else:
                if self._generation != shared[_GENERATION]:  # a new worker, or set_epoch
                    token = info.seed - info.id  # the loader's base seed for this pass
                    if (
                        shared[_TOKEN] != token
                        or shared[_STARTED] >= info.num_workers
                        or shared[_SEEN_GENERATION] != shared[_GENERATION]
                    ):
                        shared[_TOKEN], shared[_STARTED] = token, 0  # first worker of a pass
                        shared[_SEEN_GENERATION], shared[_BASE] = shared[_GENERATION], shared[_MADE]
                    shared[_STARTED] += 1
                    self._generation, self._base, self._count = (
                        int(shared[_GENERATION]),
                        int(shared[_BASE]),
                        0,
                    )
                number = self._base + info.id + self._count * info.num_workers
                self._count += 1
            shared[_MADE] += 1
        return number


class OfficialMaskCollator(_BatchNumbering):
    """Drop-in for the official ``MaskCollator``, on :class:`MultiBlockMaskSampler`.

    Same constructor arguments and defaults as facebookresearch/ijepa
    ``src/masks/multiblock.py`` ``MaskCollator`` (plus ``seed`` and
    ``rank``), same return value, so the official ``train.py`` (or a fork)
    runs unchanged after one import::

        from jepa_components.backends.torch import OfficialMaskCollator as MBMaskCollator

    ``collator(batch)`` returns ``(collated_batch, masks_enc, masks_pred)``:
    ``default_collate(batch)``, a list of ``nenc`` (always 1) ``(B, Kc)``
    int64 tensors and a list of ``npred`` ``(B, Kt)`` int64 tensors of
    row-major patch indices, every row cut to the batch minimum as the
    official code does (the sampler's ``ragged="truncate"``).

    What differs from the official collator (each a defect there, see
    :class:`~jepa_components.masks.MultiBlockMaskSampler`): blocks reach the
    last row and column and may span the whole grid; scale and aspect ratio
    are independent draws; every block of every image draws its own size;
    cutting to the batch minimum keeps a random subset of a row instead of
    its first patches (the official cut drops the bottom of every context);
    ``min_keep`` is never relaxed (the official code starts letting the
    context overlap the targets after 20 failed draws): a sample is redrawn,
    and an impossible setting is an error up front. ``min_keep`` keeps its
    official meaning, *more than* ``min_keep`` context patches; it does not
    apply to target blocks, whose size ``pred_mask_scale`` sets (the official
    code retries those too, forever when they cannot be that large).

    Determinism. Batch number ``g`` (counted over the whole run, like the
    official ``step()`` counter) gets the masks of samples ``(g * 4096 +
    rank) * 65536 + i`` of the sampler's stream: a function of ``seed``,
    ``rank`` and ``g`` only, whatever ``num_workers`` is. A worker finds
    ``g`` without any wrapper around the dataset: it knows its id ``w``, the
    number of workers ``n`` (``torch.utils.data.get_worker_info()``) and how
    many batches ``j`` it made in this pass, and the ``DataLoader`` hands
    batches to workers round-robin, so ``g = base + w + j * n`` where
    ``base`` is the number of batches made before the pass (a counter in
    shared memory, like the official one). Assumptions: a map-style dataset
    (or an iterable one whose workers all yield until the end), the default
    ``in_order=True``, one iterator over the loader at a time, and passes
    that run to the end (a pass broken off early has made, and counted, the
    batches its workers had prefetched).

    Epochs. Without persistent workers (the official loader), each pass
    starts new workers and the collator notices it by itself. With
    ``persistent_workers=True`` the workers live on: call
    :meth:`set_epoch` before every pass, as with ``DistributedSampler``
    (without it the masks are still never repeated, and equal those of
    ``num_workers=0`` only when the batches per pass are a multiple of
    ``num_workers``). Calling it is harmless otherwise.

    Resuming: the official ``train.py`` calls ``step()`` once per batch
    already trained; :meth:`step` skips one batch number here too.

    Args:
        input_size: int or ``(H, W)``, image size in pixels (official
            default 224).
        patch_size: int (16); the grid is ``input_size // patch_size``.
        enc_mask_scale: ``(min, max)`` grid fraction of the context block
            (official default (0.2, 0.8); the paper's configs 0.85-1.0).
        pred_mask_scale: ``(min, max)`` grid fraction of each target block
            ((0.2, 0.8); configs 0.15-0.2).
        aspect_ratio: ``(min, max)`` height / width of target blocks
            ((0.3, 3.0); configs 0.75-1.5). The context block is square, as
            in the official code.
        nenc: number of context blocks; 1 (the official configs' value) is
            the only one supported.
        npred: number of target blocks (2; configs 4).
        min_keep: int, the context keeps more than ``min_keep`` patches (4;
            configs 10).
        allow_overlap: bool, leave the target patches in the context.
        seed: int >= 0, seeds the mask stream (0: reproducible by default,
            as the official collator).
        rank: None or int in ``[0, 4096)``, the process's rank in a
            multi-process run, so that ranks draw different masks; None reads
            it from ``torch.distributed`` when initialized (else 0).

    Example:
        >>> collator = OfficialMaskCollator(input_size=32, patch_size=8, enc_mask_scale=(0.85, 1.0),
        ...                                 pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5),
        ...                                 nenc=1, npred=4, min_keep=2, seed=0)
        >>> batch = [(torch.zeros(3, 32, 32), 0) for _ in range(3)]
        >>> (images, labels), masks_enc, masks_pred = collator(batch)
        >>> tuple(images.shape), len(masks_enc), len(masks_pred), masks_enc[0].dtype
        ((3, 3, 32, 32), 1, 4, torch.int64)
        >>> masks_pred[0].shape[0], bool((masks_enc[0] < 16).all())
        (3, True)
    """

    def __init__(
        self,
        input_size=(224, 224),
        patch_size=16,
        enc_mask_scale=(0.2, 0.8),
        pred_mask_scale=(0.2, 0.8),
        aspect_ratio=(0.3, 3.0),
        nenc=1,
        npred=2,
        min_keep=4,
        allow_overlap=False,
        seed=0,
        rank=None,
    ):
        height, width = check_pair("input_size", input_size)
        self.patch_size = check_int("patch_size", patch_size, low=1, high=min(height, width))
        self.height, self.width = height // self.patch_size, width // self.patch_size
        self.enc_mask_scale = check_range_pair("enc_mask_scale", enc_mask_scale, high=1.0)
        self.pred_mask_scale = check_range_pair("pred_mask_scale", pred_mask_scale, high=1.0)
        self.aspect_ratio = check_range_pair("aspect_ratio", aspect_ratio)
        if check_int("nenc", nenc, low=1) != 1:
            raise invalid(
                "nenc",
                "1 (one context block, as in every official config; several are not supported)",
                nenc,
            )
        self.nenc = 1
        self.npred = check_int("npred", npred, low=1)
        self.min_keep = check_int("min_keep", min_keep, low=0, high=self.height * self.width - 1)
        self.allow_overlap = check_bool("allow_overlap", allow_overlap)
        self.seed = check_seed(seed)
        if self.seed is None:
            raise invalid("seed", "an integer >= 0", seed)
        self._init_batch_numbering(rank)
        try:
            self.sampler = MultiBlockMaskSampler(
                grid_size=(self.height, self.width),
                num_targets=self.npred,
                target_scale=self.pred_mask_scale,
                target_aspect_ratio=self.aspect_ratio,
                context_scale=self.enc_mask_scale,
                context_aspect_ratio=(1.0, 1.0),
                min_context=self.min_keep + 1,
                allow_overlap=self.allow_overlap,
                seed=self.seed,
                ragged="truncate",
            )
        except ValueError as error:
            if "min_context" not in str(error):
                raise
            raise invalid(
                "min_keep",
                "fewer context patches than these scales can leave "
                f"(here min_context = min_keep + 1; {error})",
                min_keep,
            ) from None

    def __call__(self, batch):
        self._check_batch_size("OfficialMaskCollator", len(batch))
        collated_batch = default_collate(batch)
        masks = self.sampler.sample_at(self._sample_ids(len(batch)))
        masks_enc, masks_pred = to_official_masks(masks)
        return collated_batch, masks_enc, masks_pred


def _vjepa_grid(crop_size, num_frames, patch_size, tubelet_size):
    """``(T, H, W)`` patch grid of V-JEPA's collator arguments (validated)."""
    height, width = check_pair("crop_size", crop_size)
    patch_h, patch_w = check_pair("patch_size", patch_size)
    if patch_h > height or patch_w > width:
        raise invalid(
            "patch_size",
            f"at most the crop size {(height, width)} in each dimension",
            patch_size,
        )
    frames = check_int("num_frames", num_frames, low=1)
    tubelet = check_int("tubelet_size", tubelet_size, low=1, high=frames)
    return (frames // tubelet, height // patch_h, width // patch_w)


def _check_cfgs_mask(cfgs_mask):
    """A non-empty list of dicts (one mask configuration each) -> list of plain dicts."""
    if (
        not isinstance(cfgs_mask, (list, tuple))
        or not cfgs_mask
        or not all(isinstance(m, Mapping) for m in cfgs_mask)
    ):
        raise invalid(
            "cfgs_mask", "a non-empty list of dicts, one per mask configuration", cfgs_mask
        )
    return [dict(m) for m in cfgs_mask]


class VJEPAMaskCollator(_BatchNumbering):
    """Drop-in for V-JEPA's ``MaskCollator`` (``src/masks/multiblock3d.py``), on our samplers.

    Same constructor arguments and defaults as facebookresearch/jepa
    ``src/masks/multiblock3d.py`` ``MaskCollator`` (plus ``seed`` and
    ``rank``), same return value, so V-JEPA's ``app/vjepa/train.py`` (or a
    fork) runs unchanged after one import::

        from jepa_components.backends.torch import VJEPAMaskCollator as MB3DMaskCollator

    ``collator(batch)`` returns ``(collated_batch, masks_enc, masks_pred)``:
    ``default_collate(batch)`` and, per mask configuration of ``cfgs_mask``
    (in order), one ``(B, Kc)`` int64 tensor of context patch indices in
    ``masks_enc`` and one ``(B, Kt)`` int64 tensor of target patch indices
    (the union of the configuration's blocks) in ``masks_pred``. Indices are
    time-major over the ``(T, H, W)`` tubelet grid, ``(t * H + row) * W +
    col`` with ``T = num_frames // tubelet_size``, ``H, W = crop_size //
    patch_size``, the order of V-JEPA's flattened patch embedding; each row
    ascending. Every row is cut to the batch minimum as the reference does
    (the samplers' ``ragged="truncate"``).

    Each configuration is a :class:`~jepa_components.masks.MultiBlock3DMaskSampler`
    built by :func:`~jepa_components.masks.vjepa_samplers` from the same dict
    keys (``spatial_scale``, ``temporal_scale``, ``aspect_ratio``,
    ``num_blocks``, ``max_temporal_keep``, ``max_keep``, and V-JEPA 2's
    ``full_complement``); how its masks differ from the reference's is
    documented there. What differs in the collator: cutting a row to the
    batch minimum keeps a random subset of it instead of its first patches
    (the reference's cut drops the last patches of the time-major order, the
    bottom of the last frames of every context); ``max_keep`` caps the
    context as in the reference, also with a random subset. ``patch_size``
    is an int or an ``(h, w)`` pair: the reference uses it as an int in its
    grid arithmetic (``crop_size[0] // spatial_patch_size``), so its own
    default ``(16, 16)`` raises a ``TypeError`` there (V-JEPA's configs pass
    an int).

    Determinism, workers, epochs and resuming work as in
    :class:`OfficialMaskCollator`: batch number ``g`` over the whole run
    draws samples ``(g * 4096 + rank) * 65536 + i`` of every configuration's
    stream, whatever ``num_workers`` is; :meth:`set_epoch` with persistent
    workers; :meth:`step` skips one batch number (V-JEPA's ``train.py`` calls
    it once per batch already trained when it resumes).

    :class:`VJEPARandomTubeCollator` is the same for ``src/masks/random_tube.py``.

    Args:
        cfgs_mask: list of dicts, one per mask configuration, with the keys
            of V-JEPA's ``mask:`` config section
            (``configs/pretrain/vitl16.yaml``: 8 blocks at spatial scale
            0.15 and 2 blocks at 0.7, ``temporal_scale`` (1.0, 1.0),
            ``aspect_ratio`` (0.75, 1.5);
            :data:`~jepa_components.masks.VJEPA_MASK_CONFIGS`).
        crop_size: int or ``(H, W)``, frame size in pixels (224).
        num_frames: frames per clip (16).
        patch_size: int or ``(h, w)``, spatial patch size in pixels (16).
        tubelet_size: frames per tubelet (2).
        seed: None or int >= 0, seeds the mask streams (None: drawn from the
            OS once, at construction, and kept in ``self.seed``, so every
            worker shares it).
        rank: int in ``[0, 4096)`` (0), the process's rank in a
            multi-process run, so that ranks draw different masks when they
            share a ``seed``; None reads it from ``torch.distributed`` when
            initialized.

    Example:
        >>> cfgs = [
        ...     dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
        ...          aspect_ratio=(0.75, 1.5), num_blocks=8),
        ...     dict(spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0),
        ...          aspect_ratio=(0.75, 1.5), num_blocks=2),
        ... ]
        >>> collator = VJEPAMaskCollator(cfgs, crop_size=64, num_frames=4, patch_size=16,
        ...                              tubelet_size=2, seed=0)
        >>> batch = [(torch.zeros(3, 4, 64, 64), 0) for _ in range(3)]
        >>> (clips, labels), masks_enc, masks_pred = collator(batch)
        >>> tuple(clips.shape), len(masks_enc), len(masks_pred), masks_enc[0].dtype
        ((3, 3, 4, 64, 64), 2, 2, torch.int64)
        >>> collator.grid_size, masks_pred[1].shape[0], bool((masks_enc[1] < 2 * 4 * 4).all())
        ((2, 4, 4), 3, True)
    """

    def __init__(
        self,
        cfgs_mask,
        crop_size=(224, 224),
        num_frames=16,
        patch_size=(16, 16),
        tubelet_size=2,
        seed=None,
        rank=0,
    ):
        self.grid_size = _vjepa_grid(crop_size, num_frames, patch_size, tubelet_size)
        self.cfgs_mask = _check_cfgs_mask(cfgs_mask)
        seed = check_seed(seed)
        if seed is None:  # drawn here, once: the workers' copies share it
            seed = int(cast(int, np.random.SeedSequence().entropy))
        self.seed = seed
        self._init_batch_numbering(rank)
        self.samplers = self._make_samplers()

    def _make_samplers(self):
        """One ``ragged="truncate"`` sampler per mask configuration."""
        try:
            return vjepa_samplers(
                self.grid_size, configs=self.cfgs_mask, seed=self.seed, ragged="truncate"
            )
        except ValueError as error:  # name the collator's argument, not vjepa_samplers'
            message = str(error).replace("argument `configs[", "argument `cfgs_mask[")
            raise ValueError(message) from None

    def __call__(self, batch):
        self._check_batch_size(type(self).__name__, len(batch))
        collated_batch = default_collate(batch)
        ids = self._sample_ids(len(batch))
        masks_enc, masks_pred = [], []
        for sampler in self.samplers:  # max_keep: the sampler's context_length cap
            enc, pred = to_official_masks(sampler.sample_at(ids))
            masks_enc += enc
            masks_pred += pred  # one target: the union of the configuration's blocks
        return collated_batch, masks_enc, masks_pred


class VJEPARandomTubeCollator(VJEPAMaskCollator):
    """Drop-in for V-JEPA's ``src/masks/random_tube.py`` ``MaskCollator``.

    The same as :class:`VJEPAMaskCollator` (constructor, return value,
    determinism), for configurations ``{"ratio": r}``: each draws a
    :class:`~jepa_components.masks.RandomTubeMaskSampler`, a random set of
    ``int(H * W * (1 - r))`` spatial positions kept as context through every
    frame, the rest the target. Every row of a batch has the same counts, so
    nothing is cut. Configuration ``c`` uses the seed ``seed + c``. A
    configuration with any key but ``ratio`` is refused (the reference
    ignores other keys).

    Example:
        >>> collator = VJEPARandomTubeCollator([{"ratio": 0.75}], crop_size=64, num_frames=4,
        ...                                    patch_size=16, tubelet_size=2, seed=0)
        >>> _, masks_enc, masks_pred = collator([torch.zeros(1) for _ in range(2)])
        >>> tuple(masks_enc[0].shape), tuple(masks_pred[0].shape)
        ((2, 8), (2, 24))
    """

    def _make_samplers(self):
        samplers = []
        for c, config in enumerate(self.cfgs_mask):
            if set(config) != {"ratio"}:  # the reference reads only "ratio"
                raise invalid(f"cfgs_mask[{c}]", 'a dict with the one key "ratio"', config)
            try:
                samplers.append(
                    RandomTubeMaskSampler(
                        grid_size=self.grid_size,
                        ratio=config.get("ratio"),
                        seed=self.seed + c,
                        ragged="truncate",
                    )
                )
            except ValueError as error:
                raise ValueError(f"In cfgs_mask[{c}]: {error}") from None
        return samplers
