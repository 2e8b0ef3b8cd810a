"""The other masking strategies of the I-JEPA ablation (Assran et al. 2023, Table 6).

The paper trains ViT-B/16 with four strategies and reports 1% ImageNet linear
probe accuracy: multi-block 54.2, rasterized 15.5, single block 20.2, random
17.6. These samplers reproduce the three baselines with the same
:class:`MaskBatch` contract as :class:`MultiBlockMaskSampler`, so an ablation
is one constructor swap (or ``make_sampler(name, ...)``). In all three the
context is the complement of the targets. As in multi-block, a draw whose
target leaves fewer than ``min_context`` context patches is redrawn (so large
targets of a wide ``target_scale`` range are thinned), and the constructor
refuses a configuration where that is not reliable
(:mod:`jepa_components.masks.feasibility`); rasterized masking needs every
quadrant to hold ``min_context`` patches (no redraws, no bias).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jepa_components._validation import check_range_pair
from jepa_components.masks.geometry import (
    block_sizes,
    box_masks,
    feasible_sizes,
    lerp,
    max_block_area,
    min_block_area,
    place,
)
from jepa_components.masks.sampler import MaskSampler


class SingleBlockMaskSampler(MaskSampler):
    """One large target block; the context is every other patch.

    Paper Table 6, "block": a single target block covering about 60% of the
    image (``target_scale=(0.6, 0.6)``), predicted from its complement.

    Example:
        >>> from jepa_components.masks import SingleBlockMaskSampler
        >>> batch = SingleBlockMaskSampler(grid_size=(14, 14), seed=0).sample(4)
        >>> batch.targets.shape[1]
        1
    """

    num_targets = 1
    draws_per_attempt = 4
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int] = (14, 14),
        target_scale: tuple[float, float] = (0.6, 0.6),
        target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
        min_context: int = 10,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(grid_size, min_context=min_context, seed=seed, **kwargs)
        self.target_scale = check_range_pair("target_scale", target_scale, high=1.0)
        self.target_aspect_ratio = check_range_pair("target_aspect_ratio", target_aspect_ratio)
        small = min_block_area(self.target_scale, self.target_aspect_ratio, self.grid_size)
        big = max_block_area(self.target_scale, self.target_aspect_ratio, self.grid_size)
        self._max_counts = (self.num_patches - small, big)
        self._count_bounds = (self.num_patches - big, self.num_patches - small)
        self._check_feasible()

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "target_scale": self.target_scale,
            "target_aspect_ratio": self.target_aspect_ratio,
        }

    def max_counts(self) -> tuple[int, int]:
        return self._max_counts

    def _context_count_bounds(self):
        return self._count_bounds

    def _describe(self):
        return (
            f"The grid {self.grid_size} with target_scale={self.target_scale} and "
            f"target_aspect_ratio={self.target_aspect_ratio}"
        )

    def target_sizes(self) -> np.ndarray:
        return feasible_sizes(self.target_scale, self.target_aspect_ratio, self.grid_size)

    def _draw(self, sample_ids, u):
        grid = self.grid_size
        h, w = block_sizes(
            lerp(*self.target_scale, u[:, 0]), lerp(*self.target_aspect_ratio, u[:, 1]), grid
        )
        top, left = place(h, grid[0], u[:, 2]), place(w, grid[1], u[:, 3])
        context = ~box_masks(top, left, h, w, grid)  # (R, N)
        return context, None, None, np.stack([top, left, h, w], axis=-1)[:, None, :]


class RasterizedMaskSampler(MaskSampler):
    """Quadrants: one random quadrant is the context, the other three are targets.

    Paper Table 6, "rasterized". Rows split at ``H // 2`` and columns at
    ``W // 2``; targets are the three other quadrants in reading order (on
    odd grids quadrants differ in size and are padded). Needs ``H, W >= 2``.

    Example:
        >>> from jepa_components.masks import RasterizedMaskSampler
        >>> batch = RasterizedMaskSampler(grid_size=(14, 14), seed=0).sample(4)
        >>> batch.context.shape, batch.targets.shape
        ((4, 49), (4, 3, 49))
    """

    num_targets = 3
    draws_per_attempt = 1
    context_rule = "complement"

    def __init__(
        self, grid_size: int | tuple[int, int] = (14, 14), seed: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("min_context", 1)
        super().__init__(grid_size, seed=seed, **kwargs)
        H, W = self.grid_size
        if H < 2 or W < 2:
            raise ValueError(
                "Invalid value for argument `grid_size`. Rasterized masking needs at "
                f"least 2 rows and 2 columns. Received: grid_size={self.grid_size}"
            )
        h0, w0 = H // 2, W // 2
        self._quadrants = np.array(
            [[0, 0, h0, w0], [0, w0, h0, W - w0], [h0, 0, H - h0, w0], [h0, w0, H - h0, W - w0]]
        )
        areas = self._quadrants[:, 2] * self._quadrants[:, 3]
        self._max_counts = (int(areas.max()), int(areas.max()))
        # every quadrant must be able to be the context (exact: no redraws, no bias)
        self._count_bounds = (int(areas.min()), int(areas.min()))
        top, left, h, w = self._quadrants.T
        self._dense = box_masks(top, left, h, w, self.grid_size)  # (4, N)
        self._check_feasible()

    def max_counts(self) -> tuple[int, int]:
        return self._max_counts

    def _context_count_bounds(self):
        return self._count_bounds

    def _describe(self):
        return f"Rasterized masking on the grid {self.grid_size} (smallest quadrant)"

    def _feasibility_hint(self):
        return "Lower `min_context`."

    def target_sizes(self) -> np.ndarray:
        return self._quadrants[:, 2:]

    def _draw(self, sample_ids, u):
        q = np.minimum((u[:, 0] * 4).astype(np.int64), 3)  # context quadrant
        order = np.array([[j for j in range(4) if j != i] for i in range(4)])
        tq = order[q]  # (R, 3)
        return self._dense[q], None, self._quadrants[q], self._quadrants[tq]


class RandomMaskSampler(MaskSampler):
    """A random subset of patches is the target; the context is the rest.

    Paper Table 6, "random": one target made of ``round(s * H * W)`` patches
    chosen uniformly at random, ``s`` drawn from ``target_scale`` (default
    0.6), predicted from the remaining patches.

    Example:
        >>> from jepa_components.masks import RandomMaskSampler
        >>> batch = RandomMaskSampler(grid_size=(14, 14), seed=0).sample(4)
        >>> int(batch.targets_valid[0, 0].sum())
        118
    """

    num_targets = 1
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int] = (14, 14),
        target_scale: tuple[float, float] = (0.6, 0.6),
        min_context: int = 10,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(grid_size, min_context=min_context, seed=seed, **kwargs)
        self.target_scale = check_range_pair("target_scale", target_scale, high=1.0)
        n = self.num_patches
        lo, hi = (int(self._count(s)) for s in self.target_scale)
        self._max_counts = (n - lo, hi)
        self._count_bounds = (n - hi, n - lo)
        self.draws_per_attempt = 1 + n
        self._check_feasible()

    def get_config(self) -> dict:
        return {**super().get_config(), "target_scale": self.target_scale}

    def _context_count_bounds(self):
        return self._count_bounds

    def _describe(self):
        return f"The grid {self.grid_size} with target_scale={self.target_scale}"

    def _count(self, scale):
        return np.clip(
            np.floor(np.asarray(scale) * self.num_patches + 0.5), 1, self.num_patches
        ).astype(np.int64)

    def max_counts(self) -> tuple[int, int]:
        return self._max_counts

    def _draw(self, sample_ids, u):
        k = self._count(lerp(*self.target_scale, u[:, 0]))
        ranks = np.argsort(np.argsort(u[:, 1:], axis=1), axis=1)
        target = ranks < k[:, None]
        return ~target, target[:, None, :], None, None
