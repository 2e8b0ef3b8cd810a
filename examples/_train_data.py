"""Data of examples/train_ijepa.py: the image source and the training batches.

Two sources behind one interface (``len``, ``load_batch(indices)``,
labels): the bundled digits held in memory, or an
:class:`~jepa_components.datasets.ImageFolder` read lazily. Training batches
come from :class:`MaskedImageBatches`, a ``keras.utils.PyDataset`` whose item
``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: the image order
is a permutation seeded with ``seed + e`` and the masks are samples
``step * B ... step * B + B - 1`` of the mask sampler's counter-based stream
(``step = e * steps_per_epoch + i``). That is what makes ``--resume`` exact
and lets Keras read batches in worker threads (``workers > 1``) while the
model trains.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jepa_components import datasets

# ImageNet statistics, used by the official I-JEPA transforms for RGB folders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class Source:
    """Images behind ``load_batch`` plus the split used for training/eval."""

    name: str
    load_batch: object  # callable: indices -> (b, H, W, C) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64, -1 where unlabelled
    train_indices: np.ndarray
    test_indices: np.ndarray
    channels: int
    mean: np.ndarray
    std: np.ndarray
    image_shape: tuple = ()  # (H, W, C)
    folder: object = None  # the ImageFolder, when reading one

    @property
    def labelled(self):
        known = self.labels[np.concatenate([self.train_indices, self.test_indices])]
        return bool(np.all(known >= 0)) and len(np.unique(known)) >= 2

    def normalize(self, images):
        return ((images - self.mean) / self.std).astype(np.float32)

    @property
    def skipped(self):
        return 0 if self.folder is None else self.folder.num_skipped


def digits_source(config):
    split = datasets.load_digits_split(
        config["image_size"], channels=1, test_fraction=config["test_fraction"],
        seed=config["seed"])
    images = np.concatenate([split.train_images, split.test_images])
    labels = np.concatenate([split.train_labels, split.test_labels])
    train = np.arange(len(split.train_images))
    test = np.arange(len(split.train_images), len(images))
    mean = split.train_images.mean()
    std = split.train_images.std()
    return Source(
        name="digits (scikit-learn, 8x8 upsampled)",
        load_batch=lambda indices: images[np.asarray(indices)],
        labels=labels, train_indices=train, test_indices=test, channels=1,
        image_shape=images.shape[1:],
        mean=np.float32(mean), std=np.float32(std))


def folder_source(config):
    folder = datasets.ImageFolder(config["data"], image_size=config["image_size"],
                                  channels=3, on_bad_image=config["on_bad_image"])
    train, test = datasets.split_indices(len(folder), test_fraction=config["test_fraction"],
                                         seed=config["seed"])
    return Source(
        name=f"image folder {config['data']} ({len(folder)} files, "
             f"{len(folder.class_names)} classes)",
        load_batch=folder.load_batch, labels=folder.labels, train_indices=train,
        test_indices=test, channels=3,
        image_shape=(config["image_size"], config["image_size"], 3), mean=np.asarray(IMAGENET_MEAN, np.float32),
        std=np.asarray(IMAGENET_STD, np.float32), folder=folder)


def make_source(config):
    return digits_source(config) if config["data"] is None else folder_source(config)


def subset(indices, limit, seed):
    """At most ``limit`` of ``indices``, a fixed random choice, sorted."""
    if len(indices) <= limit:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))


def make_batches(source, sampler, config, steps_per_epoch, start_epoch):
    """The PyDataset for ``model.fit``; imports keras here."""
    import keras

    class MaskedImageBatches(keras.utils.PyDataset):
        """Dict batches ``{"images", "context", "context_valid", "targets", "targets_valid"}``."""

        def __init__(self):
            workers = config["workers"] if source.folder is not None else 1
            super().__init__(workers=workers, use_multiprocessing=False,
                             max_queue_size=max(2, 2 * workers))
            self.epoch = start_epoch
            self.batch_size = config["batch_size"]
            self.error = None  # a BadImageError (--on-bad-image stop), reported by the monitor

        def __len__(self):
            return steps_per_epoch

        def __getitem__(self, index):
            order = np.random.default_rng([config["seed"], self.epoch]).permutation(
                source.train_indices)
            chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
            step = self.epoch * steps_per_epoch + index
            masks = sampler.sample(self.batch_size, start=step * self.batch_size)
            try:
                images = source.normalize(source.load_batch(chosen))
            except datasets.BadImageError as error:
                # Raised in a reader thread, an exception would reach the user
                # wrapped differently per backend; record it, stop cleanly.
                self.error = self.error or error
                images = np.zeros((self.batch_size,) + source.image_shape, np.float32)
            batch = {"images": images}
            batch.update(masks.as_dict())
            return batch

        def on_epoch_end(self):
            # Keras stops its reader threads before calling this, and starts
            # them again after: no batch of the next epoch is read early.
            self.epoch += 1

    return MaskedImageBatches()
