"""BlockwiseMaskSampler (BEiT / iBOT / DINOv2): invariants, stream, golden masks, refusals.

The distribution against DINOv2's reference is in test_masks_blockwise_reference.py.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.masks import SAMPLERS, BlockwiseMaskSampler, MaskBatch, make_sampler
from jepa_components.masks.blockwise import greedy_block_masks
from jepa_components.masks.geometry import pack_dense
from jepa_components.testing import check_blockwise_masks, check_stream, samplers
from jepa_components.testing.blockwise_checks import admissible_block_sizes

batch_sizes = st.integers(1, 5)
starts = st.integers(0, 10**6)


def masks_of(batch):
    return batch.to_dense()[1][:, 0].reshape(len(batch), -1)


@given(samplers("blockwise"), batch_sizes, starts)
def test_invariants__any_accepted_configuration(s, b, start):
    check_blockwise_masks(s.sample(b, start=start), s, sample_ids=range(start, start + b))


@given(samplers("blockwise", grid_size=(16, 16), ragged="pad"), starts)
def test_stream__split_invariance_and_config_round_trip(s, start):
    check_stream(s, start=start)
    twin = make_sampler("blockwise", **s.get_config())
    assert twin.get_config() == s.get_config()
    assert repr(twin) == repr(s)


def test_stream__sample_k_never_depends_on_its_batch():
    s = BlockwiseMaskSampler(seed=3)
    whole = s.sample(256, start=0)
    halves = [s.sample(128, start=0), s.sample(128, start=128)]
    for key, value in whole.as_dict().items():
        assert np.array_equal(value, np.concatenate([h.as_dict()[key] for h in halves]))
    ids = np.array([200, 5, 77])
    assert np.array_equal(masks_of(s.sample_at(ids)), masks_of(whole)[ids])
    assert s.sample(4).targets.tolist() == whole.targets[:4].tolist()  # own stream
    assert s.state() == {"seed": 3, "next_index": 4}


def test_defaults__dinov2():
    s = BlockwiseMaskSampler(seed=0)
    assert s.grid_size == (16, 16) and s.num_targets == 1 and s.context_rule == "complement"
    assert s.max_counts() == (256, 128)
    assert SAMPLERS["blockwise"] is BlockwiseMaskSampler
    batch = s.sample(2000)
    assert batch.context.shape == (2000, 256) and batch.targets.shape == (2000, 1, 128)
    budget = s.target_counts(range(2000))
    masked = budget > 0
    assert abs(masked.mean() - 0.5) < 0.05
    assert budget[masked].min() >= int(256 * 0.1) and budget.max() <= 128
    counts = masks_of(batch).sum(1)
    assert (counts <= budget).all()
    assert (counts[~masked] == 0).all() and (batch.context_valid[~masked].all())
    # the DINOv2 shortfall, kept: a few percent of the masked images, by a few patches
    short = counts[masked] < budget[masked]
    assert 0.02 < short.mean() < 0.15
    assert (budget[masked] - counts[masked]).max() <= 10


def test_golden__fixed_seed_masks():
    """The same masks on every platform (integer arithmetic on float64 uniforms)."""
    s = BlockwiseMaskSampler(seed=0, mask_probability=1.0)
    m = masks_of(s.sample(4, start=0))
    assert [np.packbits(r).tobytes().hex() for r in m] == [
        "0000100610061000f1fcf1fcf000f000f000f000000020022002000200020000",
        "00ff001f0000001c000000000000000000000000000000000000007e007e007e",
        "00001fff1fff1fff1ff01c001c0000070007000700020002001e003c001c0000",
        "0000200020000000000000000000002037a037e0378030003000000000000000",
    ]
    assert s.target_counts(range(4)).tolist() == [51, 34, 76, 28]
    s = BlockwiseMaskSampler(seed=0)
    m = masks_of(s.sample(6, start=100))
    assert m.sum(1).tolist() == [66, 50, 80, 49, 52, 32]
    assert s.target_counts(range(100, 106)).tolist() == [66, 51, 80, 49, 52, 32]


def test_beit_configuration():
    """BEiT: 75 of 196 patches, every image, blocks of at least 16 patches."""
    s = BlockwiseMaskSampler(
        grid_size=14, mask_ratio=0.383, mask_probability=1.0, min_block_patches=16,
        max_block_patches=75, seed=0,
    )  # fmt: skip
    assert s.max_counts() == (196, 75)
    assert (s.target_counts(range(64)) == 75).all()
    batch = s.sample(64)
    check_blockwise_masks(batch, s, sample_ids=range(64))
    assert 70 <= masks_of(batch).sum(1).mean() <= 75


def test_student_mask_tokens__dense_targets_are_the_collated_masks():
    s = BlockwiseMaskSampler(grid_size=(4, 6), mask_ratio=0.5, mask_probability=1.0, seed=2)
    batch = s.sample(3)
    masks = batch.to_dense()[1][:, 0].reshape(3, 24)  # DINOv2's collated_masks (B, N)
    visible = batch.to_dense()[0].reshape(3, 24)
    assert np.array_equal(masks, ~visible)
    rows, cols = np.nonzero(batch.targets_valid[:, 0])
    assert np.array_equal(batch.targets[rows, 0, cols], np.nonzero(masks)[1])


def test_blocks_never_span_the_grid():
    """As MaskingGenerator: h < H and w < W for every block (the first one is observable)."""
    ids = np.arange(5000)
    budget = np.full(5000, 40)
    m = greedy_block_masks(
        np.uint64(7), ids, budget, (6, 6), 4.0, 40.0, (np.log(0.3), -np.log(0.3)), 10, 1
    ).reshape(-1, 6, 6)
    h, w = m.any(2).sum(1), m.any(1).sum(1)
    assert h.max() == 5 and w.max() == 5
    assert np.array_equal(m.sum((1, 2)), h * w)  # one rectangle
    assert set(zip(h[h > 0].tolist(), w[h > 0].tolist())) <= set(
        map(tuple, admissible_block_sizes(BlockwiseMaskSampler(grid_size=6, max_block_patches=18)))
    ) | {(hh, ww) for hh in range(1, 6) for ww in range(1, 6) if hh * ww > 18}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(grid_size=(2, 2), mask_ratio=0.9, max_block_tries=1, min_block_patches=1),
        dict(grid_size=(2, 40), mask_ratio=(0.01, 0.99), aspect_ratio=(0.01, 100.0)),
        dict(grid_size=(3, 3), min_block_patches=4, max_block_patches=4.5),
    ],
)
def test_degenerate_grids__terminate(kwargs):
    s = BlockwiseMaskSampler(seed=0, mask_probability=1.0, **kwargs)
    batch = s.sample(200)
    check_blockwise_masks(batch, s, sample_ids=range(200))


def test_ragged_modes__cut_rows_stay_within_the_budget():
    for ragged in ("bucket", "truncate"):
        s = BlockwiseMaskSampler(grid_size=8, seed=1, ragged=ragged)
        check_blockwise_masks(s.sample(16), s)
    s = BlockwiseMaskSampler(grid_size=8, seed=1, context_length=20, target_length=5)
    batch = s.sample(16, start=0)
    check_blockwise_masks(batch, s, sample_ids=range(16))
    assert batch.targets.shape == (16, 1, 5) and batch.context.shape == (16, 20)


def _broken(batch, target_rows):
    """``batch`` with its target replaced by dense ``target_rows`` (B, N), context the rest."""
    idx, val = pack_dense(target_rows, batch.targets.shape[2])
    c_idx, c_val = pack_dense(~target_rows, batch.context.shape[1])
    return dataclasses.replace(
        batch, context=c_idx, context_valid=c_val, targets=idx[:, None], targets_valid=val[:, None]
    )


def test_check_blockwise_masks__catches_broken_batches():
    s = BlockwiseMaskSampler(grid_size=8, seed=0, mask_probability=1.0)
    batch = s.sample(2, start=0)
    check_blockwise_masks(batch, s, sample_ids=[0, 1])
    scattered = np.zeros((2, 64), bool)
    scattered[:, [0, 9, 18, 27, 36]] = True  # a diagonal: no 4-patch block fits
    broken = _broken(batch, scattered)
    with pytest.raises(AssertionError, match="admissible size"):
        check_blockwise_masks(broken, s)
    block = np.zeros((2, 8, 8), bool)
    block[:, :7, :7] = True  # 49 patches, more than int(64 * 0.5) (cut to 32 slots)
    with pytest.raises(AssertionError):
        check_blockwise_masks(_broken(batch, block.reshape(2, 64)), s)
    ids = np.nonzero(s.target_counts(range(200)) < 16)[0][:2]  # budgets below 16 patches
    small = np.zeros((2, 8, 8), bool)
    small[:, :4, :4] = True  # one admissible 4x4 block: 16 patches
    with pytest.raises(AssertionError, match="more than its budget"):
        check_blockwise_masks(_broken(s.sample_at(ids), small.reshape(2, 64)), s, sample_ids=ids)
    not_complement = dataclasses.replace(batch, context_valid=np.zeros_like(batch.context_valid))
    with pytest.raises(AssertionError):
        check_blockwise_masks(not_complement, s)
    with pytest.raises(AssertionError, match="BlockwiseMaskSampler"):
        check_blockwise_masks(batch, make_sampler("random", grid_size=8, seed=0))
    assert isinstance(broken, MaskBatch)


@pytest.mark.parametrize(
    "kwargs, name, allowed",
    [
        (dict(grid_size=(1, 16)), "grid_size", "at least 2 rows and 2 columns"),
        (dict(grid_size=0), "grid_size", ">= 1"),
        (dict(mask_ratio=1.0), "mask_ratio", "(0, 1)"),
        (dict(mask_ratio=0.0), "mask_ratio", "(0, 1)"),
        (dict(mask_ratio=(0.5, 0.1)), "mask_ratio", "0 < min <= max < 1"),
        (dict(mask_ratio=(0.1, 1.2)), "mask_ratio", "0 < min <= max < 1"),
        (dict(mask_ratio="0.5"), "mask_ratio", "(0, 1)"),
        (dict(grid_size=2, mask_ratio=0.2), "mask_ratio", "at least 1 patch"),
        (dict(mask_probability=0.0), "mask_probability", "(0, 1]"),
        (dict(mask_probability=1.5), "mask_probability", "(0, 1]"),
        (dict(min_block_patches=200), "min_block_patches", "[1, 128]"),
        (dict(min_block_patches=0), "min_block_patches", "[1, 128]"),
        (dict(min_block_patches=20, max_block_patches=10), "min_block_patches", "[1, 10]"),
        (dict(min_block_patches=4.0), "min_block_patches", "integer"),
        (dict(max_block_patches=300), "max_block_patches", "[1, 256]"),
        (dict(max_block_patches=0.5), "max_block_patches", "[1, 256]"),
        (dict(aspect_ratio=(3.0, 0.3)), "aspect_ratio", "0 < min <= max"),
        (dict(aspect_ratio=(0.0, 1.0)), "aspect_ratio", "0 < min <= max"),
        (dict(aspect_ratio=0.3), "aspect_ratio", "0 < min <= max"),
        (dict(max_block_tries=0), "max_block_tries", ">= 1"),
        (dict(seed=-1), "seed", ">= 0"),
        (dict(ragged="cut"), "ragged", "one of"),
        (dict(target_length=0), "target_length", "[1, 256]"),
    ],
)
def test_constructor__refuses_bad_values(kwargs, name, allowed):
    with pytest.raises(ValueError, match=f"argument `{name}`") as info:
        BlockwiseMaskSampler(**kwargs)
    message = str(info.value)
    assert f"argument `{name}`" in message and allowed in message
    assert f"Received: {name}=" in message


def test_fixed_ratio__one_budget():
    s = BlockwiseMaskSampler(grid_size=10, mask_ratio=0.3, mask_probability=1.0, seed=4)
    assert s.get_config()["mask_ratio"] == 0.3
    assert (s.target_counts(np.arange(50)) == 30).all()
    assert s.max_counts() == (100, 30)


def test_target_counts__refuses_bad_sample_ids():
    s = BlockwiseMaskSampler(seed=0)
    assert s.target_counts(np.array([3, 1])).tolist() == s.target_counts([3, 1]).tolist()
    for bad in ([-1], [[1, 2]], [0.5]):
        with pytest.raises(ValueError, match="argument `sample_ids`"):
            s.target_counts(bad)
