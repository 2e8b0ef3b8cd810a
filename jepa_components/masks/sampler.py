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
* **Retries.** A sample that breaks a constraint (too few context patches) is
  redrawn with fresh numbers, at most ``max_attempts`` times; then sampling
  stops with a ``RuntimeError`` naming the constraint. Never an endless loop,
  never a silently relaxed constraint (the official sampler drops the
  "no overlap" constraint after 20 failures).
* **Ragged lengths.** ``ragged="pad"`` (default) pads every batch to the same
  lengths ``context_length``/``target_length`` (by default the largest count
  the strategy can produce, so nothing is ever dropped) with ``*_valid`` flags,
  so a compiled model sees one shape for the whole run. A length set below
  that keeps a uniformly random subset of the patches of a larger sample.
  ``ragged="truncate"`` reproduces the official collator, which cuts every
  sample to the smallest count in the batch, but drops a *random* subset
  instead of the last patches (the official cut removes the bottom rows of
  every context, so they are rarely seen); shapes then vary per batch.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from jepa_components.masks import _stream
from jepa_components.masks.batch import MaskBatch
from jepa_components.masks.geometry import BoxIndexer, check_grid_size, check_int, pack_dense

_GEOMETRY, _SUBSET = 1, 2  # stream purposes


class MaskSampler:
    """Base class. Subclasses set ``num_targets`` and implement ``_draw``.

    A subclass that can produce packed contexts faster than a dense mask may
    override :meth:`_draw_packed` instead.
    """

    #: uniform numbers one attempt of one sample consumes (set by subclasses)
    draws_per_attempt: int = 0

    def __init__(
        self,
        grid_size,
        *,
        min_context: int = 10,
        ragged: str = "pad",
        context_length: Optional[int] = None,
        target_length: Optional[int] = None,
        max_attempts: int = 100,
        seed: Optional[int] = None,
    ):
        self.grid_size = check_grid_size(grid_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.min_context = check_int("min_context", min_context, low=0, high=self.num_patches)
        if ragged not in ("pad", "truncate"):
            raise ValueError(
                "Invalid value for argument `ragged`. Expected 'pad' or 'truncate'. "
                f"Received: ragged={ragged!r}"
            )
        self.ragged = ragged
        for name, value in (("context_length", context_length), ("target_length", target_length)):
            if value is not None:
                check_int(name, value, low=1, high=self.num_patches)
        if context_length is not None and context_length < self.min_context:
            raise ValueError(
                "Invalid value for argument `context_length`. Expected "
                f"context_length >= min_context={self.min_context}. "
                f"Received: context_length={context_length}"
            )
        self._context_length = context_length
        self._target_length = target_length
        self.max_attempts = check_int("max_attempts", max_attempts, low=1)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)  # fresh OS entropy, recorded
        self.seed = check_int("seed", seed, low=0)
        self._geometry_key = _stream.seed_to_key(self.seed, _GEOMETRY)
        self._subset_key = _stream.seed_to_key(self.seed, _SUBSET)
        self._next_index = 0
        self._indexer = None  # built on first use from target_sizes()

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

    def max_counts(self) -> Tuple[int, int]:
        """Largest possible (context, per-target) patch counts."""
        raise NotImplementedError

    def target_sizes(self) -> np.ndarray:
        """``(n, 2)`` block sizes ``(h, w)`` a box-drawing sampler can return."""
        raise NotImplementedError

    def _constraint(self) -> str:
        """Describes what a failing sample could not satisfy."""
        return (
            f"at least min_context={self.min_context} context patches left after "
            "removing the target patches"
        )

    # -- public API ------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """Padded context length ``Kc`` (``ragged="pad"``)."""
        return self._context_length or self.max_counts()[0]

    @property
    def target_length(self) -> int:
        """Padded per-target length ``Kt`` (``ragged="pad"``)."""
        return self._target_length or self.max_counts()[1]

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

    def sample(self, batch_size: int, start: Optional[int] = None) -> MaskBatch:
        """Masks for samples ``start, ..., start + batch_size - 1`` of the stream.

        Without ``start`` the sampler continues its own stream (and advances
        it); with ``start`` it draws that slice and leaves the stream alone.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        if start is None:
            start = self._next_index
            self._next_index += batch_size
        start = check_int("start", start, low=0)
        ids = np.arange(start, start + batch_size, dtype=np.int64)
        return self._pack_batch(ids, *self._draw_with_retries(ids))

    def sample_at(self, sample_ids) -> MaskBatch:
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
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any():
            raise ValueError(
                "Invalid value for argument `sample_ids`. Expected a non-empty 1-D array "
                f"of integers >= 0. Received: sample_ids={sample_ids!r}"
            )
        ids = ids.astype(np.int64)
        return self._pack_batch(ids, *self._draw_with_retries(ids))

    # -- machinery ------------------------------------------------------------
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
        raise RuntimeError(
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
        if self.ragged == "pad":
            lc, lt = self.context_length, self.target_length
        else:
            lc, lt = int(c_val.sum(axis=1).min()), int(t_val.sum(axis=1).min())
        key = self._subset_key
        c_idx, c_val = _fit_length(c_idx, c_val, lc, key, lambda: (ids, 0))
        t_idx, t_val = _fit_length(
            t_idx, t_val, lt, key, lambda: (np.repeat(ids, m), np.tile(np.arange(m), b))
        )
        return MaskBatch(
            context=c_idx,
            context_valid=c_val,
            targets=t_idx.reshape(b, m, lt),
            targets_valid=t_val.reshape(b, m, lt),
            grid_size=self.grid_size,
            context_boxes=None if cbox is None else cbox.astype(np.int32, copy=False),
            target_boxes=None if tbox is None else tbox.astype(np.int32, copy=False),
        )


def _fit_length(idx, valid, length, key, row_ids):
    """Pad or cut packed rows ``(R, K)`` to ``length`` columns.

    Rows with more than ``length`` valid entries keep a uniformly random subset
    of them (keyed by sample number and slot, so it is reproducible), still in
    ascending order: no positional bias. ``row_ids()`` returns the rows'
    ``(sample_ids, slot)``; it is only called when a row is cut.
    """
    r, k = idx.shape
    if length == k:
        return idx, valid
    if length > k:
        pad = ((0, 0), (0, length - k))
        return np.pad(idx, pad), np.pad(valid, pad)
    sample_ids, slot = row_ids()
    over = np.nonzero(valid[:, length])[0]  # valid entries come first in a row
    out_idx, out_valid = idx[:, :length].copy(), valid[:, :length].copy()
    if over.size:
        slot = np.broadcast_to(np.asarray(slot), (r,))[over]
        draw_ids = slot[:, None].astype(np.int64) * k + np.arange(k)
        keys = _stream.uniform(key, np.asarray(sample_ids)[over, None], draw_ids)
        keys = np.where(valid[over], keys, np.inf)
        kth = np.partition(keys, length - 1, axis=1)[:, length - 1 : length]
        order = np.argsort(keys > kth, axis=1, kind="stable")[:, :length]
        out_idx[over] = np.take_along_axis(idx[over], order, axis=1)
        out_valid[over] = True
    return out_idx, out_valid
