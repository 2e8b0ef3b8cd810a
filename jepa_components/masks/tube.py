"""Video masks of V-JEPA (Bardes et al. 2024, "Revisiting Feature Prediction for
Learning Visual Representations from Video", Sec. 3.2): tubes on a ``(T, H, W)``
patch grid.

* :class:`MultiBlock3DMaskSampler`: the target is the union of ``num_blocks``
  spatio-temporal blocks ("tubes"), the context everything else (V-JEPA's
  ``src/masks/multiblock3d.py``; V-JEPA 2's ``full_complement`` from
  ``src/masks/multiseq_multiblock3d.py``).
* :class:`RandomTubeMaskSampler`: a uniformly random spatial subset is the
  context, repeated in every frame (``src/masks/random_tube.py``).
* :data:`VJEPA_MASK_CONFIGS` and :func:`vjepa_samplers`: the two mask
  configurations of ``configs/pretrain/vitl16.yaml``, one sampler each.

The grid is ``(T, H, W) = (frames // tubelet, height // patch, width //
patch)``, ``(8, 14, 14)`` for V-JEPA's 16 frames of 224 px with tubelet 2 and
patch 16; patch ``(t, row, col)`` has index ``(t * H + row) * W + col``, the
order of V-JEPA's flattened tubelets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from jepa_components._validation import (
    check_bool,
    check_float,
    check_grid,
    check_int,
    check_range_pair,
    check_seed,
    invalid,
)
from jepa_components.masks import _stream, feasibility
from jepa_components.masks.mae import ratio_count
from jepa_components.masks.sampler import MaskSampler

__all__ = [
    "MultiBlock3DMaskSampler",
    "RandomTubeMaskSampler",
    "VJEPA_MASK_CONFIGS",
    "vjepa_samplers",
]

_SIZES, _PROBE_SIZES, _CONFIGS = 11, 12, 13  # stream purposes (the base uses 1-3)


def block_size_rule(
    grid: tuple[int, ...], temporal: np.ndarray, spatial: np.ndarray, aspect: np.ndarray
) -> np.ndarray:
    """V-JEPA's ``_sample_block_size`` on arrays: ``(..., 3) int64`` sizes ``(t, h, w)``.

    ``t = max(1, int(T * temporal))``; ``keep = int(H * W * spatial)``
    patches per frame; ``h = round(sqrt(keep * aspect))``, ``w =
    round(sqrt(keep / aspect))`` (round half to even, as Python's
    ``round``), clipped to ``[1, H]`` and ``[1, W]``. The reference clips
    only from above, so ``keep * aspect < 0.25`` gives it an empty block.

    Example:
        >>> block_size_rule((8, 14, 14), np.array(1.0), np.array(0.15), np.array(1.0))
        array([8, 5, 5])
    """
    T, H, W = grid
    t = np.maximum(np.floor(T * np.asarray(temporal, dtype=np.float64)), 1.0)
    keep = np.floor(H * W * np.asarray(spatial, dtype=np.float64))
    h, w = _spatial_rule(keep, np.asarray(aspect, dtype=np.float64), H, W)
    return np.stack(np.broadcast_arrays(t, h, w), axis=-1).astype(np.int64)


def _spatial_rule(keep: np.ndarray, aspect: np.ndarray, H: int, W: int):
    """``h, w`` (float arrays) of a block of ``keep`` patches and aspect ratio ``aspect``."""
    h = np.clip(np.rint(np.sqrt(keep * aspect)), 1, H)
    w = np.clip(np.rint(np.sqrt(keep / aspect)), 1, W)
    return h, w


def reachable_block_sizes(
    grid: tuple[int, ...],
    temporal_scale: tuple[float, float],
    spatial_scale: tuple[float, float],
    aspect_ratio: tuple[float, float],
) -> np.ndarray:
    """Every ``(t, h, w)`` :func:`block_size_rule` can return for the ranges: ``(n, 3)``.

    ``t`` and ``keep`` take every integer between their values at the ends
    of the ranges; for each ``keep`` the aspect range is cut where ``h`` or
    ``w`` changes (``aspect = (n + 1/2)**2 / keep`` or ``keep / (n +
    1/2)**2``) and the rule is evaluated at the cuts and between them. A
    superset only at measure-zero rounding boundaries.

    Example:
        >>> reachable_block_sizes((8, 14, 14), (1.0, 1.0), (0.15, 0.15), (0.75, 1.5)).tolist()
        [[8, 5, 5], [8, 5, 6], [8, 6, 4], [8, 6, 5], [8, 7, 4]]
    """
    T, H, W = grid
    t_lo, t_hi = (max(1, int(T * s)) for s in temporal_scale)
    k_lo, k_hi = (int(H * W * s) for s in spatial_scale)
    a_lo, a_hi = aspect_ratio
    halves = np.arange(max(H, W) + 1) + 0.5
    pairs: set[tuple[int, int]] = set()
    for keep in range(k_lo, k_hi + 1):
        bounds = [a_lo, a_hi]
        if keep > 0:
            bounds += (halves**2 / keep).tolist() + (keep / halves**2).tolist()
        cuts = np.unique(np.clip(bounds, a_lo, a_hi))
        aspects = np.concatenate([cuts, (cuts[:-1] + cuts[1:]) / 2])
        h, w = _spatial_rule(np.float64(keep), aspects, H, W)
        pairs.update(zip(h.astype(int).tolist(), w.astype(int).tolist()))
    hw = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    t = np.repeat(np.arange(t_lo, t_hi + 1), len(hw))
    return np.column_stack([t, np.tile(hw, (t_hi - t_lo + 1, 1))])


class MultiBlock3DMaskSampler(MaskSampler):
    """V-JEPA multi-block masking: the target is the union of ``num_blocks`` tubes.

    Rule of ``_MaskGenerator`` in V-JEPA's ``src/masks/multiblock3d.py``.
    Each sample draws one block size ``(t, h, w)`` with V-JEPA's
    ``_sample_block_size`` (:func:`block_size_rule`: ``t = max(1, int(T *
    temporal))``, ``keep = int(H * W * spatial)``, ``h = round(sqrt(keep *
    aspect))``, ``w = round(sqrt(keep / aspect))``), and ``num_blocks`` tubes
    of that size whose corners ``(start, top, left)`` are uniform over all
    ``(T - t + 1) (H - h + 1) (W - w + 1)`` positions (V-JEPA's
    ``randint(0, H - h + 1)`` is right here: blocks reach the last frame, row
    and column). Frames from ``max(1, int(T * max_temporal_keep))`` on are
    never in the context: they belong to the target, as in V-JEPA. The target
    (one, ``num_targets = 1``) is the union; the context is every other patch
    (``context_rule = "complement"``). A draw that keeps fewer than
    ``min_context`` patches (V-JEPA: an empty context) gets new positions,
    with the same size, as V-JEPA's ``while empty_context`` loop does.

    ``full_complement=True`` (V-JEPA 2, ``multiseq_multiblock3d.py``): the
    target is every patch not in the context *after* the context was cut
    (``context_length``, ``ragged="truncate"``), so a patch dropped from the
    context is predicted instead of lost. Without a cut it is the same mask.

    Differences from the reference, each a defect there (the tests in
    ``tests/core/test_masks_tube_reference.py`` show each on the reference
    code):

    * **No positional cut.** V-JEPA cuts every context and target of the
      batch to the batch minimum with ``cm[:min_keep]``, which drops the
      highest indices, i.e. the *last frames* (and bottom rows); ``max_keep``
      cuts the same way, so a small ``max_keep`` leaves only the first frames
      in the context (facebookresearch/jepa#50). Here ``ragged="pad"``
      (default) cuts nothing; ``"truncate"`` and ``context_length`` (the
      ``max_keep`` cap) keep a uniformly random subset.
    * **Sizes per sample.** V-JEPA draws one size per batch from a
      ``torch.Generator`` seeded with the iteration counter: the same size
      sequence in every run whatever the seed, every sample of a batch with
      the same size, and a sample's size set by its batch. Here each sample
      draws its own size from the counter-based stream of ``(seed, sample
      number)``.
    * **Positions from the stream.** V-JEPA draws positions from the global
      torch RNG, so a sample's masks depend on the process, the data-loader
      worker and whatever else consumed random numbers. Here they are a pure
      function of ``(seed, sample number)`` (``sample_at``).
    * **Bounded.** V-JEPA's ``while empty_context`` never ends when the
      batch's block size is the whole clip: always for spatial and temporal
      scale and aspect ratio 1, and in 20% of the batches with its aspect
      range ``(0.75, 1.5)`` and ``spatial_scale=(1.0, 1.0)``,
      ``temporal_scale=(1.0, 1.0)``. Here a block size that cannot keep
      ``min_context`` patches, or too rarely, is refused by the constructor
      (``ValueError`` naming the size; rule of
      :mod:`jepa_components.masks.feasibility`, applied to every size the
      ranges allow, since a sample keeps its size when it is redrawn).
    * **No empty blocks.** ``h`` and ``w`` are at least 1 (V-JEPA: 0 when
      ``keep * aspect < 0.25``, an empty target).
    * ``.squeeze()`` of a one-patch context or target gives V-JEPA a 0-d
      tensor on which ``len()`` raises (e.g. a single 1x1x1 block); index
      arrays here are always ``(B, K)``.

    Args:
        grid_size: ``(T, H, W)`` patches (or an int for a cube).
        num_blocks: tubes per sample (V-JEPA's ``num_blocks``/``npred``).
        spatial_scale: ``(min, max)`` fraction of a frame per block.
        temporal_scale: ``(min, max)`` fraction of the frames per block.
        aspect_ratio: ``(min, max)`` of ``h / w``.
        max_temporal_keep: fraction of the frames the context may span.
        full_complement: V-JEPA 2's rule: the target is the complement of the
            cut context.
        min_context: fewest context patches (1: V-JEPA's non-empty context).
        seed: int >= 0; ``None`` draws one from the OS (read it back from
            ``sampler.seed``).
        ragged: "pad" (default: fixed lengths), "bucket" or "truncate" (the
            reference's cut to the batch minimum, a random subset kept); see
            :class:`~jepa_components.masks.sampler.MaskSampler`.
        context_length, target_length: cap the padded lengths (larger samples
            keep a uniformly random subset); ``context_length`` is V-JEPA's
            ``max_keep``. Default: upper bounds of the counts.
        max_attempts: redraws (new positions, same size) before the
            safety-net ``RuntimeError``; also sets which configurations are
            feasible.

    ``sample(B)`` returns a :class:`~jepa_components.masks.MaskBatch` with
    ``context`` ``(B, Kc) int32`` and ``targets`` ``(B, 1, Kt) int32``; the
    tubes behind them are ``blocks(sample_ids)`` ``(B, num_blocks, 6)``.

    Example:
        >>> from jepa_components.masks import MultiBlock3DMaskSampler
        >>> sampler = MultiBlock3DMaskSampler(grid_size=(8, 14, 14), seed=0)
        >>> batch = sampler.sample(4)
        >>> batch.targets.shape[:2], batch.context.shape[1] == sampler.context_length
        ((4, 1), True)
        >>> ctx, tgt = batch.to_dense()
        >>> ctx.shape, bool((ctx ^ tgt[:, 0]).all())  # the context is the complement
        ((4, 8, 14, 14), True)
        >>> bool((tgt[:, 0] == tgt[:, 0, :1]).all())  # temporal_scale 1: tubes span all frames
        True
    """

    grid_ndim = 3
    num_targets = 1
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int, int] = (8, 14, 14),
        num_blocks: int = 8,
        spatial_scale: tuple[float, float] = (0.15, 0.15),
        temporal_scale: tuple[float, float] = (1.0, 1.0),
        aspect_ratio: tuple[float, float] = (0.75, 1.5),
        max_temporal_keep: float = 1.0,
        full_complement: bool = False,
        min_context: int = 1,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
        max_attempts: int = 100,
    ) -> None:
        super().__init__(
            grid_size,  # the base validates (T, H, W) grids (grid_ndim = 3)
            min_context=min_context,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
            max_attempts=max_attempts,
            seed=seed,
        )
        self.num_blocks = check_int("num_blocks", num_blocks, low=1)
        self.spatial_scale = check_range_pair("spatial_scale", spatial_scale, high=1.0)
        self.temporal_scale = check_range_pair("temporal_scale", temporal_scale, high=1.0)
        self.aspect_ratio = check_range_pair("aspect_ratio", aspect_ratio)
        self.max_temporal_keep = check_float(
            "max_temporal_keep", max_temporal_keep, low=0.0, high=1.0, low_open=True
        )
        self.full_complement = check_bool("full_complement", full_complement)
        self.targets_complement_context = self.full_complement
        T = self.grid_size[0]
        #: frames the context may use: ``max(1, int(T * max_temporal_keep))``
        self.context_frames = max(1, int(T * self.max_temporal_keep))
        self.draws_per_attempt = 3 * self.num_blocks  # start, top, left of every tube
        self._size_key = _stream.seed_to_key(self.seed, _SIZES)
        self._sizes = reachable_block_sizes(
            self.grid_size, self.temporal_scale, self.spatial_scale, self.aspect_ratio
        )
        self._lower, self._upper = self._size_count_bounds(self._sizes)
        fewest = max(self.min_context, int(self._lower.min()))
        if self.full_complement and self._context_length is not None:
            fewest = min(fewest, self._context_length)
        self._max_counts = (int(self._upper.max()), self.num_patches - fewest)
        self._check_feasible()

    # -- configuration ---------------------------------------------------------
    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_blocks": self.num_blocks,
            "spatial_scale": self.spatial_scale,
            "temporal_scale": self.temporal_scale,
            "aspect_ratio": self.aspect_ratio,
            "max_temporal_keep": self.max_temporal_keep,
            "full_complement": self.full_complement,
        }

    def block_sizes(self) -> np.ndarray:
        """``(n, 3)`` sizes ``(t, h, w)`` a tube can take (:func:`reachable_block_sizes`)."""
        return self._sizes.copy()

    def max_counts(self) -> tuple[int, int]:
        """Largest (context, target) counts: the context's exact, the target's an upper bound."""
        return self._max_counts

    def _size_count_bounds(self, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per size ``(t, h, w)``: a lower bound and the exact maximum of the context count.

        The context lies in the first ``Tc = context_frames`` frames. Most:
        every tube at the same place, as late as possible, covering ``max(0,
        t - (T - Tc))`` context frames. Fewest (a bound): in each context frame
        the tubes cover at most ``min(H W, num_blocks h w)`` patches, and in
        all at most ``num_blocks min(t, Tc) h w``.
        """
        T, H, W = self.grid_size
        tc, nb = self.context_frames, self.num_blocks
        t, h, w = sizes.T
        area = h * w
        covered = np.minimum(nb * np.minimum(t, tc) * area, tc * np.minimum(H * W, nb * area))
        lower = tc * H * W - covered
        upper = tc * H * W - np.maximum(0, t - (T - tc)) * area
        return lower, upper

    def _context_count_bounds(self) -> tuple[int, int]:
        return int(self._lower.min()), int(self._upper.max())

    def _describe(self) -> str:
        return (
            f"The grid {self.grid_size} with num_blocks={self.num_blocks}, spatial_scale="
            f"{self.spatial_scale}, temporal_scale={self.temporal_scale}, aspect_ratio="
            f"{self.aspect_ratio} and max_temporal_keep={self.max_temporal_keep} (context "
            f"frames 0..{self.context_frames - 1})"
        )

    def _feasibility_hint(self) -> str:
        return (
            "Lower `min_context`, use fewer or smaller blocks (num_blocks, spatial_scale, "
            "temporal_scale) or a larger max_temporal_keep."
        )

    def _constraint(self) -> str:
        return (
            f"at least min_context={self.min_context} context patches outside the "
            f"{self.num_blocks} blocks"
        )

    # -- feasibility: per block size, since a redraw keeps the size ---------------
    def _check_feasible(self) -> None:
        """Refuse a configuration with a block size that cannot reliably keep ``min_context``.

        A sample keeps its size through its redraws (as in V-JEPA), so the
        rule of :mod:`jepa_components.masks.feasibility` applies to every
        reachable size on its own: refused when one size keeps fewer than
        ``min_context`` patches in every draw (V-JEPA would loop forever) or
        too often; accepted when every size is safe by its bound or its probe.
        """
        m = self.min_context
        sizes, lower, upper = self._sizes, self._lower, self._upper
        doomed = np.nonzero(upper < m)[0]
        if doomed.size:
            i = int(doomed[np.argmin(upper[doomed])])
            raise ValueError(
                f"Invalid value for argument `min_context`. {self._describe()} draws blocks "
                f"of size (t, h, w) = {tuple(sizes[i].tolist())}, which leave at most "
                f"{int(upper[i])} context patches, so min_context must be <= {int(upper[i])} "
                f"(such a size never keeps min_context={m}: the reference's `while "
                f"empty_context` would never end). {self._feasibility_hint()} "
                f"Received: min_context={m}"
            )
        undecided = np.nonzero(lower < m)[0]
        if undecided.size == 0:
            self.feasibility = feasibility.Feasibility("exact", 0, 0, 0.0, 1.0)
            return
        threshold = feasibility.failure_threshold(self.max_attempts)
        if self.max_attempts < feasibility.min_probe_attempts():
            raise ValueError(
                f"Invalid value for argument `min_context`. {self._describe()} can leave as "
                f"few as {int(lower[undecided].min())} context patches, and max_attempts="
                f"{self.max_attempts} redraws are too few to make a sample that keeps fewer "
                f"than min_context={m} negligibly rare (the rule of "
                "jepa_components.masks.feasibility needs max_attempts >= "
                f"{feasibility.min_probe_attempts()} here). Raise max_attempts. "
                f"Received: min_context={m}"
            )
        # the probe of feasibility.probe, for all undecided sizes at once; a size is
        # accepted once its upper bound is below the threshold, refused once its
        # lower bound is above it (delta split over the sizes and the looks)
        delta = feasibility.PROBE_DELTA / (len(feasibility.PROBE_ROUNDS) * undecided.size)
        failures = np.zeros(undecided.size, dtype=np.int64)
        draws = np.zeros(undecided.size, dtype=np.int64)
        upper_p = np.ones(undecided.size)
        pending = np.arange(undecided.size)
        refused = None
        for total in feasibility.PROBE_ROUNDS:
            n = total - int(draws[pending[0]])
            failures[pending] += self._probe_failures_by_size(
                sizes[undecided[pending]], undecided[pending], total - n, n
            )
            draws[pending] = total
            for j in pending.tolist():
                lo, upper_p[j] = feasibility.chernoff_interval(int(failures[j]), total, delta)
                if lo > threshold and refused is None:
                    refused = j
            pending = pending[upper_p[pending] > threshold]
            if refused is not None or pending.size == 0:
                break
        if refused is None and pending.size:  # undecided after the last round
            refused = int(pending[np.argmax(failures[pending])])
        self.feasibility = feasibility.Feasibility(
            "probe", int(draws.sum()), int(failures.sum()), float(upper_p.max()), threshold
        )
        if refused is not None:
            j = refused
            raise ValueError(
                f"Invalid value for argument `min_context`. {self._describe()} draws blocks "
                f"of size (t, h, w) = {tuple(sizes[undecided[j]].tolist())}, which keep "
                f"fewer than min_context={m} context patches in {int(failures[j])} of "
                f"{int(draws[j])} probe draws (failure rate up to {upper_p[j]:.3g}), more than the "
                f"{threshold:.3g} that max_attempts={self.max_attempts} redraws tolerate "
                "(the rule of jepa_components.masks.feasibility: a run of 1e12 samples may "
                f"fail with probability 1e-6 at most). {self._feasibility_hint()} "
                f"Received: min_context={m}"
            )

    def _probe_failures_by_size(
        self, sizes: np.ndarray, size_ids: np.ndarray, start: int, n: int
    ) -> np.ndarray:
        """Failing probe draws ``start .. start + n - 1`` of each size: ``(len(sizes),)``.

        A fixed stream keyed by the size's index, independent of the seed.
        """
        key = _stream.seed_to_key(0, _PROBE_SIZES)
        draw_ids = np.arange(self.draws_per_attempt, dtype=np.int64)
        which = np.repeat(np.arange(len(sizes)), n)  # (size, probe sample) pairs
        ids = (np.repeat(size_ids.astype(np.int64), n) << 20) + np.tile(
            np.arange(start, start + n), len(sizes)
        )
        chunk = max(64, (1 << 22) // (self.num_patches * self.num_blocks))
        failures = np.zeros(len(sizes), dtype=np.int64)
        for first in range(0, len(ids), chunk):
            part = slice(first, first + chunk)
            u = _stream.uniform(key, ids[part, None], draw_ids)
            target = self._target_masks(self._place(sizes[which[part]], u))
            failed = self.num_patches - target.sum(axis=1) < self.min_context
            failures += np.bincount(which[part][failed], minlength=len(sizes))
        return failures

    # -- drawing --------------------------------------------------------------------
    def _sample_sizes(self, sample_ids: np.ndarray) -> np.ndarray:
        """``(R, 3)`` block sizes, a pure function of ``(seed, sample)`` (no attempt)."""
        u = _stream.uniform(self._size_key, sample_ids[:, None], np.arange(3, dtype=np.int64))
        (t_lo, t_hi), (s_lo, s_hi), (a_lo, a_hi) = (
            self.temporal_scale,
            self.spatial_scale,
            self.aspect_ratio,
        )
        return block_size_rule(
            self.grid_size,
            t_lo + u[:, 0] * (t_hi - t_lo),
            s_lo + u[:, 1] * (s_hi - s_lo),
            a_lo + u[:, 2] * (a_hi - a_lo),
        )

    def _place(self, sizes: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Tubes ``(R, num_blocks, 6)`` (start, top, left, t, h, w) from sizes ``(R, 3)``.

        ``u`` ``(R, 3 num_blocks)``: the start, top and left uniforms of every
        tube; each corner is uniform over the ``extent - size + 1`` positions
        (``u < 1``, so ``floor(u n) <= n - 1``).
        """
        r, nb = len(sizes), self.num_blocks
        extent = np.array(self.grid_size, dtype=np.int64)
        count = (extent - sizes + 1)[:, None, :]  # (R, 1, 3) positions per axis
        corner = np.floor(u.reshape(r, 3, nb).transpose(0, 2, 1) * count).astype(np.int64)
        return np.concatenate([corner, np.broadcast_to(sizes[:, None, :], (r, nb, 3))], axis=-1)

    def _target_masks(self, blocks: np.ndarray) -> np.ndarray:
        """Dense ``(R, N) bool`` targets: the tubes' union and the frames past the context's.

        The union is one batched product of per-tube frame masks ``(R, T,
        nb)`` and spatial masks ``(R, nb, H W)`` (counts, exact in float32).
        """
        T, H, W = self.grid_size
        r = len(blocks)
        start, top, left, t, h, w = np.moveaxis(blocks[..., None], -2, 0)  # each (R, nb, 1)
        in_t = (np.arange(T) >= start) & (np.arange(T) < start + t)
        in_r = (np.arange(H) >= top) & (np.arange(H) < top + h)
        in_c = (np.arange(W) >= left) & (np.arange(W) < left + w)
        spatial = (in_r[..., :, None] & in_c[..., None, :]).reshape(r, self.num_blocks, H * W)
        cover = np.matmul(in_t.transpose(0, 2, 1).astype(np.float32), spatial.astype(np.float32))
        target = cover > 0.5  # (R, T, H W)
        target[:, self.context_frames :] = True
        return target.reshape(r, T * H * W)

    def _draw(self, sample_ids, u):
        blocks = self._place(self._sample_sizes(sample_ids), u)
        target = self._target_masks(blocks)
        return ~target, target[:, None, :], None, blocks

    def _pack_batch(self, ids, c_idx, c_val, tgt, cbox, tbox):
        return super()._pack_batch(ids, c_idx, c_val, tgt, None, None)  # tubes: blocks()

    def blocks(self, sample_ids: npt.ArrayLike) -> np.ndarray:
        """The tubes of samples ``sample_ids``: ``(B, num_blocks, 6) int32``.

        Columns ``(start, top, left, t, h, w)``: frames ``start .. start + t -
        1``, rows ``top .. top + h - 1``, columns ``left .. left + w - 1``;
        every tube of a sample has the same ``(t, h, w)``. Row ``i`` belongs to
        ``sample_at(sample_ids)`` row ``i`` (after any redraw): the target is
        their union plus the frames from ``context_frames`` on.

        Example:
            >>> from jepa_components.masks import MultiBlock3DMaskSampler
            >>> s = MultiBlock3DMaskSampler(num_blocks=2, spatial_scale=(0.7, 0.7), seed=0)
            >>> s.blocks([5]).shape, s.blocks([5])[0, :, 3:].tolist()
            ((1, 2, 6), [[8, 12, 11], [8, 12, 11]])
        """
        ids = _check_sample_ids(sample_ids)
        return np.asarray(self._draw_with_retries(ids)[4], dtype=np.int32)


def _check_sample_ids(sample_ids: npt.ArrayLike) -> np.ndarray:
    ids = np.asarray(sample_ids)
    if (
        ids.ndim != 1
        or ids.size == 0
        or not np.issubdtype(ids.dtype, np.integer)
        or (ids < 0).any()
    ):
        raise ValueError(
            "Invalid value for argument `sample_ids`. Expected a non-empty 1-D array "
            f"of integers >= 0. Received: sample_ids={sample_ids!r}"
        )
    return ids.astype(np.int64)


class RandomTubeMaskSampler(MaskSampler):
    """V-JEPA random tubes: a random spatial subset is the context in every frame.

    Rule of ``_MaskGenerator`` in V-JEPA's ``src/masks/random_tube.py``:
    exactly ``K = int(H * W * (1 - ratio))`` of the ``H * W`` spatial
    positions, a uniformly random subset, are kept in every one of the ``T``
    frames (the context, ``K * T`` patches); the target (one) is every other
    patch, ``(H * W - K) * T`` of them (``context_rule = "complement"``).
    Counts are exact, so shapes are fixed and every slot is valid under
    ``ragged="pad"``; there is no ``min_context`` argument
    (``sampler.min_context`` reads ``K * T``).

    Differences from the reference: the subset comes from the counter-based
    stream of ``(seed, sample number)`` (V-JEPA: ``np.random.shuffle`` on the
    global NumPy RNG, so the masks depend on the process and worker); ``K``
    is computed on the decimal ``ratio`` (``ratio_count`` of
    :mod:`jepa_components.masks.mae`; the reference's float ``int(H * W * (1
    - ratio))`` can lose one position, e.g. 9 instead of 10 of 100 at 0.9;
    both give 19 of 196 at V-JEPA's 0.9); a ratio that keeps no position or
    masks none is refused (``ValueError`` naming ``ratio``); index arrays are
    always ``(B, K)`` (the reference's ``.squeeze()`` of a one-patch mask
    gives a 0-d tensor).

    Args:
        grid_size: ``(T, H, W)`` patches (or an int for a cube).
        ratio: fraction of the spatial positions masked, in (0, 1); 0.9 by
            default, as V-JEPA's.
        seed: int >= 0; ``None`` draws one from the OS.
        ragged, context_length, target_length: see
            :class:`~jepa_components.masks.sampler.MaskSampler`; a
            ``context_length`` below ``K * T`` is refused (the encoder sees
            every kept patch), a ``target_length`` below the target count
            predicts a uniformly random subset.

    Example:
        >>> from jepa_components.masks import RandomTubeMaskSampler
        >>> sampler = RandomTubeMaskSampler(grid_size=(8, 14, 14), ratio=0.9, seed=0)
        >>> batch = sampler.sample(4)
        >>> batch.context.shape, batch.targets.shape  # 19 positions x 8 frames kept
        ((4, 152), (4, 1, 1416))
        >>> ctx, _ = batch.to_dense()
        >>> bool((ctx == ctx[:, :1]).all())  # the same positions in every frame
        True
    """

    grid_ndim = 3
    num_targets = 1
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int, int] = (8, 14, 14),
        ratio: float = 0.9,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
    ) -> None:
        grid = check_grid("grid_size", grid_size, 3)
        self.ratio = check_float("ratio", ratio, low=0.0, high=1.0, low_open=True, high_open=True)
        T, H, W = grid
        self.num_keep_spatial = ratio_count(H * W, 1 - Fraction(repr(self.ratio)))
        if not 1 <= self.num_keep_spatial <= H * W - 1:
            raise invalid(
                "ratio",
                f"a ratio that keeps at least one and masks at least one of the {H * W} "
                f"spatial positions of the grid {grid}: int({H * W} * (1 - ratio)) in "
                f"[1, {H * W - 1}] (here {self.num_keep_spatial})",
                ratio,
            )
        super().__init__(
            grid,
            min_context=self.num_keep_spatial * T,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
            seed=seed,
        )
        self.draws_per_attempt = H * W
        self._check_feasible()

    def get_config(self) -> dict:
        return {
            "grid_size": self.grid_size,
            "ratio": self.ratio,
            "seed": self.seed,
            "ragged": self.ragged,
            "context_length": self._context_length,
            "target_length": self._target_length,
        }

    def max_counts(self) -> tuple[int, int]:
        T, H, W = self.grid_size
        return self.num_keep_spatial * T, (H * W - self.num_keep_spatial) * T

    def _context_count_bounds(self) -> tuple[int, int]:
        return self.min_context, self.min_context

    def _describe(self) -> str:
        return f"Random tubes on the grid {self.grid_size} with ratio={self.ratio}"

    def _draw(self, sample_ids, u):
        T = self.grid_size[0]
        chosen = np.argpartition(u, self.num_keep_spatial - 1, axis=1)[:, : self.num_keep_spatial]
        keep = np.zeros(u.shape, dtype=bool)
        np.put_along_axis(keep, chosen, True, axis=1)
        context = np.tile(keep, (1, T))  # index t * H * W + position: the same in every frame
        return context, ~context[:, None, :], None, None


#: The mask section of V-JEPA's ``configs/pretrain/vitl16.yaml`` (also
#: vith16 and their 384 px variants): 8 small tubes and 2 large ones, each a
#: dict with the yaml's keys.
VJEPA_MASK_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "aspect_ratio": (0.75, 1.5),
        "num_blocks": 8,
        "spatial_scale": (0.15, 0.15),
        "temporal_scale": (1.0, 1.0),
        "max_temporal_keep": 1.0,
        "max_keep": None,
    },
    {
        "aspect_ratio": (0.75, 1.5),
        "num_blocks": 2,
        "spatial_scale": (0.7, 0.7),
        "temporal_scale": (1.0, 1.0),
        "max_temporal_keep": 1.0,
        "max_keep": None,
    },
)

_REQUIRED_KEYS = ("spatial_scale", "temporal_scale", "aspect_ratio", "num_blocks")
_OPTIONAL_KEYS = {"max_temporal_keep": 1.0, "max_keep": None, "full_complement": False}


def vjepa_samplers(
    grid_size: int | tuple[int, int, int] = (8, 14, 14),
    configs: Iterable[Mapping[str, Any]] = VJEPA_MASK_CONFIGS,
    seed: int | None = None,
    **kwargs: Any,
) -> list[MultiBlock3DMaskSampler]:
    """One :class:`MultiBlock3DMaskSampler` per V-JEPA mask configuration (``cfgs_mask``).

    Each dict uses the keys of the yaml's ``mask:`` list: ``spatial_scale``,
    ``temporal_scale``, ``aspect_ratio``, ``num_blocks`` (required, as the
    reference reads them without defaults), ``max_temporal_keep`` (default
    1.0), ``max_keep`` (default None: the ``context_length`` cap, clipped to
    the grid) and ``full_complement`` (V-JEPA 2, default False). Any other
    key is refused (e.g. V-JEPA 2's ``inv_block``), so nothing is silently
    ignored. Configuration ``i`` gets its own seed, derived from ``seed`` and
    ``i`` (``seed=None``: one draw from the OS for all), so the samplers are
    independent and the list is reproducible from one number. ``kwargs``
    (e.g. ``ragged``, ``min_context``) go to every sampler.

    Example:
        >>> from jepa_components.masks import vjepa_samplers
        >>> small, large = vjepa_samplers(seed=0)
        >>> small.num_blocks, large.spatial_scale, small.seed != large.seed
        (8, (0.7, 0.7), True)
        >>> [s.sample(2).targets.shape[:2] for s in (small, large)]
        [(2, 1), (2, 1)]
    """
    seed = check_seed(seed)
    if seed is None:
        seed = int(cast(int, np.random.SeedSequence().entropy))
    if isinstance(configs, Mapping):
        raise invalid("configs", "a list of mask configuration dicts", configs)
    grid = check_grid("grid_size", grid_size, 3)
    out = []
    for i, cfg in enumerate(configs):
        if not isinstance(cfg, Mapping):
            raise invalid(f"configs[{i}]", "a dict of mask configuration keys", cfg)
        missing = [k for k in _REQUIRED_KEYS if k not in cfg]
        unknown = sorted(set(cfg) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
        if missing or unknown:
            raise invalid(
                f"configs[{i}]",
                f"the keys {_REQUIRED_KEYS} and optionally {tuple(_OPTIONAL_KEYS)} "
                f"(missing: {missing}, not supported: {unknown})",
                dict(cfg),
            )
        cfg = {**_OPTIONAL_KEYS, **cfg}
        max_keep = check_int(f"configs[{i}]['max_keep']", cfg["max_keep"], low=1, allow_none=True)
        args = dict(kwargs)
        if max_keep is not None:
            if args.get("context_length") is not None:
                raise ValueError(
                    f"Invalid value for argument `context_length`. configs[{i}] sets "
                    f"max_keep={max_keep}, the context_length cap; pass one of them. "
                    f"Received: context_length={args['context_length']}"
                )
            args["context_length"] = min(max_keep, math.prod(grid))
        config_seed = int(_stream.seed_to_key(seed, _CONFIGS * 1000 + i))
        out.append(
            MultiBlock3DMaskSampler(
                grid_size=cast(Any, grid),
                num_blocks=cfg["num_blocks"],
                spatial_scale=cfg["spatial_scale"],
                temporal_scale=cfg["temporal_scale"],
                aspect_ratio=cfg["aspect_ratio"],
                max_temporal_keep=cfg["max_temporal_keep"],
                full_complement=cfg["full_complement"],
                seed=config_seed,
                **args,
            )
        )
    return out
