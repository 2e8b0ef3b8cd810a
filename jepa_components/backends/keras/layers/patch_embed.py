"""Patch embedding: non-overlapping patches to tokens (official ``PatchEmbed``)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_float, check_int, check_seed
from jepa_components.backends.keras.layers.initializers import derive_seed, normal_init

__all__ = ["PatchEmbed"]

_PACKAGE = "jepa_components"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PatchEmbed(keras.layers.Layer):
    """Non-overlapping patches to tokens: a ``patch_size``-strided convolution.

    Input ``(B, H, W, C)`` float (channels last), output ``(B, N, D)`` with
    ``N = (H // p) * (W // p)`` in row-major patch order
    (``i = row * grid_width + col``), as the official ``PatchEmbed``.

    Example:
        >>> import numpy as np
        >>> tuple(PatchEmbed(patch_size=4, embed_dim=8)(np.zeros((2, 8, 12, 3))).shape)
        (2, 6, 8)
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 768,
        init_std: float = 0.02,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.patch_size = check_int("patch_size", patch_size, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.seed = check_seed(seed)
        self.proj = keras.layers.Conv2D(
            self.embed_dim,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            data_format="channels_last",
            kernel_initializer=normal_init(init_std, derive_seed(seed, 0)),
            bias_initializer="zeros",
            name="proj",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.proj.build(input_shape)

    def call(self, images: Any) -> Any:
        patches = self.proj(ops.cast(images, self.compute_dtype))
        return ops.reshape(patches, (-1, patches.shape[1] * patches.shape[2], self.embed_dim))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        height, width = input_shape[1] // self.patch_size, input_shape[2] // self.patch_size
        return (input_shape[0], height * width, self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            init_std=self.init_std,
            seed=self.seed,
        )
        return config
