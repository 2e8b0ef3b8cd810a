"""backends/torch.py: masks keyed by example, identical under any number of workers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jepa_components.backends.torch import IndexedDataset, MaskCollator, to_official_masks  # noqa: E402
from jepa_components.masks import MultiBlockMaskSampler  # noqa: E402


def loader(num_workers, batch_size=4, shuffle=False, seed=0):
    images = torch.arange(12, dtype=torch.float32).reshape(12, 1, 1, 1).expand(12, 1, 8, 8)
    data = IndexedDataset(torch.utils.data.TensorDataset(images, torch.arange(12)))
    collate = MaskCollator(MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=seed), len(data))
    gen = torch.Generator().manual_seed(0)
    # spawn: forking a process that has JAX loaded (other tests) can deadlock
    context = "spawn" if num_workers else None
    return collate, torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        collate_fn=collate, generator=gen, multiprocessing_context=context,
    )


def by_example(batches):
    """Map example id (encoded in the image) -> its context indices."""
    out = {}
    for b in batches:
        for img, ctx, valid in zip(b["images"], b["context"], b["context_valid"]):
            out[int(img[0, 0, 0])] = ctx[valid].tolist()
    return out


def test_masks_do_not_depend_on_workers_or_shuffling():
    _, single = loader(0)
    _, multi = loader(2, batch_size=3, shuffle=True)
    a, b = by_example(single), by_example(multi)
    assert a == b and len(a) == 12
    # and they are not all the same mask (the shared-RNG bug repeats masks per worker)
    assert len({tuple(v) for v in a.values()}) > 6


def test_set_epoch_gives_fresh_masks():
    collate, dl = loader(0)
    first = by_example(dl)
    collate.set_epoch(1)
    second = by_example(dl)
    assert first != second


def test_batch_dtypes_and_keys():
    _, dl = loader(0)
    batch = next(iter(dl))
    assert batch["context"].dtype == torch.int64 and batch["context_valid"].dtype == torch.bool
    assert batch["images"].shape == (4, 1, 8, 8)


def test_to_official_masks_needs_unpadded_batches():
    padded = MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0).sample(4)
    if not (padded.context_valid.all() and padded.targets_valid.all()):
        with pytest.raises(ValueError, match="truncate"):
            to_official_masks(padded)
    cut = MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0, ragged="truncate").sample(4)
    enc, pred = to_official_masks(cut)
    assert len(enc) == 1 and len(pred) == 4 and pred[0].dtype == torch.int64
    assert np.array_equal(pred[2].numpy(), cut.targets[:, 2])


def test_collator_rejects_unindexed_items():
    collate = MaskCollator(MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0), 3)
    with pytest.raises(ValueError, match="IndexedDataset"):
        collate([torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)])
