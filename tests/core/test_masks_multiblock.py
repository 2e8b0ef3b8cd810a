"""MultiBlockMaskSampler: every mask constraint as a property, plus statistics."""

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from jepa_components.masks import MaskBatch, MultiBlockMaskSampler
from jepa_components.testing import check_masks, check_stream, sampler_configs, samplers

multiblock = samplers("multiblock", max_grid=(32, 48))


@given(multiblock, st.integers(1, 6), st.integers(0, 10**6))
def test_sample__every_constraint_holds(sampler, batch_size, start):
    batch = sampler.sample(batch_size, start=start)
    check_masks(batch, sampler, sample_ids=range(start, start + batch_size))
    assert batch.target_boxes.shape == (batch_size, sampler.num_targets, 4)
    assert batch.context_boxes.shape == (batch_size, 4)


@given(st.integers(2, 32), st.integers(65, 80), st.integers(1, 3), st.data())
def test_sample__wide_grids_use_dense_boxes_and_hold_too(height, width, batch_size, data):
    sampler = data.draw(samplers("multiblock", grid_size=(height, width)))
    assert sampler._box_bits is None  # past the 64-column bit-mask path
    check_masks(sampler.sample(batch_size), sampler, sample_ids=range(batch_size))


@given(
    sampler_configs("multiblock", only_accepted=False), st.integers(1, 64), st.integers(0, 10**9)
)
def test_init__refuses_or_never_fails_later(cfg, batch_size, start):
    """The feasibility guarantee: a configuration is refused up front, or it samples."""
    try:
        sampler = MultiBlockMaskSampler(**cfg)
    except ValueError as error:  # refusal names the constraint
        message = str(error)
        assert message.startswith("Invalid value for argument `min_context`"), message
        event("refused")
        return
    event(f"accepted ({sampler.feasibility.method})")
    batch = sampler.sample(batch_size, start=start)
    assert (batch.context_valid.sum(1) >= sampler.min_context).all()


@given(multiblock, st.integers(1, 5), st.integers(1, 5), st.integers(0, 1000))
def test_sample__batch_split_invariance(sampler, b1, b2, start):
    check_stream(sampler, start=start, batch_sizes=(b1, b2))


@given(multiblock, st.lists(st.integers(0, 10**9), min_size=1, max_size=6))
def test_sample_at__rows_equal_single_draws(sampler, ids):
    check_masks(sampler.sample_at(ids), sampler, sample_ids=ids)


@pytest.mark.parametrize("ids", [[], [-1, 2], [[1, 2]], [0.5]])
def test_sample_at__rejects_bad_ids(ids):
    with pytest.raises(ValueError, match="sample_ids"):
        MultiBlockMaskSampler(seed=0).sample_at(ids)


def test_sample__stream_is_deterministic_and_resumable():
    a = MultiBlockMaskSampler(seed=7)
    b = MultiBlockMaskSampler(seed=7)
    full = a.sample(256)
    parts = [b.sample(128), b.sample(128)]
    assert np.array_equal(full.context, np.concatenate([p.context for p in parts]))
    assert np.array_equal(full.targets, np.concatenate([p.targets for p in parts]))
    # a worker drawing a slice sees the same samples
    worker = MultiBlockMaskSampler(seed=7).sample(64, start=96)
    assert np.array_equal(worker.targets, full.targets[96:160])
    # state / set_state resumes the stream
    c = MultiBlockMaskSampler(seed=7)
    c.sample(100)
    state = c.state()
    resumed = MultiBlockMaskSampler(seed=7)
    resumed.set_state(state)
    assert np.array_equal(resumed.sample(20).context, c.sample(20).context)
    assert state == {"seed": 7, "next_index": 100}


def test_sample__different_seeds_differ():
    a = MultiBlockMaskSampler(seed=1).sample(8)
    b = MultiBlockMaskSampler(seed=2).sample(8)
    assert not np.array_equal(a.targets, b.targets)


def test_seed_none__draws_and_records_a_seed():
    s = MultiBlockMaskSampler(seed=None)
    again = MultiBlockMaskSampler(seed=s.seed)
    assert np.array_equal(s.sample(4).context, again.sample(4).context)


def test_set_state__rejects_other_seed():
    with pytest.raises(ValueError, match="seed"):
        MultiBlockMaskSampler(seed=1).set_state({"seed": 2, "next_index": 0})


def test_defaults__are_the_papers():
    s = MultiBlockMaskSampler()
    assert s.grid_size == (14, 14) and s.num_targets == 4
    assert s.target_scale == (0.15, 0.2) and s.target_aspect_ratio == (0.75, 1.5)
    assert s.context_scale == (0.85, 1.0) and s.context_aspect_ratio == (1.0, 1.0)
    assert s.min_context == 10 and not s.allow_overlap


def test_padded_lengths__are_exact_upper_bounds():
    s = MultiBlockMaskSampler(seed=0)
    batch = s.sample(4000)
    # no sample ever exceeds the padded length, and target blocks reach it
    assert batch.targets_valid.sum(-1).max() == s.target_length == 42
    assert batch.context_valid.sum(-1).max() <= s.context_length < 196


# -- statistics on the default configuration ------------------------------------


@pytest.fixture(scope="module")
def many():
    return MultiBlockMaskSampler(seed=123).sample(20000)


def test_statistics__every_patch_is_seen(many):
    ctx, tgt = many.to_dense()
    ctx_freq = ctx.mean(axis=0)
    tgt_freq = tgt.any(axis=1).mean(axis=0)
    assert (ctx_freq > 0.05).all(), ctx_freq.min()
    assert (tgt_freq > 0.01).all(), tgt_freq.min()
    # the official randint(0, H - h) never reaches the last row and column
    assert tgt_freq[-1, :].min() > 0.01 and tgt_freq[:, -1].min() > 0.01


def test_statistics__scale_and_aspect_uncorrelated(many):
    _, _, h, w = np.moveaxis(many.target_boxes.reshape(-1, 4).astype(float), -1, 0)
    scale = h * w / 196.0
    aspect = h / w
    assert abs(np.corrcoef(scale, aspect)[0, 1]) < 0.1
    # both spread over their ranges (the official draws tie them together)
    assert scale.min() < 0.16 and scale.max() > 0.19
    assert aspect.min() < 0.8 and aspect.max() > 1.4


def test_statistics__full_height_blocks_possible():
    s = MultiBlockMaskSampler(
        grid_size=(4, 4),
        num_targets=1,
        target_scale=(0.5, 0.5),
        target_aspect_ratio=(2.0, 2.0),
        context_scale=(1.0, 1.0),
        min_context=1,
        seed=0,
    )
    h = s.sample(50).target_boxes[..., 2]
    assert (h == 4).all()  # the official `while h >= H: h -= 1` forbids this


# -- ragged handling -------------------------------------------------------------


def test_truncate__cuts_to_batch_minimum_with_random_subset():
    s = MultiBlockMaskSampler(seed=0, ragged="truncate")
    batch = s.sample(32)
    full = MultiBlockMaskSampler(seed=0).sample(32)
    assert batch.context.shape[1] == full.context_valid.sum(1).min()
    assert batch.targets.shape[2] == full.targets_valid.sum(-1).min()
    check_masks(batch, s, sample_ids=range(32))
    # kept patches are a subset of the sample's context
    ctx_full, _ = full.to_dense()
    ctx_cut, _ = batch.to_dense()
    assert not (ctx_cut & ~ctx_full).any()


def test_truncate__drops_no_region_systematically():
    s = MultiBlockMaskSampler(seed=0, ragged="truncate")
    kept = np.zeros((14, 14))
    seen = np.zeros((14, 14))
    for k in range(40):
        cut, _ = s.sample(64).to_dense()
        full, _ = MultiBlockMaskSampler(seed=0).sample(64, start=64 * k).to_dense()
        kept += cut.sum(0)
        seen += full.sum(0)
    ratio = kept / seen
    # official truncation keeps the first indices: the bottom rows would lose most
    assert ratio[-1].mean() > 0.8 * ratio[0].mean()


def test_context_length__shorter_keeps_random_subset():
    s = MultiBlockMaskSampler(seed=0, context_length=40)
    batch = s.sample(64)
    assert batch.context.shape == (64, 40)
    check_masks(batch, s, sample_ids=range(64))
    full, _ = MultiBlockMaskSampler(seed=0).sample(64).to_dense()
    cut, _ = batch.to_dense()
    assert not (cut & ~full).any()
    assert (batch.context_valid.sum(1) == np.minimum(full.reshape(64, -1).sum(1), 40)).all()


# -- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target_scale=(0.3, 0.2)), r"target_scale.*0 < min <= max <= 1.*\(0.3, 0.2\)"),
        (dict(target_scale=(0.0, 0.2)), "target_scale"),
        (dict(context_scale=(0.5, 1.5)), "context_scale"),
        (dict(target_aspect_ratio=(-1.0, 2.0)), "target_aspect_ratio"),
        (dict(target_aspect_ratio=(2.0, 1.0)), "target_aspect_ratio"),
        (dict(num_targets=0), "num_targets"),
        (dict(grid_size=(0, 14)), "grid_size"),
        (dict(grid_size="big"), "grid_size"),
        (dict(min_context=-1), "min_context"),
        (dict(min_context=500), "min_context"),
        (dict(seed=-3), "seed"),
        (dict(ragged="drop"), "ragged"),
        (dict(context_length=5), "context_length"),
        (dict(grid_size=(3, 3), min_context=9), r"min_context must be <= \d+"),
        (dict(allow_overlap=1), "allow_overlap"),
        (dict(max_attempts=0), "max_attempts"),
    ],
)
def test_init__rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiBlockMaskSampler(**kwargs)


def test_sample__rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        MultiBlockMaskSampler(seed=0).sample(0)


def test_sample__runtime_error_stays_as_safety_net(monkeypatch):
    # feasibility is decided at construction; should a draw still fail (a
    # subclass bug, an astronomically unlucky run), sampling stops, never loops
    s = MultiBlockMaskSampler(
        grid_size=(6, 6),
        num_targets=1,
        target_scale=(0.1, 0.1),
        min_context=5,
        max_attempts=3,
        seed=0,
    )
    assert s.feasibility.method == "exact"  # every draw keeps >= 5 patches
    draw = s._draw_packed

    def no_context(ids, u):
        c_idx, c_val, *rest = draw(ids, u)
        return (c_idx, np.zeros_like(c_val), *rest)

    monkeypatch.setattr(s, "_draw_packed", no_context)
    with pytest.raises(RuntimeError, match=r"min_context=5.*max_attempts=3"):
        s.sample(4)


def test_mask_batch__validates_shapes():
    with pytest.raises(ValueError, match="context"):
        MaskBatch(
            np.zeros((2, 3)),
            np.zeros((2, 4), bool),
            np.zeros((2, 1, 3)),
            np.zeros((2, 1, 3), bool),
            (4, 4),
        )
