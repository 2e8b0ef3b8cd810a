"""The pre-norm transformer block: attention and MLP with residuals (official ``Block``)."""

from __future__ import annotations

from typing import Any

import keras

from jepa_components._validation import check_bool, check_choice, check_float, check_int, check_seed
from jepa_components.backends.keras.compat import residual_gradient_boundary, torch_block_call
from jepa_components.backends.keras.layers.activations import ACTIVATIONS
from jepa_components.backends.keras.layers.attention import Attention
from jepa_components.backends.keras.layers.initializers import check_output_init_std, derive_seed
from jepa_components.backends.keras.layers.mlp import MLP

__all__ = ["TransformerBlock"]

_PACKAGE = "jepa_components"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TransformerBlock(keras.layers.Layer):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    The official ``Block`` (LayerNorm eps 1e-6, MLP hidden ``int(dim * mlp_ratio)``,
    exact GELU unless ``activation`` says otherwise, see :class:`MLP`).
    ``output_init_std`` is the init std of the two output projections
    (``attn.proj``, ``mlp.fc2``), None = ``init_std``; the ViT passes
    ``init_std / sqrt(2 * layer_id)`` when asked for the official model's
    ``fix_init_weight`` (``depth_scaled_init=True``).

    ``remat=True`` recomputes the block's activations in the backward pass
    instead of keeping them (``keras.remat``: ``jax.checkpoint``,
    ``torch.utils.checkpoint``, ``tf.recompute_grad``): the same outputs and
    gradients, one more forward of the block per step, and only the block's
    input kept for the backward pass. On jax's CPU compiler the saving needs
    the memory-ordered scheduler that :class:`IJEPA`'s train step asks for
    (``compat.jax_train_step_jit``).

    Call: ``block(x, key_mask=None)`` with ``x`` ``(B, T, D)`` and an
    optional ``(B, T)`` bool key mask (see :class:`Attention`).

    Example:
        >>> import numpy as np
        >>> tuple(TransformerBlock(8, num_heads=2)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
        >>> tuple(TransformerBlock(8, num_heads=2, remat=True)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_norm_epsilon: float = 1e-6,
        init_std: float = 0.02,
        output_init_std: float | None = None,
        activation: str = "gelu",
        remat: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        self.mlp_ratio = check_float("mlp_ratio", mlp_ratio, low=0.0, low_open=True)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.layer_norm_epsilon = check_float(
            "layer_norm_epsilon", layer_norm_epsilon, low=0.0, low_open=True
        )
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = check_output_init_std(output_init_std)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.remat = check_bool("remat", remat)
        self.seed = check_seed(seed)
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm1", dtype=self.dtype_policy
        )
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            init_std=init_std,
            output_init_std=output_init_std,
            seed=derive_seed(seed, 0),
            name="attn",
            dtype=self.dtype_policy,
        )
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm2", dtype=self.dtype_policy
        )
        self.mlp = MLP(
            dim,
            hidden_dim=int(dim * mlp_ratio),
            init_std=init_std,
            output_init_std=output_init_std,
            activation=activation,
            seed=derive_seed(seed, 1),
            name="mlp",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)

    def call(self, x: Any, key_mask: Any = None) -> Any:
        if not self.remat:
            return self._forward(x, key_mask)
        # The mask is closed over: tf.recompute_grad differentiates every argument.
        return keras.remat(lambda h: self._forward(h, key_mask))(x)

    def _forward(self, x: Any, key_mask: Any = None) -> Any:
        x = residual_gradient_boundary(x)  # jax: stops an O(depth^2) XLA fusion
        fast = torch_block_call(self, x, key_mask)  # torch: no per-op Keras overhead
        if fast is not None:
            return fast
        x = x + self.attn(self.norm1(x), key_mask=key_mask)
        return x + self.mlp(self.norm2(x))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            dim=self.dim,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            layer_norm_epsilon=self.layer_norm_epsilon,
            init_std=self.init_std,
            output_init_std=self.output_init_std,
            activation=self.activation,
            seed=self.seed,
        )
        return config
