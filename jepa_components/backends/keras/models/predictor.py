"""The I-JEPA predictor: a narrow ViT that predicts target-block tokens.

Follows ``VisionTransformerPredictor`` of facebookresearch/ijepa
(``src/models/vision_transformer.py``): context tokens are projected to the
predictor width (``predictor_embed``) and get their fixed sin-cos positions;
for every target block a learnable ``mask_token`` plus the block's positions
is appended; the sequence ``[context | mask tokens]`` runs through the blocks
and a norm; the outputs at the mask tokens are projected back to the encoder
width (``predictor_proj``). As in the official code, each of the ``M``
target blocks is a separate sequence ``(B * M, Kc + Kt, d)`` sharing the
same context: blocks never see each other's mask tokens.

Padding (``MaskBatch`` pads ``context`` and ``targets`` to fixed lengths):
padded slots are masked out of the attention *keys*, so the predictions at
valid slots do not depend on the padding; predictions at padded slots are
finite but meaningless (the loss skips them).

Init, as a real official run (``src/helper.py::init_model``): every Linear
(``predictor_embed``, the blocks, ``predictor_proj``) and the ``mask_token``
normal with std ``init_std``, biases 0; ``depth_scaled_init=True`` divides
the blocks' output projections by ``sqrt(2 l)`` as the model class's
``fix_init_weight`` (see ``vit``). The position table stays the fixed
sin-cos one (official ``predictor_pos_embed``, ``requires_grad=False``).

Clips (V-JEPA, ``src/models/predictor.py`` of facebookresearch/jepa and
vjepa2): on a 3-D grid ``(T', H', W')`` (a clip encoder's ``grid_size``) the
table is the 3-D one (``positional.sincos_3d_positions``, time-major indices
``(t * H' + row) * W' + col``); the rest is unchanged. V-JEPA also sorts
``[context | mask tokens]`` by patch index before its blocks: without RoPE
attention does not see the order, so that changes nothing. Where we differ:
one ``mask_token`` drawn normal with ``init_std`` (V-JEPA: one zero-initialized
token per mask configuration, ``zero_init_mask_tokens=True``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from jepa_components._validation import (
    check_bool,
    check_choice,
    check_float,
    check_grid,
    check_int,
    check_pair,
    check_seed,
    invalid,
)
from jepa_components.backends.keras.layers import (
    ACTIVATIONS,
    TransformerBlock,
    dense,
    derive_seed,
    normal_init,
    output_init_stds,
)
from jepa_components.positional import sincos_2d_positions, sincos_3d_positions

__all__ = ["Predictor"]


def _grid_for(num_patches, grid_size):
    """``(H, W)`` or ``(T, H, W)`` of the patch grid: ``grid_size``, or the square of
    ``num_patches``."""
    if grid_size is None:
        side = int(round(np.sqrt(num_patches)))
        if side * side != num_patches:
            raise invalid(
                "grid_size",
                f"(H, W) with H * W = num_patches when "
                f"num_patches={num_patches} is not a perfect square",
                grid_size,
            )
        return (side, side)
    if not isinstance(grid_size, (tuple, list)) or len(grid_size) not in (2, 3):
        raise invalid("grid_size", "None, a pair (H, W) or a triple (T, H, W)", grid_size)
    if len(grid_size) == 3:
        grid: tuple[int, ...] = check_grid("grid_size", grid_size, 3)
    else:
        grid = check_pair("grid_size", grid_size)
    if int(np.prod(grid)) != num_patches:
        shape = "(H, W) with H * W" if len(grid) == 2 else "(T, H, W) with T * H * W"
        raise invalid("grid_size", f"{shape} = num_patches={num_patches}", grid_size)
    return grid


@keras.saving.register_keras_serializable(package="jepa_components")
class Predictor(keras.layers.Layer):
    """I-JEPA predictor (Assran et al. 2023, Sec. 3; official ``vit_predictor``).

    Args:
        num_patches: int ``N``, patches of the encoder's grid.
        embed_dim: int ``D``, encoder width (input and output).
        predictor_embed_dim: int ``d``, predictor width (multiple of 4).
        depth: int, number of blocks.
        num_heads: int, divides ``d``.
        mlp_ratio, qkv_bias, layer_norm_epsilon, init_std: as the ViT.
        grid_size: None (square grid, as the official code), ``(H, W)``
            with ``H * W = N`` for non-square images, or ``(T, H, W)`` with
            ``T * H * W = N`` for clips (3-D sin-cos table, V-JEPA; ``d`` a
            multiple of 8 unless ``uniform_power``); the encoder's
            ``grid_size`` (what :meth:`for_encoder` passes). The attribute
            ``grid_size`` is always the resolved grid; the config keeps
            the argument as given.
        depth_scaled_init, activation: as the ViT (official predictor: no
            rescaling in a real run, exact GELU).
        remat: bool, recompute each block's activations in the backward
            pass instead of keeping them (:class:`TransformerBlock`).
        seed: None or int, seeds every weight initializer.
        uniform_power: bool, the channel split of the 3-D table
            (``positional.sincos_3d_positions``); only on a 3-D grid.
            :meth:`for_encoder` takes the encoder's.

    Call: ``predictor(context_tokens, context_indices, target_indices,
    context_valid=None, targets_valid=None)``

    - ``context_tokens``: ``(B, Kc, D)`` context-encoder output.
    - ``context_indices``: ``(B, Kc)`` int patch indices of those tokens.
    - ``target_indices``: ``(B, M, Kt)`` int patch indices per target block.
    - ``context_valid`` / ``targets_valid``: ``(B, Kc)`` / ``(B, M, Kt)``
      bool, False = padding (or None: all valid).

    Returns ``(B, M, Kt, D)`` predictions.

    Example:
        >>> pred = Predictor(num_patches=16, embed_dim=32, predictor_embed_dim=16,
        ...                  depth=1, num_heads=2, seed=0)
        >>> tuple(pred(np.zeros((2, 5, 32)), np.zeros((2, 5), "int32"),
        ...            np.zeros((2, 3, 4), "int32")).shape)
        (2, 3, 4, 32)
        >>> pred.grid_size
        (4, 4)
    """

    def __init__(
        self,
        num_patches,
        embed_dim=768,
        predictor_embed_dim=384,
        depth=6,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        layer_norm_epsilon=1e-6,
        init_std=0.02,
        grid_size=None,
        depth_scaled_init=False,
        activation="gelu",
        remat=False,
        seed=None,
        uniform_power=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_patches = check_int("num_patches", num_patches, low=1)
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.predictor_embed_dim = check_int("predictor_embed_dim", predictor_embed_dim, low=1)
        self.depth = check_int("depth", depth, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        self.uniform_power = check_bool("uniform_power", uniform_power)
        grid = _grid_for(self.num_patches, grid_size)
        if len(grid) == 2 and self.uniform_power:
            raise invalid("uniform_power", "False on a 2-D grid", uniform_power)
        # The sin-cos table: 2-D needs d % 4, 3-D d % 8 (uniform_power: any d).
        table_multiple = 4 if len(grid) == 2 else (1 if self.uniform_power else 8)
        if self.predictor_embed_dim % table_multiple or self.predictor_embed_dim % self.num_heads:
            raise invalid(
                "predictor_embed_dim",
                f"a multiple of {table_multiple} and of num_heads={self.num_heads}",
                predictor_embed_dim,
            )
        self.mlp_ratio = check_float("mlp_ratio", mlp_ratio, low=0.0, low_open=True)
        self.qkv_bias = check_bool("qkv_bias", qkv_bias)
        self.layer_norm_epsilon = check_float(
            "layer_norm_epsilon", layer_norm_epsilon, low=0.0, low_open=True
        )
        self.init_std = check_float("init_std", init_std, low=0.0, low_open=True)
        self.depth_scaled_init = check_bool("depth_scaled_init", depth_scaled_init)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.grid_size = grid
        self._grid_size_argument = None if grid_size is None else grid  # what get_config saves
        self.remat = check_bool("remat", remat)
        self.seed = check_seed(seed)
        width = self.predictor_embed_dim
        self.predictor_embed = dense(
            width,
            std=self.init_std,
            seed=derive_seed(seed, 0),
            name="predictor_embed",
            dtype=self.dtype_policy,
        )
        output_stds = output_init_stds(self.init_std, self.depth, self.depth_scaled_init)
        self.predictor_blocks = [
            TransformerBlock(
                width,
                self.num_heads,
                mlp_ratio=self.mlp_ratio,
                qkv_bias=self.qkv_bias,
                layer_norm_epsilon=self.layer_norm_epsilon,
                init_std=self.init_std,
                output_init_std=output_stds[i],
                activation=self.activation,
                remat=self.remat,
                seed=derive_seed(seed, 1, i),
                name=f"predictor_blocks_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(self.depth)
        ]
        self.predictor_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="predictor_norm", dtype=self.dtype_policy
        )
        self.predictor_proj = dense(
            self.embed_dim,
            std=self.init_std,
            seed=derive_seed(seed, 2),
            name="predictor_proj",
            dtype=self.dtype_policy,
        )
        if len(grid) == 2:
            self._pos_embed_numpy = sincos_2d_positions(width, grid)
        else:
            self._pos_embed_numpy = sincos_3d_positions(
                width, grid, uniform_power=self.uniform_power
            )

    @classmethod
    def for_encoder(
        cls,
        encoder: keras.layers.Layer,
        *,
        embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        **kwargs: Any,
    ) -> Predictor:
        """A predictor for ``encoder``: its ``num_patches``, width and patch grid.

        Args:
            encoder: a :class:`VisionTransformer` (or any layer with integer
                ``embed_dim`` and ``num_patches`` and a ``grid_size`` pair,
                or triple for clips; a clip encoder's ``uniform_power`` is
                the predictor's default).
            embed_dim: the predictor's own width (``predictor_embed_dim``);
                the encoder's width, the input and output of the predictor,
                comes from ``encoder``.
            depth, num_heads: the predictor's blocks and heads.
            **kwargs: the other :class:`Predictor` arguments (``seed``,
                ``mlp_ratio``, ``remat``, ``name``, ...); not
                ``num_patches``, ``predictor_embed_dim`` or ``grid_size``.

        Example:
            >>> from jepa_components.backends.keras import VisionTransformer
            >>> encoder = VisionTransformer(image_size=(16, 32), patch_size=4, embed_dim=32,
            ...                             depth=1, num_heads=2)
            >>> pred = Predictor.for_encoder(encoder, embed_dim=16, depth=1, num_heads=2)
            >>> pred.num_patches, pred.embed_dim, pred.predictor_embed_dim, pred.grid_size
            (32, 32, 16, (4, 8))
            >>> clips = VisionTransformer(image_size=16, patch_size=8, num_frames=4,
            ...                           embed_dim=32, depth=1, num_heads=2)
            >>> Predictor.for_encoder(clips, embed_dim=16, depth=1, num_heads=2).grid_size
            (2, 2, 2)
        """
        taken = sorted({"num_patches", "predictor_embed_dim", "grid_size"} & set(kwargs))
        if taken:
            raise invalid(
                "kwargs",
                "no num_patches, predictor_embed_dim or grid_size (they "
                "come from the encoder and `embed_dim`)",
                taken,
            )
        grid = getattr(encoder, "grid_size", None)
        if (
            not isinstance(grid, (tuple, list))
            or len(grid) not in (2, 3)
            or not all(
                isinstance(getattr(encoder, name, None), int)
                for name in ("embed_dim", "num_patches")
            )
        ):
            raise invalid(
                "encoder",
                "an encoder with integer `embed_dim` and `num_patches` "
                "and a `grid_size` pair or triple (e.g. VisionTransformer)",
                encoder,
            )
        if len(grid) == 3:
            kwargs.setdefault("uniform_power", bool(getattr(encoder, "uniform_power", False)))
        return cls(
            num_patches=encoder.num_patches,
            embed_dim=encoder.embed_dim,
            predictor_embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            grid_size=tuple(grid),
            **kwargs,
        )

    def build(self, input_shape=None):
        width = self.predictor_embed_dim
        self.predictor_embed.build((None, None, self.embed_dim))
        self.mask_token = self.add_weight(
            shape=(1, 1, width),
            initializer=normal_init(self.init_std, derive_seed(self.seed, 3)),
            trainable=True,
            name="mask_token",
        )
        for block in self.predictor_blocks:
            block.build((None, None, width))
        self.predictor_norm.build((None, None, width))
        self.predictor_proj.build((None, None, width))
        self.built = True

    def call(
        self,
        context_tokens,
        context_indices,
        target_indices,
        context_valid=None,
        targets_valid=None,
    ):
        width = self.predictor_embed_dim
        # ops.shape: a length tf.function relaxed to None (bucketed masks) stays dynamic.
        _, num_blocks, block_size = ops.shape(target_indices)
        num_context = ops.shape(context_tokens)[1]
        x = self.predictor_embed(context_tokens)  # (B, Kc, d)
        positions = ops.convert_to_tensor(self._pos_embed_numpy, dtype=x.dtype)  # (N, d)
        x = x + ops.take(positions, ops.cast(context_indices, "int32"), axis=0)
        # Every target block is its own sequence: (B, M, Kc, d) -> (B * M, Kc, d).
        x = ops.repeat(ops.expand_dims(x, 1), num_blocks, axis=1)
        x = ops.reshape(x, (-1, num_context, width))
        queries = ops.take(positions, ops.cast(target_indices, "int32"), axis=0)
        queries = ops.cast(self.mask_token, x.dtype) + queries  # (B, M, Kt, d)
        x = ops.concatenate([x, ops.reshape(queries, (-1, block_size, width))], axis=1)
        key_mask = self._key_mask(context_indices, target_indices, context_valid, targets_valid)
        for block in self.predictor_blocks:
            x = block(x, key_mask=key_mask)
        x = self.predictor_proj(self.predictor_norm(x[:, num_context:]))
        return ops.reshape(x, (-1, num_blocks, block_size, self.embed_dim))

    @staticmethod
    def _key_mask(context_indices, target_indices, context_valid, targets_valid):
        """(B * M, Kc + Kt) bool, or None when nothing is padded."""
        if context_valid is None and targets_valid is None:
            return None
        if context_valid is None:
            context_valid = ops.ones(ops.shape(context_indices), dtype="bool")
        if targets_valid is None:
            targets_valid = ops.ones(ops.shape(target_indices), dtype="bool")
        _, num_blocks, block_size = ops.shape(target_indices)
        context_valid = ops.repeat(
            ops.expand_dims(ops.cast(context_valid, "bool"), 1), num_blocks, axis=1
        )
        context_valid = ops.reshape(context_valid, (-1, ops.shape(context_indices)[1]))
        targets_valid = ops.reshape(ops.cast(targets_valid, "bool"), (-1, block_size))
        return ops.concatenate([context_valid, targets_valid], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_patches=self.num_patches,
            embed_dim=self.embed_dim,
            predictor_embed_dim=self.predictor_embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            layer_norm_epsilon=self.layer_norm_epsilon,
            init_std=self.init_std,
            depth_scaled_init=self.depth_scaled_init,
            activation=self.activation,
            grid_size=self._grid_size_argument,
            remat=self.remat,
            seed=self.seed,
            uniform_power=self.uniform_power,
        )
        return config
