"""MultiBlockMaskSampler: I-JEPA's multi-block masking (Assran et al. 2023, Sec. 3)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from jepa_components.masks.geometry import (
    BoxBits,
    block_sizes,
    box_masks,
    context_minus_targets,
    feasible_sizes,
    check_int,
    check_range,
    lerp,
    max_block_area,
    place,
)
from jepa_components.masks.sampler import MaskSampler


class MultiBlockMaskSampler(MaskSampler):
    """``M`` target blocks and one context block with the targets removed.

    Defaults are the paper's: 4 targets of scale 0.15-0.2 and aspect ratio
    0.75-1.5; one context block of scale 0.85-1.0 and aspect 1.0 from which
    every target patch is removed; at least ``min_context=10`` context patches
    (the official ``min_keep``).

    Differences from the official ``MaskCollator`` (src/masks/multiblock.py),
    each a defect there:

    * blocks may touch the last row and column and may span the full height or
      width (official: ``randint(0, H - h)`` and ``while h >= H: h -= 1``);
    * scale and aspect ratio are independent draws (official: one ``rand()``
      drives both, so large blocks are always tall);
    * every target of every sample draws its own size (official: one size per
      batch), so sample ``k`` does not depend on its batch;
    * contexts are padded, not cut to the batch minimum (see
      :class:`~jepa_components.masks.sampler.MaskSampler`), and a sample that
      leaves fewer than ``min_context`` patches is redrawn instead of silently
      allowing overlap with the targets.

    Block sizes and positions follow :mod:`jepa_components.masks.geometry`
    (aspect ratio measured relative to the grid, equal to ``h / w`` on the
    paper's square grids).

    Args:
        grid_size: ``(H, W)`` patches (or an int for a square grid).
        num_targets: number of target blocks ``M``.
        target_scale: ``(min, max)`` fraction of the grid per target block.
        target_aspect_ratio: ``(min, max)`` height/width ratio of target blocks.
        context_scale: ``(min, max)`` fraction of the grid of the context block.
        context_aspect_ratio: ``(min, max)`` of the context block.
        min_context: minimum context patches after removing targets.
        allow_overlap: keep target patches in the context (the paper removes them).
        ragged, context_length, target_length, max_attempts: see
            :class:`~jepa_components.masks.sampler.MaskSampler`.
        seed: int >= 0; ``None`` draws one from the OS (read it back from
            ``sampler.seed``).

    ``sample(B)`` returns a :class:`MaskBatch` with ``context`` ``(B, Kc) int32``
    and ``targets`` ``(B, M, Kt) int32`` plus the boxes of every block.

    Example:
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> sampler = MultiBlockMaskSampler(grid_size=(14, 14), seed=0)
        >>> batch = sampler.sample(8)
        >>> batch.context.shape, batch.targets.shape
        ((8, 171), (8, 4, 42))
        >>> bool((batch.context_valid.sum(1) >= 10).all())
        True
    """

    def __init__(
        self,
        grid_size=(14, 14),
        num_targets: int = 4,
        target_scale=(0.15, 0.2),
        target_aspect_ratio=(0.75, 1.5),
        context_scale=(0.85, 1.0),
        context_aspect_ratio=(1.0, 1.0),
        min_context: int = 10,
        allow_overlap: bool = False,
        seed: Optional[int] = None,
        *,
        ragged: str = "pad",
        context_length: Optional[int] = None,
        target_length: Optional[int] = None,
        max_attempts: int = 100,
    ):
        super().__init__(
            grid_size,
            min_context=min_context,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
            max_attempts=max_attempts,
            seed=seed,
        )
        self.num_targets = check_int("num_targets", num_targets, low=1)
        self.target_scale = check_range("target_scale", target_scale, upper=1.0)
        self.target_aspect_ratio = check_range("target_aspect_ratio", target_aspect_ratio)
        self.context_scale = check_range("context_scale", context_scale, upper=1.0)
        self.context_aspect_ratio = check_range("context_aspect_ratio", context_aspect_ratio)
        self.allow_overlap = bool(allow_overlap)
        self.draws_per_attempt = 4 * self.num_targets + 4
        self._max_counts = (
            self._max_context_count(),
            max_block_area(self.target_scale, self.target_aspect_ratio, self.grid_size),
        )
        self._check_feasible()
        ranges = [self.target_scale] * self.num_targets + [self.context_scale]
        aspects = [self.target_aspect_ratio] * self.num_targets + [self.context_aspect_ratio]
        lo_s, hi_s = np.array(ranges).T
        lo_a, hi_a = np.array(aspects).T
        self._block_ranges = (lo_s, hi_s - lo_s, lo_a, hi_a - lo_a)
        self._box_bits = BoxBits(self.grid_size) if self.grid_size[1] <= 64 else None

    def _max_context_count(self) -> int:
        """Largest context after target removal: the padded length ``Kc``.

        A target of size ``(h, w)`` overlaps a ``(hc, wc)`` context box in at
        least ``max(0, h - (H - hc)) * max(0, w - (W - wc))`` patches (the free
        rows and columns around the box), so the context keeps at most
        ``hc * wc`` minus the smallest such overlap.
        """
        H, W = self.grid_size
        ctx = feasible_sizes(self.context_scale, self.context_aspect_ratio, self.grid_size)
        if self.allow_overlap:
            return int((ctx[:, 0] * ctx[:, 1]).max())
        tgt = feasible_sizes(self.target_scale, self.target_aspect_ratio, self.grid_size)
        hc, wc = ctx[:, 0:1], ctx[:, 1:2]  # (C, 1) against targets (1, T)
        overlap = np.maximum(0, tgt[:, 0] - (H - hc)) * np.maximum(0, tgt[:, 1] - (W - wc))
        return int((hc[:, 0] * wc[:, 0] - overlap.min(axis=1)).max())

    def _check_feasible(self):
        best = self._max_counts[0]
        if best < self.min_context:
            raise ValueError(
                f"Invalid value for argument `min_context`. The grid {self.grid_size} "
                f"with context_scale={self.context_scale} and target_scale="
                f"{self.target_scale} leaves at most {best} context patches after the "
                f"targets are removed, so min_context must be <= {best}. "
                f"Received: min_context={self.min_context}"
            )

    def max_counts(self):
        return self._max_counts

    def target_sizes(self):
        return feasible_sizes(self.target_scale, self.target_aspect_ratio, self.grid_size)

    def _draw(self, sample_ids, u):
        # Blocks 0..M-1 are the targets, block M the context: one vectorised
        # pass over (R, M + 1) blocks, four uniforms each (scale, aspect, top, left).
        grid = self.grid_size
        ub = u.reshape(len(sample_ids), self.num_targets + 1, 4)
        scale_lo, scale_span, aspect_lo, aspect_span = self._block_ranges
        h, w = block_sizes(
            scale_lo + ub[..., 0] * scale_span, aspect_lo + ub[..., 1] * aspect_span, grid
        )
        boxes = (place(h, grid[0], ub[..., 2]), place(w, grid[1], ub[..., 3]), h, w)
        if self.allow_overlap:
            context = box_masks(*(v[:, -1] for v in boxes), grid)
        else:
            context = context_minus_targets(boxes, grid, self._box_bits)
        boxes = np.stack(boxes, axis=-1)
        return context, None, boxes[:, -1], boxes[:, :-1]
