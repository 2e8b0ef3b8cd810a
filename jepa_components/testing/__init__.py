"""Property testing of mask samplers: invariant checks and hypothesis strategies.

For other projects' test suites (and this project's own): everything a
:class:`~jepa_components.masks.MaskBatch` drawn from a sampler must satisfy,
as functions that raise an ``AssertionError`` with a readable message, and
hypothesis strategies that draw sampler configurations the constructors
accept. NumPy only: no deep-learning framework is imported.

* :func:`check_masks` ``(batch, sampler, sample_ids=None)``: indices in
  range, row-major, ascending and unique; valid flags a prefix of each row,
  padding slots 0; the padded lengths of the sampler's ``ragged`` mode; at
  least ``min_context`` context patches; context and targets disjoint unless
  ``allow_overlap``; the context rule of the strategy (a context block minus
  the targets, or the complement of the targets); blocks inside the grid, of
  a size the scale and aspect-ratio ranges allow; and, given the sample
  numbers, determinism (the same numbers give the same masks, in any batch).
* :func:`check_ratio_masks` ``(batch, sampler, sample_ids=None)``: for
  fixed-ratio samplers (MAE, data2vec 2.0 inverse block) on top of
  :func:`check_masks`: exact visible / masked counts per row, context and
  target disjoint and complementary, clones image-major and independent.
* :func:`check_blockwise_masks` ``(batch, sampler, sample_ids=None)``: for
  :class:`~jepa_components.masks.BlockwiseMaskSampler` (BEiT / iBOT / DINOv2)
  on top of :func:`check_masks`: masked counts within the budgets, context the
  complement, masks a union of admissible blocks.
* :func:`check_tube_masks` ``(batch, sampler, sample_ids=None)``: for V-JEPA's
  video masks on ``(T, H, W)`` grids (multi-block tubes, random tubes) on top
  of :func:`check_masks`: the same positions in every frame, exact counts,
  no context past ``max_temporal_keep``, the complement rules, targets the
  union of tubes of one admissible size.
* :func:`check_stream` ``(sampler, start=0, batch_sizes=(3, 5))``: the
  stream contract (deterministic, independent of batching, ``sample_at``
  equal to ``sample``, ``sample(start=...)`` leaves the stream alone).
* Strategies (need ``hypothesis``, a test dependency: ``pip install
  hypothesis``; imported when a strategy is built, so ``import
  jepa_components.testing`` works without it): :func:`sampler_configs`
  (constructor keyword arguments), :func:`samplers` (built samplers) and
  :func:`mask_batches` (batches). Each only yields configurations the
  constructor accepts, so a test may require that sampling never fails.

Example:
    >>> from hypothesis import given, settings
    >>> from jepa_components.testing import check_masks, samplers
    >>> @settings(max_examples=5, deadline=None)
    ... @given(samplers("multiblock", grid_size=(8, 8)))
    ... def test_masks(sampler):
    ...     check_masks(sampler.sample(3, start=5), sampler, sample_ids=range(5, 8))
    >>> test_masks()
"""

from jepa_components.testing.blockwise_checks import check_blockwise_masks
from jepa_components.testing.checks import check_masks, check_stream
from jepa_components.testing.ratio_checks import check_ratio_masks
from jepa_components.testing.strategies import (
    SAMPLER_KINDS,
    mask_batches,
    sampler_configs,
    samplers,
)
from jepa_components.testing.tube_checks import check_tube_masks

__all__ = [
    "SAMPLER_KINDS",
    "check_blockwise_masks",
    "check_masks",
    "check_ratio_masks",
    "check_stream",
    "check_tube_masks",
    "mask_batches",
    "sampler_configs",
    "samplers",
]
