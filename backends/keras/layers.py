"""Transformer building blocks of the I-JEPA ViT: patch embedding, attention, MLP, block.

Each layer mirrors one module of the official code
(facebookresearch/ijepa ``src/models/vision_transformer.py``) and keeps its
sublayer names (``proj``, ``qkv``, ``fc1``, ``fc2``, ``norm1``, ``attn``,
``norm2``, ``mlp``) so that official state dicts map onto them one to one.

Initialization follows the official code: linear and patch-embedding
weights from a normal with std ``init_std`` (0.02), biases zero, LayerNorm
scale one and offset zero. The official ``trunc_normal_(std=0.02)`` cuts at
the *absolute* bounds ``a=-2, b=2``, i.e. at 100 standard deviations, so it is
a plain normal in practice; Keras' ``TruncatedNormal`` would cut at 2 std
(std ~0.88 of the requested one), hence ``RandomNormal`` here.

Dropout and stochastic depth of the official code default to 0 and I-JEPA
training never enables them; they are left out.
"""

import keras
import numpy as np
from keras import ops

__all__ = ["Attention", "MLP", "PatchEmbed", "TransformerBlock", "derive_seed"]

_PACKAGE = "jepa_components"


def derive_seed(seed, *path):
    """An independent int seed for one weight, derived from ``seed`` and a path.

    Keras initializers given the same int seed return the same values, so
    every weight needs its own seed. ``None`` stays ``None`` (Keras then
    draws from its global seed generator, see ``keras.utils.set_random_seed``).

    Example:
        >>> derive_seed(0, 1, 2) == derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
        True
    """
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), *[int(p) for p in path]])
    return int(state.generate_state(1)[0] % (2**31 - 1))


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a positive integer. "
            f"Received: {name}={value!r}"
        )


def check_positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float > 0. "
            f"Received: {name}={value!r}"
        )


def check_seed(seed):
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(
            "Invalid value for argument `seed`. Expected None or a non-negative "
            f"integer. Received: seed={seed!r}"
        )


def normal_init(std, seed):
    return keras.initializers.RandomNormal(mean=0.0, stddev=float(std), seed=seed)


def dense(units, *, use_bias=True, std, seed, name, dtype):
    """Linear layer with the official init (normal std, zero bias)."""
    return keras.layers.Dense(
        units,
        use_bias=use_bias,
        kernel_initializer=normal_init(std, seed),
        bias_initializer="zeros",
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PatchEmbed(keras.layers.Layer):
    """Non-overlapping patches to tokens: a ``patch_size``-strided convolution.

    Input ``(B, H, W, C)`` float (channels last), output ``(B, N, D)`` with
    ``N = (H // p) * (W // p)`` in row-major patch order
    (``i = row * grid_width + col``), as the official ``PatchEmbed``.

    Example:
        >>> tuple(PatchEmbed(patch_size=4, embed_dim=8)(np.zeros((2, 8, 12, 3))).shape)
        (2, 6, 8)
    """

    def __init__(self, patch_size=16, embed_dim=768, init_std=0.02, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("patch_size", patch_size)
        check_positive_int("embed_dim", embed_dim)
        check_positive_float("init_std", init_std)
        check_seed(seed)
        self.patch_size = int(patch_size)
        self.embed_dim = int(embed_dim)
        self.init_std = float(init_std)
        self.seed = seed
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

    def build(self, input_shape):
        self.proj.build(input_shape)

    def call(self, images):
        patches = self.proj(ops.cast(images, self.compute_dtype))
        return ops.reshape(patches, (-1, patches.shape[1] * patches.shape[2], self.embed_dim))

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1] // self.patch_size, input_shape[2] // self.patch_size
        return (input_shape[0], height * width, self.embed_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size, embed_dim=self.embed_dim,
            init_std=self.init_std, seed=self.seed,
        )
        return config


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
        >>> tuple(Attention(8, num_heads=2)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(self, dim, num_heads=8, qkv_bias=True, init_std=0.02,
                 output_init_std=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(
                "Invalid value for argument `num_heads`. Expected a divisor of "
                f"dim={dim}. Received: num_heads={num_heads}"
            )
        check_positive_float("init_std", init_std)
        if output_init_std is not None:
            check_positive_float("output_init_std", output_init_std)
        check_seed(seed)
        self.dim, self.num_heads, self.qkv_bias = int(dim), int(num_heads), bool(qkv_bias)
        self.init_std, self.output_init_std, self.seed = float(init_std), output_init_std, seed
        out_std = init_std if output_init_std is None else output_init_std
        self.qkv = dense(3 * self.dim, use_bias=self.qkv_bias, std=init_std,
                         seed=derive_seed(seed, 0), name="qkv", dtype=self.dtype_policy)
        self.proj = dense(self.dim, std=out_std, seed=derive_seed(seed, 1),
                          name="proj", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.proj.build(tuple(input_shape[:-1]) + (self.dim,))

    def call(self, x, key_mask=None):
        length = ops.shape(x)[1]
        head_dim = self.dim // self.num_heads
        qkv = ops.reshape(self.qkv(x), (-1, length, 3, self.num_heads, head_dim))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        mask = None
        if key_mask is not None:
            mask = ops.reshape(ops.cast(key_mask, "bool"), (-1, 1, 1, length))
        out = ops.dot_product_attention(query, key, value, mask=mask)
        return self.proj(ops.reshape(out, (-1, length, self.dim)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, num_heads=self.num_heads, qkv_bias=self.qkv_bias,
            init_std=self.init_std, output_init_std=self.output_init_std, seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MLP(keras.layers.Layer):
    """``fc1`` -> exact GELU -> ``fc2``, as the official ``MLP``.

    The GELU is the exact (erf) one of ``torch.nn.GELU``; ``keras.ops.gelu``
    defaults to the tanh approximation, which differs by ~1e-3.

    Example:
        >>> tuple(MLP(8, hidden_dim=32)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(self, dim, hidden_dim, init_std=0.02, output_init_std=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("dim", dim)
        check_positive_int("hidden_dim", hidden_dim)
        check_positive_float("init_std", init_std)
        if output_init_std is not None:
            check_positive_float("output_init_std", output_init_std)
        check_seed(seed)
        self.dim, self.hidden_dim = int(dim), int(hidden_dim)
        self.init_std, self.output_init_std, self.seed = float(init_std), output_init_std, seed
        out_std = init_std if output_init_std is None else output_init_std
        self.fc1 = dense(self.hidden_dim, std=init_std, seed=derive_seed(seed, 0),
                         name="fc1", dtype=self.dtype_policy)
        self.fc2 = dense(self.dim, std=out_std, seed=derive_seed(seed, 1),
                         name="fc2", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x):
        return self.fc2(ops.gelu(self.fc1(x), approximate=False))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, hidden_dim=self.hidden_dim, init_std=self.init_std,
            output_init_std=self.output_init_std, seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TransformerBlock(keras.layers.Layer):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    The official ``Block`` (LayerNorm eps 1e-6, MLP hidden ``int(dim * mlp_ratio)``).
    ``output_init_std`` is the init std of the two output projections
    (``attn.proj``, ``mlp.fc2``); the official ViT passes
    ``init_std / sqrt(2 * layer_id)`` (``fix_init_weight``).

    Call: ``block(x, key_mask=None)`` with ``x`` ``(B, T, D)`` and an
    optional ``(B, T)`` bool key mask (see :class:`Attention`).

    Example:
        >>> tuple(TransformerBlock(8, num_heads=2)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True,
                 layer_norm_epsilon=1e-6, init_std=0.02, output_init_std=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_float("mlp_ratio", mlp_ratio)
        check_positive_float("layer_norm_epsilon", layer_norm_epsilon)
        check_seed(seed)
        self.dim, self.num_heads, self.mlp_ratio = int(dim), int(num_heads), float(mlp_ratio)
        self.qkv_bias, self.layer_norm_epsilon = bool(qkv_bias), float(layer_norm_epsilon)
        self.init_std, self.output_init_std, self.seed = float(init_std), output_init_std, seed
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm1", dtype=self.dtype_policy)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, init_std=init_std,
            output_init_std=output_init_std, seed=derive_seed(seed, 0),
            name="attn", dtype=self.dtype_policy)
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm2", dtype=self.dtype_policy)
        self.mlp = MLP(
            dim, hidden_dim=int(dim * mlp_ratio), init_std=init_std,
            output_init_std=output_init_std, seed=derive_seed(seed, 1),
            name="mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)

    def call(self, x, key_mask=None):
        x = x + self.attn(self.norm1(x), key_mask=key_mask)
        return x + self.mlp(self.norm2(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias, layer_norm_epsilon=self.layer_norm_epsilon,
            init_std=self.init_std, output_init_std=self.output_init_std, seed=self.seed,
        )
        return config
