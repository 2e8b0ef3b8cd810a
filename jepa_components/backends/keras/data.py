"""Keras datasets for the JEPA models: masked images and multi-view batches.

Two ``keras.utils.PyDataset`` classes on one base (``_ImageBatches``: the
sources, the order, the epochs, the fit hooks, the error notes), so the same
object feeds ``fit`` on jax, torch and tensorflow:

- :class:`MaskedImageDataset`: ``{"images", "context", "context_valid",
  "targets", "targets_valid"}`` (the :class:`IJEPA` batch contract) with
  masks from any core sampler (``jepa_components.masks``);
- :class:`MultiViewDataset`: ``{"views": (B, V, H, W, C)}`` (plus
  ``"labels"``), the :class:`LeJEPA` batch contract, with views from a
  batch transform such as ``jepa_components.augment.lejepa_views``.

**A pure function of (seed, epoch, index).** Batch ``i`` of epoch ``e``
holds the items ``order_e[i B : (i + 1) B]``, where ``order_e`` is a
permutation of ``indices`` seeded with ``(seed, e)`` (or ``indices``
itself without ``shuffle``); its augmentation draws from a generator
seeded with ``(seed, e, i)``, and the masks of a
:class:`MaskedImageDataset` are ``sampler.sample(B, start=k)`` with ``k =
(e * len(dataset) + i) * B``: samples ``k .. k + B - 1`` of the sampler's
counter-based stream. So a batch does not depend on the order in which
workers ask for batches (no mask or view repeated across workers, a
pitfall of per-worker RNG state), and a run resumed at epoch ``e`` sees
exactly the batches of an uninterrupted one.

**Epochs.** Keras tells a ``PyDataset`` when an epoch begins, not which
one, and it calls ``on_epoch_end`` once more when ``fit`` starts (Keras
3.15, every backend), so counting ``on_epoch_end`` calls is off by one.
Here the dataset starts at ``initial_epoch`` and each ``on_epoch_begin``
moves to the next epoch; :meth:`MaskedImageDataset.set_epoch` sets the
epoch the next ``on_epoch_begin`` starts. The JEPA models' ``fit`` keeps it
on ``fit``'s own epoch, so ``model.fit(data, epochs=10, initial_epoch=4)``
continues the shuffle, augmentation and mask streams of epoch 4 even on a
fresh dataset.

**Fit hooks.** A dataset tells ``fit`` what it needs through
:meth:`MaskedImageDataset.fit_hooks` (a :class:`FitHooks`): the JEPA models'
``fit`` (``models.base.JEPAModel.fit``) asks any dataset for it, so a dataset
of another kind can define its own. Here: :meth:`MaskedImageDataset.epoch_callback`
first in the callbacks, ``fit`` run inside
:meth:`MaskedImageDataset.reader_errors_unwrapped`, and ``shuffle=False``
(the dataset shuffles itself, reproducibly, while ``fit``'s ``shuffle``
reorders the batches of an epoch with Python's global ``random``). For
another model, pass ``callbacks=[data.epoch_callback()]`` and
``shuffle=False`` yourself. The same ``fit`` refuses a ``sampler`` on another
patch grid than the model's encoder.

**Sources.** An array ``(N, H, W, C)``, a sequence of ``(H, W, C)`` arrays,
or ``load_batch(indices) -> (b, H, W, C)`` for images read on demand (e.g.
``jepa_components.datasets.ImageFolder.load_batch``) with ``workers > 1``
reader threads. An exception raised while building a batch (a bad file, a
failing transform) reaches the caller of ``fit`` as the exception raised,
with a note naming the epoch, batch and items; it is also kept in
``dataset.error``. (On tensorflow, Keras reads batches in a ``tf.data``
generator, which would wrap it into a ``tf.errors.UnknownError``; the JEPA
models' ``fit`` re-raises the original.)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, cast

import keras
import numpy as np

from jepa_components._validation import check_bool, check_int, check_seed, invalid, is_int

__all__ = ["FitHooks", "MaskedImageDataset", "MultiViewDataset"]


@dataclasses.dataclass(frozen=True)
class FitHooks:
    """What a dataset needs from ``fit``: the protocol of the JEPA models' ``fit``.

    A dataset defines ``fit_hooks(model) -> FitHooks`` (or None for
    nothing); ``JEPAModel.fit(x)`` calls ``x.fit_hooks(model)`` if present.

    Attributes:
        callbacks: Keras callbacks run first, before the model's and the user's.
        context: a zero-argument callable returning the context manager ``fit``
            runs in (e.g. to re-raise the dataset's own errors).
        shuffle: None (any ``shuffle``), or the one value ``fit``'s
            ``shuffle`` must take with this dataset (also its default).
        shuffle_reason: completes "Expected shuffle=... with ..." in the
            error raised for another ``shuffle``.
    """

    callbacks: tuple = ()
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    shuffle: bool | None = None
    shuffle_reason: str = "this dataset"


class _EpochCallback(keras.callbacks.Callback):
    """Sets the dataset's epoch to ``fit``'s at every epoch begin."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class _ImageBatches(keras.utils.PyDataset):
    """The shared machinery of the datasets here: sources, order, epochs, hooks, errors.

    A subclass defines ``_batch(epoch, idx, rows) -> dict`` (the batch of the
    items ``rows``, reading them with :meth:`_load` and drawing its
    randomness from :meth:`_rng`) and validates its own arguments after
    ``super().__init__``.
    """

    def __init__(
        self,
        images: Any = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        dtype: Any = "float32",
        *,
        load_batch: Callable | None = None,
        indices: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        if (images is None) == (load_batch is None):
            raise invalid(
                "images",
                "an image array or sequence, or None with a `load_batch` "
                "callable (exactly one of the two)",
                type(images).__name__ if images is not None else None,
            )
        if load_batch is not None and not callable(load_batch):
            raise invalid("load_batch", "None or a callable indices -> images", load_batch)
        if load_batch is not None and indices is None:
            raise invalid(
                "indices", "the 1-D integer indices of the items `load_batch` reads", None
            )
        self.images, self.load_batch = images, load_batch
        self.indices = self._check_indices(indices)
        if len(self.indices) < self.batch_size:
            raise invalid(
                "images",
                f"at least batch_size={self.batch_size} images",
                f"{len(self.indices)} images",
            )
        self.shuffle = check_bool("shuffle", shuffle)
        self.seed = check_seed(seed)
        self.dtype = dtype
        self.initial_epoch = check_int("initial_epoch", initial_epoch, low=0)
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, low=1, allow_none=True)
        # seed None: fresh entropy, drawn once (still one fixed stream per object).
        entropy = np.random.SeedSequence().entropy if seed is None else seed
        self._base_seed = int(cast(int, entropy))
        self.error: Exception | None = None  # the first exception raised while building a batch
        self.set_epoch(self.initial_epoch)

    def _check_indices(self, indices):
        if indices is None:
            return np.arange(len(self.images))
        array = np.asarray(indices)
        if (
            array.ndim != 1
            or not (array.size == 0 or np.issubdtype(array.dtype, np.integer))
            or (array.size and array.min() < 0)
        ):
            raise invalid("indices", "a 1-D array of integers >= 0", indices)
        if self.images is not None and array.size and array.max() >= len(self.images):
            raise invalid(
                "indices", f"integers < len(images) = {len(self.images)}", f"max {int(array.max())}"
            )
        return array.astype(np.int64)

    # ---------------------------------------------------------------- epochs
    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch`` the current epoch (and the one the next epoch begin starts)."""
        self.epoch = check_int("epoch", epoch, low=0)
        self._next_epoch = self.epoch

    def on_epoch_begin(self) -> None:
        """Keras hook: start the next epoch (``initial_epoch``, then one more each time)."""
        self.epoch = self._next_epoch
        self._next_epoch += 1

    def on_epoch_end(self) -> None:
        """Keras hook: nothing (Keras also calls it once when ``fit`` starts)."""

    def epoch_callback(self) -> keras.callbacks.Callback:
        """A Keras callback that sets this dataset to ``fit``'s epoch (:meth:`fit_hooks` has it)."""
        return _EpochCallback(self)

    def fit_hooks(self, model: Any = None) -> FitHooks:
        """What ``fit`` on this dataset needs (module docstring, "Fit hooks").

        The epoch callback first, ``fit`` inside :meth:`reader_errors_unwrapped`,
        and ``shuffle=False``. ``model`` (the model being fitted) is not
        needed here.
        """
        name = type(self).__name__
        return FitHooks(
            callbacks=(self.epoch_callback(),),
            context=self.reader_errors_unwrapped,
            shuffle=False,
            shuffle_reason=f"a {name} (it shuffles itself from its seed and the "
            f"epoch: pass shuffle=True to {name} instead)",
        )

    # --------------------------------------------------------------- batches
    def __len__(self) -> int:
        available = len(self.indices) // self.batch_size
        return available if self.steps_per_epoch is None else min(available, self.steps_per_epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The item order of ``epoch``: ``indices``, permuted if ``shuffle``."""
        if not self.shuffle:
            return self.indices
        cached = getattr(self, "_order_cache", None)  # one (epoch, order) tuple: thread safe
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self._base_seed, int(epoch)])
            cached = (epoch, self.indices[rng.permutation(len(self.indices))])
            self._order_cache = cached
        return cached[1]

    def __getitem__(self, idx: int) -> dict:
        if not is_int(idx) or not 0 <= idx < len(self):
            raise IndexError(f"batch index {idx} out of range [0, {len(self)})")
        epoch, idx = self.epoch, int(idx)
        rows = self.order(epoch)[idx * self.batch_size : (idx + 1) * self.batch_size]
        try:
            return self._batch(epoch, idx, rows)
        except Exception as error:
            if hasattr(error, "add_note"):
                shown = ", ".join(str(int(i)) for i in rows[:8]) + (" ..." if len(rows) > 8 else "")
                error.add_note(
                    f"({type(self).__name__}: epoch {epoch}, batch {idx}, items [{shown}])"
                )
            if self.error is None:
                self.error = error
            raise

    def _batch(self, epoch: int, idx: int, rows: np.ndarray) -> dict:
        raise NotImplementedError

    def _load(self, rows: np.ndarray) -> Any:
        """The items ``rows`` from the source (array, sequence or ``load_batch``)."""
        if self.load_batch is not None:
            return self.load_batch(rows)
        if isinstance(self.images, np.ndarray):
            return self.images[rows]
        return np.stack([np.asarray(self.images[int(i)]) for i in rows])

    def _rng(self, epoch: int, idx: int) -> np.random.Generator:
        """The generator of batch ``idx`` of ``epoch``: seeded by ``(seed, epoch, idx)``."""
        return np.random.default_rng([self._base_seed, epoch, idx])

    @contextlib.contextmanager
    def reader_errors_unwrapped(self) -> Iterator[None]:
        """Within it, an exception that wraps ``self.error`` is replaced by it.

        ``fit`` runs in it (:meth:`fit_hooks`): on tensorflow a reader error
        arrives as a ``tf.errors.UnknownError``; it becomes the original
        exception again.
        """
        self.error = None
        try:
            yield
        except Exception as raised:
            error = self.error
            if error is None or raised is error:
                raise
            raise error from None


class MaskedImageDataset(_ImageBatches):
    """Batches of images with I-JEPA masks, for ``model.fit``.

    Args:
        images: array ``(N, H, W, C)`` (channels last), or any sequence whose
            items are ``(H, W, C)`` arrays, or clips ``(N, T, H, W, C)`` for a
            clip encoder with a 3-D sampler (V-JEPA); None when ``load_batch``
            is given.
        sampler: a mask sampler of the core, e.g.
            ``MultiBlockMaskSampler(grid_size=(H // p, W // p), seed=0)``. A
            sampler with ``num_clones = C > 1`` (data2vec 2.0) gives ``C``
            mask rows per image: every image is repeated ``C`` times in the
            batch, image-major, so ``images`` and the masks have ``B * C`` rows.
        batch_size: int >= 1. Incomplete last batches are dropped (fixed
            shapes, as the official loader's ``drop_last=True``).
        shuffle: bool; a new order every epoch, drawn from ``seed`` and the
            epoch number (reproducible).
        seed: int >= 0 or None, seed of the shuffling (None: fresh entropy,
            drawn once).
        transform: None or a callable ``(images (B, H, W, C), rng) -> images``
            applied per batch (augmentation, normalization); ``rng`` is a
            NumPy Generator seeded by ``seed``, the epoch and the batch index.
        dtype: dtype of the yielded images (default float32).
        load_batch: None or a callable ``indices (b,) int64 -> (b, H, W, C)``
            array, instead of ``images``: the items are read per batch (in
            ``workers`` threads if asked).
        indices: 1-D ints, the items to train on (e.g. a training split);
            default all of ``images``. Required with ``load_batch``.
        initial_epoch: int >= 0, the epoch the dataset starts at.
        steps_per_epoch: None or int >= 1: at most this many batches per
            epoch (the first ones of each epoch's order; the mask stream
            counts the capped epochs).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``
            of ``keras.utils.PyDataset``.

    Example:
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> images = np.random.default_rng(0).random((64, 32, 32, 3), "float32")
        >>> sampler = MultiBlockMaskSampler(grid_size=(4, 4), min_context=2, seed=0)
        >>> data = MaskedImageDataset(images, sampler, batch_size=16, shuffle=True, seed=0)
        >>> len(data), sorted(data[0])
        (4, ['context', 'context_valid', 'images', 'targets', 'targets_valid'])

        Items read on demand, three batches per epoch, starting at epoch 2:

        >>> reader = MaskedImageDataset(load_batch=lambda rows: images[rows], sampler=sampler,
        ...                             batch_size=16, indices=np.arange(48, 64),
        ...                             steps_per_epoch=3, initial_epoch=2)
        >>> len(reader), reader.epoch
        (1, 2)
        >>> bool(np.array_equal(reader[0]["images"], images[48:64]))
        True
    """

    def __init__(
        self,
        images: Any = None,
        sampler: Any = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        transform: Callable | None = None,
        dtype: Any = "float32",
        *,
        load_batch: Callable | None = None,
        indices: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            images,
            batch_size,
            shuffle,
            seed,
            dtype,
            load_batch=load_batch,
            indices=indices,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            **kwargs,
        )
        if not hasattr(sampler, "sample"):
            raise invalid(
                "sampler", "a mask sampler with a `sample(batch_size, start=...)` method", sampler
            )
        if transform is not None and not callable(transform):
            raise invalid("transform", "None or a callable", transform)
        self.sampler, self.transform = sampler, transform

    def _batch(self, epoch, idx, rows):
        images = self._load(rows)
        if self.transform is not None:
            images = self.transform(images, self._rng(epoch, idx))
        images = np.asarray(images, dtype=self.dtype)
        if images.ndim not in (4, 5) or images.shape[0] != len(rows):
            raise ValueError(
                f"Expected a batch of images ({len(rows)}, H, W, C) or clips ({len(rows)}, "
                f"T, H, W, C) from the image source. Received: shape {images.shape}"
            )
        start = (epoch * len(self) + idx) * self.batch_size
        batch = self.sampler.sample(self.batch_size, start=start).as_dict()
        clones = int(getattr(self.sampler, "num_clones", 1))
        if clones > 1:  # one image per mask row, image-major (data2vec's repeat_interleave)
            images = np.repeat(images, clones, axis=0)
        batch["images"] = images
        return batch


class MultiViewDataset(_ImageBatches):
    """Batches of ``V`` augmented views of every image, for ``LeJEPA.fit``.

    Each batch is ``{"views": views_transform(images, rng)}`` with ``views``
    ``(B, V, h, w, C)`` (global views first), plus ``"labels": (B,) int32``
    when ``labels`` is given (the online probe of :class:`LeJEPA`). ``rng``
    is a NumPy Generator seeded by ``seed``, the epoch and the batch index,
    so batch ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``
    (module docstring): resumable, and the same whichever worker builds it.

    Args:
        images: array ``(N, H, W, C)`` (channels last), or any sequence whose
            items are ``(H, W, C)`` arrays; None when ``load_batch`` is given.
        views_transform: a callable ``(images (B, H, W, C), rng) -> (B, V, h,
            w, C)``, e.g. ``jepa_components.augment.lejepa_views(32)`` or a
            :class:`~jepa_components.augment.MultiView`.
        batch_size: int >= 1. Incomplete last batches are dropped.
        shuffle: bool; a new order every epoch, drawn from ``seed`` and the
            epoch number (reproducible).
        seed: int >= 0 or None, seed of the shuffling and of the views (None:
            fresh entropy, drawn once).
        labels: None or an ``(N,)`` integer array indexed like the items
            (``labels[i]`` is the label of item ``i``; with ``load_batch``,
            defined for every index in ``indices``).
        dtype: dtype of the yielded views (default float32).
        load_batch: None or a callable ``indices (b,) int64 -> (b, H, W, C)``
            array, instead of ``images``.
        indices: 1-D ints, the items to train on; default all of ``images``.
            Required with ``load_batch``.
        initial_epoch: int >= 0, the epoch the dataset starts at.
        steps_per_epoch: None or int >= 1: at most this many batches per epoch.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``
            of ``keras.utils.PyDataset``.

    Example:
        >>> from jepa_components.augment import lejepa_views
        >>> images = np.random.default_rng(0).random((64, 28, 28, 1), "float32")
        >>> labels = np.arange(64) % 10
        >>> data = MultiViewDataset(images, lejepa_views(16, channels=1, num_local=2),
        ...                         batch_size=16, shuffle=True, seed=0, labels=labels)
        >>> len(data), data[0]["views"].shape, data[0]["labels"].shape
        (4, (16, 4, 16, 16, 1), (16,))
        >>> bool(np.array_equal(data[1]["views"], data[1]["views"]))  # a pure function
        True
    """

    def __init__(
        self,
        images: Any = None,
        views_transform: Callable | None = None,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int | None = None,
        labels: Any = None,
        dtype: Any = "float32",
        *,
        load_batch: Callable | None = None,
        indices: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            images,
            batch_size,
            shuffle,
            seed,
            dtype,
            load_batch=load_batch,
            indices=indices,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            **kwargs,
        )
        if not callable(views_transform):
            raise invalid(
                "views_transform",
                "a callable (images, rng) -> views (B, V, h, w, C), e.g. "
                "jepa_components.augment.lejepa_views(size)",
                views_transform,
            )
        self.views_transform = views_transform
        self.labels = self._check_labels(labels)

    def _check_labels(self, labels):
        if labels is None:
            return None
        array = np.asarray(labels)
        if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
            raise invalid("labels", "None or a 1-D integer array (one label per item)", labels)
        needed = len(self.images) if self.images is not None else int(self.indices.max()) + 1
        if (self.images is not None and len(array) != needed) or len(array) < needed:
            raise invalid(
                "labels",
                f"{needed} labels (one per item{' of `images`' if self.images is not None else ''}"
                f"{'' if self.images is not None else ', up to the largest index'})",
                f"{len(array)} labels",
            )
        return array.astype(np.int32)

    def _batch(self, epoch, idx, rows):
        views = self.views_transform(self._load(rows), self._rng(epoch, idx))
        views = np.asarray(views, dtype=self.dtype)
        if views.ndim != 5 or views.shape[0] != len(rows):
            raise ValueError(
                f"Expected views ({len(rows)}, V, H, W, C) from `views_transform`. "
                f"Received: shape {views.shape}"
            )
        batch = {"views": views}
        if self.labels is not None:
            batch["labels"] = self.labels[rows]
        return batch
