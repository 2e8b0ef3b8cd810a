"""Mask samplers for I-JEPA: which patches the context encoder sees, which it predicts.

Every sampler returns a :class:`MaskBatch` of padded index arrays and shares
one contract (see :class:`~jepa_components.masks.sampler.MaskSampler`):
row-major patch indices, a seed, counter-based streams (sample ``k`` never
depends on batching), feasibility decided at construction
(:mod:`~jepa_components.masks.feasibility`), bounded retries, and padded
shapes: fixed (``ragged="pad"``), a few bucket sizes (``"bucket"``) or cut
to the batch minimum (``"truncate"``; :mod:`~jepa_components.masks.padding`).

* :class:`MultiBlockMaskSampler`: the paper's multi-block masking.
* :class:`SingleBlockMaskSampler`, :class:`RasterizedMaskSampler`,
  :class:`RandomMaskSampler`: the other strategies of the paper's masking
  ablation (Assran et al. 2023, Table 6), each with the complement as context.
* :class:`MAEMaskSampler` (MAE random masking) and
  :class:`InverseBlockMaskSampler` (data2vec 2.0 inverse block masking, with
  clones): the visible patches are the context, the masked ones the target.
* :class:`BlockwiseMaskSampler`: BEiT / iBOT / DINOv2 blockwise masking (the
  masked patches are the target, the rest the context).
* :class:`MultiBlock3DMaskSampler` and :class:`RandomTubeMaskSampler`: V-JEPA's
  video masks on ``(T, H, W)`` grids; :func:`vjepa_samplers` builds one per
  configuration of :data:`VJEPA_MASK_CONFIGS` (the vitl16 yaml).
* :func:`make_sampler`: build one by name (the keys of :data:`SAMPLERS`).
"""

from jepa_components.masks.ablation import (
    RandomMaskSampler,
    RasterizedMaskSampler,
    SingleBlockMaskSampler,
)
from jepa_components.masks.batch import MaskBatch
from jepa_components.masks.blockwise import BlockwiseMaskSampler
from jepa_components.masks.inverse_block import InverseBlockMaskSampler
from jepa_components.masks.mae import MAEMaskSampler
from jepa_components.masks.multiblock import MultiBlockMaskSampler
from jepa_components.masks.registry import SAMPLERS, make_sampler
from jepa_components.masks.sampler import MaskSampler, check_sampler_grid
from jepa_components.masks.tube import (
    VJEPA_MASK_CONFIGS,
    MultiBlock3DMaskSampler,
    RandomTubeMaskSampler,
    vjepa_samplers,
)

__all__ = [
    "BlockwiseMaskSampler",
    "InverseBlockMaskSampler",
    "MAEMaskSampler",
    "MaskBatch",
    "MaskSampler",
    "MultiBlock3DMaskSampler",
    "MultiBlockMaskSampler",
    "RandomTubeMaskSampler",
    "SAMPLERS",
    "VJEPA_MASK_CONFIGS",
    "RandomMaskSampler",
    "RasterizedMaskSampler",
    "SingleBlockMaskSampler",
    "check_sampler_grid",
    "make_sampler",
    "vjepa_samplers",
]
