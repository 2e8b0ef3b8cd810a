"""Data of examples/train_ijepa.py: the image sources and the training dataset.

Three sources behind one interface (:class:`Source`: ``load_batch(indices)``,
labels, a train/held-out split and the normalisation):

- ``digits``: scikit-learn's bundled handwritten digits held in memory,
  split with ``--test-fraction``;
- ``fashion-mnist``: the official 60,000 / 10,000 split read from local IDX
  files by ``jepa_components.datasets.load_fashion_mnist`` (never
  downloaded);
- ``folder``: a :class:`~jepa_components.datasets.ImageFolder` read lazily.

Training batches come from the library's
:class:`~jepa_components.backends.keras.MaskedImageDataset` (I-JEPA methods)
or :class:`~jepa_components.backends.keras.MultiViewDataset` (LeJEPA: the
views of :func:`jepa_components.augment.lejepa_views`, normalised, and the
labels for the online probe when the data has them). Batch ``i`` of epoch
``e`` is a pure function of the seed, ``e`` and ``i``, which is what makes
``--resume`` exact; ``--augment crop`` and the normalisation are the masked
dataset's per-batch ``transform``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jepa_components import augment, datasets


@dataclasses.dataclass
class Source:
    """Images behind ``load_batch`` plus the split used for training/eval."""

    name: str
    load_batch: object  # callable: indices -> (b, H, W, C) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64, -1 where unlabelled
    train_indices: np.ndarray
    test_indices: np.ndarray
    channels: int
    mean: tuple  # per-channel normalisation (one value or one per channel)
    std: tuple
    images: np.ndarray = None  # (N, H, W, C) when held in memory
    folder: object = None  # the ImageFolder, when reading one

    @property
    def labelled(self):
        known = self.labels[np.concatenate([self.train_indices, self.test_indices])]
        return bool(np.all(known >= 0)) and len(np.unique(known)) >= 2

    @property
    def normalize(self):
        return augment.Normalize(self.mean, self.std)

    @property
    def skipped(self):
        return 0 if self.folder is None else self.folder.num_skipped


def _in_memory(name, split, mean, std):
    images = np.concatenate([split.train_images, split.test_images])
    labels = np.concatenate([split.train_labels, split.test_labels])
    num_train = len(split.train_images)
    return Source(
        name=name,
        load_batch=lambda indices: images[np.asarray(indices)],
        labels=labels,
        train_indices=np.arange(num_train),
        test_indices=np.arange(num_train, len(images)),
        channels=images.shape[-1],
        mean=mean,
        std=std,
        images=images,
    )


# In-memory datasets are resized up front: their float32 size is bounded, so a
# config file's --image-size cannot ask for more memory than this.
MAX_IN_MEMORY_BYTES = 4 << 30
IN_MEMORY_IMAGES = {"digits": 1797, "fashion-mnist": 70_000}  # at most, every split


def _check_in_memory_size(config):
    count, size = IN_MEMORY_IMAGES[config["dataset"]], config["image_size"]
    needed = count * size * size * 4  # one channel, float32
    if needed > MAX_IN_MEMORY_BYTES:
        raise datasets.DatasetError(
            f"--dataset {config['dataset']} at --image-size {size} would hold "
            f"{needed / (1 << 30):.1f} GiB of images in memory (up to {count} images); this "
            f"example allows {MAX_IN_MEMORY_BYTES >> 30} GiB: choose a smaller --image-size"
        )


def digits_source(config):
    _check_in_memory_size(config)
    split = datasets.load_digits_split(
        config["image_size"], channels=1, test_fraction=config["test_fraction"], seed=config["seed"]
    )
    return _in_memory(
        "digits (scikit-learn, 8x8 upsampled)",
        split,
        (float(split.train_images.mean()),),
        (float(split.train_images.std()),),
    )


def fashion_mnist_source(config):
    from jepa_components.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD

    _check_in_memory_size(config)
    size = None if config["image_size"] == 28 else config["image_size"]
    split = datasets.load_fashion_mnist(config["data"], image_size=size, channels=1)
    return _in_memory(
        "Fashion-MNIST (official train/test split)",
        split,
        (FASHION_MNIST_MEAN,),
        (FASHION_MNIST_STD,),
    )


def folder_source(config):
    folder = datasets.ImageFolder(
        config["data"],
        image_size=config["image_size"],
        channels=3,
        on_bad_image=config["on_bad_image"],
    )
    train, test = datasets.split_indices(
        len(folder), test_fraction=config["test_fraction"], seed=config["seed"]
    )
    return Source(
        name=f"image folder {config['data']} ({len(folder)} files, "
        f"{len(folder.class_names)} classes)",
        load_batch=folder.load_batch,
        labels=folder.labels,
        train_indices=train,
        test_indices=test,
        channels=3,
        mean=augment.IMAGENET_MEAN,
        std=augment.IMAGENET_STD,
        folder=folder,
    )


SOURCES = {"digits": digits_source, "fashion-mnist": fashion_mnist_source, "folder": folder_source}


def make_source(config):
    """The :class:`Source` of ``config["dataset"]``; raises ``datasets.DatasetError``."""
    return SOURCES[config["dataset"]](config)


def subset(indices, limit, seed):
    """At most ``limit`` of ``indices``, a fixed random choice, sorted."""
    if len(indices) <= limit:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))


def training_transform(config, source):
    """``--augment`` then normalisation, as one ``(images, rng) -> images`` callable."""
    if config["augment"] == "crop":
        # The official crop (facebookresearch/ijepa src/transforms.py): scale 0.3-1.0,
        # torchvision's aspect ratios, no flip; back to the training size.
        return augment.Compose(
            [augment.RandomResizedCrop(config["image_size"], scale=(0.3, 1.0)), source.normalize]
        )
    return source.normalize


def make_dataset(config, source, sampler, steps_per_epoch, initial_epoch):
    """The ``MaskedImageDataset`` of the training split (imports Keras)."""
    from jepa_components.backends.keras import MaskedImageDataset

    reading = source.images is None
    workers = config["workers"] if reading else 1
    return MaskedImageDataset(
        images=source.images if not reading else None,
        load_batch=source.load_batch if reading else None,
        indices=source.train_indices,
        sampler=sampler,
        batch_size=config["batch_size"],
        shuffle=True,
        seed=config["seed"],
        transform=training_transform(config, source),
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        workers=workers,
        use_multiprocessing=False,
        max_queue_size=max(2, 2 * workers),
    )


# --local-views 0: every view is global and crops 8-100% of the image, as the
# reference small-data recipe (anchors/lejepa/MINIMAL.md, RandomResizedCrop
# scale 0.08-1 for all V views); with local views, lejepa_views' defaults
# (global 30-100%, local 5-30%: the reference README).
ALL_GLOBAL_SCALE = (0.08, 1.0)


def view_transform(config, source):
    """LeJEPA's views of a batch: ``(B, H, W, C) -> (B, V, size, size, C)``, normalised."""
    scales = {"global_scale": ALL_GLOBAL_SCALE} if config["local_views"] == 0 else {}
    return augment.lejepa_views(
        config["image_size"],
        channels=source.channels,
        num_global=config["views"],
        num_local=config["local_views"],
        normalize=source.normalize,
        **scales,
    )


def make_view_dataset(config, source, steps_per_epoch, initial_epoch):
    """The ``MultiViewDataset`` of the training split (imports Keras).

    Batches ``{"views": (B, V, H, W, C), "labels": (B,)}``; the labels only
    when the data is labelled (they train LeJEPA's online linear probe).
    """
    from jepa_components.backends.keras import MultiViewDataset

    reading = source.images is None
    workers = config["workers"] if reading else 1
    return MultiViewDataset(
        images=source.images if not reading else None,
        load_batch=source.load_batch if reading else None,
        indices=source.train_indices,
        views_transform=view_transform(config, source),
        labels=source.labels if source.labelled else None,
        batch_size=config["batch_size"],
        shuffle=True,
        seed=config["seed"],
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        workers=workers,
        use_multiprocessing=False,
        max_queue_size=max(2, 2 * workers),
    )
