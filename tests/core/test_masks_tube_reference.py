"""V-JEPA masks against the reference: distributions and the reference's defects.

The reference statistics come from tests/fixtures/make_vjepa_mask_stats.py
(V-JEPA's ``src/masks/multiblock3d.py`` and ``random_tube.py``, fixed seeds),
committed as ``vjepa_mask_stats.npz``, so these tests need neither torch nor
the reference code. Each defect of the reference is a property that the
reference's stored observations fail and ours pass; the ``live`` tests at the
end confirm the observations on the reference code itself and skip without
torch or the code (``$VJEPA_CODE``, default ``../shared/anchors/vjepa``).

Two-sample tests at level ``ALPHA`` on fixed seeds (so deterministic): a
chi-square test of homogeneity on histograms (adjacent bins merged to at
least 10 counts), and for the per-cell masking frequency the largest
two-proportion z statistic over the 1568 cells, Bonferroni-corrected (the
cells of one sample are dependent, so a sum over cells is no chi-square).
Each test also rejects a deliberately wrong variant (power check).
"""

import os

import numpy as np
import pytest

from jepa_components.masks import (
    VJEPA_MASK_CONFIGS,
    MultiBlock3DMaskSampler,
    RandomTubeMaskSampler,
    vjepa_samplers,
)

stats = pytest.importorskip("scipy.stats")

FIXTURE = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "vjepa_mask_stats.npz")
T, H, W = 8, 14, 14
N = T * H * W
SAMPLES = 10_000
ALPHA = 1e-3
CONFIGS = {"small": VJEPA_MASK_CONFIGS[0], "large": VJEPA_MASK_CONFIGS[1]}


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


# -- two-sample tests ------------------------------------------------------------------


def chi2_p(a, b, min_count=10):
    """p-value of the chi-square test that histograms ``a`` and ``b`` share a distribution."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    bins, acc = [], np.zeros(2)
    for x, y in zip(a, b):
        acc += (x, y)
        if acc.sum() >= min_count:
            bins.append(acc)
            acc = np.zeros(2)
    if acc.sum():
        bins[-1] = bins[-1] + acc
    table = np.array(bins).T
    return 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table)[1])


def cells_p(a, b, n_a, n_b):
    """Bonferroni p-value of the largest per-cell two-proportion z statistic."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    pooled = (a + b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = np.abs(a / n_a - b / n_b) / np.where(se > 0, se, np.inf)
    return min(1.0, 2 * float(stats.norm.sf(z.max())) * z.size)


def tube_stats(sampler, n=SAMPLES):
    """What the fixture records of the reference, for ours."""
    batch = sampler.sample(n)
    blocks = sampler.blocks(np.arange(n))[:, 0]
    size_hist = np.zeros((T + 1, H + 1, W + 1), dtype=np.int64)
    np.add.at(size_hist, tuple(blocks[:, 3:].T), 1)
    return {
        "target_freq": np.bincount(batch.targets[batch.targets_valid], minlength=N),
        "context_hist": np.bincount(batch.context_valid.sum(1), minlength=N + 1),
        "target_hist": np.bincount(batch.targets_valid.sum((1, 2)), minlength=N + 1),
        "size_hist": size_hist,
        "start_hist": np.bincount(blocks[:, 0], minlength=T + 1),
        "top_hist": np.bincount(blocks[:, 1], minlength=H + 1),
        "left_hist": np.bincount(blocks[:, 2], minlength=W + 1),
    }


def compare(ours, ref, name):
    """p-values of every statistic: ours against the reference's."""
    n = int(ours["context_hist"].sum())
    out = {"target_freq": cells_p(ours["target_freq"], ref[f"{name}_target_freq"], n, SAMPLES)}
    for key in ours:
        if key != "target_freq" and f"{name}_{key}" in ref:
            out[key] = chi2_p(ours[key], ref[f"{name}_{key}"])
    return out


class ShiftedCorners(MultiBlock3DMaskSampler):
    """Wrong on purpose: I-JEPA's ``randint(0, H - h)``, never the last row or column."""

    def _place(self, sizes, u):
        r, nb = len(sizes), self.num_blocks
        count = np.maximum(np.array(self.grid_size) - sizes, 1)[:, None, :]
        corner = np.floor(u.reshape(r, 3, nb).transpose(0, 2, 1) * count).astype(np.int64)
        return np.concatenate([corner, np.broadcast_to(sizes[:, None, :], (r, nb, 3))], axis=-1)


@pytest.fixture(scope="module")
def ours():
    small, large = vjepa_samplers(seed=2024)
    return {"small": tube_stats(small), "large": tube_stats(large)}


@pytest.mark.parametrize("name", ["small", "large"])
def test_distribution__multiblock3d_matches_the_reference(ours, ref, name):
    p = compare(ours[name], ref, name)
    assert min(p.values()) > ALPHA, p


@pytest.mark.parametrize("name", ["small", "large"])
def test_distribution__power_check_rejects_shifted_corners(ref, name):
    cfg = CONFIGS[name]
    wrong = ShiftedCorners(
        num_blocks=cfg["num_blocks"], spatial_scale=cfg["spatial_scale"], seed=2024
    )
    p = compare(tube_stats(wrong, n=3000), ref, name)
    assert p["target_freq"] < 1e-12 and p["top_hist"] < 1e-12 and p["left_hist"] < 1e-12, p
    assert p["size_hist"] > ALPHA  # the sizes are still right


def test_distribution__random_tube_matches_the_reference(ref):
    batch = RandomTubeMaskSampler(ratio=0.9, seed=2024).sample(SAMPLES)
    freq = np.bincount(batch.targets[batch.targets_valid], minlength=N)
    assert cells_p(freq, ref["random_target_freq"], SAMPLES, SAMPLES) > ALPHA
    # exact counts: 19 of 196 positions x 8 frames, as the reference
    assert np.array_equal(
        np.bincount(batch.context_valid.sum(1), minlength=N + 1), ref["random_context_hist"]
    )
    assert np.array_equal(
        np.bincount(batch.targets_valid.sum((1, 2)), minlength=N + 1), ref["random_target_hist"]
    )
    # power check: never keeping the first column is seen
    keys = np.random.default_rng(0).random((SAMPLES, 196))
    keys[:, ::14] += 1  # column 0 last in line: never among the 19 kept
    kept = np.argsort(keys, axis=1)[:, :19]
    wrong = np.full((SAMPLES, 196), SAMPLES > 0)
    np.put_along_axis(wrong, kept, False, axis=1)
    wrong_freq = np.tile(wrong.sum(0), T)
    assert cells_p(wrong_freq, ref["random_target_freq"], SAMPLES, SAMPLES) < 1e-12


def test_distribution__reference_draws_blocks_at_every_corner(ref):
    """V-JEPA's randint(0, H - h + 1) is right: the last corner row is drawn as often."""
    sizes = ref["small_size_hist"].sum(0)  # (h, w) marginal
    assert ref["small_top_hist"][H - sizes.nonzero()[0].min()] > 0
    assert (
        ref["large_target_freq"][:, -1, :].min() > 0
        and ref["large_target_freq"][:, :, -1].min() > 0
    )


# -- the reference's defects: its observations fail each property, ours pass ---------------


def frame_balance(frame_counts):
    """Smallest over largest per-frame patch count (1: every frame as often)."""
    frame_counts = np.asarray(frame_counts, float)
    return frame_counts.min() / frame_counts.max()


def frames_of(idx, valid):
    return np.bincount(idx[valid] // (H * W), minlength=T)


def test_defect_1__cut_to_the_batch_minimum_drops_the_last_frames(ref):
    """jepa#50: ``cm[:min_keep]`` keeps the lowest indices, the first frames."""
    # without the cut every frame is context equally often (tubes span all frames)
    assert frame_balance(ref["uncut_context_frames"]) == 1.0
    # the reference's cut at batch 8: the last frame keeps 14% of the first frame's context
    assert frame_balance(ref["cut_context_frames"]) < 0.2
    assert frame_balance(ref["cut_target_frames"]) < 0.25
    assert frame_balance(ref["maxkeep_context_frames"]) < 0.1  # max_keep=400 cuts the same way
    # ours: "truncate" (the batch minimum) and context_length (max_keep) keep random subsets
    small = VJEPA_MASK_CONFIGS[0]
    kw = {"num_blocks": small["num_blocks"], "spatial_scale": small["spatial_scale"], "seed": 1}
    truncate = MultiBlock3DMaskSampler(**kw, ragged="truncate")
    ctx_frames, tgt_frames = np.zeros(T), np.zeros(T)
    for start in range(0, 2000, 8):
        batch = truncate.sample(8, start=start)
        ctx_frames += frames_of(batch.context, batch.context_valid)
        tgt_frames += frames_of(batch.targets, batch.targets_valid)
    assert frame_balance(ctx_frames) > 0.97 and frame_balance(tgt_frames) > 0.97
    batch = MultiBlock3DMaskSampler(**kw, context_length=400).sample(4000)
    assert (batch.context_valid.sum(1) <= 400).all()
    assert frame_balance(frames_of(batch.context, batch.context_valid)) > 0.97


def test_defect_2__block_sizes_ignore_the_seed_and_depend_on_the_batch(ref):
    """Sizes from ``torch.Generator().manual_seed(iteration)``: one per batch."""
    # the reference: global seeds 0 and 1 give the same size sequence
    assert np.array_equal(ref["sizes_seed0"], ref["sizes_seed1"])
    # sample k's size is that of its batch: batch 4 and batch 8 disagree
    k = np.arange(len(ref["sizes_batch8"]) * 8)
    by4, by8 = ref["sizes_seed0"][k // 4], ref["sizes_batch8"][k // 8]
    assert (by4 != by8).any(axis=1).mean() > 0.5
    # ours: another seed, other sizes; a sample's size whatever its batch; sizes vary in a batch
    cfg = {"num_blocks": 2, "spatial_scale": (0.2, 0.8)}
    a, b = (MultiBlock3DMaskSampler(**cfg, seed=s) for s in (0, 1))
    ids = np.arange(64)
    sizes_a, sizes_b = a.blocks(ids)[:, 0, 3:], b.blocks(ids)[:, 0, 3:]
    assert (sizes_a != sizes_b).any(axis=1).mean() > 0.5
    assert np.array_equal(
        sizes_a, np.concatenate([a.blocks(ids[i : i + 8])[:, 0, 3:] for i in range(0, 64, 8)])
    )
    assert len(np.unique(sizes_a[:4], axis=0)) > 1


def test_defect_3__positions_depend_on_the_global_rng(ref):
    """The reference draws positions from the global torch RNG; ours from (seed, sample)."""
    assert ref["global_rng_same"] and not ref["global_rng_perturbed"]
    s = MultiBlock3DMaskSampler(seed=0)
    before = s.sample_at([0, 1]).context
    np.random.seed(123)  # noqa: NPY002 - the global RNG is the point
    np.random.random(17)  # noqa: NPY002
    assert np.array_equal(before, MultiBlock3DMaskSampler(seed=0).sample_at([0, 1]).context)


def test_defect_4__blocks_covering_the_clip_loop_forever(ref):
    """``while empty_context`` when the block size is the whole clip: every draw is empty."""
    # spatial, temporal scale and aspect 1: 200 of 200 draws empty, the call never returns
    assert ref["loop_empty_draws"] == 200 and ref["loop_timed_out"]
    # with V-JEPA's aspect range (0.75, 1.5), 20% of the iterations draw that size
    assert 150 < ref["loop_full_cover_batches"] < 250
    for aspect in ((1.0, 1.0), (0.75, 1.5)):
        with pytest.raises(ValueError, match=r"`min_context`.*\(8, 14, 14\).*never end"):
            MultiBlock3DMaskSampler(
                num_blocks=1,
                spatial_scale=(1.0, 1.0),
                temporal_scale=(1.0, 1.0),
                aspect_ratio=aspect,
            )


def test_defect_5__one_patch_masks_crash_on_squeeze(ref):
    """``.squeeze()`` of a (1, 1) index tensor is 0-d, and ``len()`` of it raises."""
    for key in ("squeeze_target_error", "squeeze_context_error"):
        assert str(ref[key]) == "TypeError: len() of a 0-d tensor"
    # a 1x1x1 target block on V-JEPA's grid
    tiny = MultiBlock3DMaskSampler(
        num_blocks=1, spatial_scale=(0.006, 0.006), temporal_scale=(0.1, 0.1), seed=0
    )
    batch = tiny.sample(4)
    assert batch.targets.shape == (4, 1, 1) and batch.targets_valid.all()
    # three 1x1 blocks on a 1x2x2 grid: one context patch when they are distinct
    three = MultiBlock3DMaskSampler(
        grid_size=(1, 2, 2), num_blocks=3, spatial_scale=(0.25, 0.25), seed=0
    )
    batch = three.sample(64)
    assert batch.context.shape == (64, 3) and (batch.context_valid.sum(1) == 1).any()


def test_defect_6__tiny_scales_give_empty_targets(ref):
    """keep = int(196 * 0.004) = 0: the reference's blocks are 0x0, every target empty."""
    assert ref["empty_block_pred_shape"].tolist() == [2, 0]
    batch = MultiBlock3DMaskSampler(num_blocks=1, spatial_scale=(0.004, 0.004), seed=0).sample(2)
    assert (batch.targets_valid.sum(-1) == T).all()  # a 1x1 tube through the 8 frames


# -- live: the observations above on the reference code ------------------------------------


@pytest.fixture(scope="module")
def reference():
    torch = pytest.importorskip("torch")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = os.environ.get("VJEPA_CODE", os.path.join(root, os.pardir, "shared", "anchors", "vjepa"))
    path = os.path.join(code, "src", "masks", "multiblock3d.py")
    if not os.path.isfile(path):
        pytest.skip(f"needs the V-JEPA code in {code} (set VJEPA_CODE)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("vjepa_multiblock3d_live", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def generator(spatial_scale, num_blocks, temporal_scale=(1.0, 1.0), aspect=(0.75, 1.5)):
        return module._MaskGenerator(
            crop_size=(16 * H, 16 * W),
            num_frames=2 * T,
            spatial_patch_size=16,
            temporal_patch_size=2,
            spatial_pred_mask_scale=spatial_scale,
            temporal_pred_mask_scale=temporal_scale,
            aspect_ratio=aspect,
            npred=num_blocks,
        )

    return torch, generator


def test_live__reference_cut_drops_the_last_frames(reference):
    torch, generator = reference
    torch.manual_seed(0)
    gen = generator((0.15, 0.15), 8)
    frames = np.zeros(T)
    for _ in range(40):
        enc, _ = gen(8)
        frames += np.bincount(enc.numpy().reshape(-1) // (H * W), minlength=T)
    assert frame_balance(frames) < 0.3


def test_live__reference_sizes_ignore_the_seed(reference):
    torch, generator = reference
    masks = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        gen = generator((0.2, 0.8), 1)
        masks.append([gen(4)[1].shape[1] for _ in range(10)])  # target count = t h w
    assert masks[0] == masks[1]


def test_live__reference_loop_never_leaves_empty_draws(reference):
    torch, generator = reference
    gen = generator((1.0, 1.0), 1, aspect=(1.0, 1.0))
    size = gen._sample_block_size(torch.Generator(), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0))
    assert size == (T, H, W)
    assert all(int(gen._sample_block_mask(size).sum()) == 0 for _ in range(20))


def test_live__reference_one_patch_target_crashes(reference):
    _, generator = reference
    gen = generator((0.006, 0.006), 1, temporal_scale=(0.1, 0.1))
    with pytest.raises(TypeError, match="0-d tensor"):
        gen(1)
