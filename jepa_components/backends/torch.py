"""PyTorch glue: a ``DataLoader`` collate function that adds I-JEPA masks.

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
    check_sampler_grid,
)

__all__ = [
    "IndexedDataset",
    "MaskCollator",
    "OfficialMaskCollator",
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


class OfficialMaskCollator:
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
        self.rank = (
            _process_group_rank()
            if rank is None
            else check_int("rank", rank, low=0, high=_RANKS - 1)
        )
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
        # Spawn-context shared memory also works in forked workers; the reverse does not.
        self._shared = multiprocessing.get_context("spawn").Array("q", 6)
        self._shared[_TOKEN] = -1  # no pass of workers seen yet (base seeds are >= 0)
        self._generation = None  # per process: the set_epoch generation this worker follows
        self._base = self._count = 0

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

    def __call__(self, batch):
        size = len(batch)
        if not 1 <= size <= _BATCH:
            raise ValueError(
                f"OfficialMaskCollator takes batches of 1 to {_BATCH} items. Received: {size} items"
            )
        collated_batch = default_collate(batch)
        first = (self._batch_number() * _RANKS + self.rank) * _BATCH
        masks = self.sampler.sample_at(np.arange(first, first + size, dtype=np.int64))
        masks_enc, masks_pred = to_official_masks(masks)
        return collated_batch, masks_enc, masks_pred
