"""make_sampler: every mask sampler of :mod:`jepa_components.masks` by name."""

from __future__ import annotations

from typing import Any

from jepa_components._validation import check_choice
from jepa_components.masks.ablation import (
    RandomMaskSampler,
    RasterizedMaskSampler,
    SingleBlockMaskSampler,
)
from jepa_components.masks.blockwise import BlockwiseMaskSampler
from jepa_components.masks.inverse_block import InverseBlockMaskSampler
from jepa_components.masks.mae import MAEMaskSampler
from jepa_components.masks.multiblock import MultiBlockMaskSampler
from jepa_components.masks.sampler import MaskSampler
from jepa_components.masks.tube import MultiBlock3DMaskSampler, RandomTubeMaskSampler

#: name -> sampler class; every name :func:`make_sampler` accepts
SAMPLERS: dict[str, type[MaskSampler]] = {
    "multiblock": MultiBlockMaskSampler,  # I-JEPA
    "block": SingleBlockMaskSampler,  # I-JEPA ablation
    "raster": RasterizedMaskSampler,  # I-JEPA ablation
    "random": RandomMaskSampler,  # I-JEPA ablation
    "tube": MultiBlock3DMaskSampler,  # V-JEPA multi-block tubes, (T, H, W) grids
    "random_tube": RandomTubeMaskSampler,  # V-JEPA random tubes, (T, H, W) grids
    "mae": MAEMaskSampler,  # MAE random masking
    "inverse_block": InverseBlockMaskSampler,  # data2vec 2.0
    "blockwise": BlockwiseMaskSampler,  # BEiT / iBOT / DINOv2
}


def make_sampler(
    name: str, grid_size: int | tuple[int, ...], seed: int | None = None, **kwargs: Any
) -> MaskSampler:
    """Build a sampler by name: one of the keys of :data:`SAMPLERS`.

    Example:
        >>> from jepa_components.masks import make_sampler
        >>> make_sampler("raster", grid_size=8, seed=1).sample(2).num_targets
        3
    """
    check_choice("name", name, sorted(SAMPLERS))
    return SAMPLERS[name](grid_size=grid_size, seed=seed, **kwargs)
