"""benchmarks/paper_claims_official.py: the official I-JEPA code as arms of paper_claims."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
_env = {k: os.environ.get(k) for k in ("KERAS_BACKEND", "OPENBLAS_NUM_THREADS")}
claims = pytest.importorskip("paper_claims")  # sets both when unset: undone here
for _key, _value in _env.items():
    if _value is None:
        os.environ.pop(_key, None)
official = pytest.importorskip("paper_claims_official")
training = pytest.importorskip("paper_claims_train")
_official = pytest.importorskip("_official")

RECIPE = training.RECIPE


@pytest.fixture(scope="module")
def code():
    reason = _official.missing_reason()  # torch and the official code, as the benchmark finds it
    if reason:
        pytest.skip(reason)
    return _official.official_code_dir()


@pytest.fixture
def keras_jax():
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        pytest.skip("the benchmark runs on jax")
    return pytest.importorskip("keras")


def test_official_collator__min_keep_bounds_the_targets_too(code):
    """Official bug: ``MaskCollator`` redraws a *target* block until it has more than
    ``min_keep`` patches; on a 7x7 grid with targets of scale 0.15-0.2 (6-12 patches)
    ``min_keep=10`` loops forever. The arm's ``min_keep`` is the largest that ends."""
    sampler = official.OfficialMaskSampler(RECIPE, seed=0, anchors=code)
    areas = {
        sampler._block_area(scale, ratio)
        for scale in np.linspace(*RECIPE["target_scale"], 41)
        for ratio in np.linspace(0.75, 1.5, 41)
    }
    assert min(areas) <= RECIPE["min_context"]  # the recipe's 10 would never accept some
    assert min(areas) == official.OFFICIAL_MIN_KEEP + 1  # 5: every target has more
    assert sampler.collator.min_keep == official.OFFICIAL_MIN_KEEP


def test_official_mask_sampler__fixed_shapes_the_cut_valid_and_reproducible(code):
    sampler = official.OfficialMaskSampler(RECIPE, seed=1, anchors=code)
    batch = sampler.sample(16, start=32)
    assert batch.context.shape == (16, 36)  # the collator keeps blocks under 7x7: 6x6
    assert batch.targets.shape == (16, 4, sampler.target_length)
    kc = batch.context_valid.sum(axis=1)
    assert (kc == kc[0]).all() and kc[0] > official.OFFICIAL_MIN_KEEP  # cut to the batch min
    kt = batch.targets_valid.sum(axis=2)
    assert (kt == kt[0, 0]).all()  # one block size per batch, every block cut to it
    # indices on the 7x7 grid; padding is index 0 (the collator may let a context overlap
    # a target: it relaxes the no-overlap rule after 20 failed draws)
    assert batch.context.max() < 49 and batch.targets.max() < 49
    assert (batch.context[~batch.context_valid] == 0).all()
    again = sampler.sample(16, start=32)
    np.testing.assert_array_equal(batch.context, again.context)
    np.testing.assert_array_equal(batch.targets, again.targets)
    assert not np.array_equal(sampler.sample(16, start=48).context, batch.context)


def test_build_official__the_recipe_in_the_official_modules(code):
    step = official.build_official(RECIPE, seed=0, planned_steps=100, anchors=code)
    encoder = step.encoder
    assert encoder.patch_embed.proj.in_channels == 1 and encoder.embed_dim == 96
    assert len(encoder.blocks) == RECIPE["depth"] and encoder.num_heads == RECIPE["num_heads"]
    # fan-in init of the patch kernel (4x4x1 -> std 0.25), official init elsewhere (0.02)
    assert float(encoder.patch_embed.proj.weight.std()) == pytest.approx(0.25, rel=0.1)
    assert float(encoder.blocks[0].mlp.fc1.weight.std()) == pytest.approx(0.02, rel=0.1)
    lr, wd = step.scheduler, step.wd_scheduler  # the recipe's schedules over 100 steps
    assert (lr.start_lr, lr.ref_lr, lr.final_lr, lr.warmup_steps) == (2e-4, 1e-3, 1e-6, 10)
    assert (wd.ref_wd, wd.final_wd, wd.T_max) == (0.04, 0.4, 100)
    assert [g.get("WD_exclude", False) for g in step.optimizer.param_groups] == [0, 0, 1, 1]
    assert step.loss is step.F.mse_loss  # the recipe's "l2"
    with pytest.raises(ValueError, match="predictor_heads"):
        official.build_official({**RECIPE, "predictor_heads": 6}, 0, 10, anchors=code)


def test_train_official__equal_steps_stop_and_the_keras_view_is_the_target_encoder(code, keras_jax):
    recipe = training.QUICK_RECIPE
    images = np.random.default_rng(0).random((96, 28, 28, 1), dtype=np.float32)
    seen = []
    encoder, run = official.train_official(
        "official_multiblock",
        recipe,
        0,
        images,
        budget_seconds=float("inf"),
        planned_steps=8,
        max_steps=6,
        chunk=2,
        snapshot_steps={4},
        on_snapshot=lambda enc, step, seconds: seen.append(step) or {"step": step},
        anchors=code,
    )
    assert run["steps"] == 6 and run["planned_steps"] == 8 and seen == [4]
    assert run["stopped_by"] == "planned steps" and len(run["losses"]) == 3
    assert run["model"] == "official" and run["views_per_step"] == recipe["batch_size"]
    import torch

    step = official.build_official(recipe, 0, 8, anchors=code)
    view = official.KerasView(recipe, 0)(step)
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = step.target_encoder(torch.as_tensor(x)).numpy()
    got = np.asarray(view(np.transpose(x, (0, 2, 3, 1))))
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert encoder.embed_dim == recipe["embed_dim"]


def test_missing_code__the_official_arms_are_skipped_with_the_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(claims.OFFICIAL_CODE_ENV, str(tmp_path))  # main() sets it: restored after
    argv = ["--quick", "--arms", "official_multiblock", "--official-code", str(tmp_path)]
    with pytest.raises(SystemExit, match="no arm left to train"):
        claims.main([*argv, "--output-dir", str(tmp_path / "out")])
    assert "skipping official_multiblock" in capsys.readouterr().out


def test_equal_steps_arms__need_the_library_run_of_the_same_seed():
    runs = [{"arm": "ijepa_multiblock", "seed": 0, "steps": 489}]
    assert claims._reference_steps(runs, 0) == 489
    with pytest.raises(SystemExit, match="seed 1"):
        claims._reference_steps(runs, 1)
