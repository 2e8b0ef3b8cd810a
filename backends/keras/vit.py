"""The I-JEPA Vision Transformer encoder and its named sizes.

Follows ``VisionTransformer`` of facebookresearch/ijepa
(``src/models/vision_transformer.py``): patch embedding, fixed 2-D sin-cos
positional embeddings (added before masking), pre-norm blocks with qkv bias,
MLP ratio 4 and exact GELU, LayerNorm eps 1e-6, a final norm, no class
token. Images are channels last, ``(B, H, W, C)``.

Init (official ``_init_weights`` + ``fix_init_weight``): weights normal std
0.02 (see ``layers`` for why not ``TruncatedNormal``), biases 0, the output
projections ``attn.proj`` and ``mlp.fc2`` of block ``l`` (1-based) drawn with
std ``0.02 / sqrt(2 l)``. Note: the official ``train.py`` calls
``helper.init_model``, which re-initializes every ``Linear`` after
``fix_init_weight`` and so undoes that rescaling; we follow the model code
(and the paper's ViT), which rescales.
"""

import keras
import numpy as np
from keras import ops

from jepa_components.context import gather_tokens
from jepa_components.positional import sincos_2d_positions
from jepa_components.backends.keras.layers import (
    PatchEmbed,
    TransformerBlock,
    check_positive_float,
    check_positive_int,
    check_seed,
    derive_seed,
)

__all__ = [
    "VIT_SIZES",
    "VisionTransformer",
    "vit_base",
    "vit_giant",
    "vit_huge",
    "vit_large",
    "vit_small",
    "vit_tiny",
]

# (embed_dim, depth, num_heads, mlp_ratio), official ``vit_*`` factories.
VIT_SIZES = {
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
}


def image_hw(image_size):
    """``int`` or ``(H, W)`` -> ``(H, W)``, validated."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in image_size
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        size = None
    if size is None or min(size) < 1:
        raise ValueError(
            "Invalid value for argument `image_size`. Expected a positive integer "
            f"or a pair (height, width). Received: image_size={image_size!r}"
        )
    return size


@keras.saving.register_keras_serializable(package="jepa_components")
class VisionTransformer(keras.layers.Layer):
    """ViT encoder of I-JEPA (Assran et al. 2023), no class token.

    Args:
        image_size: int or ``(H, W)``; both divisible by ``patch_size``.
        patch_size: int, patch side in pixels.
        in_channels: int, image channels.
        embed_dim: int ``D``, divisible by 4 (2-D sin-cos table) and by
            ``num_heads``.
        depth: int, number of blocks.
        num_heads: int.
        mlp_ratio: float, MLP hidden width over ``D``.
        qkv_bias: bool.
        layer_norm_epsilon: float (official 1e-6).
        init_std: float, std of the weight init (official 0.02).
        seed: None or int, seeds every weight initializer (same seed, same
            weights on a backend).

    Call: ``encoder(images, indices=None, valid=None)``.

    - ``images``: ``(B, H, W, C)`` float.
    - ``indices``: None or ``(B, K)`` int patch indices (row-major). When
      given, only those tokens (with their positions already added) go
      through the blocks, as the official ``forward(x, masks)``.
    - ``valid``: None or ``(B, K)`` bool (False = padding); padded tokens are
      masked out of the attention keys, so valid outputs ignore them.

    Returns ``(B, K, D)`` with indices, else ``(B, N, D)``,
    ``N = (H / p) * (W / p)``. Frozen features for probes: mean-pool the
    tokens over ``N`` (I-JEPA has no class token).

    Example:
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32,
        ...                         depth=1, num_heads=2, seed=0)
        >>> tuple(vit(np.zeros((2, 32, 32, 3))).shape)
        (2, 16, 32)
        >>> tuple(vit(np.zeros((2, 32, 32, 3)), indices=np.array([[0, 5], [3, 3]])).shape)
        (2, 2, 32)
    """

    def __init__(self, image_size=224, patch_size=16, in_channels=3, embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True,
                 layer_norm_epsilon=1e-6, init_std=0.02, seed=None, **kwargs):
        super().__init__(**kwargs)
        height, width = image_hw(image_size)
        for name, value in (("patch_size", patch_size), ("in_channels", in_channels),
                            ("embed_dim", embed_dim), ("depth", depth),
                            ("num_heads", num_heads)):
            check_positive_int(name, value)
        if height % patch_size or width % patch_size:
            raise ValueError(
                "Invalid value for argument `patch_size`. Expected a divisor of the "
                f"image height and width {(height, width)}. Received: patch_size={patch_size}"
            )
        if embed_dim % 4 or embed_dim % num_heads:
            raise ValueError(
                "Invalid value for argument `embed_dim`. Expected a multiple of 4 and "
                f"of num_heads={num_heads}. Received: embed_dim={embed_dim}"
            )
        check_positive_float("mlp_ratio", mlp_ratio)
        check_positive_float("init_std", init_std)
        check_seed(seed)
        is_pair = isinstance(image_size, (tuple, list))
        self.image_size = (height, width) if is_pair else height
        self.patch_size, self.in_channels = int(patch_size), int(in_channels)
        self.embed_dim, self.depth, self.num_heads = int(embed_dim), int(depth), int(num_heads)
        self.mlp_ratio, self.qkv_bias = float(mlp_ratio), bool(qkv_bias)
        self.layer_norm_epsilon, self.init_std = float(layer_norm_epsilon), float(init_std)
        self.seed = seed
        self.grid_size = (height // patch_size, width // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.patch_embed = PatchEmbed(
            patch_size=patch_size, embed_dim=embed_dim, init_std=init_std,
            seed=derive_seed(seed, 0), name="patch_embed", dtype=self.dtype_policy)
        self.blocks = [
            TransformerBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                layer_norm_epsilon=layer_norm_epsilon, init_std=init_std,
                output_init_std=init_std / np.sqrt(2.0 * (i + 1)),
                seed=derive_seed(seed, 1, i), name=f"blocks_{i}", dtype=self.dtype_policy)
            for i in range(depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm", dtype=self.dtype_policy)
        # Fixed table, not a weight: it is a function of the config.
        self._pos_embed_numpy = sincos_2d_positions(self.embed_dim, self.grid_size)

    def build(self, input_shape=None):
        height, width = image_hw(self.image_size)
        self.patch_embed.build((None, height, width, self.in_channels))
        for block in self.blocks:
            block.build((None, None, self.embed_dim))
        self.norm.build((None, None, self.embed_dim))
        self.built = True

    def call(self, images, indices=None, valid=None):
        x = self.patch_embed(images)
        # A constant of the traced step (jax, tensorflow); a small copy on torch.
        x = x + ops.convert_to_tensor(self._pos_embed_numpy[None], dtype=x.dtype)
        if indices is not None:
            x = gather_tokens(x, ops.cast(indices, "int32"), xp=ops)
        for block in self.blocks:
            x = block(x, key_mask=valid)
        return self.norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size, patch_size=self.patch_size,
            in_channels=self.in_channels, embed_dim=self.embed_dim, depth=self.depth,
            num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
            layer_norm_epsilon=self.layer_norm_epsilon, init_std=self.init_std,
            seed=self.seed,
        )
        return config


def _factory(size_name):
    embed_dim, depth, num_heads, mlp_ratio = VIT_SIZES[size_name]

    def make(image_size=224, patch_size=16, **kwargs):
        sizes = dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio)
        sizes.update(kwargs)  # e.g. depth=2 for a shallow test model
        return VisionTransformer(image_size=image_size, patch_size=patch_size, **sizes)

    make.__name__ = make.__qualname__ = size_name
    make.__doc__ = (
        f"``{size_name}``: embed_dim {embed_dim}, depth {depth}, heads {num_heads}, "
        f"MLP ratio {mlp_ratio:.4g} (official sizes).\n\n"
        "Keyword arguments go to :class:`VisionTransformer` and may override the sizes (e.g. ``seed``, ``depth``, "
        "``in_channels``).\n\n"
        f"Example:\n    >>> {size_name}(image_size=224, patch_size=16).num_patches\n    196\n"
    )
    return make


vit_tiny = _factory("vit_tiny")
vit_small = _factory("vit_small")
vit_base = _factory("vit_base")
vit_large = _factory("vit_large")
vit_huge = _factory("vit_huge")
vit_giant = _factory("vit_giant")
