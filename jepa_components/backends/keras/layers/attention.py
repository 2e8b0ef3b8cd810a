"""Multi-head self-attention with an optional key mask (official ``Attention``)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from jepa_components._validation import check_bool, check_float, check_int, check_seed, invalid
from jepa_components.backends.keras.layers.initializers import (
    check_output_init_std,
    dense,
    derive_seed,
)

__all__ = ["Attention"]

_PACKAGE = "jepa_components"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Attention(keras.layers.Layer):
    """Multi-head self-attention with a fused ``qkv`` projection.

    Same layout as the official ``Attention``: ``qkv`` (D -> 3D, bias
    ``qkv_bias``) reshaped to ``(B, T, 3, heads, D / heads)``, scaled
    dot-product attention, output projection ``proj``. The attention itself
    runs through ``keras.ops.dot_product_attention`` so each backend can use
    its fused kernel.

    Call: ``attn(x, key_mask=None)``, ``x`` ``(B, T, D)``, ``key_mask``
    ``(B, T)`` bool (False = padding) or None. Only keys are masked: padded
    tokens attend to the valid ones (no all-masked softmax row, no NaN) and
    no token attends to them, so outputs at valid positions do not depend on
    the padding.

    Example:
        >>> import numpy as np
        >>> tuple(Attention(8, num_heads=2)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        init_std: float = 0.02,
        output_init_std: float | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        if self.dim % self.num_heads:
            raise invalid("num_heads", f"a divisor of dim={self.dim}", num_heads)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = check_output_init_std(output_init_std)
        self.seed = check_seed(seed)
        out_std = self.init_std if self.output_init_std is None else self.output_init_std
        self.qkv = dense(
            3 * self.dim,
            use_bias=self.qkv_bias,
            std=init_std,
            seed=derive_seed(seed, 0),
            name="qkv",
            dtype=self.dtype_policy,
        )
        self.proj = dense(
            self.dim, std=out_std, seed=derive_seed(seed, 1), name="proj", dtype=self.dtype_policy
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.qkv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (self.dim,))

    def call(self, x: Any, key_mask: Any = None) -> Any:
        length = ops.shape(x)[1]
        head_dim = self.dim // self.num_heads
        qkv = ops.reshape(self.qkv(x), (-1, length, 3, self.num_heads, head_dim))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        mask = None
        if key_mask is not None:
            mask = ops.reshape(ops.cast(key_mask, "bool"), (-1, 1, 1, length))
        out = ops.dot_product_attention(query, key, value, mask=mask)
        return self.proj(ops.reshape(out, (-1, length, self.dim)))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            qkv_bias=self.qkv_bias,
            init_std=self.init_std,
            output_init_std=self.output_init_std,
            seed=self.seed,
        )
        return config
