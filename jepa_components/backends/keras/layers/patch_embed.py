"""Patch embedding: non-overlapping patches (images) or tubelets (clips) to tokens.

``PatchEmbed`` is the official I-JEPA ``PatchEmbed``; ``TubeletEmbed`` is
V-JEPA's ``PatchEmbed3D`` (facebookresearch/jepa and vjepa2,
``src/models/utils/patch_embed.py``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_float, check_int, check_seed
from jepa_components.backends.keras.layers.initializers import dense, derive_seed, normal_init

__all__ = ["PatchEmbed", "TubeletEmbed"]

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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TubeletEmbed(keras.layers.Layer):
    """Non-overlapping tubelets of a clip to tokens (V-JEPA's ``PatchEmbed3D``).

    V-JEPA embeds ``tubelet_size`` frames by ``p x p`` pixels with one
    ``Conv3d`` of kernel = stride = ``(tubelet_size, p, p)``. Here the clip is
    cut into those tubelets by a reshape and each flattened tubelet
    ``(tubelet_size, p, p, C)`` goes through one dense layer ``proj``: the
    same linear map (a Keras ``Conv3D`` with the kernel
    ``proj.kernel.reshape(tubelet_size, p, p, C, D)`` gives the same tokens,
    tested), with no 3-D convolution kernel needed on any backend.

    Input ``(B, T, H, W, C)`` float (channels last), ``T`` divisible by
    ``tubelet_size`` and ``H, W`` by ``patch_size``. Output ``(B, N, D)``,
    ``N = (T // tubelet_size) * (H // p) * (W // p)``, in time-major order:
    token ``(t * H' + row) * W' + col`` (V-JEPA's ``flatten(2)`` of the
    ``Conv3d`` output, and the 3-D mask samplers' index order).

    Weights: ``proj/kernel`` ``(tubelet_size * p * p * C, D)`` (a V-JEPA
    ``patch_embed.proj.weight`` ``(D, C, t, p, p)`` maps to it by a transpose
    to ``(t, p, p, C, D)`` and a reshape) and ``proj/bias`` ``(D,)``; init
    normal std ``init_std``, bias 0 (V-JEPA: ``trunc_normal_(std=0.02)`` cut
    at +-2 absolute, a plain normal in practice).

    Example:
        >>> import numpy as np
        >>> embed = TubeletEmbed(patch_size=4, tubelet_size=2, embed_dim=8)
        >>> tuple(embed(np.zeros((2, 4, 8, 12, 3))).shape)  # 2 x 2 x 3 tubelets
        (2, 12, 8)
    """

    def __init__(
        self,
        patch_size: int = 16,
        tubelet_size: int = 2,
        embed_dim: int = 768,
        init_std: float = 0.02,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.patch_size = check_int("patch_size", patch_size, low=1)
        self.tubelet_size = check_int("tubelet_size", tubelet_size, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.seed = check_seed(seed)
        self.proj = dense(
            self.embed_dim,
            std=self.init_std,
            seed=derive_seed(seed, 0),
            name="proj",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        if len(input_shape) != 5 or channels is None:
            raise ValueError(
                "Invalid value for argument `input_shape`. Expected (B, T, H, W, C) with "
                f"a known C. Received: input_shape={tuple(input_shape)}"
            )
        self.proj.build((None, None, self.tubelet_size * self.patch_size**2 * channels))

    def call(self, clips: Any) -> Any:
        clips = ops.cast(clips, self.compute_dtype)
        _, frames, height, width, channels = clips.shape
        t, p = self.tubelet_size, self.patch_size
        depth, rows, cols = frames // t, height // p, width // p
        x = ops.reshape(clips, (-1, depth, t, rows, p, cols, p, channels))
        x = ops.transpose(x, (0, 1, 3, 5, 2, 4, 6, 7))  # (B, T', H', W', t, p, p, C)
        x = ops.reshape(x, (-1, depth * rows * cols, t * p * p * channels))
        return self.proj(x)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        depth = input_shape[1] // self.tubelet_size
        height, width = input_shape[2] // self.patch_size, input_shape[3] // self.patch_size
        return (input_shape[0], depth * height * width, self.embed_dim)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            tubelet_size=self.tubelet_size,
            embed_dim=self.embed_dim,
            init_std=self.init_std,
            seed=self.seed,
        )
        return config
