"""MaskSampler: the stream, retry and padding machinery shared by all samplers.

Subclasses describe one masking strategy by drawing dense boolean masks for a
set of sample numbers (:meth:`MaskSampler._draw`); this base class turns them
into a :class:`MaskBatch`:

* **Streams.** Sample ``k`` is a pure function of ``(seed, k)`` (see
  :mod:`jepa_components.masks._stream`): ``sample(256)`` equals
  ``sample(128)`` twice, and a data-loader worker can draw any slice with
  ``sample(batch_size, start=k)`` without sharing state with other workers —
  the fix for masks repeated across workers. ``state()``/``set_state()``
  resume a stream.
* **Feasibility.** The constructor refuses (``ValueError`` naming the
  constraint) a configuration that cannot reliably keep ``min_context``
  context patches: by exact bounds where they decide it, otherwise by a
  deterministic probe; the rule and its numbers are in
  :mod:`jepa_components.masks.feasibility` (a run of 1e12 samples fails with
  probability below 1e-6). ``sampler.feasibility`` tells how it was decided.
* **Retries.** A sample that breaks the constraint is redrawn with fresh
  numbers, at most ``max_attempts`` times; then sampling stops with a
  ``RuntimeError`` naming the constraint, a safety net the feasibility check
  makes astronomically unlikely. Never an endless loop, never a silently
  relaxed constraint (the official sampler drops the "no overlap" constraint
  after 20 failures).
* **Ragged lengths** (see :mod:`jepa_components.masks.padding`).
  ``ragged="pad"`` (default) pads every batch to the same lengths
  ``context_length``/``target_length`` (by default the largest count the
  strategy can produce, so nothing is ever dropped) with ``*_valid`` flags,
  so a compiled model sees one shape for the whole run. A length set below
  that keeps a uniformly random subset of the patches of a larger sample.
  ``ragged="bucket"`` pads to the batch maximum rounded up to one of at most
  eight bucket lengths (:meth:`MaskSampler.padded_lengths`), so a compiled
  model sees a handful of shapes and fewer padding slots; its valid entries
  are exactly those of ``"pad"`` for the same sample numbers (only the
  padding differs with the batch). ``ragged="truncate"`` reproduces the
  official collator, which cuts every sample to the smallest count in the
  batch, but drops a *random* subset instead of the last patches (the
  official cut removes the bottom rows of every context, so they are rarely
  seen); shapes then vary per batch. A ``context_length`` / ``target_length``
  set there caps the cut (V-JEPA's ``max_keep``).
* **Grids.** 2-D samplers index ``(H, W)`` grids (``grid_ndim = 2``), video
  samplers ``(T, H, W)`` grids (``grid_ndim = 3``, index
  ``(t * H + row) * W + col``, time-major as V-JEPA's flattened tubelets).
* **Clones.** A sampler with ``num_clones = C > 1`` (data2vec 2.0's several
  masks per image) returns ``C`` rows per sample number, image-major (rows
  ``k * C .. k * C + C - 1`` belong to the ``k``-th sample, the order of
  ``torch.repeat_interleave(images, C, 0)``); clone ``c`` of sample ``k`` is
  stream number ``k * C + c``, so clones are independent draws and the
  stream contract holds per image.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import numpy.typing as npt

from jepa_components._validation import check_choice, check_grid, check_int, check_seed
from jepa_components.masks import _stream, feasibility
from jepa_components.masks.batch import MaskBatch
from jepa_components.masks.geometry import BoxIndexer, pack_dense
from jepa_components.masks.padding import bucket_lengths, first_columns, fit_length, fitting_bucket

_GEOMETRY, _SUBSET, _PROBE = 1, 2, 3  # stream purposes
RAGGED_MODES = ("pad", "bucket", "truncate")


class MaskSampler:
    """Base class. Subclasses set ``num_targets`` and implement ``_draw``.

    A subclass that can produce packed contexts faster than a dense mask may
    override :meth:`_draw_packed` instead.
    """

    #: uniform numbers one attempt of one sample consumes (set by subclasses)
    draws_per_attempt: int = 0
    #: how the context relates to the targets, for checks
    #: (:func:`jepa_components.testing.check_masks`): "block" (one context block
    #: minus the targets, unless ``allow_overlap``), "complement" (every patch
    #: not in a target) or None (not stated)
    context_rule: str | None = None
    #: dimensions of the patch grid: 2 for ``(H, W)``, 3 for ``(T, H, W)``
    grid_ndim: int = 2
    #: mask rows per sample number (see "Clones" in the module doc)
    num_clones: int = 1
    #: one target, recomputed after the context's cut as every patch not in the
    #: kept context (V-JEPA 2's ``full_complement``; see masks/tube.py)
    targets_complement_context: bool = False

    def __init__(
        self,
        grid_size: int | tuple[int, ...],
        *,
        min_context: int = 10,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
        max_attempts: int = 100,
        seed: int | None = None,
    ) -> None:
        self.grid_size: tuple[int, ...] = check_grid("grid_size", grid_size, self.grid_ndim)
        self.num_patches = math.prod(self.grid_size)
        self.min_context = check_int("min_context", min_context, low=0, high=self.num_patches)
        self.ragged = check_choice("ragged", ragged, RAGGED_MODES)
        self._context_length = check_int(
            "context_length",
            context_length,
            low=max(1, self.min_context),
            high=self.num_patches,
            allow_none=True,
        )  # (>= min_context: a cut must keep the constraint)
        self._target_length = check_int(
            "target_length", target_length, low=1, high=self.num_patches, allow_none=True
        )
        self.max_attempts = check_int("max_attempts", max_attempts, low=1)
        seed = check_seed(seed)
        if seed is None:
            seed = int(cast(int, np.random.SeedSequence().entropy))  # fresh OS entropy, recorded
        self.seed = seed
        self._geometry_key = _stream.seed_to_key(self.seed, _GEOMETRY)
        self._subset_key = _stream.seed_to_key(self.seed, _SUBSET)
        self._next_index = 0
        self._indexer: BoxIndexer | None = None  # built on first use from target_sizes()
        self.feasibility: feasibility.Feasibility | None = None  # set by _check_feasible()

    # -- what subclasses provide -------------------------------------------
    num_targets: int

    def _draw(self, sample_ids: np.ndarray, u: np.ndarray):
        """Masks for ``R`` samples from their uniforms ``u`` ``(R, draws_per_attempt)``.

        Returns ``(context, targets, context_boxes, target_boxes)``: ``context``
        a dense ``(R, N)`` bool array; ``targets`` dense ``(R, M, N)`` bool, or
        None when ``target_boxes`` ``(R, M, 4)`` (top, left, h, w) describe
        them (then :meth:`target_sizes` lists the sizes they can take);
        ``context_boxes`` ``(R, 4)`` or None.
        """
        raise NotImplementedError

    def _draw_packed(self, sample_ids: np.ndarray, u: np.ndarray):
        """:meth:`_draw` with the context already packed.

        ``u`` is draw-major, ``(draws_per_attempt, R)``, and may be modified.
        Returns ``(context_idx, context_valid, targets, context_boxes,
        target_boxes)`` with the context as ``(R, Kc)`` ascending indices and
        valid flags, ``Kc = max_counts()[0]`` (valid entries first, padding 0).
        """
        context, targets, cbox, tbox = self._draw(sample_ids, u.T)
        c_idx, c_val = pack_dense(context, self.max_counts()[0])
        return c_idx, c_val, targets, cbox, tbox

    def max_counts(self) -> tuple[int, int]:
        """Largest possible (context, per-target) patch counts."""
        raise NotImplementedError

    def target_sizes(self) -> np.ndarray:
        """``(n, 2)`` block sizes ``(h, w)`` a box-drawing sampler can return."""
        raise NotImplementedError

    def _context_count_bounds(self) -> tuple[int, int]:
        """Exact smallest and largest context count of one draw (before any cut).

        The smallest may be a lower bound; the largest must be exact or an
        upper bound (it decides when every draw fails).
        """
        return 0, self.max_counts()[0]

    def _describe(self) -> str:
        """The configuration, for error messages."""
        return f"{type(self).__name__} on the grid {self.grid_size}"

    def _feasibility_hint(self) -> str:
        return "Lower `min_context` or make the targets smaller."

    def _constraint(self) -> str:
        """Describes what a failing sample could not satisfy."""
        return (
            f"at least min_context={self.min_context} context patches left after "
            "removing the target patches"
        )

    # -- feasibility (see jepa_components.masks.feasibility) --------------------
    def _check_feasible(self) -> None:
        """Refuse a configuration that cannot reliably keep ``min_context`` patches.

        Subclasses call it at the end of ``__init__``, once they can draw.
        Sets ``self.feasibility``.
        """
        lower, upper = self._context_count_bounds()
        m = self.min_context
        if upper < m:
            raise ValueError(
                f"Invalid value for argument `min_context`. {self._describe()} leaves at "
                f"most {upper} context patches, so min_context must be <= {upper}. "
                f"Received: min_context={m}"
            )
        if lower >= m:
            self.feasibility = feasibility.Feasibility("exact", 0, 0, 0.0, 1.0)
            return
        accepted, result = feasibility.probe(self._probe_failures, self.max_attempts)
        self.feasibility = result
        if accepted:
            return
        if result.draws == 0:
            raise ValueError(
                f"Invalid value for argument `min_context`. {self._describe()} can leave "
                f"as few as {lower} context patches, and max_attempts={self.max_attempts} "
                "redraws are too few to make a sample that keeps fewer than min_context="
                f"{m} negligibly rare (the rule of jepa_components.masks.feasibility "
                f"needs max_attempts >= {feasibility.min_probe_attempts()} here). Raise "
                f"max_attempts, or use min_context <= {lower}. Received: min_context={m}"
            )
        raise ValueError(
            f"Invalid value for argument `min_context`. {self._describe()} keeps fewer "
            f"than min_context={m} context patches in {result.failures} of "
            f"{result.draws} probe draws (failure rate up to {result.failure_bound:.3g}), "
            f"more than the {result.threshold:.3g} that max_attempts={self.max_attempts} "
            "redraws tolerate (the rule of jepa_components.masks.feasibility: a run of "
            f"1e12 samples may fail with probability 1e-6 at most). "
            f"{self._feasibility_hint()} Received: min_context={m}"
        )

    def _probe_failures(self, start: int, n: int) -> int:
        """Failing draws among probe samples ``start .. start + n - 1`` (fixed stream)."""
        key = _stream.seed_to_key(0, _PROBE)
        chunk = max(16, min(1024, (1 << 22) // (self.num_patches * (self.num_targets + 1))))
        draw_ids = np.arange(self.draws_per_attempt, dtype=np.int64)[:, None]
        failures = 0
        for first in range(start, start + n, chunk):
            ids = np.arange(first, min(first + chunk, start + n), dtype=np.int64)
            c_val = self._draw_packed(ids, _stream.uniform(key, ids, draw_ids))[1]
            failures += int((~c_val[:, self.min_context - 1]).sum())
        return failures

    # -- public API ------------------------------------------------------------
    def get_config(self) -> dict:
        """Constructor arguments that rebuild this sampler: ``type(s)(**s.get_config())``."""
        return {
            "grid_size": self.grid_size,
            "min_context": self.min_context,
            "seed": self.seed,
            "ragged": self.ragged,
            "context_length": self._context_length,
            "target_length": self._target_length,
            "max_attempts": self.max_attempts,
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def context_length(self) -> int:
        """Padded context length ``Kc`` of ``ragged="pad"``, the largest of ``"bucket"``."""
        return self._context_length or self.max_counts()[0]

    @property
    def target_length(self) -> int:
        """Padded per-target length ``Kt`` of ``ragged="pad"``, the largest of ``"bucket"``."""
        return self._target_length or self.max_counts()[1]

    def padded_lengths(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Every ``(Kc, Kt)`` length a batch can have: ``(context_lengths, target_lengths)``.

        ``"pad"``: one each; ``"bucket"``: the bucket ladders of
        :func:`~jepa_components.masks.padding.bucket_lengths`, so a compiled
        model can warm up every shape (pairs of one of each); ``"truncate"``:
        every length up to the bounds (a superset).

        Example:
            >>> from jepa_components.masks import MultiBlockMaskSampler
            >>> s = MultiBlockMaskSampler(seed=0, ragged="bucket")
            >>> s.padded_lengths()
            ((24, 48, 72, 96, 120, 144, 168, 171), (8, 16, 24, 32, 40, 42))
            >>> batch = s.sample(16)
            >>> batch.context.shape[1] in s.padded_lengths()[0]
            True
        """
        lc, lt = self.context_length, self.target_length
        if self.ragged == "pad":
            return (lc,), (lt,)
        if self.ragged == "bucket":
            return bucket_lengths(lc), bucket_lengths(lt)
        return tuple(range(self.min_context, lc + 1)), tuple(range(1, lt + 1))

    def state(self) -> dict:
        """JSON-able position in the stream, for :meth:`set_state`."""
        return {"seed": self.seed, "next_index": self._next_index}

    def set_state(self, state: dict) -> None:
        """Continue the stream from a :meth:`state` of a sampler with this seed."""
        if int(state.get("seed", -1)) != self.seed:
            raise ValueError(
                f"Cannot restore a stream of seed {state.get('seed')!r} into a sampler "
                f"with seed {self.seed}: build the sampler with that seed."
            )
        self._next_index = check_int("next_index", int(state["next_index"]), low=0)

    def sample(self, batch_size: int, start: int | None = None) -> MaskBatch:
        """Masks for samples ``start, ..., start + batch_size - 1`` of the stream.

        Without ``start`` the sampler continues its own stream (and advances
        it); with ``start`` it draws that slice and leaves the stream alone.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        start = check_int("start", start, low=0, allow_none=True)
        if start is None:
            start = self._next_index
            self._next_index += batch_size
        ids = self._row_ids(np.arange(start, start + batch_size, dtype=np.int64))
        return self._pack_batch(ids, *self._draw_with_retries(ids))

    def sample_at(self, sample_ids: npt.ArrayLike) -> MaskBatch:
        """Masks for arbitrary sample numbers ``sample_ids`` ``(B,)`` (ints >= 0).

        Row ``i`` equals row 0 of ``sample(1, start=sample_ids[i])``. Key the
        numbers by what identifies a training example, e.g.
        ``epoch * len(dataset) + dataset_index``, and the masks no longer
        depend on shuffling, batch size or the number of data-loader workers.
        ``ragged="truncate"`` still cuts to the minimum of this batch.

        Example:
            >>> from jepa_components.masks import MultiBlockMaskSampler
            >>> s = MultiBlockMaskSampler(seed=0)
            >>> a = s.sample_at([7, 3])
            >>> bool((a.targets[1] == s.sample(1, start=3).targets[0]).all())
            True
        """
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
        ids = self._row_ids(ids.astype(np.int64))
        return self._pack_batch(ids, *self._draw_with_retries(ids))

    # -- machinery ------------------------------------------------------------
    def _row_ids(self, ids: np.ndarray) -> np.ndarray:
        """Stream numbers of the mask rows of samples ``ids``: ``k * C + c`` for clones."""
        c = self.num_clones
        if c == 1:
            return ids
        return (ids[:, None] * c + np.arange(c, dtype=np.int64)).reshape(-1)

    def _draw_with_retries(self, ids):
        """:meth:`_draw_packed` for every sample, redrawing those below ``min_context``.

        The context count test is free on packed rows: valid entries come
        first, so a row has ``>= min_context`` patches iff its slot
        ``min_context - 1`` is valid.
        """
        pending = np.arange(len(ids))
        out = None
        n_draws = self.draws_per_attempt
        draw_ids = np.arange(n_draws, dtype=np.int64)[:, None]  # draw-major (D, R)
        for attempt in range(self.max_attempts):
            pending_ids = ids if out is None else ids[pending]
            u = _stream.uniform(self._geometry_key, pending_ids, draw_ids + attempt * n_draws)
            drawn = self._draw_packed(pending_ids, u)
            if self.min_context == 0:
                return drawn
            ok = drawn[1][:, self.min_context - 1]
            if out is None:  # the first attempt covers every sample
                out = list(drawn)
                if ok.all():
                    return out
            else:
                for dst, src in zip(out, drawn):
                    if dst is not None:
                        dst[pending[ok]] = src[ok]
            pending = pending[~ok]
            if pending.size == 0:
                return out
        raise RuntimeError(  # safety net: _check_feasible makes this astronomically rare
            f"{type(self).__name__}: {pending.size} sample(s) (first: sample number "
            f"{int(ids[pending[0]])}) could not satisfy {self._constraint()} in "
            f"max_attempts={self.max_attempts} draws. Lower `min_context`, shrink the "
            "targets or enlarge the context block."
        )

    def _pack_batch(self, ids, c_idx, c_val, tgt, cbox, tbox) -> MaskBatch:
        b, m = len(ids), self.num_targets
        if tgt is None:
            if self._indexer is None:
                self._indexer = BoxIndexer(self.target_sizes(), self.grid_size)
            t_idx, t_val = self._indexer(tbox[..., 0], tbox[..., 1], tbox[..., 2], tbox[..., 3])
            t_idx, t_val = t_idx.reshape(b * m, -1), t_val.reshape(b * m, -1)
        else:
            t_idx, t_val = pack_dense(tgt.reshape(b * m, -1), self.max_counts()[1])
        if self.ragged == "truncate":  # the batch minimum, within the caps
            lc = min(int(c_val.sum(axis=1).min()), self.context_length)
            lt = min(int(t_val.sum(axis=1).min()), self.target_length)
        else:
            lc, lt = self.context_length, self.target_length
        key = self._subset_key
        c_idx, c_val = fit_length(c_idx, c_val, lc, key, lambda: (ids, 0))
        if self.targets_complement_context:  # the target: all patches the cut context left
            rows, slots = np.nonzero(c_val)
            dense = np.ones((b, self.num_patches), dtype=bool)
            dense[rows, c_idx[rows, slots]] = False
            t_idx, t_val = pack_dense(dense, self.max_counts()[1])
            if self.ragged == "truncate":
                lt = min(int(t_val.sum(axis=1).min()), self.target_length)
        t_idx, t_val = fit_length(
            t_idx, t_val, lt, key, lambda: (np.repeat(ids, m), np.tile(np.arange(m), b))
        )
        if self.ragged == "bucket":  # the valid entries of "pad", fewer padding slots
            lc = fitting_bucket(c_val, bucket_lengths(lc))
            lt = fitting_bucket(t_val, bucket_lengths(lt))
            c_idx, c_val = first_columns(c_idx, c_val, lc)
            t_idx, t_val = first_columns(t_idx, t_val, lt)
        return MaskBatch(
            context=c_idx,
            context_valid=c_val,
            targets=t_idx.reshape(b, m, lt),
            targets_valid=t_val.reshape(b, m, lt),
            grid_size=self.grid_size,
            context_boxes=None if cbox is None else cbox.astype(np.int32, copy=False),
            target_boxes=None if tbox is None else tbox.astype(np.int32, copy=False),
        )


def check_sampler_grid(sampler: MaskSampler, grid_size: tuple[int, ...] | None) -> None:
    """Refuse (ValueError) a sampler whose patch grid is not ``grid_size`` (None: no check).

    The one check used wherever masks meet a model: ``JEPAModel.fit``, the
    torch ``MaskCollator`` and tf.data ``add_masks``. Masks drawn on another
    grid would index the wrong patches without any error downstream.

    Example:
        >>> from jepa_components.masks import MultiBlockMaskSampler
        >>> check_sampler_grid(MultiBlockMaskSampler(grid_size=(4, 4), min_context=2), (8, 8))
        Traceback (most recent call last):
        ValueError: Invalid value for argument `sampler`. Expected a sampler on the ... (8, 8) ...
    """
    if grid_size is None:
        return
    expected = check_grid("grid_size", grid_size, len(grid_size) if _is_sequence(grid_size) else 2)
    if tuple(sampler.grid_size) != expected:
        raise ValueError(
            "Invalid value for argument `sampler`. Expected a sampler on the encoder's "
            f"{expected} patch grid. Received: grid_size={tuple(sampler.grid_size)}"
        )


def _is_sequence(value) -> bool:
    return isinstance(value, (tuple, list)) or getattr(value, "ndim", None) == 1
