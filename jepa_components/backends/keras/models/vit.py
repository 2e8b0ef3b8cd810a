"""The I-JEPA Vision Transformer encoder and its named sizes.

Follows ``VisionTransformer`` of facebookresearch/ijepa
(``src/models/vision_transformer.py``): patch embedding, fixed 2-D sin-cos
positional embeddings (added before masking), pre-norm blocks with qkv bias,
MLP ratio 4 and exact GELU, LayerNorm eps 1e-6, a final norm, no class
token. Images are channels last, ``(B, H, W, C)``.

Clips (V-JEPA, Bardes et al. 2024; facebookresearch/jepa and vjepa2
``src/models/vision_transformer.py``): with ``num_frames`` set the input is
``(B, T, H, W, C)``, embedded by tubelets of ``tubelet_size`` frames by
``p x p`` pixels (``layers.TubeletEmbed``, V-JEPA's ``PatchEmbed3D``) with
the fixed 3-D sin-cos table (``positional.sincos_3d_positions``, V-JEPA's
``get_3d_sincos_pos_embed``); everything after the embedding is the same
network. Unlike V-JEPA the clip length is fixed by ``num_frames`` (V-JEPA
cuts or interpolates its table for other lengths), ``T`` must be a multiple
of ``tubelet_size`` and ``H != W`` is allowed; V-JEPA's RoPE variant
(V-JEPA 2) is not here.

Init, as a real official run: weights normal std 0.02 (see ``layers`` for
why not ``TruncatedNormal``), biases 0, LayerNorm 1 / 0. The official model
code's ``fix_init_weight`` divides the output projections ``attn.proj`` and
``mlp.fc2`` of block ``l`` (1-based) by ``sqrt(2 l)``, but ``train.py``
builds its models with ``src/helper.py::init_model``, which re-initializes
every ``Linear`` afterwards (std 0.02, bias 0): the released models trained
without the rescaling. ``depth_scaled_init=True`` keeps it (std
``0.02 / sqrt(2 l)``), as the model class alone does.

Options for weights trained elsewhere (e.g. Hugging Face ``IJepaModel``):
``pos_embed="learned"`` makes the position table a trainable weight
(initialized to the sin-cos table), ``activation`` picks the MLP
nonlinearity (``layers.ACTIVATIONS``).
"""

import keras
import numpy as np  # also for the docstring examples
from keras import ops

from jepa_components._validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_pair,
    check_seed,
    invalid,
    is_int,
    is_real,
)
from jepa_components.backends.keras.layers import (
    ACTIVATIONS,
    PatchEmbed,
    TransformerBlock,
    derive_seed,
    output_init_stds,
)
from jepa_components.backends.keras.layers.patch_embed import TubeletEmbed
from jepa_components.backends.keras.models.sizes import VIT_SIZES
from jepa_components.context import gather_tokens
from jepa_components.positional import sincos_2d_positions, sincos_3d_positions

__all__ = [
    "POS_EMBEDS",
    "VIT_SIZES",
    "VisionTransformer",
    "vit_base",
    "vit_giant",
    "vit_huge",
    "vit_large",
    "vit_small",
    "vit_tiny",
]

# "sincos": the fixed official table, a function of the config (no weight).
# "learned": a trainable ``pos_embed`` weight (1, N, D) starting at that table.
POS_EMBEDS = ("sincos", "learned")


def _fixed_table_initializer(table):
    def initialize(shape, dtype=None):
        return ops.reshape(ops.convert_to_tensor(table, dtype=dtype), shape)

    return initialize


@keras.saving.register_keras_serializable(package="jepa_components")
class VisionTransformer(keras.layers.Layer):
    """ViT encoder of I-JEPA (Assran et al. 2023) and V-JEPA (clips), no class token.

    Args:
        image_size: int or ``(H, W)``; both divisible by ``patch_size``.
        patch_size: int, patch side in pixels.
        in_channels: int, image channels.
        embed_dim: int ``D``, divisible by 4 (2-D sin-cos table; clips: 8,
            see ``uniform_power``) and by ``num_heads``.
        depth: int, number of blocks.
        num_heads: int.
        mlp_ratio: float, MLP hidden width over ``D``.
        qkv_bias: bool.
        layer_norm_epsilon: float (official 1e-6).
        init_std: float, std of the weight init (official 0.02).
        depth_scaled_init: bool. False (default, what official runs did):
            every weight drawn with ``init_std``. True: ``attn.proj`` and
            ``mlp.fc2`` of block ``l`` drawn with ``init_std / sqrt(2 l)``
            (the official model's ``fix_init_weight``, undone by its
            ``init_model``).
        pos_embed: ``"sincos"`` (default, official): the fixed 2-D sin-cos
            table, not a weight. ``"learned"``: a trainable weight
            ``pos_embed`` ``(1, N, D)`` initialized to that table (so a fresh
            model computes the same), e.g. for Hugging Face weights. Either is
            added once, before the token selection.
        patch_init_std: None (default, official: ``init_std``), ``"fan_in"``
            (``1 / sqrt(p * p * C)``, the patch-embedding kernel's fan-in;
            clips ``1 / sqrt(tubelet_size * p * p * C)``), or a
            float. The official 0.02 suits 16x16x3 patches (768 inputs); for
            small grayscale patches (4x4x1: 16 inputs) it makes the patch
            content ~1% of each token next to the sin-cos positions (rms 0.08
            against 0.71 on Fashion-MNIST), so targets are mostly position:
            ``"fan_in"`` brings the content to the positions' scale.
        activation: MLP nonlinearity, a name in ``layers.ACTIVATIONS``:
            ``"gelu"`` (default, exact erf GELU, official), ``"gelu_tanh"``,
            ``"quick_gelu"``, ``"relu"``, ``"silu"`` / ``"swish"``.
        remat: bool (default False), recompute each block's activations in
            the backward pass instead of keeping them
            (:class:`~jepa_components.backends.keras.layers.TransformerBlock`):
            less memory for one more forward of the blocks. Nothing changes
            without gradients (the target encoder).
        seed: None or int, seeds every weight initializer (same seed, same
            weights on a backend).
        num_frames: None (default: images ``(B, H, W, C)``) or int ``T``,
            frames per clip: the input is ``(B, T, H, W, C)`` (V-JEPA).
        tubelet_size: int, frames per tubelet (V-JEPA 2); ``num_frames``
            must be a multiple of it. Only used with ``num_frames``.
        uniform_power: bool (default False, V-JEPA's default; its released
            V-JEPA 1 configs set True): the channel split of the 3-D table
            (``positional.sincos_3d_positions``). Only with ``num_frames``.
            Clips need ``embed_dim`` a multiple of 8 when it is False.

    Call: ``encoder(images, indices=None, valid=None)``.

    - ``images``: ``(B, H, W, C)`` float, or ``(B, T, H, W, C)`` clips with
      ``num_frames=T``.
    - ``indices``: None or ``(B, K)`` int patch indices (row-major; for
      clips time-major, ``(t * H' + row) * W' + col``). When given, only
      those tokens (with their positions already added) go through the
      blocks, as the official ``forward(x, masks)``.
    - ``valid``: None or ``(B, K)`` bool (False = padding); padded tokens are
      masked out of the attention keys, so valid outputs ignore them.

    Returns ``(B, K, D)`` with indices, else ``(B, N, D)``,
    ``N = (H / p) * (W / p)`` (clips: ``(T / tubelet_size) * (H / p) * (W /
    p)``). Frozen features for probes: mean-pool the tokens over ``N``
    (I-JEPA has no class token); the outputs of earlier blocks come from
    :meth:`intermediate_layers`.

    Attributes: ``grid_size``, the patch grid ``(H // p, W // p)``, for clips
    ``(T // tubelet_size, H // p, W // p)`` (the one source of the grid for
    predictors, models and mask samplers: see ``Predictor.for_encoder``), and
    ``num_patches``, its size ``N``.

    Example:
        >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32,
        ...                         depth=1, num_heads=2, seed=0)
        >>> tuple(vit(np.zeros((2, 32, 32, 3))).shape)
        (2, 16, 32)
        >>> tuple(vit(np.zeros((2, 32, 32, 3)), indices=np.array([[0, 5], [3, 3]])).shape)
        (2, 2, 32)
        >>> learned = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1,
        ...                             num_heads=2, pos_embed="learned", seed=0)
        >>> learned.build()
        >>> learned.pos_embed_weight.name, tuple(learned.pos_embed_weight.shape)
        ('pos_embed', (1, 16, 32))
        >>> clip = VisionTransformer(image_size=16, patch_size=8, num_frames=4, tubelet_size=2,
        ...                          embed_dim=32, depth=1, num_heads=2, seed=0)
        >>> clip.grid_size, tuple(clip(np.zeros((2, 4, 16, 16, 3))).shape)
        ((2, 2, 2), (2, 8, 32))
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        in_channels=3,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        layer_norm_epsilon=1e-6,
        init_std=0.02,
        depth_scaled_init=False,
        pos_embed="sincos",
        activation="gelu",
        patch_init_std=None,
        remat=False,
        seed=None,
        num_frames=None,
        tubelet_size=2,
        uniform_power=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        height, width = check_pair("image_size", image_size)
        self.num_frames = check_int("num_frames", num_frames, low=1, allow_none=True)
        self.tubelet_size = check_int("tubelet_size", tubelet_size, low=1)
        self.uniform_power = check_bool("uniform_power", uniform_power)
        if self.num_frames is not None and self.num_frames % self.tubelet_size:
            raise invalid(
                "num_frames", f"a multiple of tubelet_size={self.tubelet_size}", num_frames
            )
        if self.num_frames is None and self.uniform_power:
            raise invalid("uniform_power", "False for images (num_frames=None)", uniform_power)
        self.patch_size = check_int("patch_size", patch_size, low=1)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.depth = check_int("depth", depth, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        if height % self.patch_size or width % self.patch_size:
            raise invalid(
                "patch_size",
                f"a divisor of the image height and width {(height, width)}",
                patch_size,
            )
        # The sin-cos table: 2-D needs D % 4, 3-D D % 8 (uniform_power: any D).
        table_multiple = 4 if self.num_frames is None else (1 if self.uniform_power else 8)
        if self.embed_dim % table_multiple or self.embed_dim % self.num_heads:
            raise invalid(
                "embed_dim",
                f"a multiple of {table_multiple} and of num_heads={self.num_heads}",
                embed_dim,
            )
        self.mlp_ratio = check_float("mlp_ratio", mlp_ratio, low=0.0, low_open=True)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.layer_norm_epsilon = check_float(
            "layer_norm_epsilon", layer_norm_epsilon, low=0.0, low_open=True
        )
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.depth_scaled_init = check_bool("depth_scaled_init", depth_scaled_init)
        self.pos_embed = check_choice("pos_embed", pos_embed, POS_EMBEDS)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        if patch_init_std is None or (
            isinstance(patch_init_std, str) and patch_init_std == "fan_in"
        ):
            self.patch_init_std: str | float | None = patch_init_std
        elif is_real(patch_init_std) and np.isfinite(patch_init_std) and patch_init_std > 0:
            self.patch_init_std = float(patch_init_std)
        else:
            raise invalid("patch_init_std", 'None, "fan_in" or a float > 0', patch_init_std)
        self.remat = check_bool("remat", remat)
        self.seed = check_seed(seed)
        self.image_size = height if is_int(image_size) else (height, width)
        spatial = (height // self.patch_size, width // self.patch_size)
        self.grid_size: tuple[int, ...] = spatial
        if self.num_frames is None:
            self.patch_embed = PatchEmbed(
                patch_size=self.patch_size,
                embed_dim=self.embed_dim,
                init_std=self._patch_std(),
                seed=derive_seed(seed, 0),
                name="patch_embed",
                dtype=self.dtype_policy,
            )
        else:
            self.grid_size = (self.num_frames // self.tubelet_size, *spatial)
            self.patch_embed = TubeletEmbed(
                patch_size=self.patch_size,
                tubelet_size=self.tubelet_size,
                embed_dim=self.embed_dim,
                init_std=self._patch_std(),
                seed=derive_seed(seed, 0),
                name="patch_embed",
                dtype=self.dtype_policy,
            )
        self.num_patches = int(np.prod(self.grid_size))
        output_stds = output_init_stds(self.init_std, self.depth, self.depth_scaled_init)
        self.blocks = [
            TransformerBlock(
                self.embed_dim,
                self.num_heads,
                mlp_ratio=self.mlp_ratio,
                qkv_bias=self.qkv_bias,
                layer_norm_epsilon=self.layer_norm_epsilon,
                init_std=self.init_std,
                output_init_std=output_stds[i],
                activation=self.activation,
                remat=self.remat,
                seed=derive_seed(seed, 1, i),
                name=f"blocks_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(self.depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm", dtype=self.dtype_policy
        )
        # The official fixed table (N, D); with pos_embed="learned" only the
        # initial value of the `pos_embed` weight.
        if self.num_frames is None:
            self._pos_embed_numpy = sincos_2d_positions(self.embed_dim, spatial)
        else:
            self._pos_embed_numpy = sincos_3d_positions(
                self.embed_dim,
                (self.grid_size[0], *spatial),
                uniform_power=self.uniform_power,
            )
        self.pos_embed_weight = None

    def build(self, input_shape=None):
        height, width = (size * self.patch_size for size in self.grid_size[-2:])
        frames = () if self.num_frames is None else (self.num_frames,)
        if self.pos_embed == "learned":
            self.pos_embed_weight = self.add_weight(
                shape=(1, self.num_patches, self.embed_dim),
                initializer=_fixed_table_initializer(self._pos_embed_numpy),
                trainable=True,
                name="pos_embed",
            )
        # Sublayers already called on their own (e.g. `vit.patch_embed(x)`) are built.
        if not self.patch_embed.built:
            self.patch_embed.build((None, *frames, height, width, self.in_channels))
        for layer in (*self.blocks, self.norm):
            if not layer.built:
                layer.build((None, None, self.embed_dim))
        self.built = True

    def position_table(self):
        """The positional embeddings added to the patch tokens, ``(1, N, D)``.

        The ``pos_embed`` weight (``pos_embed="learned"``) or the fixed
        sin-cos table, as a tensor of the variable dtype.

        Example:
            >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32,
            ...                         depth=1, num_heads=2)
            >>> tuple(vit.position_table().shape)
            (1, 16, 32)
        """
        if self.pos_embed == "learned":
            if not self.built:
                self.build()
            return ops.convert_to_tensor(self.pos_embed_weight)
        return ops.convert_to_tensor(self._pos_embed_numpy[None], dtype=self.variable_dtype)

    def _tokens(self, images, indices):
        """Patch tokens plus positions, then the selection: ``(B, N or K, D)``."""
        x = self.patch_embed(images)
        if self.pos_embed == "learned":
            x = x + ops.cast(self.pos_embed_weight, x.dtype)
        else:
            # A constant of the traced step (jax, tensorflow); a small copy on torch.
            x = x + ops.convert_to_tensor(self._pos_embed_numpy[None], dtype=x.dtype)
        if indices is not None:
            x = gather_tokens(x, ops.cast(indices, "int32"), xp=ops)
        return x

    def call(self, images, indices=None, valid=None):
        x = self._tokens(images, indices)
        for block in self.blocks:
            x = block(x, key_mask=valid)
        return self.norm(x)

    def intermediate_layers(self, images, layers=4, norm=True, indices=None, valid=None):
        """Outputs of chosen blocks, for probes (timm ``forward_intermediates``,
        DINO ``get_intermediate_layers``).

        Args:
            images, indices, valid: as in ``call``.
            layers: int ``n`` (the last ``n`` blocks, in order) or a list of
                block indices (0-based; negative counts from the end), in
                the order wanted.
            norm: bool, pass every output through the final norm (DINO's
                "last 4 layers" linear evaluation does; the official
                encoder output is the last block through it).

        Returns:
            a list of ``(B, N, D)`` tensors (``(B, K, D)`` with ``indices``),
            one per requested block. The blocks after the last requested
            one are not run. ``intermediate_layers(x, layers=1)[0]`` equals
            ``encoder(x)``. Plain tensor code, so it traces inside a
            compiled function (``jax.jit``, ``tf.function``, a Keras
            model's ``call``).

        Example:
            >>> vit = VisionTransformer(image_size=32, patch_size=8, embed_dim=32,
            ...                         depth=2, num_heads=2, seed=0)
            >>> images = np.ones((2, 32, 32, 3))
            >>> [tuple(x.shape) for x in vit.intermediate_layers(images, layers=[0, 1])]
            [(2, 16, 32), (2, 16, 32)]
            >>> last = vit.intermediate_layers(images, layers=1)[0]
            >>> bool(np.allclose(ops.convert_to_numpy(last),
            ...                  ops.convert_to_numpy(vit(images)), atol=1e-6))
            True
        """
        take = self._block_indices(layers)
        norm = check_bool("norm", norm)
        if not self.built:
            self.build()
        x = self._tokens(images, indices)
        outputs = {}
        for i, block in enumerate(self.blocks[: max(take) + 1]):
            x = block(x, key_mask=valid)
            if i in take:
                outputs[i] = self.norm(x) if norm else x
        return [outputs[i] for i in take]

    def _block_indices(self, layers):
        """``layers`` (int n or list of indices) -> list of 0-based block indices."""
        if is_int(layers):
            n = check_int("layers", layers, low=1, high=self.depth)
            return list(range(self.depth - n, self.depth))
        if (
            isinstance(layers, (list, tuple))
            and layers
            and all(is_int(i) for i in layers)
            and all(-self.depth <= i < self.depth for i in layers)
        ):
            return [int(i) % self.depth for i in layers]
        raise invalid(
            "layers",
            f"an integer in [1, {self.depth}] or a non-empty list of "
            f"block indices in [-{self.depth}, {self.depth - 1}]",
            layers,
        )

    def _patch_std(self):
        if self.patch_init_std is None:
            return self.init_std
        if self.patch_init_std == "fan_in":
            frames = 1 if self.num_frames is None else self.tubelet_size
            return 1.0 / np.sqrt(frames * self.patch_size * self.patch_size * self.in_channels)
        return self.patch_init_std

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            in_channels=self.in_channels,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            layer_norm_epsilon=self.layer_norm_epsilon,
            init_std=self.init_std,
            depth_scaled_init=self.depth_scaled_init,
            pos_embed=self.pos_embed,
            activation=self.activation,
            patch_init_std=self.patch_init_std,
            remat=self.remat,
            seed=self.seed,
            num_frames=self.num_frames,
            tubelet_size=self.tubelet_size,
            uniform_power=self.uniform_power,
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
        "Keyword arguments go to :class:`VisionTransformer` and may override the sizes "
        "(e.g. ``seed``, ``depth``, ``in_channels``).\n\n"
        f"Example:\n    >>> {size_name}(image_size=224, patch_size=16).num_patches\n    196\n"
    )
    return make


vit_tiny = _factory("vit_tiny")
vit_small = _factory("vit_small")
vit_base = _factory("vit_base")
vit_large = _factory("vit_large")
vit_huge = _factory("vit_huge")
vit_giant = _factory("vit_giant")
