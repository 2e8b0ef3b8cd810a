"""Transformer building blocks of the I-JEPA ViT: patch embedding, attention, MLP, block.

Each layer mirrors one module of the official code
(facebookresearch/ijepa ``src/models/vision_transformer.py``) and keeps its
sublayer names (``proj``, ``qkv``, ``fc1``, ``fc2``, ``norm1``, ``attn``,
``norm2``, ``mlp``) so that official state dicts map onto them one to one.

Initialization follows the official code: linear and patch-embedding
weights from a normal with std ``init_std`` (0.02), biases zero, LayerNorm
scale one and offset zero (the model's ``_init_weights``, and ``init_model``
of ``src/helper.py``). The official ``trunc_normal_(std=0.02)`` cuts at the
*absolute* bounds ``a=-2, b=2``, i.e. at 100 standard deviations, so it is
a plain normal in practice; Keras' ``TruncatedNormal`` would cut at 2 std
(std ~0.88 of the requested one), hence ``RandomNormal`` here.

The MLP activation is the official exact (erf) GELU by default; other
activations (``ACTIVATIONS``) exist for weights trained elsewhere, e.g. a
Hugging Face ``IJepaConfig.hidden_act``.

Dropout and stochastic depth of the official code default to 0 and I-JEPA
training never enables them; they are left out.
"""

import keras
import numpy as np
from keras import ops

from jepa_components._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_seed,
    invalid,
)
from jepa_components.backends.keras.compat import (
    residual_gradient_boundary,
    torch_block_call,
)

__all__ = [
    "ACTIVATIONS", "Attention", "MLP", "PatchEmbed", "TransformerBlock", "derive_seed",
    "output_init_stds",
]

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
    """Deprecated alias (other modules still import it): ``check_int(name, value, low=1)``."""
    return check_int(name, value, low=1)


def check_positive_float(name, value):
    """Deprecated alias: ``check_float(name, value, low=0, low_open=True)``."""
    return check_float(name, value, low=0.0, low_open=True)


def _check_output_init_std(value):
    return check_float("output_init_std", value, low=0.0, low_open=True, allow_none=True)


def _gelu(x):
    return ops.gelu(x, approximate=False)


def _gelu_tanh(x):
    return ops.gelu(x, approximate=True)


def _quick_gelu(x):
    return x * ops.sigmoid(1.702 * x)


# name -> function of the MLP hidden layer. Hugging Face ``hidden_act``
# equivalents: "gelu" = "gelu"; "gelu_tanh" = "gelu_new" / "gelu_pytorch_tanh"
# / "gelu_fast" (same formula); "quick_gelu", "relu", "silu" / "swish" = same name.
ACTIVATIONS = {
    "gelu": _gelu,  # exact erf GELU, torch.nn.GELU(): the official I-JEPA one
    "gelu_tanh": _gelu_tanh,  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    "quick_gelu": _quick_gelu,  # x * sigmoid(1.702 x)
    "relu": ops.relu,
    "silu": ops.silu,  # x * sigmoid(x)
    "swish": ops.silu,
}


def output_init_stds(init_std, depth, depth_scaled_init):
    """Init std of ``attn.proj`` / ``mlp.fc2`` per block; None = ``init_std``.

    ``depth_scaled_init=True``: ``init_std / sqrt(2 l)`` for block ``l``
    (1-based), the official model's ``fix_init_weight``; False: what the
    official ``init_model`` leaves, ``init_std`` everywhere.

    Example:
        >>> output_init_stds(0.02, 2, depth_scaled_init=False)
        [None, None]
        >>> [round(s, 4) for s in output_init_stds(0.02, 2, depth_scaled_init=True)]
        [0.0141, 0.01]
    """
    if not depth_scaled_init:
        return [None] * depth
    return [float(init_std / np.sqrt(2.0 * layer_id)) for layer_id in range(1, depth + 1)]


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
        self.dim = check_int("dim", dim, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        if self.dim % self.num_heads:
            raise invalid("num_heads", f"a divisor of dim={self.dim}", num_heads)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = _check_output_init_std(output_init_std)
        self.seed = check_seed(seed)
        out_std = self.init_std if self.output_init_std is None else self.output_init_std
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
    """``fc1`` -> activation -> ``fc2``, as the official ``MLP``.

    ``activation`` is a name of ``ACTIVATIONS``. The default ``"gelu"`` is
    the exact (erf) GELU of ``torch.nn.GELU``, the official one;
    ``keras.ops.gelu`` defaults to the tanh approximation (``"gelu_tanh"``
    here), which differs by ~1e-3.

    Example:
        >>> tuple(MLP(8, hidden_dim=32)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
        >>> MLP(8, hidden_dim=32, activation="gelu_tanh").get_config()["activation"]
        'gelu_tanh'
    """

    def __init__(self, dim, hidden_dim, init_std=0.02, output_init_std=None,
                 activation="gelu", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = _check_output_init_std(output_init_std)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.seed = check_seed(seed)
        self._activation_fn = ACTIVATIONS[self.activation]
        out_std = self.init_std if self.output_init_std is None else self.output_init_std
        self.fc1 = dense(self.hidden_dim, std=init_std, seed=derive_seed(seed, 0),
                         name="fc1", dtype=self.dtype_policy)
        self.fc2 = dense(self.dim, std=out_std, seed=derive_seed(seed, 1),
                         name="fc2", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.fc1.build(input_shape)
        self.fc2.build(tuple(input_shape[:-1]) + (self.hidden_dim,))

    def call(self, x):
        return self.fc2(self._activation_fn(self.fc1(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, hidden_dim=self.hidden_dim, init_std=self.init_std,
            output_init_std=self.output_init_std, activation=self.activation, seed=self.seed,
        )
        return config


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
        >>> tuple(TransformerBlock(8, num_heads=2)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
        >>> tuple(TransformerBlock(8, num_heads=2, remat=True)(np.zeros((1, 3, 8))).shape)
        (1, 3, 8)
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True,
                 layer_norm_epsilon=1e-6, init_std=0.02, output_init_std=None,
                 activation="gelu", remat=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        self.mlp_ratio = check_float("mlp_ratio", mlp_ratio, low=0.0, low_open=True)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.layer_norm_epsilon = check_float(
            "layer_norm_epsilon", layer_norm_epsilon, low=0.0, low_open=True)
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.output_init_std = _check_output_init_std(output_init_std)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.remat = check_bool("remat", remat)
        self.seed = check_seed(seed)
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
            output_init_std=output_init_std, activation=activation, seed=derive_seed(seed, 1),
            name="mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(input_shape)

    def call(self, x, key_mask=None):
        if not self.remat:
            return self._forward(x, key_mask)
        # The mask is closed over: tf.recompute_grad differentiates every argument.
        return keras.remat(lambda h: self._forward(h, key_mask))(x)

    def _forward(self, x, key_mask=None):
        x = residual_gradient_boundary(x)  # jax: stops an O(depth^2) XLA fusion
        fast = torch_block_call(self, x, key_mask)  # torch: no per-op Keras overhead
        if fast is not None:
            return fast
        x = x + self.attn(self.norm1(x), key_mask=key_mask)
        return x + self.mlp(self.norm2(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            dim=self.dim, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias, layer_norm_epsilon=self.layer_norm_epsilon,
            init_std=self.init_std, output_init_std=self.output_init_std,
            activation=self.activation, seed=self.seed,
        )
        return config
