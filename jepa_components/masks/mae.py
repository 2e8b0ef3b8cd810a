"""MAEMaskSampler: MAE's random masking (He et al. 2022, "Masked Autoencoders Are
Scalable Vision Learners").

Shared with :mod:`jepa_components.masks.inverse_block`: the base
:class:`ExactCountSampler` (exactly ``K`` visible patches, the rest the
target) and the helpers :func:`ratio_count` (``floor(N * fraction)`` on the
decimal value of the fraction) and :func:`keep_smallest` (the ``k`` cells of
smallest key per row, the vectorised form of "argsort the noise, keep the
first ``k``").
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from jepa_components._validation import check_float, check_grid, invalid
from jepa_components.masks.sampler import MaskSampler


def ratio_count(num_patches: int, fraction: float | Fraction) -> int:
    """``floor(num_patches * fraction)``, exact for the decimal the user wrote.

    ``fraction`` is read as the decimal of its shortest ``repr`` (``0.8`` is
    4/5, not the double 0.8000000000000000444), so float rounding never loses
    a patch. The references compute ``int(L * (1 - mask_ratio))`` in floating
    point, where ``1 - 0.8`` is 0.19999999999999996: ``int(100 * (1 - 0.8))``
    keeps 19 patches of a 10x10 grid instead of 20 (and ``int(100 * (1 -
    0.9))`` 9 instead of 10). On the paper grids (196 or 256 patches, ratio
    0.75 or 0.8) both give the same count.

    Example:
        >>> ratio_count(100, 1 - Fraction("0.8")), int(100 * (1 - 0.8))
        (20, 19)
        >>> ratio_count(196, 0.25)
        49
    """
    value = fraction if isinstance(fraction, Fraction) else Fraction(repr(float(fraction)))
    return math.floor(num_patches * value)


def keep_smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Dense ``(R, N) bool`` masks of the ``k`` smallest keys of each row of ``keys`` ``(R, N)``.

    Exactly ``k`` cells per row (``np.argpartition``). With i.i.d. continuous
    keys the chosen set is uniform over all ``k``-subsets; the keys are
    multiples of 2**-52, so a tie at the ``k``-th key (which would make the
    choice depend on the partition algorithm) has probability below
    ``N**2 * 2**-52`` per row.

    Example:
        >>> keep_smallest(np.array([[0.5, 0.1, 0.9, 0.3]]), 2)
        array([[False,  True, False,  True]])
    """
    r, n = keys.shape
    out = np.zeros((r, n), dtype=bool)
    if k >= n:
        out[:] = True
    elif k > 0:
        chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
        np.put_along_axis(out, chosen, True, axis=1)
    return out


def exact_counts(
    grid_size: tuple[int, ...], mask_ratio: float, argument: str = "mask_ratio"
) -> tuple[int, int]:
    """``(visible, masked)`` patch counts for ``mask_ratio``; refuses 0 of either.

    ``visible = floor(N * (1 - mask_ratio))`` (:func:`ratio_count`). A ratio
    that leaves no visible patch (the encoder would see nothing) or masks none
    (nothing to predict) raises a ``ValueError`` naming ``argument``.
    """
    n = math.prod(grid_size)
    visible = ratio_count(n, 1 - Fraction(repr(float(mask_ratio))))
    if not 1 <= visible <= n - 1:
        raise invalid(
            argument,
            f"a ratio that keeps at least one and masks at least one of the {n} patches "
            f"of the grid {tuple(grid_size)}: floor({n} * (1 - {argument})) in [1, {n - 1}] "
            f"(here {visible})",
            mask_ratio,
        )
    return visible, n - visible


class ExactCountSampler(MaskSampler):
    """Base of the samplers that keep exactly ``K`` of the ``N`` patches visible.

    ``K = floor(N * (1 - mask_ratio))`` (:func:`exact_counts`) in every row:
    the visible patches are the context, the other ``N - K`` one target
    (``context_rule = "complement"``), so shapes are fixed. ``min_context``
    is ``K``. Subclasses set ``draws_per_attempt``, implement ``_draw`` and
    call ``_check_feasible()`` at the end of their ``__init__``.
    """

    num_targets = 1
    context_rule = "complement"

    def __init__(
        self,
        grid_size: int | tuple[int, int],
        mask_ratio: float,
        seed: int | None,
        *,
        ragged: str,
        context_length: int | None,
        target_length: int | None,
    ) -> None:
        height, width = check_grid("grid_size", grid_size, self.grid_ndim)
        grid = (height, width)
        self.mask_ratio = check_float(
            "mask_ratio", mask_ratio, low=0.0, high=1.0, low_open=True, high_open=True
        )
        self.num_visible, self.num_masked = exact_counts(grid, self.mask_ratio)
        super().__init__(
            grid,
            min_context=self.num_visible,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
            seed=seed,
        )

    def get_config(self) -> dict:
        return {
            "grid_size": self.grid_size,
            "mask_ratio": self.mask_ratio,
            "seed": self.seed,
            "ragged": self.ragged,
            "context_length": self._context_length,
            "target_length": self._target_length,
        }

    def max_counts(self) -> tuple[int, int]:
        return self.num_visible, self.num_masked

    def _context_count_bounds(self) -> tuple[int, int]:
        return self.num_visible, self.num_visible


class MAEMaskSampler(ExactCountSampler):
    """MAE's random masking: a uniformly random subset of patches stays visible.

    Every row keeps exactly ``K = floor(N * (1 - mask_ratio))`` of the ``N =
    H * W`` patches visible (the context, what the encoder sees) and masks
    the other ``N - K`` (one target, what is predicted); the visible set is
    uniform over all ``K``-subsets. Rule of ``random_masking`` in the official
    ``models_mae.py`` (facebookresearch/mae): argsort of uniform noise per
    sample, the ``K`` smallest are kept. Here the noise comes from the
    counter-based stream (sample ``k`` is a pure function of ``(seed, k)``) and
    the ``K`` smallest are found by one vectorised ``argpartition`` over the
    batch. ``context_rule = "complement"``: the target is every patch not in
    the context. The paper's default is ``mask_ratio=0.75`` (49 of 196 patches
    visible at 224 px, patch 16).

    Differences from the reference: ``K`` is computed on the decimal
    ``mask_ratio`` (:func:`ratio_count`; the reference's
    ``int(L * (1 - mask_ratio))`` loses a patch to float rounding on some
    grids, e.g. 19 instead of 20 of 100 at 0.8); the noise has 52 random bits
    (``torch.rand`` has 24: two equal noise values, whose order is then up
    to the sort, occur in about 0.1% of 196-patch samples); masks are patch indices of a
    :class:`~jepa_components.masks.MaskBatch` rather than a shuffle order.

    Counts are exact, so shapes are fixed: ``context`` is ``(B, K)`` and
    ``targets`` ``(B, 1, N - K)`` with every slot valid under
    ``ragged="pad"``. There is no ``min_context`` argument: the context count
    is always ``K``, and ``sampler.min_context`` reads ``K`` (so a
    ``context_length`` below ``K`` is refused: the encoder always sees all
    ``K``; a ``target_length`` below ``N - K`` predicts a uniformly random
    subset of the masked patches). A ratio that keeps no patch or masks none
    on the grid is refused (``ValueError`` naming ``mask_ratio``).

    Args:
        grid_size: ``(H, W)`` patches (or an int for a square grid).
        mask_ratio: fraction of patches masked, in (0, 1); default 0.75.
        seed: int >= 0; ``None`` draws one from the OS (read it back from
            ``sampler.seed``).
        ragged: "pad" (default), "bucket" or "truncate" (see
            :class:`~jepa_components.masks.sampler.MaskSampler`); with exact
            counts "pad" and "truncate" give the same arrays.
        context_length, target_length: padded lengths (default ``K`` and
            ``N - K``, exact).

    Example:
        >>> from jepa_components.masks import MAEMaskSampler
        >>> sampler = MAEMaskSampler(grid_size=(14, 14), mask_ratio=0.75, seed=0)
        >>> batch = sampler.sample(8)
        >>> batch.context.shape, batch.targets.shape
        ((8, 49), (8, 1, 147))
        >>> bool(batch.context_valid.all() and batch.targets_valid.all())
        True
        >>> ctx, tgt = batch.to_dense()
        >>> bool((ctx ^ tgt[:, 0]).all())  # visible and masked split the grid
        True
    """

    def __init__(
        self,
        grid_size: int | tuple[int, int] = (14, 14),
        mask_ratio: float = 0.75,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
    ) -> None:
        super().__init__(
            grid_size,
            mask_ratio,
            seed,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
        )
        self.draws_per_attempt = self.num_patches
        self._check_feasible()

    def _describe(self) -> str:
        return f"MAE masking on the grid {self.grid_size} with mask_ratio={self.mask_ratio}"

    def _draw(self, sample_ids, u):
        visible = keep_smallest(u, self.num_visible)  # argsort of noise, first K kept
        return visible, ~visible[:, None, :], None, None
