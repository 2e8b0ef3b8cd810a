"""backends/torch.py VJEPAMaskCollator / VJEPARandomTubeCollator: drop-ins for V-JEPA's collators.

The parity tests run V-JEPA's own collators (facebookresearch/jepa
``src/masks/multiblock3d.py``, ``random_tube.py``, ``utils.py``) from
``$VJEPA_CODE``, else ``$JEPA_ANCHORS/vjepa``, else ``../shared/anchors/vjepa``
next to the repository, and skip without them. The files are loaded by path
under private module names (V-JEPA's package is called ``src``, like
I-JEPA's).
"""

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jepa_components.backends.torch import (  # noqa: E402
    VJEPAMaskCollator,
    VJEPARandomTubeCollator,
)
from jepa_components.masks import VJEPA_MASK_CONFIGS  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VJEPA_CODE = os.environ.get("VJEPA_CODE") or os.path.join(
    os.environ.get("JEPA_ANCHORS") or os.path.join(os.path.dirname(REPO), "shared", "anchors"),
    "vjepa",
)

# configs/pretrain/vitl16.yaml's two mask configurations
PAPER = [dict(config) for config in VJEPA_MASK_CONFIGS]
# one 2x2 block through all frames of a 4x4 grid: the same counts for every sample
FIXED = dict(aspect_ratio=(1.0, 1.0), num_blocks=1, spatial_scale=(0.25, 0.25),
             temporal_scale=(1.0, 1.0))  # fmt: skip
TINY = dict(crop_size=64, num_frames=4, patch_size=16, tubelet_size=2)  # grid (2, 4, 4)


def reference(name):
    """A V-JEPA file (``"multiblock3d"``, ``"random_tube"``, ``"utils"``) as a module, or skip."""
    path = os.path.join(VJEPA_CODE, "src", "masks", f"{name}.py")
    if not os.path.isfile(path):
        pytest.skip(f"needs V-JEPA's code in {VJEPA_CODE} (set VJEPA_CODE or JEPA_ANCHORS)")
    spec = importlib.util.spec_from_file_location(f"_vjepa_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clips(n, frames=4, side=64):
    return [(torch.full((3, frames, side, side), float(i)), i) for i in range(n)]


def check_masks(masks_enc, masks_pred, batch_size, num_patches):
    for enc, pred in zip(masks_enc, masks_pred):
        assert enc.dtype == pred.dtype == torch.int64
        assert enc.ndim == pred.ndim == 2 and enc.shape[0] == pred.shape[0] == batch_size
        assert int(enc.min()) >= 0 and int(max(enc.max(), pred.max())) < num_patches
        for row in range(batch_size):
            context, target = enc[row].tolist(), pred[row].tolist()
            assert context == sorted(set(context)) and target == sorted(set(target))
            assert not set(context) & set(target)


def test_vjepa_collator__structure_and_shapes_equal_the_reference():
    ref = reference("multiblock3d")
    cfgs = [FIXED, *PAPER]
    batch = clips(4)
    torch.manual_seed(0)
    theirs = ref.MaskCollator(cfgs, **TINY)(batch)
    ours = VJEPAMaskCollator(cfgs, **TINY, seed=0)(batch)
    assert type(ours) is type(theirs) is tuple and len(ours) == len(theirs) == 3
    (clips_ours, labels_ours), (clips_ref, labels_ref) = ours[0], theirs[0]
    assert torch.equal(clips_ours, clips_ref) and torch.equal(labels_ours, labels_ref)
    for ours_masks, ref_masks in zip(ours[1:], theirs[1:]):
        assert isinstance(ours_masks, list) and len(ours_masks) == len(ref_masks) == 3
        for a, b in zip(ours_masks, ref_masks):
            assert a.dtype == b.dtype == torch.int64 and a.ndim == b.ndim == 2
            assert a.shape[0] == b.shape[0] == 4
    # a configuration whose counts do not depend on the draw: identical shapes
    assert ours[1][0].shape == theirs[1][0].shape == (4, 24)
    assert ours[2][0].shape == theirs[2][0].shape == (4, 8)
    check_masks(ours[1], ours[2], 4, 32)
    # the paper's configurations: context and target partition the grid before the cut
    for enc, pred in zip(ours[1][1:], ours[2][1:]):
        assert enc.shape[1] + pred.shape[1] <= 32


def test_random_tube_collator__shapes_equal_the_reference():
    ref = reference("random_tube")
    cfgs = [{"ratio": 0.75}, {"ratio": 0.5}]
    batch = clips(3)
    theirs = ref.MaskCollator(cfgs, **TINY)(batch)
    ours = VJEPARandomTubeCollator(cfgs, **TINY, seed=0)(batch)
    assert [m.shape for m in ours[1] + ours[2]] == [m.shape for m in theirs[1] + theirs[2]]
    assert [tuple(m.shape) for m in ours[1] + ours[2]] == [(3, 8), (3, 16), (3, 24), (3, 16)]
    check_masks(ours[1], ours[2], 3, 32)
    for enc in ours[1]:  # tubes: the same spatial positions in both time steps
        for row in enc.tolist():
            first, second = [i for i in row if i < 16], [i - 16 for i in row if i >= 16]
            assert first == second


def test_vjepa_collator__reference_default_patch_size_fails_ours_takes_int_or_pair():
    ref = reference("multiblock3d")
    with pytest.raises(TypeError):  # crop_size[0] // (16, 16)
        ref.MaskCollator(PAPER)
    assert VJEPAMaskCollator(PAPER, seed=0).grid_size == (8, 14, 14)
    a = VJEPAMaskCollator(PAPER, patch_size=16, seed=0)(clips(2, 1, 1))
    b = VJEPAMaskCollator(PAPER, patch_size=(16, 16), seed=0)(clips(2, 1, 1))
    assert all(torch.equal(x, y) for x, y in zip(a[1] + a[2], b[1] + b[2]))
    assert VJEPAMaskCollator(PAPER, crop_size=(64, 96), patch_size=(16, 32), seed=0).grid_size == (
        8,
        4,
        3,
    )


def test_vjepa_collator__cut_keeps_a_random_subset_later_frames_included():
    from jepa_components.masks import vjepa_samplers

    kwargs = dict(crop_size=96, num_frames=8, patch_size=16, tubelet_size=2)  # grid (4, 6, 6)
    collator = VJEPAMaskCollator(PAPER[:1], **kwargs, seed=5)
    enc = collator(clips(16, 1, 1))[1][0]
    full = vjepa_samplers((4, 6, 6), configs=PAPER[:1], seed=5, ragged="pad")[0]
    uncut = full.sample_at(np.arange(16))
    counts = uncut.context_valid.sum(axis=1)
    assert enc.shape[1] == counts.min() < counts.max()  # cut to the batch minimum
    beyond_prefix = 0
    for row in range(16):
        kept = enc[row].numpy()
        valid = uncut.context[row][uncut.context_valid[row]]
        assert set(kept) <= set(valid)
        if counts[row] > enc.shape[1]:
            # the reference keeps valid[:k], the first patches in time-major order
            beyond_prefix += int(kept.max() > valid[enc.shape[1] - 1])
        assert kept.max() >= 3 * 36  # the last time step is in every context
    assert beyond_prefix > 0


def test_vjepa_collator__max_keep_caps_the_context_with_a_random_subset():
    from jepa_components.masks import vjepa_samplers

    capped = [{**PAPER[1], "max_keep": 3}]
    enc = VJEPAMaskCollator(capped, **TINY, seed=1)(clips(6, 1, 1))[1][0]
    assert tuple(enc.shape) == (6, 3)
    full = vjepa_samplers((2, 4, 4), configs=PAPER[1:], seed=1, ragged="pad")[0]
    uncut = full.sample_at(np.arange(6))
    for row in range(6):
        assert set(enc[row].tolist()) <= set(uncut.context[row][uncut.context_valid[row]].tolist())
    # V-JEPA 2's full_complement: the target is every patch the cut context left out
    capped = [{**PAPER[0], "max_keep": 5, "full_complement": True}]
    _, (enc,), (pred,) = VJEPAMaskCollator(capped, **TINY, seed=1)(clips(6, 1, 1))
    assert tuple(enc.shape) == (6, 5) and tuple(pred.shape) == (6, 27)
    assert all(sorted(enc[r].tolist() + pred[r].tolist()) == list(range(32)) for r in range(6))


def _loader(collator, num_workers, persistent=False, size=9):
    data = [torch.full((1,), float(i)) for i in range(size)]
    return torch.utils.data.DataLoader(
        data,
        batch_size=2,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collator,
        persistent_workers=persistent,
        multiprocessing_context="fork" if num_workers else None,
    )


def _epochs(collator, loader, epochs, set_epoch=False):
    out = []
    for epoch in range(epochs):
        if set_epoch:
            collator.set_epoch(epoch)
        for items, enc, pred in loader:
            out.append((items.flatten().tolist(), [m.tolist() for m in enc + pred]))
    return out


def test_vjepa_collator__same_masks_with_0_or_2_workers_over_epochs():
    # 9 clips in batches of 2: 5 batches per epoch, not a multiple of 2 workers
    single = _epochs(c := VJEPAMaskCollator(PAPER, **TINY, seed=3), _loader(c, 0), 2)
    multi = _epochs(c := VJEPAMaskCollator(PAPER, **TINY, seed=3), _loader(c, 2), 2)
    assert len(single) == len(multi) == 10 and single == multi
    assert c.batches_made == 10  # the workers' batches were counted in shared memory
    assert [m for _, m in single[:5]] != [m for _, m in single[5:]]  # a new epoch, new masks
    persistent = _epochs(
        c := VJEPAMaskCollator(PAPER, **TINY, seed=3), _loader(c, 2, persistent=True), 2, True
    )
    assert persistent == single
    # seed=None: drawn once at construction, shared by the workers
    c = VJEPAMaskCollator(PAPER, **TINY)
    d = VJEPAMaskCollator(PAPER, **TINY, seed=c.seed)
    assert _epochs(c, _loader(c, 2, size=4), 1) == _epochs(d, _loader(d, 0, size=4), 1)


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_vjepa_collators__seeded_streams_step_and_ranks():
    batch = clips(3, 1, 1)
    for cls, cfgs in [(VJEPAMaskCollator, PAPER), (VJEPARandomTubeCollator, [{"ratio": 0.75}])]:
        first, again = cls(cfgs, **TINY, seed=7), cls(cfgs, **TINY, seed=7)
        a = [first(batch)[1:] for _ in range(3)]
        b = [again(batch)[1:] for _ in range(3)]
        assert all(_same(x[0] + x[1], y[0] + y[1]) for x, y in zip(a, b))
        assert not _same(a[0][0] + a[0][1], a[1][0] + a[1][1])  # a new batch, new masks
        resumed = cls(cfgs, **TINY, seed=7)
        assert [resumed.step(), resumed.step()] == [0, 1]
        enc, pred = resumed(batch)[1:]
        assert _same(enc + pred, a[2][0] + a[2][1])
        assert resumed.batches_made == 3
        other_rank = cls(cfgs, **TINY, seed=7, rank=1)(batch)[1:]
        assert not _same(other_rank[0], a[0][0])
        assert cls(cfgs, **TINY).seed != cls(cfgs, **TINY).seed  # fresh entropy, recorded


def test_vjepa_collators__validate_arguments():
    cases = [
        (dict(cfgs_mask=[]), "cfgs_mask"),
        (dict(cfgs_mask="mask"), "cfgs_mask"),
        (dict(cfgs_mask=[1]), "cfgs_mask"),
        (dict(crop_size=0), "crop_size"),
        (dict(crop_size=(64, 64, 3)), "crop_size"),
        (dict(patch_size=0), "patch_size"),
        (dict(crop_size=16, patch_size=32), "patch_size"),
        (dict(num_frames=0), "num_frames"),
        (dict(num_frames=2, tubelet_size=4), "tubelet_size"),
        (dict(seed=-1), "seed"),
        (dict(rank=5000), "rank"),
    ]
    for kwargs, match in cases:
        kwargs = {"cfgs_mask": PAPER, **kwargs}
        with pytest.raises(ValueError, match=rf"Invalid value for argument `{match}`"):
            VJEPAMaskCollator(**kwargs)
    with pytest.raises(ValueError, match=r"argument `cfgs_mask\[0\]`.*missing: \['spatial_scale'"):
        VJEPAMaskCollator([{k: v for k, v in PAPER[0].items() if k != "spatial_scale"}])
    with pytest.raises(ValueError, match=r"argument `cfgs_mask\[1\]\['max_keep'\]`"):
        VJEPAMaskCollator([PAPER[0], {**PAPER[1], "max_keep": 0}])
    with pytest.raises(ValueError, match=r"cfgs_mask\[1\].*`ratio`"):
        VJEPARandomTubeCollator([{"ratio": 0.5}, {"ratio": 1.0}])
    with pytest.raises(ValueError, match=r"argument `cfgs_mask\[1\]`. Expected a dict with"):
        VJEPARandomTubeCollator([{"ratio": 0.5}, {"ratio": 0.5, "num_blocks": 2}])
    with pytest.raises(ValueError, match="Invalid value for argument `epoch`"):
        VJEPAMaskCollator(PAPER).set_epoch(-1)
    with pytest.raises(ValueError, match="takes batches of 1 to"):
        VJEPAMaskCollator(PAPER)([])


def test_vjepa_collator__one_vjepa_style_step_with_the_reference_apply_masks():
    apply_masks = reference("utils").apply_masks
    torch.manual_seed(0)
    collator = VJEPAMaskCollator(PAPER, **TINY, seed=0)
    loader = torch.utils.data.DataLoader(
        [torch.randn(3, 4, 64, 64) for _ in range(4)], batch_size=4, collate_fn=collator
    )
    embed = torch.nn.Conv3d(3, 16, kernel_size=(2, 16, 16), stride=(2, 16, 16))
    position = torch.nn.Parameter(torch.zeros(1, 32, 16))
    head = torch.nn.Linear(16, 16)
    optimizer = torch.optim.AdamW([*embed.parameters(), position, *head.parameters()], lr=1e-2)
    before = [p.detach().clone() for p in embed.parameters()]
    for clips_batch, masks_enc, masks_pred in loader:
        tokens = embed(clips_batch).flatten(2).transpose(1, 2) + position  # (B, T*H*W, D)
        loss = 0.0
        for enc, pred in zip(masks_enc, masks_pred):  # V-JEPA: one loss term per configuration
            with torch.no_grad():
                h = apply_masks(tokens.detach(), [pred])
            z = apply_masks(tokens, [enc]).mean(dim=1, keepdim=True)
            z = head(z + apply_masks(position.expand(len(tokens), -1, -1), [pred]))
            assert z.shape == h.shape == (4, pred.shape[1], 16)
            loss = loss + torch.mean(torch.abs(z - h))
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, embed.parameters()))
