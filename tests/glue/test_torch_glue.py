"""backends/torch.py: masks keyed by example, identical under any number of workers."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jepa_components.backends.torch import IndexedDataset, MaskCollator, to_official_masks  # noqa: E402
from jepa_components.masks import MultiBlockMaskSampler  # noqa: E402


def loader(num_workers, batch_size=4, shuffle=False, seed=0):
    images = torch.arange(12, dtype=torch.float32).reshape(12, 1, 1, 1).expand(12, 1, 8, 8)
    data = IndexedDataset(torch.utils.data.TensorDataset(images, torch.arange(12)))
    collate = MaskCollator(
        MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=seed), len(data)
    )
    gen = torch.Generator().manual_seed(0)
    # spawn: forking a process that has JAX loaded (other tests) can deadlock
    context = "spawn" if num_workers else None
    return collate, torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate,
        generator=gen,
        multiprocessing_context=context,
    )


def by_example(batches):
    """Map example id (encoded in the image) -> its context indices."""
    out = {}
    for b in batches:
        for img, ctx, valid in zip(b["images"], b["context"], b["context_valid"]):
            out[int(img[0, 0, 0])] = ctx[valid].tolist()
    return out


def test_masks_do_not_depend_on_workers_or_shuffling():
    _, single = loader(0)
    _, multi = loader(2, batch_size=3, shuffle=True)
    a, b = by_example(single), by_example(multi)
    assert a == b and len(a) == 12
    # and they are not all the same mask (the shared-RNG bug repeats masks per worker)
    assert len({tuple(v) for v in a.values()}) > 6


def test_set_epoch_gives_fresh_masks():
    collate, dl = loader(0)
    first = by_example(dl)
    collate.set_epoch(1)
    second = by_example(dl)
    assert first != second


def test_batch_dtypes_and_keys():
    _, dl = loader(0)
    batch = next(iter(dl))
    assert batch["context"].dtype == torch.int64 and batch["context_valid"].dtype == torch.bool
    assert batch["images"].shape == (4, 1, 8, 8)


def test_to_official_masks_needs_unpadded_batches():
    cut = MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0, ragged="truncate").sample(
        4
    )
    enc, pred = to_official_masks(cut)
    assert len(enc) == 1 and len(pred) == 4 and pred[0].dtype == torch.int64
    assert np.array_equal(pred[2].numpy(), cut.targets[:, 2])
    assert np.array_equal(enc[0].numpy(), cut.context)
    one_padded = cut.context_valid.copy()
    one_padded[1, -1] = False
    with pytest.raises(ValueError, match="truncate"):
        to_official_masks(dataclasses.replace(cut, context_valid=one_padded))
    one_padded = cut.targets_valid.copy()
    one_padded[0, 3, 0] = False
    with pytest.raises(ValueError, match="truncate"):
        to_official_masks(dataclasses.replace(cut, targets_valid=one_padded))


def test_collator_rejects_unindexed_items():
    collate = MaskCollator(MultiBlockMaskSampler(grid_size=(6, 6), min_context=2, seed=0), 3)
    with pytest.raises(ValueError, match="IndexedDataset"):
        collate([torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)])


# ------------------------------------------------------------ OfficialMaskCollator
# The paper's settings (official configs/in1k_vith14_ep300.yaml) on a 4 x 4 grid.
PAPER = dict(
    input_size=16,
    patch_size=4,
    enc_mask_scale=(0.85, 1.0),
    pred_mask_scale=(0.15, 0.2),
    aspect_ratio=(0.75, 1.5),
    nenc=1,
    npred=4,
    min_keep=3,
    allow_overlap=False,
)


def official_loader(collator, num_workers, persistent=False, size=9, batch_size=2):
    images = torch.arange(size, dtype=torch.float32).reshape(size, 1, 1, 1).expand(size, 3, 16, 16)
    data = torch.utils.data.TensorDataset(images, torch.arange(size))
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        num_workers=num_workers,
        collate_fn=collator,
        persistent_workers=persistent,
        multiprocessing_context="spawn" if num_workers else None,
    )


def run_epochs(collator, loader, epochs, set_epoch=False):
    """[(labels, masks_enc, masks_pred)] per batch, as lists (comparable)."""
    out = []
    for epoch in range(epochs):
        if set_epoch:
            collator.set_epoch(epoch)
        for (_, labels), masks_enc, masks_pred in loader:
            out.append(
                (labels.tolist(), [m.tolist() for m in masks_enc], [m.tolist() for m in masks_pred])
            )
    return out


def masks_only(batches):
    return [(enc, pred) for _, enc, pred in batches]


def test_official_collator__returns_official_structure():
    from jepa_components.backends.torch import OfficialMaskCollator

    collator = OfficialMaskCollator(**PAPER, seed=0)
    batch = [(torch.full((3, 16, 16), float(i)), i) for i in range(5)]
    (images, labels), masks_enc, masks_pred = collator(batch)
    assert images.shape == (5, 3, 16, 16) and labels.tolist() == [0, 1, 2, 3, 4]
    assert isinstance(masks_enc, list) and isinstance(masks_pred, list)
    assert len(masks_enc) == 1 and len(masks_pred) == 4
    for mask in masks_enc + masks_pred:
        assert mask.dtype == torch.int64 and mask.ndim == 2 and mask.shape[0] == 5
        assert int(mask.min()) >= 0 and int(mask.max()) < 16
    # more than min_keep context patches, none of them in a target (allow_overlap=False)
    assert masks_enc[0].shape[1] > PAPER["min_keep"]
    for row in range(5):
        context = set(masks_enc[0][row].tolist())
        assert len(context) == masks_enc[0].shape[1]
        assert all(not context & set(m[row].tolist()) for m in masks_pred)


def test_official_collator__seeded_stream_and_step():
    from jepa_components.backends.torch import OfficialMaskCollator

    batch = [(torch.zeros(3, 16, 16), 0)] * 4
    first, again = OfficialMaskCollator(**PAPER, seed=1), OfficialMaskCollator(**PAPER, seed=1)
    a = [first(batch)[1:] for _ in range(3)]
    b = [again(batch)[1:] for _ in range(3)]
    assert all(
        torch.equal(x, y) for (ea, pa), (eb, pb) in zip(a, b) for x, y in zip(ea + pa, eb + pb)
    )
    assert not torch.equal(a[0][0][0], a[1][0][0]) or not torch.equal(a[0][1][0], a[1][1][0])
    # resuming: step() skips batch numbers, as the official train.py expects
    resumed = OfficialMaskCollator(**PAPER, seed=1)
    assert [resumed.step(), resumed.step()] == [0, 1]
    enc, pred = resumed(batch)[1:]
    assert all(torch.equal(x, y) for x, y in zip(enc + pred, a[2][0] + a[2][1]))
    assert resumed.batches_made == 3
    other = OfficialMaskCollator(**PAPER, seed=2)(batch)[1:]
    assert not all(torch.equal(x, y) for x, y in zip(other[0] + other[1], a[0][0] + a[0][1]))


def test_official_collator__ranks_draw_different_masks():
    from jepa_components.backends.torch import OfficialMaskCollator

    batch = [(torch.zeros(3, 16, 16), 0)] * 8
    rank0 = OfficialMaskCollator(**PAPER, seed=0, rank=0)(batch)[2]
    rank1 = OfficialMaskCollator(**PAPER, seed=0, rank=1)(batch)[2]
    assert not all(torch.equal(x, y) for x, y in zip(rank0, rank1))


def test_official_collator__same_masks_with_0_or_2_workers_over_epochs():
    from jepa_components.backends.torch import OfficialMaskCollator

    # 9 images in batches of 2: 5 batches per epoch, not a multiple of 2 workers
    single = run_epochs(c := OfficialMaskCollator(**PAPER, seed=3), official_loader(c, 0), 2)
    multi = run_epochs(c := OfficialMaskCollator(**PAPER, seed=3), official_loader(c, 2), 2)
    assert len(single) == len(multi) == 10
    assert [labels for labels, *_ in single] == [labels for labels, *_ in multi]
    assert masks_only(single) == masks_only(multi)
    assert c.batches_made == 10  # the workers' batches were counted in shared memory
    assert masks_only(single[:5]) != masks_only(single[5:])  # the second epoch is new
    # persistent workers keep their state between epochs: set_epoch marks the pass
    persistent = run_epochs(
        c := OfficialMaskCollator(**PAPER, seed=3),
        official_loader(c, 2, persistent=True),
        2,
        set_epoch=True,
    )
    assert masks_only(persistent) == masks_only(single)


def test_official_collator__validates_arguments():
    from jepa_components.backends.torch import OfficialMaskCollator

    cases = [
        (dict(input_size=0), "input_size"),
        (dict(input_size=(16, 16, 3)), "input_size"),
        (dict(patch_size=0), "patch_size"),
        (dict(input_size=16, patch_size=32), "patch_size"),
        (dict(enc_mask_scale=(0.9, 0.8)), "enc_mask_scale"),
        (dict(pred_mask_scale=(0.2, 1.5)), "pred_mask_scale"),
        (dict(aspect_ratio=(0.0, 2.0)), "aspect_ratio"),
        (dict(nenc=2), r"nenc.*Expected 1"),
        (dict(npred=0), "npred"),
        (dict(min_keep=-1), "min_keep"),
        (dict(allow_overlap="no"), "allow_overlap"),
        (dict(seed=None), "seed"),
        (dict(seed=-3), "seed"),
        (dict(rank=5000), "rank"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=rf"Invalid value for argument `{match}"):
            OfficialMaskCollator(**kwargs)
    # a min_keep that no context can satisfy is refused up front, not a hang
    with pytest.raises(ValueError, match=r"Invalid value for argument `min_keep`.*leaves at most"):
        OfficialMaskCollator(**{**PAPER, "min_keep": 14})
    with pytest.raises(ValueError, match="Invalid value for argument `epoch`"):
        OfficialMaskCollator().set_epoch(-1)


def test_official_collator__one_official_training_step(official_code):
    import copy

    import torch.nn.functional as F

    from jepa_components.backends.torch import OfficialMaskCollator

    vit = official_code("src.models.vision_transformer")
    apply_masks = official_code("src.masks.utils").apply_masks
    repeat_interleave_batch = official_code("src.utils.tensors").repeat_interleave_batch
    torch.manual_seed(0)
    encoder = vit.VisionTransformer(img_size=[16], patch_size=4, embed_dim=32, depth=1, num_heads=2)
    predictor = vit.vit_predictor(
        num_patches=16, embed_dim=32, predictor_embed_dim=16, depth=1, num_heads=2
    )
    target_encoder = copy.deepcopy(encoder)
    collator = OfficialMaskCollator(**PAPER, seed=0)
    loader = official_loader(collator, 0, size=4, batch_size=4)
    optimizer = torch.optim.AdamW(
        list(encoder.parameters()) + list(predictor.parameters()), lr=1e-3
    )
    before = [p.detach().clone() for p in encoder.parameters()]
    # the body of the official train.py step, unchanged
    for udata, masks_enc, masks_pred in loader:
        imgs = udata[0]
        with torch.no_grad():
            h = target_encoder(imgs)
            h = F.layer_norm(h, (h.size(-1),))
            B = len(h)
            h = apply_masks(h, masks_pred)
            h = repeat_interleave_batch(h, B, repeat=len(masks_enc))
        z = encoder(imgs, masks_enc)
        z = predictor(z, masks_enc, masks_pred)
        loss = F.smooth_l1_loss(z, h)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            for param_q, param_k in zip(encoder.parameters(), target_encoder.parameters()):
                param_k.data.mul_(0.996).add_((1.0 - 0.996) * param_q.detach().data)
    assert z.shape == h.shape == (4 * 4, masks_pred[0].shape[1], 32)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, encoder.parameters()))


def test_official_collator__new_pass_noticed_when_loader_seeds_repeat():
    from jepa_components.backends.torch import OfficialMaskCollator

    def two_passes(num_workers):
        collator = OfficialMaskCollator(**PAPER, seed=4)
        # a loader rebuilt with the same generator seed: both passes share one base seed
        return masks_only(
            run_epochs(collator, official_loader(collator, num_workers), 1)
            + run_epochs(collator, official_loader(collator, num_workers), 1)
        )

    single, multi = two_passes(0), two_passes(2)
    assert single == multi and single[:5] != single[5:]


def test_mask_collator__refuses_a_sampler_off_the_models_grid():
    from jepa_components.backends.torch import check_sampler_grid

    wrong = MultiBlockMaskSampler(grid_size=(2, 8), min_context=2)
    with pytest.raises(
        ValueError,
        match=r"Expected a sampler on the encoder's \(4, 4\) patch "
        r"grid. Received: grid_size=\(2, 8\)",
    ):
        MaskCollator(wrong, 10, grid_size=(4, 4))
    MaskCollator(MultiBlockMaskSampler(grid_size=(4, 4), min_context=2), 10, grid_size=(4, 4))
    MaskCollator(wrong, 10)  # no grid given: nothing checked
    with pytest.raises(ValueError, match="Invalid value for argument `grid_size`"):
        check_sampler_grid(wrong, "4x4")
