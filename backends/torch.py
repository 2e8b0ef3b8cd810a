"""PyTorch glue: a ``DataLoader`` collate function that adds I-JEPA masks.

Masks are keyed by *which example* is being masked, not by a counter shared
across worker processes (a counter forked into every worker repeats the same
masks in each of them; the official ``MaskCollator`` works around it with a
shared-memory counter, which still ties masks to batch order). Wrap the
dataset in :class:`IndexedDataset`, and :class:`MaskCollator` draws the masks
of example ``i`` in epoch ``e`` as sample ``e * len(dataset) + i`` of the
sampler's stream: the same under any number of workers, batch size or
shuffling.

Example:
    >>> import torch
    >>> from jepa_components.masks import MultiBlockMaskSampler
    >>> from jepa_components.backends.torch import IndexedDataset, MaskCollator
    >>> images = torch.zeros(10, 3, 32, 32)
    >>> data = IndexedDataset(torch.utils.data.TensorDataset(images))
    >>> collate = MaskCollator(MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0), len(data))
    >>> loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate)
    >>> batch = next(iter(loader))
    >>> sorted(batch), tuple(batch["targets"].shape)[:2]
    (['context', 'context_valid', 'images', 'targets', 'targets_valid'], (4, 4))
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset, default_collate
except ImportError as error:  # pragma: no cover - exercised without torch
    raise ImportError(
        'jepa_components.backends.torch needs PyTorch: pip install "jepa-components[torch]"'
    ) from error

from jepa_components.masks import MaskBatch, MaskSampler

__all__ = ["IndexedDataset", "MaskCollator", "to_official_masks"]


class IndexedDataset(Dataset):
    """Wraps a map-style dataset so item ``i`` comes back as ``(i, dataset[i])``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return index, self.dataset[index]


class MaskCollator:
    """``collate_fn`` returning ``{"images", "context", "context_valid", "targets", "targets_valid"}``.

    Items must be ``(index, item)`` pairs (see :class:`IndexedDataset`); the
    image is ``item`` itself or, for tuples such as ``TensorDataset`` rows or
    ``(image, label)``, ``item[0]``. Index arrays become ``int64`` tensors
    (``torch.gather`` wants them), valid flags ``bool`` tensors.

    Call :meth:`set_epoch` before each epoch (as with
    ``DistributedSampler``) for fresh masks every epoch; workers pick the
    value up when the loader starts them (the default
    ``persistent_workers=False``).
    """

    def __init__(self, sampler: MaskSampler, dataset_size: int):
        if not isinstance(sampler, MaskSampler):
            raise ValueError(
                "Invalid value for argument `sampler`. Expected a "
                f"jepa_components.masks sampler. Received: {type(sampler).__name__}"
            )
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
    pred = [torch.from_numpy(batch.targets[:, m].astype(np.int64)) for m in range(batch.num_targets)]
    return enc, pred
