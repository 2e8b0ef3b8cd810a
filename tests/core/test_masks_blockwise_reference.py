"""BlockwiseMaskSampler against DINOv2's MaskingGenerator and collate (distribution parity).

The reference statistics come from tests/fixtures/make_dinov2_mask_stats.py
(DINOv2's ``dinov2/data/masking.py`` and ``collate.py``, python ``random``
seeded), committed as ``dinov2_mask_stats.npz``; these tests need neither
torch nor the reference code. Each two-sample test must pass for ours and
reject a deliberately wrong variant (its power check). Thresholds: p-values
above 1e-4 for ours (a false alarm once in 10,000 runs per test; the draws
are seeded, so the outcome is fixed), below 1e-8 for the wrong variants.
"""

import os

import numpy as np
import pytest

from jepa_components.masks import BlockwiseMaskSampler
from jepa_components.masks.blockwise import greedy_block_masks

stats = pytest.importorskip("scipy.stats")

FIXTURE = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "dinov2_mask_stats.npz")
REF = dict(np.load(FIXTURE))
GRID = int(REF["grid"])
N = GRID * GRID
SAMPLES = 20_000
PASS_P, REJECT_P = 1e-4, 1e-8


def _masks(sampler, n=SAMPLES):
    return sampler.sample(n, start=0).to_dense()[1][:, 0].reshape(n, -1)


@pytest.fixture(scope="module")
def ours():
    return _masks(BlockwiseMaskSampler(grid_size=GRID, seed=1))


def _two_sample_p(a, b, min_count=10):
    """p-value of the chi-square test that histograms ``a`` and ``b`` share one law.

    Adjacent bins are merged until each merged bin holds ``min_count`` draws of
    the two samples together (so every expected count is large enough).
    """
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    cols, acc = [], np.zeros(2)
    for x, y in zip(a, b):
        acc += (x, y)
        if acc.sum() >= min_count:
            cols.append(acc)
            acc = np.zeros(2)
    if acc.sum():
        if cols:
            cols[-1] = cols[-1] + acc
        else:
            cols.append(acc)
    table = np.array(cols).T
    return stats.chi2_contingency(table)[1]


def _max_cell_z(cells_a, n_a, cells_b, n_b):
    """Largest two-proportion |z| over the cells (each cell: masked or not per image)."""
    pa, pb = cells_a / n_a, cells_b / n_b
    pooled = (cells_a + cells_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return float(np.max(np.abs(pa - pb) / se))


# Bonferroni over the 256 cells: a false alarm with probability below 1e-4
CELL_Z = float(stats.norm.isf(PASS_P / (2 * N)))


def _count_hist(masks):
    return np.bincount(masks.sum(1), minlength=N // 2 + 1)


def test_masked_count_histogram__matches_the_collate(ours):
    """Ours (per-image ratio and Bernoulli) vs the collate (stratified ratios, exactly
    int(B p) masked, shuffled): the same law of one image's masked count."""
    assert _count_hist(ours).shape == REF["collate_count_hist"].shape
    assert _two_sample_p(_count_hist(ours), REF["collate_count_hist"]) > PASS_P
    assert _two_sample_p(_count_hist(ours), REF["generator_count_hist"]) > PASS_P


def test_masked_count_histogram__power():
    """Rejected: a mask probability of 0.6, a ratio range of (0.1, 0.45), and blocks
    of at least 16 patches (BEiT's; more images fall short of their budget)."""
    for wrong in (
        BlockwiseMaskSampler(grid_size=GRID, mask_probability=0.6, seed=1),
        BlockwiseMaskSampler(grid_size=GRID, mask_ratio=(0.1, 0.45), seed=1),
        BlockwiseMaskSampler(grid_size=GRID, min_block_patches=16, seed=1),
    ):
        p = _two_sample_p(_count_hist(_masks(wrong)), REF["collate_count_hist"])
        assert p < REJECT_P, wrong


def test_budget_histogram__matches_the_per_image_policy():
    s = BlockwiseMaskSampler(grid_size=GRID, seed=1)
    budgets = np.bincount(s.target_counts(np.arange(SAMPLES)), minlength=N // 2 + 1)
    assert _two_sample_p(budgets, REF["generator_budget_hist"]) > PASS_P


def test_per_cell_frequency__matches_the_collate(ours):
    z = _max_cell_z(ours.sum(0), SAMPLES, REF["collate_cells"], int(REF["collate_images"]))
    assert z < CELL_Z


def test_per_cell_frequency__power():
    """Rejected: blocks that never reach the last row and column (as with an
    exclusive ``randint(0, H - h)``: masks of a 15x15 grid padded to 16x16), and a
    ratio range of (0.1, 0.6)."""
    small = _masks(BlockwiseMaskSampler(grid_size=GRID - 1, max_block_patches=N / 2, seed=1))
    padded = np.zeros((SAMPLES, GRID, GRID), bool)
    padded[:, :-1, :-1] = small.reshape(SAMPLES, GRID - 1, GRID - 1)
    wider = _masks(BlockwiseMaskSampler(grid_size=GRID, mask_ratio=(0.1, 0.6), seed=1))
    for wrong in (padded.reshape(SAMPLES, N), wider):
        z = _max_cell_z(wrong.sum(0), SAMPLES, REF["collate_cells"], int(REF["collate_images"]))
        assert z > float(stats.norm.isf(REJECT_P / 2))


LOG_ASPECT = (float(np.log(0.3)), -float(np.log(0.3)))  # DINOv2's min_aspect 0.3


def _first_blocks(min_block=4.0, log_aspect=LOG_ASPECT):
    """``(17, 17)`` histogram of the first block (h, w), caps as in the fixture."""
    ids = np.arange(SAMPLES, dtype=np.int64)
    rng = np.random.default_rng(0)  # the caps only: min(int(256 U(0.1, 0.5)), 128)
    budget = np.minimum(np.floor(N * rng.uniform(0.1, 0.5, SAMPLES)), N // 2).astype(np.int64)
    masks = greedy_block_masks(
        np.uint64(12345), ids, budget, (GRID, GRID), min_block, N / 2, log_aspect, 10, 1
    ).reshape(-1, GRID, GRID)
    h, w = masks.any(2).sum(1), masks.any(1).sum(1)  # one box: its height and width
    return np.bincount(h * (GRID + 1) + w, minlength=(GRID + 1) ** 2).reshape(GRID + 1, GRID + 1)


def test_first_block_size_and_aspect__match_the_generator():
    ours = _first_blocks()
    assert _two_sample_p(ours, REF["first_block_hw"]) > PASS_P
    # no block spans the full height or width, in both (h < H and w < W)
    assert ours[GRID].sum() == ours[:, GRID].sum() == 0
    assert REF["first_block_hw"][GRID].sum() == REF["first_block_hw"][:, GRID].sum() == 0


def test_first_block_size_and_aspect__power():
    for wrong in (
        _first_blocks(min_block=16.0),
        _first_blocks(log_aspect=(np.log(0.5), np.log(2))),
    ):
        assert _two_sample_p(wrong, REF["first_block_hw"]) < REJECT_P


def test_shortfall__same_rate_as_the_generator():
    """A block that fails every try ends the image, in both: ~8% of the masked
    images fall short of their budget, by one patch on average."""
    s = BlockwiseMaskSampler(grid_size=GRID, seed=1)
    masks = _masks(s)
    budget = s.target_counts(np.arange(SAMPLES))
    short_ours = int(((masks.sum(1) < budget) & (budget > 0)).sum())
    short_ref, n_ref = int(REF["generator_short_images"]), int(REF["generator_images"])
    masked_ours = int((budget > 0).sum())
    masked_ref = n_ref - int(REF["generator_budget_hist"][0])
    table = [[short_ours, masked_ours - short_ours], [short_ref, masked_ref - short_ref]]
    assert stats.chi2_contingency(table)[1] > PASS_P
    assert 0.05 < short_ref / masked_ref < 0.11  # the documented figure


def test_defect__masked_fraction_depends_on_the_batch_size():
    """Reference defect: the collate masks int(B * p) images, 1 of 4 (25%) at B = 4,
    p = 0.3; ours masks each image with probability p, 30% whatever the batch."""
    assert float(REF["small_batch_masked_fraction"]) == 0.25
    s = BlockwiseMaskSampler(grid_size=GRID, mask_probability=0.3, seed=2)
    fraction = float((s.target_counts(np.arange(SAMPLES)) > 0).mean())
    assert abs(fraction - 0.3) < 4 * np.sqrt(0.3 * 0.7 / SAMPLES)


def test_defect__one_row_grid_is_refused_not_silently_unmasked():
    """Reference defect: on a 1-row grid no block fits (h < H is impossible) and
    MaskingGenerator returns empty masks without a word; ours refuses the grid."""
    assert int(REF["one_row_masked"]) == 0
    with pytest.raises(ValueError, match=r"grid_size.*at least 2 rows"):
        BlockwiseMaskSampler(grid_size=(1, GRID))
