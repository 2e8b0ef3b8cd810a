"""MultiBlockMaskSampler: I-JEPA's multi-block masking (Assran et al. 2023, Sec. 3)."""

from __future__ import annotations

import numpy as np

from jepa_components._validation import check_bool, check_int, check_range_pair
from jepa_components.masks.geometry import (
    BoxBits,
    box_masks,
    feasible_sizes,
    pack_dense,
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
      allowing overlap with the targets;
    * a configuration that cannot reliably keep ``min_context`` patches is
      refused by the constructor (``ValueError``) instead of failing mid-run
      (rule: :mod:`jepa_components.masks.feasibility`).

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
        ragged: "pad" (default: fixed lengths ``context_length`` /
            ``target_length``), "bucket" (the batch maximum rounded up to one
            of :meth:`padded_lengths`) or "truncate" (the official
            cut-to-minimum, a random subset kept); see
            :class:`~jepa_components.masks.sampler.MaskSampler`.
        context_length, target_length: cap the padded lengths (larger samples
            keep a uniformly random subset); default: the largest possible.
        max_attempts: redraws per sample before the (safety-net)
            ``RuntimeError``; also sets which configurations are feasible.
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
        grid_size: int | tuple[int, int] = (14, 14),
        num_targets: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect_ratio: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
        context_aspect_ratio: tuple[float, float] = (1.0, 1.0),
        min_context: int = 10,
        allow_overlap: bool = False,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
        max_attempts: int = 100,
    ) -> None:
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
        self.target_scale = check_range_pair("target_scale", target_scale, high=1.0)
        self.target_aspect_ratio = check_range_pair("target_aspect_ratio", target_aspect_ratio)
        self.context_scale = check_range_pair("context_scale", context_scale, high=1.0)
        self.context_aspect_ratio = check_range_pair("context_aspect_ratio", context_aspect_ratio)
        self.allow_overlap = check_bool("allow_overlap", allow_overlap)
        self.draws_per_attempt = 4 * self.num_targets + 4
        self._sizes = (
            feasible_sizes(self.target_scale, self.target_aspect_ratio, self.grid_size),
            feasible_sizes(self.context_scale, self.context_aspect_ratio, self.grid_size),
        )
        target_areas = self._sizes[0][:, 0] * self._sizes[0][:, 1]
        self._max_counts = (self._max_context_count(), int(target_areas.max()))
        self._build_tables()
        self._check_feasible()

    def _build_tables(self):
        """Per-block constants for :meth:`_boxes`, built once (shaped to broadcast).

        The size rule ``h = round(H sqrt(s a))``, ``w = round(W sqrt(s / a))``
        is computed as ``sqrt(S A)`` and ``sqrt(S / A)`` with ``S = H W s`` and
        ``A = (H / W) a``, so the grid constants fold into the ranges.
        """
        H, W = self.grid_size
        m = self.num_targets
        scale = np.array([self.target_scale] * m + [self.context_scale]) * (H * W)
        aspect = np.array([self.target_aspect_ratio] * m + [self.context_aspect_ratio]) * (H / W)
        ranges = np.concatenate([scale, aspect])  # (2 (M + 1), 2): S rows, then A rows
        self._range_lo, self._range_span = ranges[:, :1], ranges[:, 1:] - ranges[:, :1]
        self._extent = np.array([H, W], dtype=np.float64).reshape(2, 1, 1)
        self._extent_plus_1 = self._extent + 1.0
        self._box_bits = BoxBits(self.grid_size) if W <= 64 else None

    def _max_context_count(self) -> int:
        """Largest context after target removal: the padded length ``Kc``.

        A target of size ``(h, w)`` overlaps a ``(hc, wc)`` context box in at
        least ``max(0, h - (H - hc)) * max(0, w - (W - wc))`` patches (the free
        rows and columns around the box), so the context keeps at most
        ``hc * wc`` minus the smallest such overlap.
        """
        H, W = self.grid_size
        ctx = self.context_sizes()
        if self.allow_overlap:
            return int((ctx[:, 0] * ctx[:, 1]).max())
        tgt = self.target_sizes()
        hc, wc = ctx[:, 0:1], ctx[:, 1:2]  # (C, 1) against targets (1, T)
        overlap = np.maximum(0, tgt[:, 0] - (H - hc)) * np.maximum(0, tgt[:, 1] - (W - wc))
        return int((hc[:, 0] * wc[:, 0] - overlap.min(axis=1)).max())

    def _context_count_bounds(self):
        """Smallest and largest context count of a draw.

        Smallest: over the context sizes ``(hc, wc)``, ``hc * wc`` minus the
        most the targets can cover inside the block, ``M`` times the largest
        ``min(h, hc) * min(w, wc)`` of a target size (capped at the block).
        """
        ctx = self.context_sizes()
        area = ctx[:, 0] * ctx[:, 1]
        if self.allow_overlap:
            return int(area.min()), self._max_counts[0]
        tgt = self.target_sizes()
        inside = np.minimum(tgt[:, 0], ctx[:, :1]) * np.minimum(tgt[:, 1], ctx[:, 1:])  # (C, T)
        covered = np.minimum(area, self.num_targets * inside.max(axis=1))
        return int((area - covered).min()), self._max_counts[0]

    def _describe(self):
        return (
            f"The grid {self.grid_size} with num_targets={self.num_targets}, target_scale="
            f"{self.target_scale}, target_aspect_ratio={self.target_aspect_ratio}, "
            f"context_scale={self.context_scale} and context_aspect_ratio="
            f"{self.context_aspect_ratio}"
            + ("" if self.allow_overlap else " (targets removed from the context)")
        )

    def _feasibility_hint(self):
        return (
            "Lower `min_context`, use fewer or smaller targets (num_targets, "
            "target_scale) or a larger context block (context_scale)."
        )

    context_rule = "block"

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_targets": self.num_targets,
            "target_scale": self.target_scale,
            "target_aspect_ratio": self.target_aspect_ratio,
            "context_scale": self.context_scale,
            "context_aspect_ratio": self.context_aspect_ratio,
            "allow_overlap": self.allow_overlap,
        }

    def max_counts(self) -> tuple[int, int]:
        return self._max_counts

    def target_sizes(self) -> np.ndarray:
        return self._sizes[0].copy()

    def context_sizes(self) -> np.ndarray:
        """``(n, 2)`` sizes ``(h, w)`` the context block can take."""
        return self._sizes[1].copy()

    def _boxes(self, u: np.ndarray) -> np.ndarray:
        """Boxes ``(4, M + 1, R)`` float64 (top, left, h, w) from draw-major uniforms.

        ``u`` is ``(4 (M + 1), R)``: the scale, aspect, top and left uniforms of
        every block (targets first, the context last), overwritten here. Sizes
        and corners follow :func:`~jepa_components.masks.geometry.block_sizes`
        and :func:`~jepa_components.masks.geometry.place`, but on whole
        ``(2, M + 1, R)`` slabs with ``out=`` so a batch costs ~15 numpy calls.
        """
        m1, r = self.num_targets + 1, u.shape[1]
        scale_aspect, corner = u[: 2 * m1], u[2 * m1 :].reshape(2, m1, r)
        scale_aspect *= self._range_span
        scale_aspect += self._range_lo
        scale, aspect = scale_aspect[:m1], scale_aspect[m1:]
        boxes = np.empty((4, m1, r))
        start, size = boxes[:2], boxes[2:]
        np.multiply(scale, aspect, out=size[0])  # H^2 s a
        np.divide(scale, aspect, out=size[1])  # W^2 s / a
        np.sqrt(size, out=size)
        size += 0.5  # round half up, then clip to [1, extent]
        np.floor(size, out=size)
        np.maximum(size, 1.0, out=size)
        np.minimum(size, self._extent, out=size)
        np.subtract(self._extent_plus_1, size, out=start)  # number of corners per axis
        start *= corner  # u < 1, so floor(u * n) <= n - 1 exactly: no clip needed
        np.floor(start, out=start)
        return boxes

    def _context_words(self, boxes: np.ndarray) -> np.ndarray:
        """``(R, H)`` row bit words of the context block minus the target blocks."""
        keys = boxes[:2] * self._extent_plus_1  # BoxBits keys: start * (extent + 1) + size
        keys += boxes[2:]
        keys = keys.astype(np.intp)
        assert self._box_bits is not None  # only called when the grid fits in 64 columns
        words = self._box_bits.bits_from_keys(keys[0], keys[1])  # (M + 1, R, H)
        context = words[-1]
        if not self.allow_overlap:
            union = np.bitwise_or.reduce(words[:-1], axis=0)
            np.invert(union, out=union)
            context &= union
        return context

    def _draw_packed(self, sample_ids, u):
        """Boxes, then the context packed from row bit words (dense masks past 64 columns)."""
        boxes = self._boxes(u)
        length = self._max_counts[0]
        if self._box_bits is not None:
            c_idx, c_val = self._box_bits.pack(self._context_words(boxes), length)
        else:  # more than 64 columns: dense boolean boxes
            top, left, h, w = boxes.astype(np.int64)
            context = box_masks(top[-1], left[-1], h[-1], w[-1], self.grid_size)
            if not self.allow_overlap:
                context &= ~box_masks(top[:-1], left[:-1], h[:-1], w[:-1], self.grid_size).any(0)
            c_idx, c_val = pack_dense(context, length)
        context_boxes = boxes[:, -1].T.astype(np.int32, order="C")  # (R, 4)
        target_boxes = boxes[:, :-1].transpose(2, 1, 0).astype(np.int32, order="C")  # (R, M, 4)
        return c_idx, c_val, None, context_boxes, target_boxes
