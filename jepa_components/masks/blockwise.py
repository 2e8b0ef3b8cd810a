"""BlockwiseMaskSampler: BEiT / iBOT / DINOv2 blockwise masking.

BEiT (Bao et al. 2022, Algorithm 1) masks an image by greedily placing
random rectangles until a patch budget is reached; iBOT and DINOv2 reuse the
same generator (``dinov2/data/masking.py``, ``MaskingGenerator``) with a
budget drawn per image (``dinov2/data/collate.py``,
``collate_data_and_cast``). The masked patches are the prediction targets;
the student still sees every patch, with a learned mask token at the masked
ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jepa_components._validation import (
    check_float,
    check_int,
    invalid,
    is_real,
)
from jepa_components.masks import _stream
from jepa_components.masks.geometry import check_grid_size, pack_dense
from jepa_components.masks.sampler import MaskSampler

__all__ = ["BlockwiseMaskSampler"]

_BLOCKS = 0x424C4F43  # stream purpose of the block draws ("BLOC"), apart from the base's
_DRAWS_PER_TRY = 4  # area, log-aspect, top, left


def _check_ratio(value: Any) -> tuple[float, float]:
    """``mask_ratio``: a number or a ``(min, max)`` pair inside (0, 1) -> ``(lo, hi)``."""
    expected = "a number in (0, 1) or a pair (min, max) with 0 < min <= max < 1"
    if is_real(value):
        lo = hi = float(value)
    else:
        try:
            lo, hi = (float(v) for v in value)
            if not all(is_real(v) for v in value):
                raise TypeError
        except (TypeError, ValueError):
            raise invalid("mask_ratio", expected, value) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi < 1.0):
        raise invalid("mask_ratio", expected, value)
    return lo, hi


def greedy_block_masks(
    key: np.uint64,
    sample_ids: np.ndarray,
    budget: np.ndarray,
    grid: tuple[int, int],
    min_block: float,
    max_block: float,
    log_aspect: tuple[float, float],
    max_tries: int,
    max_blocks: int | None = None,
) -> np.ndarray:
    """Greedy blockwise masks ``(R, H * W) bool`` for budgets ``budget`` ``(R,) int``.

    The rule of ``MaskingGenerator.__call__`` / ``_mask`` (DINOv2
    ``data/masking.py``, BEiT's generator), run for all rows at once in
    rounds: in each round every still-active row makes one *try*:

    * area ``A ~ U(min_block, cap)`` with ``cap = min(remaining, max_block)``
      (``random.uniform`` semantics: when ``cap < min_block`` the area lies in
      ``[cap, min_block]``), aspect ``a = exp(U(*log_aspect))``;
    * ``h = round(sqrt(A a))``, ``w = round(sqrt(A / a))`` (round half to
      even, as python's ``round``); the try fails unless ``h < H`` and
      ``w < W`` (so no block spans the full height or width);
    * top and left uniform over ``[0, H - h]`` and ``[0, W - w]`` inclusive;
    * the block is accepted (and painted) if it adds between 1 and ``cap``
      new patches.

    A row stops when its budget is reached, when a block fails
    ``max_tries`` consecutive tries (the count then falls short of the
    budget, as in the reference), or after ``max_blocks`` accepted blocks
    (None: no limit; 1 observes the first block). Try ``t`` of row ``r``
    uses the uniforms ``(sample_ids[r], 4 t .. 4 t + 3)`` of ``key``, so a
    row never depends on the other rows. Every accepted block adds a patch,
    so a row makes at most ``(budget + 1) * max_tries`` tries: the loop is
    bounded by that.
    """
    H, W = grid
    r = budget.shape[0]
    mask = np.zeros((r, H, W), dtype=bool)
    count = np.zeros(r, dtype=np.int64)
    fails = np.zeros(r, dtype=np.int64)
    blocks = np.zeros(r, dtype=np.int64)
    active = np.nonzero(budget > 0)[0]
    if active.size == 0:
        return mask.reshape(r, H * W)
    rows, cols = np.arange(H), np.arange(W)
    log_lo, log_span = log_aspect[0], log_aspect[1] - log_aspect[0]
    offsets = np.arange(_DRAWS_PER_TRY, dtype=np.int64)[:, None]
    max_rounds = (int(budget.max()) + 1) * max_tries
    for t in range(max_rounds):
        if active.size == 0:
            break
        u = _stream.uniform(key, sample_ids[active][None, :], offsets + _DRAWS_PER_TRY * t)
        cap = np.minimum(budget[active] - count[active], max_block)
        area = min_block + (cap - min_block) * u[0]
        aspect = np.exp(log_lo + log_span * u[1])
        h = np.rint(np.sqrt(area * aspect)).astype(np.int64)
        w = np.rint(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h < H) & (w < W)
        h, w = np.where(fits, h, 0), np.where(fits, w, 0)
        top = np.floor(u[2] * (H - h + 1)).astype(np.int64)
        left = np.floor(u[3] * (W - w + 1)).astype(np.int64)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (A, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (A, W)
        box = in_rows[:, :, None] & in_cols[:, None, :]  # (A, H, W)
        current = mask[active]
        new = (box & ~current).sum(axis=(1, 2))
        ok = fits & (new > 0) & (new <= cap)
        accepted = active[ok]
        mask[accepted] = current[ok] | box[ok]
        count[accepted] += new[ok]
        blocks[accepted] += 1
        fails[active] = np.where(ok, 0, fails[active] + 1)
        done = (count[active] >= budget[active]) | (fails[active] >= max_tries)
        if max_blocks is not None:
            done |= blocks[active] >= max_blocks
        active = active[~done]
    if active.size:  # pragma: no cover - impossible: each accepted try adds a patch
        raise RuntimeError("greedy_block_masks: the round bound was reached")
    return mask.reshape(r, H * W)


class BlockwiseMaskSampler(MaskSampler):
    """Blockwise masks of BEiT, iBOT and DINOv2: one target, the masked patches.

    Per image: with probability ``mask_probability`` the image is masked at
    all; then a ratio ``r`` is drawn from ``U(*mask_ratio)`` (or fixed), the
    budget is ``int(N * r)`` patches (``N = H * W``), and rectangles are
    placed greedily exactly as DINOv2's ``MaskingGenerator`` does (see
    :func:`greedy_block_masks`): area ``U(min_block_patches, min(remaining,
    max_block_patches))``, log-uniform aspect ratio ``h / w`` in
    ``aspect_ratio``, blocks strictly smaller than the grid, each accepted if
    it adds between 1 and ``remaining`` new patches, ``max_block_tries``
    tries per block. Defaults are DINOv2's (``ssl_default_config.yaml``:
    ``mask_ratio_min_max (0.1, 0.5)``, ``mask_sample_probability 0.5``;
    ``train.py``: ``max_num_patches = 0.5 * N``, ``min_num_patches 4``,
    ``min_aspect 0.3``). BEiT: ``grid_size=(14, 14)``,
    ``mask_ratio=0.383`` (75 of 196 patches), ``mask_probability=1.0``,
    ``min_block_patches=16``, ``max_block_patches=75``.

    ``num_targets = 1``: ``targets[:, 0]`` holds the masked patches (ascending)
    and ``context`` every other patch (``context_rule = "complement"``). An
    image left unmasked has an empty target and the whole grid as context.
    For iBOT / DINOv2 the student sees every patch and replaces the masked
    ones by the mask token: ``masks = batch.to_dense()[1][:, 0].reshape(B,
    N)`` is the ``(B, N) bool`` ``collated_masks`` of the reference collate.

    Kept from the reference, on purpose (parity of the distribution):

    * the count may fall short of the budget: a block that fails
      ``max_block_tries`` tries ends the image (at the 16x16 defaults, about
      8% of the masked images, by one patch on average, in both);
    * no block spans the full height or width (``h < H`` and ``w < W``), so
      the grid needs at least 2 rows and 2 columns (refused otherwise; the
      reference silently never masks a 1-row grid).

    Differences from the reference, documented:

    * the collate draws the ratios of a batch stratified (one draw in each
      of ``int(B * p)`` equal segments of the range, then
      ``random.shuffle``) and masks exactly ``int(B * p)`` images; ours
      draws each image's ratio from ``U(min, max)`` and its masking from
      Bernoulli(``p``), so sample ``k`` does not depend on its batch. The
      distribution of one image is the same; the number of masked images
      per batch is binomial instead of fixed, and its mean is ``B * p``
      (the reference's ``int(B * p)`` under-masks when ``B * p`` is not an
      integer, e.g. 25% instead of 30% of the images at ``B = 4, p = 0.3``);
    * randomness comes from the counter-based stream (keyed by seed, sample
      and try number), not python's global ``random`` state, so masks do not
      depend on the worker count, the batching or other users of ``random``.

    Args:
        grid_size: ``(H, W)`` patches (or an int), ``H, W >= 2``.
        mask_ratio: fraction of the patches to mask: a number in (0, 1), or
            ``(min, max)`` drawn uniformly per image.
        mask_probability: chance that an image is masked at all, in (0, 1]
            (1.0: every image, BEiT / iBOT).
        min_block_patches: smallest block area drawn (an int >= 1).
        max_block_patches: largest block area drawn (default ``0.5 * N``).
        aspect_ratio: ``(min, max)`` of ``h / w``, drawn log-uniformly.
        max_block_tries: tries per block before the image stops.
        seed: int >= 0; ``None`` draws one from the OS (``sampler.seed``).
        ragged, context_length, target_length: padding of the variable
            counts (see :class:`~jepa_components.masks.sampler.MaskSampler`);
            by default ``Kc = N`` and ``Kt = int(N * max ratio)``.

    ``sample(B)`` returns a :class:`MaskBatch` with ``context`` ``(B, Kc)
    int32`` and ``targets`` ``(B, 1, Kt) int32``.

    Example:
        >>> from jepa_components.masks import BlockwiseMaskSampler
        >>> sampler = BlockwiseMaskSampler(grid_size=(16, 16), seed=0)
        >>> batch = sampler.sample(8)
        >>> batch.context.shape, batch.targets.shape
        ((8, 256), (8, 1, 128))
        >>> masks = batch.to_dense()[1][:, 0].reshape(8, 256)  # the student's mask tokens
        >>> bool((masks.sum(1) <= sampler.target_counts(range(8))).all())
        True
    """

    num_targets = 1
    draws_per_attempt = 2  # masked or not, ratio
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int] = (16, 16),
        mask_ratio: float | tuple[float, float] = (0.1, 0.5),
        mask_probability: float = 0.5,
        min_block_patches: int = 4,
        max_block_patches: float | None = None,
        aspect_ratio: tuple[float, float] = (0.3, 1 / 0.3),
        max_block_tries: int = 10,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
    ) -> None:
        grid = check_grid_size(grid_size)
        if min(grid) < 2:
            raise invalid(
                "grid_size",
                "at least 2 rows and 2 columns (blocks are strictly smaller than the grid, "
                "as in MaskingGenerator)",
                grid_size,
            )
        n = grid[0] * grid[1]
        lo, hi = _check_ratio(mask_ratio)
        if int(n * hi) < 1:
            raise invalid(
                "mask_ratio",
                f"a ratio whose budget int({n} * ratio) is at least 1 patch on the grid {grid}",
                mask_ratio,
            )
        self.mask_ratio: float | tuple[float, float] = lo if is_real(mask_ratio) else (lo, hi)
        self.mask_probability = check_float(
            "mask_probability", mask_probability, low=0.0, high=1.0, low_open=True
        )
        self.max_block_patches = check_float(
            "max_block_patches", max_block_patches, low=1.0, high=n, allow_none=True
        )
        self._max_block = 0.5 * n if self.max_block_patches is None else self.max_block_patches
        self.min_block_patches = check_int(
            "min_block_patches", min_block_patches, low=1, high=int(self._max_block)
        )
        try:
            alo, ahi = (float(v) for v in aspect_ratio)
            ok = all(is_real(v) for v in aspect_ratio) and 0 < alo <= ahi < math.inf
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise invalid("aspect_ratio", "a pair (min, max) with 0 < min <= max", aspect_ratio)
        self.aspect_ratio = (alo, ahi)
        self.max_block_tries = check_int("max_block_tries", max_block_tries, low=1)
        self._ratio = (lo, hi)
        self._max_target = int(n * hi)
        super().__init__(
            grid,
            min_context=0,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
            seed=seed,
        )
        self._block_key = _stream.seed_to_key(self.seed, _BLOCKS)
        self._check_feasible()

    def get_config(self) -> dict:
        return {
            "grid_size": self.grid_size,
            "mask_ratio": self.mask_ratio,
            "mask_probability": self.mask_probability,
            "min_block_patches": self.min_block_patches,
            "max_block_patches": self.max_block_patches,
            "aspect_ratio": self.aspect_ratio,
            "max_block_tries": self.max_block_tries,
            "seed": self.seed,
            "ragged": self.ragged,
            "context_length": self._context_length,
            "target_length": self._target_length,
        }

    def max_counts(self) -> tuple[int, int]:
        return self.num_patches, self._max_target

    def _context_count_bounds(self) -> tuple[int, int]:
        return self.num_patches - self._max_target, self.num_patches

    def _describe(self) -> str:
        return (
            f"BlockwiseMaskSampler on the grid {self.grid_size} with mask_ratio={self.mask_ratio}"
        )

    def _budgets(self, u: np.ndarray) -> np.ndarray:
        """Budgets ``(R,) int64`` from draw-major uniforms ``(2, R)`` (masked?, ratio)."""
        lo, hi = self._ratio
        ratio = lo + (hi - lo) * u[1]
        budget = np.floor(self.num_patches * ratio).astype(np.int64)
        return np.where(u[0] < self.mask_probability, budget, 0)

    def target_counts(self, sample_ids: Any) -> np.ndarray:
        """Budgets ``(B,) int64`` of samples ``sample_ids``: ``int(N * ratio)``, 0 if unmasked.

        The masked count of each sample is at most its budget (it falls short
        when a block fails every try). DINOv2's collate reports the sum of
        the batch's ``int(N * segment max)`` as ``upperbound``.
        """
        ids = np.asarray(sample_ids if hasattr(sample_ids, "shape") else list(sample_ids))
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise invalid("sample_ids", "a 1-D sequence of integers >= 0", sample_ids)
        ids = ids.astype(np.int64)
        if (ids < 0).any():
            raise invalid("sample_ids", "a 1-D sequence of integers >= 0", sample_ids)
        draw_ids = np.arange(self.draws_per_attempt, dtype=np.int64)[:, None]
        return self._budgets(_stream.uniform(self._geometry_key, ids[None, :], draw_ids))

    def _draw_packed(self, sample_ids, u):
        masks = greedy_block_masks(
            self._block_key,
            sample_ids,
            self._budgets(u),
            (self.grid_size[0], self.grid_size[1]),
            float(self.min_block_patches),
            self._max_block,
            (math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])),
            self.max_block_tries,
        )
        c_idx, c_val = pack_dense(~masks, self.num_patches)
        return c_idx, c_val, masks[:, None, :], None, None
