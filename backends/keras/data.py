"""``MaskedImageDataset``: images plus a fresh ``MaskBatch`` for ``model.fit``.

A ``keras.utils.PyDataset``, so the same object feeds ``IJEPA.fit`` on jax,
torch and tensorflow. Every batch is a dict ``{"images", "context",
"context_valid", "targets", "targets_valid"}`` (the :class:`IJEPA` batch
contract) with masks from any core sampler
(``jepa_components.masks``), drawn with ``sampler.sample(batch_size,
start=k)`` where ``k`` is the global index of the batch's first sample:
batch ``idx`` of epoch ``e`` always gets the same masks, whatever the order
in which workers ask for batches (no mask repeated across workers, a pitfall
of per-worker RNG state).
"""

import numpy as np
import keras

__all__ = ["MaskedImageDataset"]


class MaskedImageDataset(keras.utils.PyDataset):
    """Batches of images with I-JEPA masks, for ``model.fit``.

    Args:
        images: array ``(N, H, W, C)`` (channels last), or any sequence whose
            items are ``(H, W, C)`` arrays.
        sampler: a mask sampler of the core, e.g.
            ``MultiBlockMaskSampler(grid_size=(H // p, W // p), seed=0)``.
        batch_size: int >= 1. Incomplete last batches are dropped (fixed
            shapes, as the official loader's ``drop_last=True``).
        shuffle: bool; a new order every epoch, drawn from ``seed`` and the
            epoch number (reproducible).
        seed: int or None, seed of the shuffling.
        transform: None or a callable ``(images (B, H, W, C), rng) -> images``
            applied per batch (augmentation); ``rng`` is a NumPy Generator
            seeded by ``seed``, the epoch and the batch index.
        dtype: dtype of the yielded images (default float32).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``
            of ``keras.utils.PyDataset``.

    Example:
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> images = np.zeros((64, 32, 32, 3), "float32")
        >>> data = MaskedImageDataset(images, MultiBlockMaskSampler(grid_size=(4, 4), seed=0),
        ...                           batch_size=16, shuffle=True, seed=0)
        >>> len(data), sorted(data[0])
        (4, ['context', 'context_valid', 'images', 'targets', 'targets_valid'])
    """

    def __init__(self, images, sampler, batch_size, shuffle=False, seed=None, transform=None,
                 dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                or batch_size < 1):
            raise ValueError("Invalid value for argument `batch_size`. Expected an integer >= 1. "
                             f"Received: batch_size={batch_size!r}")
        if len(images) < batch_size:
            raise ValueError("Invalid value for argument `images`. Expected at least "
                             f"batch_size={batch_size} images. Received: {len(images)} images")
        if not hasattr(sampler, "sample"):
            raise ValueError("Invalid value for argument `sampler`. Expected a mask sampler "
                             "with a `sample(batch_size, start=...)` method. "
                             f"Received: sampler={sampler!r}")
        if transform is not None and not callable(transform):
            raise ValueError("Invalid value for argument `transform`. Expected None or a "
                             f"callable. Received: transform={transform!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError("Invalid value for argument `seed`. Expected None or an integer "
                             f">= 0. Received: seed={seed!r}")
        self.images, self.sampler, self.batch_size = images, sampler, int(batch_size)
        self.shuffle, self.seed, self.transform, self.dtype = bool(shuffle), seed, transform, dtype
        # seed None: fresh entropy, drawn once (still one fixed stream per object).
        self._base_seed = int(np.random.SeedSequence().entropy if seed is None else seed)
        self.epoch = 0
        self._order = self._order_for(0)

    def __len__(self):
        return len(self.images) // self.batch_size

    def _order_for(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self._base_seed, int(epoch)]).permutation(len(self.images))

    def __getitem__(self, idx):
        if not 0 <= idx < len(self):
            raise IndexError(f"batch index {idx} out of range [0, {len(self)})")
        rows = self._order[idx * self.batch_size:(idx + 1) * self.batch_size]
        if isinstance(self.images, np.ndarray):
            images = self.images[rows]
        else:
            images = np.stack([np.asarray(self.images[int(i)]) for i in rows])
        if self.transform is not None:
            rng = np.random.default_rng([self._base_seed, self.epoch, int(idx)])
            images = self.transform(images, rng)
        start = (self.epoch * len(self) + int(idx)) * self.batch_size
        batch = self.sampler.sample(self.batch_size, start=start).as_dict()
        batch["images"] = np.asarray(images, dtype=self.dtype)
        return batch

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._order_for(self.epoch)
