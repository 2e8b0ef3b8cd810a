"""InverseBlockMaskSampler: data2vec 2.0's inverse block masking (fairseq compute_block_mask_2d)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import InverseBlockMaskSampler, make_sampler
from jepa_components.testing import check_ratio_masks, check_stream, samplers

batch_sizes = st.integers(1, 4)
starts = st.integers(0, 10**6)


def grid_of(mask, grid):
    return mask.reshape(grid).astype(int).tolist()


def centre_uniforms(cells, n):
    """Uniforms that floor(u * n) turns into the given centre cells."""
    return (np.asarray(cells, dtype=np.float64) + 0.5) / n


# -- the rule on hand-checkable grids -------------------------------------------------


def test_block_masks__clamped_blocks_fold_onto_the_border():
    s = InverseBlockMaskSampler(grid_size=(4, 5), mask_ratio=0.5, seed=0)
    blocks = s.block_masks(np.array([[0], [7], [19], [4]]))  # corner, inside, corner, corner
    assert grid_of(blocks[0], (4, 5)) == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert grid_of(blocks[1], (4, 5)) == [  # centre (1, 2): the full 3x3
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    assert blocks[2].sum() == 4 and blocks[3].sum() == 4  # 2x2 in every corner
    edge = s.block_masks(np.array([[2]]))  # centre (0, 2): a 2x3 block
    assert grid_of(edge[0], (4, 5))[:3] == [[0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0] * 5]
    both = s.block_masks(np.array([[0, 7, 7]]))  # union; a repeated centre adds nothing
    assert both.sum() == 4 + 9 - 2


def test_block_masks__even_block_size_and_non_square_grid():
    s = InverseBlockMaskSampler(grid_size=(3, 6), mask_ratio=0.5, block_size=2, seed=0)
    # offset 2 // 2 = 1: rows and columns (r - 1, r)
    assert grid_of(s.block_masks(np.array([[8]]))[0], (3, 6)) == [
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    assert grid_of(s.block_masks(np.array([[0]]))[0], (3, 6))[0] == [1, 0, 0, 0, 0, 0]


def test_inverse_block__one_interior_block_is_exactly_the_context():
    # 5x5, keep 0.36: K = 9 visible, C = floor(25 * 0.36 / 9) = 1 centre
    s = InverseBlockMaskSampler(grid_size=(5, 5), mask_ratio=0.64, mask_prob_adjust=0.0, seed=0)
    assert (s.num_centres, s.num_visible) == (1, 9)
    u = np.concatenate([centre_uniforms([12], 25), np.linspace(0, 0.9, 25)])[None]
    ctx, tgt, _, _ = s._draw(np.arange(1), u)
    assert grid_of(ctx[0], (5, 5)) == [
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    assert np.array_equal(tgt[0, 0], ~ctx[0])


def test_inverse_block__too_few_kept_adds_the_other_cells_of_smallest_key():
    s = InverseBlockMaskSampler(grid_size=(5, 5), mask_ratio=0.64, mask_prob_adjust=0.0, seed=0)
    keys = np.arange(25) / 25  # increasing: the lowest-index free cells are added
    u = np.concatenate([centre_uniforms([0], 25), keys])[None]
    ctx = s._draw(np.arange(1), u)[0][0]
    # the corner block {0, 1, 5, 6} (4 cells) plus 5 more: 2, 3, 4, 7, 8
    assert np.flatnonzero(ctx).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]


def test_inverse_block__too_many_kept_drops_the_marked_cells_of_largest_key():
    # adjust 0.36: C = floor(25 * 0.72 / 9) = 2 centres, still K = 9
    s = InverseBlockMaskSampler(grid_size=(5, 5), mask_ratio=0.64, mask_prob_adjust=0.36, seed=0)
    assert (s.num_centres, s.num_visible) == (2, 9)
    keys = (24 - np.arange(25)) / 25  # decreasing: the highest-index marked cells stay
    u = np.concatenate([centre_uniforms([6, 18], 25), keys])[None]
    ctx = s._draw(np.arange(1), u)[0][0]
    # marked: rows 0-2 x cols 0-2 and rows 2-4 x cols 2-4 (17 cells); the 9 last stay
    assert np.flatnonzero(ctx).tolist() == [12, 13, 14, 17, 18, 19, 22, 23, 24]


def test_inverse_block__data2vec2_defaults():
    s = InverseBlockMaskSampler(seed=0)
    assert (s.mask_ratio, s.mask_prob_adjust, s.block_size, s.num_clones) == (0.8, 0.07, 3, 1)
    # 196 * (0.2 + 0.07) / 9 = 5.88 -> 5 centres; 196 * 0.2 = 39.2 -> 39 visible
    assert (s.num_centres, s.num_visible, s.num_masked, s.min_context) == (5, 39, 157, 39)
    batch = s.sample(8)
    assert batch.context.shape == (8, 39) and batch.targets.shape == (8, 1, 157)
    assert batch.context_valid.all() and batch.targets_valid.all()
    # the ViT-L recipe: mask_prob 0.75, adjust 0.1 -> 196 * 0.35 / 9 = 7.6 -> 7 centres, 49 kept
    large = InverseBlockMaskSampler(mask_ratio=0.75, mask_prob_adjust=0.1, seed=0)
    assert (large.num_centres, large.num_visible) == (7, 49)


def test_inverse_block__golden_masks_for_fixed_seeds():
    """Counter-based uint64 streams: the same indices on every platform and numpy."""
    batch = InverseBlockMaskSampler(grid_size=(6, 6), seed=0).sample(2)
    assert batch.context.tolist() == [[22, 23, 28, 29, 33, 34, 35], [6, 7, 12, 13, 18, 19, 35]]
    s = InverseBlockMaskSampler(
        grid_size=(5, 7), mask_ratio=0.6, block_size=2, num_clones=2, seed=99
    )
    assert s.sample(2, start=123).context.tolist() == [
        [1, 2, 3, 4, 8, 9, 10, 11, 18, 24, 25, 27, 31, 32],
        [0, 1, 5, 6, 7, 8, 14, 15, 17, 18, 19, 26, 29, 33],
        [0, 2, 3, 4, 5, 6, 7, 8, 16, 17, 20, 23, 24, 27],
        [8, 9, 12, 15, 16, 18, 19, 25, 26, 27, 28, 29, 33, 34],
    ]


def test_inverse_block__float_rounding_loses_no_patch():
    """Reference defect: fairseq's int(L * (1 - 0.8)) keeps 19 of 100 patches, not 20."""
    assert int(100 * (1 - 0.8)) == 19
    s = InverseBlockMaskSampler(grid_size=(10, 10), seed=0)
    assert s.num_visible == 20 and (s.sample(3).context_valid.sum(1) == 20).all()


# -- properties -------------------------------------------------------------------


@given(samplers("inverse_block"), batch_sizes, starts)
def test_inverse_block__ratio_invariants(s, b, start):
    check_ratio_masks(s.sample(b, start=start), s, sample_ids=range(start, start + b))


@given(samplers("inverse_block"), st.integers(2, 5), batch_sizes, starts)
def test_inverse_block__clones_image_major_and_independent(s, clones, b, start):
    c = InverseBlockMaskSampler(**{**s.get_config(), "num_clones": clones})
    batch = c.sample(b, start=start)
    assert len(batch) == b * clones
    check_ratio_masks(batch, c, sample_ids=range(start, start + b))


@given(samplers("inverse_block"), st.integers(1, 4), st.integers(1, 4), starts)
def test_inverse_block__stream_contract(s, b1, b2, start):
    check_stream(s, start=start, batch_sizes=(b1, b2))


def test_inverse_block__clones_stream_split_invariance():
    s = InverseBlockMaskSampler(grid_size=(8, 8), num_clones=4, seed=2)
    whole = s.sample(5, start=3)
    parts = [s.sample(2, start=3), s.sample(3, start=5)]
    for key, value in whole.as_dict().items():
        assert np.array_equal(value, np.concatenate([p.as_dict()[key] for p in parts]))
    at = s.sample_at([6, 3])
    assert np.array_equal(at.context[:4], whole.context[12:16])
    assert np.array_equal(at.context[4:], whole.context[:4])
    state = s.state()
    first = s.sample(2)
    assert s.state()["next_index"] == state["next_index"] + 2  # counts images, not rows
    assert np.array_equal(first.context, s.sample(2, start=0).context)


def test_inverse_block__clones_of_one_image_differ():
    s = InverseBlockMaskSampler(num_clones=16, seed=0)  # the paper's 16 masks per image
    ctx = s.sample(4).to_dense()[0].reshape(4, 16, -1)
    for image in ctx:
        assert len({row.tobytes() for row in image}) == 16


def test_inverse_block__non_square_grids():
    s = InverseBlockMaskSampler(grid_size=(4, 9), mask_ratio=0.75, seed=1)
    batch = s.sample(6)
    check_ratio_masks(batch, s, sample_ids=range(6))
    assert batch.context.shape == (6, 9) and batch.targets.shape == (6, 1, 27)


def test_inverse_block__config_round_trip_and_registry():
    s = InverseBlockMaskSampler(
        grid_size=(6, 7), mask_ratio=0.7, mask_prob_adjust=0.1, block_size=2, num_clones=3, seed=4
    )
    config = s.get_config()
    assert config == {
        "grid_size": (6, 7),
        "mask_ratio": 0.7,
        "mask_prob_adjust": 0.1,
        "block_size": 2,
        "num_clones": 3,
        "seed": 4,
        "ragged": "pad",
        "context_length": None,
        "target_length": None,
    }
    twin = InverseBlockMaskSampler(**config)
    assert repr(twin) == repr(s)
    assert np.array_equal(twin.sample(3).context, s.sample(3).context)
    built = make_sampler("inverse_block", **config)
    assert isinstance(built, InverseBlockMaskSampler) and built.get_config() == config


def test_inverse_block__refusals_name_the_argument():
    cases = [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": 0}, "mask_ratio"),
        ({"mask_prob_adjust": -0.01}, "mask_prob_adjust"),
        ({"mask_prob_adjust": 1.5}, "mask_prob_adjust"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": 15}, "block_size"),  # larger than the 14x14 grid
        ({"block_size": 3.0}, "block_size"),
        ({"num_clones": 0}, "num_clones"),
        ({"context_length": 38}, "context_length"),
        ({"grid_size": (2, 2), "mask_ratio": 0.8}, "mask_ratio"),  # keeps 0 of 4
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=f"Invalid value for argument `{name}`"):
            InverseBlockMaskSampler(**kwargs)
    with pytest.raises(ValueError, match=r"floor\(4 \* \(1 - mask_ratio\)\) in \[1, 3\]"):
        InverseBlockMaskSampler(grid_size=(2, 2))


# -- distribution --------------------------------------------------------------------


def _rule_by_loops(grid, mask_ratio, adjust, block, samples, rng):
    """The rule of the class doc written out per sample (fairseq's loop structure)."""
    H, W = grid
    n = H * W
    keep = int(round(n * (1 - mask_ratio), 9))
    centres = int(round(n * (1 - mask_ratio + adjust) / block**2, 9))
    out = np.zeros((samples, n), dtype=bool)
    off = block // 2
    for s in range(samples):
        m = np.zeros((H, W), dtype=bool)
        for c in rng.integers(0, n, centres):
            r, col = divmod(int(c), W)
            for i in range(block):
                for j in range(block):
                    m[min(max(r + i - off, 0), H - 1), min(max(col + j - off, 0), W - 1)] = True
        m = m.ravel()
        kept = int(m.sum())
        if kept > keep:
            m[rng.choice(np.flatnonzero(m), kept - keep, replace=False)] = False
        elif kept < keep:
            m[rng.choice(np.flatnonzero(~m), keep - kept, replace=False)] = True
        out[s] = m
    return out


def test_inverse_block__distribution_matches_the_rule_written_out():
    scipy_stats = pytest.importorskip("scipy.stats")
    grid, S = (8, 10), 4000
    ours = InverseBlockMaskSampler(grid_size=grid, seed=5).sample(S).to_dense()[0].reshape(S, -1)
    loops = _rule_by_loops(grid, 0.8, 0.07, 3, S, np.random.default_rng(0))
    assert (ours.sum(1) == 16).all() and (loops.sum(1) == 16).all()
    # per-cell frequencies (border cells are kept less often in both)
    table = np.stack([ours.sum(0), loops.sum(0)])
    assert scipy_stats.chi2_contingency(table)[1] > 1e-3

    # spatial structure: number of kept right / down neighbour pairs per sample
    def pairs(kept):
        d = kept.reshape(-1, *grid)
        return (d[:, :, 1:] & d[:, :, :-1]).sum((1, 2)) + (d[:, 1:] & d[:, :-1]).sum((1, 2))

    hist = np.stack(
        [np.bincount(pairs(ours), minlength=40), np.bincount(pairs(loops), minlength=40)]
    )
    hist = hist[:, hist.sum(0) >= 20]
    assert scipy_stats.chi2_contingency(hist)[1] > 1e-3


def test_inverse_block__border_cells_are_kept_less_often():
    """What the reference's clamp does: corner < edge < inside (uniform would be 39/196)."""
    s = InverseBlockMaskSampler(seed=0)
    freq = s.sample(4000).to_dense()[0].mean(0)
    corners = freq[[0, 0, -1, -1], [0, -1, 0, -1]].mean()
    edges = np.concatenate([freq[0, 1:-1], freq[-1, 1:-1], freq[1:-1, 0], freq[1:-1, -1]]).mean()
    inside = freq[1:-1, 1:-1].mean()
    assert corners < 0.14 < edges < 0.18 < inside  # measured: 0.11, 0.15, 0.22


# -- check_ratio_masks catches each broken invariant ---------------------------------


def _broken(batch, **arrays):
    import dataclasses

    return dataclasses.replace(batch, **{k: np.array(v) for k, v in arrays.items()})


def test_check_ratio_masks__wrong_counts():
    s = InverseBlockMaskSampler(grid_size=(6, 6), seed=0, context_length=9)  # 7 visible, padded
    batch = s.sample(3)
    check_ratio_masks(batch, s, sample_ids=range(3))
    ctx, valid = batch.context.copy(), batch.context_valid.copy()
    ctx[1, 6], valid[1, 6] = 0, False  # one visible patch dropped (now in neither)
    with pytest.raises(AssertionError, match="6 patches, fewer than min_context=7"):
        check_ratio_masks(_broken(batch, context=ctx, context_valid=valid), s)
    cut = InverseBlockMaskSampler(grid_size=(6, 6), seed=0, target_length=20)  # of 29 masked
    batch = cut.sample(3)
    check_ratio_masks(batch, cut, sample_ids=range(3))
    tgt, t_valid = batch.targets.copy(), batch.targets_valid.copy()
    tgt[2, 0, -1], t_valid[2, 0, -1] = 0, False  # a masked patch dropped from the target
    with pytest.raises(AssertionError, match="row 2: 19 target patches, expected exactly 20"):
        check_ratio_masks(_broken(batch, targets=tgt, targets_valid=t_valid), cut)
    with pytest.raises(AssertionError, match="one number per image"):
        check_ratio_masks(batch, s, sample_ids=range(2))


def test_check_ratio_masks__clones_not_image_major_or_not_independent():
    s = InverseBlockMaskSampler(num_clones=3, seed=0)
    check_ratio_masks(s.sample(2, start=5), s, sample_ids=[5, 6])

    class CloneMajor(InverseBlockMaskSampler):  # rows c * B + i: all first clones first
        def _row_ids(self, ids):
            return (ids[None, :] * self.num_clones + np.arange(self.num_clones)[:, None]).ravel()

    class Repeated(InverseBlockMaskSampler):  # every clone of sample k is draw k
        def _row_ids(self, ids):
            return np.repeat(ids, self.num_clones)

    for bad, message in ((CloneMajor, "check_"), (Repeated, "is not draw 15")):
        sampler = bad(**s.get_config())
        with pytest.raises(AssertionError, match=message):
            check_ratio_masks(sampler.sample(2, start=5), sampler, sample_ids=[5, 6])
