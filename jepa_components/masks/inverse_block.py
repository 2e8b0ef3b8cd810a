"""InverseBlockMaskSampler: data2vec 2.0's inverse block masking.

Baevski et al. 2023, "Efficient Self-supervised Learning with Contextualized
Target Representations for Vision, Speech and Language"; rule of fairseq's
``compute_block_mask_2d`` (``fairseq/data/data_utils.py``) as the image
recipe calls it: ``inverse_mask=True``, ``require_same_masks=True``,
``mask_dropout=0``, ``expand_adjcent=False``, ``non_overlapping=False``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from jepa_components._validation import check_float, check_int
from jepa_components.masks.mae import ExactCountSampler, keep_smallest, ratio_count


class InverseBlockMaskSampler(ExactCountSampler):
    """Square blocks mark the *visible* patches; everything else is predicted.

    The rule (fairseq ``compute_block_mask_2d`` with ``inverse_mask=True``),
    for a grid of ``N = H * W`` patches and keep fraction ``p = 1 -
    mask_ratio``:

    1. ``C = floor(N * (p + mask_prob_adjust) / block_size**2)`` block centres
       are drawn uniformly over the ``N`` patches, with replacement (a
       repeated centre adds nothing).
    2. Around each centre ``(r, c)`` the ``block_size x block_size`` square of
       rows ``r - o .. r - o + block_size - 1`` and columns likewise, ``o =
       block_size // 2``, is marked kept; coordinates are *clamped* to the
       grid. The clamp does not shift a block inside the grid, it folds the
       outside part onto the border row or column: a block centred on an
       edge loses its rows or columns outside the grid (2x3 for the default
       3, 2x2 in a corner), and a border patch is covered by fewer centres
       than an inner one (4 in a corner, 6 on an edge, 9 inside for
       ``block_size=3``), so border patches are kept less often (fairseq
       does the same; the correction in step 3 does not undo it).
    3. The kept count is corrected to exactly ``K = floor(N * p)``: if more
       are marked, a uniformly random subset of them is unmarked; if fewer, a
       uniformly random subset of the others is added (fairseq:
       ``torch.multinomial`` without replacement on the 0/1 mask). Here both
       cases are one vectorised selection: every patch gets a uniform key,
       plus 1 if it is not marked, and the ``K`` smallest keys are kept.

    The kept patches are the context (what the encoder sees); the other ``N -
    K`` form the one target (``context_rule = "complement"``). Counts are
    exact, so shapes are fixed: ``context`` ``(R, K)``, ``targets`` ``(R, 1,
    N - K)``, every slot valid under ``ragged="pad"``. As in
    :class:`~jepa_components.masks.MAEMaskSampler` there is no
    ``min_context`` argument (``sampler.min_context`` reads ``K``), and a ratio
    that keeps no patch or masks none is refused.

    Defaults are data2vec 2.0's ViT-B image recipe (fairseq
    ``examples/data2vec/config/v2/base_images_only_task.yaml``:
    ``mask_prob: 0.8``, ``mask_prob_adjust: 0.07``, ``mask_length: 3``,
    ``inverse_mask: true``, ``clone_batch: 16``; the ViT-L recipe
    ``large_images_only_task.yaml`` uses 0.75 and 0.1). On 14x14 patches that
    is ``C = 5`` centres corrected to ``K = 39`` visible patches, 157 masked.
    The paper's recipe draws 16 masks per image (``num_clones=16``, the
    ``clone_batch`` of the config: every image is repeated 16 times, each copy
    with its own mask); the default here is 1.

    **Clones.** With ``num_clones = C > 1``, ``sample(B)`` returns ``B * C``
    rows, image-major: rows ``k * C .. k * C + C - 1`` are the masks of the
    ``k``-th sample, the order of ``torch.repeat_interleave(images, C, 0)``
    (fairseq's ``source.repeat_interleave(clone_batch, 0)``); each clone is an
    independent draw (stream number ``k * C + c``). Repeat the images the
    same way (``np.repeat(images, C, axis=0)``).

    Differences from the reference:

    * grids need not be square: ``(H, W)`` (fairseq takes ``d = int(L **
      0.5)`` and assumes a ``d x d`` grid);
    * ``C`` and ``K`` are computed on the decimal arguments
      (:func:`~jepa_components.masks.mae.ratio_count`), so float rounding
      never loses a patch (fairseq: ``int(100 * (1 - 0.8))`` is 19);
    * ``block_size=1`` is accepted (fairseq asserts ``mask_length > 1`` and
      uses unstructured masking then): single-patch blocks, then the same
      correction;
    * the correction is vectorised over the batch (fairseq loops over the
      samples in Python), and every draw comes from the counter-based stream.

    Args:
        grid_size: ``(H, W)`` patches (or an int for a square grid).
        mask_ratio: fraction of patches masked (fairseq ``mask_prob``), in
            (0, 1); default 0.8.
        mask_prob_adjust: added to the keep fraction when counting block
            centres (more centres compensate for overlapping blocks), in
            [0, 1]; default 0.07.
        block_size: side of the square blocks (fairseq ``mask_length``), from
            1 to ``max(H, W)``; default 3.
        num_clones: masks per image (fairseq ``clone_batch``), >= 1; default 1
            (the paper uses 16).
        seed: int >= 0; ``None`` draws one from the OS.
        ragged, context_length, target_length: as in
            :class:`~jepa_components.masks.MAEMaskSampler` (default lengths
            ``K`` and ``N - K``, exact).

    Example:
        >>> from jepa_components.masks import InverseBlockMaskSampler
        >>> sampler = InverseBlockMaskSampler(grid_size=(14, 14), num_clones=16, seed=0)
        >>> batch = sampler.sample(2)  # 2 images, 16 masks each
        >>> batch.context.shape, batch.targets.shape
        ((32, 39), (32, 1, 157))
        >>> sampler.num_centres, sampler.num_visible
        (5, 39)
    """

    def __init__(
        self,
        grid_size: int | tuple[int, int] = (14, 14),
        mask_ratio: float = 0.8,
        mask_prob_adjust: float = 0.07,
        block_size: int = 3,
        num_clones: int = 1,
        seed: int | None = None,
        *,
        ragged: str = "pad",
        context_length: int | None = None,
        target_length: int | None = None,
    ) -> None:
        self.mask_prob_adjust = check_float("mask_prob_adjust", mask_prob_adjust, low=0.0, high=1.0)
        super().__init__(
            grid_size,
            mask_ratio,
            seed,
            ragged=ragged,
            context_length=context_length,
            target_length=target_length,
        )
        self.block_size = check_int("block_size", block_size, low=1, high=max(self.grid_size))
        self.num_clones = check_int("num_clones", num_clones, low=1)
        keep = 1 - Fraction(repr(self.mask_ratio))
        adjust = Fraction(repr(self.mask_prob_adjust))
        #: number of block centres drawn per mask, ``C`` of the class doc
        self.num_centres = ratio_count(self.num_patches, (keep + adjust) / self.block_size**2)
        self._offsets = np.arange(self.block_size, dtype=np.int64) - self.block_size // 2
        self.draws_per_attempt = self.num_centres + self.num_patches
        self._check_feasible()

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "mask_prob_adjust": self.mask_prob_adjust,
            "block_size": self.block_size,
            "num_clones": self.num_clones,
        }

    def _describe(self) -> str:
        return (
            f"Inverse block masking on the grid {self.grid_size} with mask_ratio={self.mask_ratio}"
        )

    def block_masks(self, centres: np.ndarray) -> np.ndarray:
        """Dense ``(R, N) bool``: the union of the clamped blocks around ``centres``.

        ``centres`` ``(R, C)`` row-major patch indices (step 2 of the class
        doc, before the count correction).

        Example:
            >>> s = InverseBlockMaskSampler(grid_size=(4, 5), mask_ratio=0.5, seed=0)
            >>> s.block_masks(np.array([[0]])).reshape(4, 5).astype(int)  # a corner block
            array([[1, 1, 0, 0, 0],
                   [1, 1, 0, 0, 0],
                   [0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0]])
        """
        H, W = self.grid_size
        r = centres.shape[0]
        marked = np.zeros((r, self.num_patches), dtype=bool)
        if centres.shape[1] == 0:
            return marked
        rows = (centres // W)[..., None] + self._offsets  # (R, C, b)
        cols = (centres % W)[..., None] + self._offsets
        np.clip(rows, 0, H - 1, out=rows)
        np.clip(cols, 0, W - 1, out=cols)
        cells = (rows[..., :, None] * W + cols[..., None, :]).reshape(r, -1)
        np.put_along_axis(marked, cells, True, axis=1)
        return marked

    def _draw(self, sample_ids, u):
        c = self.num_centres
        centres = np.floor(u[:, :c] * self.num_patches).astype(np.int64)  # u < 1: < N
        marked = self.block_masks(centres)
        keys = u[:, c:] + ~marked  # marked first (keys < 1), then the others
        visible = keep_smallest(keys, self.num_visible)
        return visible, ~visible[:, None, :], None, None
