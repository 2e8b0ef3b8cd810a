"""benchmarks/paper_claims.py: --arms, --merge, the new arms' snapshots, and their models."""

import json
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
training = pytest.importorskip("paper_claims_train")


def test_parse_args__arms_in_benchmark_order_and_unknown_refused(capsys):
    args = claims.parse_args(["--arms", "ijepa_sigreg_online, lejepa"])
    assert args.arms == ["lejepa", "ijepa_sigreg_online"]
    assert claims.parse_args([]).arms == list(claims.ALL_ARMS)
    assert "ijepa_block" not in claims.parse_args(["--no-masks"]).arms
    with pytest.raises(SystemExit):
        claims.parse_args(["--arms", "lejepa,dino"])
    assert "unknown ['dino']" in capsys.readouterr().err


def test_parse_args__quick_never_writes_the_committed_results_and_merge_default(tmp_path):
    assert claims.parse_args(["--quick"]).output_dir == claims.QUICK_OUTPUT
    assert claims.parse_args([]).output_dir == claims.DEFAULT_OUTPUT
    args = claims.parse_args(["--output-dir", str(tmp_path), "--merge"])
    assert args.merge == os.path.join(str(tmp_path), "paper_claims.json")
    assert claims.parse_args(["--merge", "x.json"]).merge == "x.json"
    assert claims.parse_args([]).merge is None


def test_snapshot_steps__eight_points_for_the_new_arms():
    dense = sorted(claims._snapshot_steps("lejepa", 450, 25))
    assert dense == list(range(50, 401, 50))
    assert len(claims._snapshot_steps("lejepa", 450, 25, quick=True)) == 4
    assert sorted(claims._snapshot_steps("ijepa_multiblock", 500, 25)) == [100, 200, 300, 400]
    assert claims._snapshot_steps("ijepa_block", 500, 25) == set()


def _meta(**changes):
    meta = dict.fromkeys(claims.MERGE_KEYS, 1)
    meta["recipe"] = dict.fromkeys(claims.ENCODER_KEYS, 2)
    meta.update({"command": "python benchmarks/paper_claims.py", "machine": "m", **changes})
    return meta


def test_load_previous__tags_runs_and_refuses_another_protocol(tmp_path):
    path = tmp_path / "paper_claims.json"
    previous = {
        "meta": _meta(),
        "runs": [{"arm": "ijepa_multiblock", "seed": 0}],
        "random_init": [],
        "raw_pixels": {},
        "summary": {"stale": True},
    }
    path.write_text(json.dumps(previous))
    loaded = claims.load_previous(str(path), _meta(machine="other"))
    assert "summary" not in loaded
    assert loaded["runs"][0]["run_id"] == "previous"
    assert loaded["sources"][0]["arms"] == ["ijepa_multiblock"]
    with pytest.raises(SystemExit, match="budget_minutes: 1 there, 10 here"):
        claims.load_previous(str(path), _meta(budget_minutes=10))
    other = _meta()
    other["recipe"]["embed_dim"] = 192
    with pytest.raises(SystemExit, match="recipe embed_dim"):
        claims.load_previous(str(path), other)


@pytest.fixture(scope="module")
def keras_jax():
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        pytest.skip("the benchmark runs on jax")
    return pytest.importorskip("keras")


def test_lejepa_arm__views_batches_and_the_shared_random_init(keras_jax):
    pytest.importorskip("jepa_components.augment").lejepa_views  # noqa: B018
    recipe = training.QUICK_RECIPE
    images = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32)
    batch = training._dataset(images, "views", recipe, seed=0, chunk=2)[0]
    batch = batch[0] if isinstance(batch, tuple) else batch
    views = np.asarray(batch["views"])
    assert views.shape == (recipe["batch_size"], 4, 28, 28, 1)
    assert views.min() < -0.5 and views.max() > 1.0  # standardized after the augmentations
    model, evaluated, callbacks = training.build_model("lejepa", recipe, 3, total_steps=10)
    assert evaluated is model.encoder and callbacks == []
    init = training.random_init_encoder(recipe, 3)
    for mine, theirs in zip(evaluated.weights, init.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_sigreg_arms__ema_target_kept_or_dropped(keras_jax):
    backend = pytest.importorskip("jepa_components.backends.keras")
    if not hasattr(backend, "SIGReg"):
        pytest.skip("IJEPA(regularizer=SIGReg(...)) not in the library yet")
    recipe = training.QUICK_RECIPE
    model, evaluated, callbacks = training.build_model("ijepa_sigreg", recipe, 0, total_steps=10)
    assert evaluated is model.target_encoder and len(callbacks) == 1
    model, evaluated, callbacks = training.build_model(
        "ijepa_sigreg_online", recipe, 0, total_steps=10
    )
    assert evaluated is model.encoder and callbacks == []


def test_write__a_merging_run_keeps_the_file_it_merges_with_until_the_end(tmp_path):
    (tmp_path / "paper_claims.json").write_text('{"old": true}')
    claims._write({"meta": {"merged_from": "x"}, "runs": []}, str(tmp_path))
    assert json.loads((tmp_path / "paper_claims.json").read_text()) == {"old": True}
    assert (tmp_path / "paper_claims.partial.json").exists()
    claims._write({"meta": {}, "runs": []}, str(tmp_path))  # not merging: the file itself
    assert json.loads((tmp_path / "paper_claims.json").read_text())["runs"] == []


def test_calibrate_only__step_times_side_by_side_and_nothing_written(keras_jax, tmp_path, capsys):
    from jepa_components.fashion_mnist import write_idx_fixture

    write_idx_fixture(tmp_path / "fmnist", num_train=64, num_test=16, seed=0)
    out = tmp_path / "out"
    argv = ["--quick", "--calibrate-only", "--arms", "ijepa_multiblock,lejepa"]
    result = claims.main([*argv, "--data", str(tmp_path / "fmnist"), "--output-dir", str(out)])
    assert list(result) == ["ijepa_multiblock", "lejepa"]
    # LeJEPA encodes 4 views of every image of the batch, I-JEPA one masked image
    assert result["lejepa"]["views_per_step"] == 4 * result["ijepa_multiblock"]["views_per_step"]
    assert all(r["seconds_per_step"] > 0 for r in result.values())
    assert not out.exists()
    assert "lejepa:" in capsys.readouterr().out


def test_context_cap_arms__one_shape_at_most_the_cap_valid_and_the_same_blocks():
    """The capped arms' sampler is the multi-block one with ``context_length``: one
    compiled shape, at most the cap valid per sample, targets unchanged."""
    assert set(claims.CAP_ARMS) <= set(claims.ALL_ARMS)
    recipe = training.RECIPE
    full = training.make_sampler("multiblock", recipe, seed=3).sample(256)
    for arm, cap in (("ijepa_context_cap24", 24), ("ijepa_context_cap12", 12)):
        kind, masking = training.ARMS[arm]
        capped = training.make_sampler(masking, recipe, seed=3).sample(256)
        assert kind == "ijepa" and capped.context.shape == (256, cap)
        kept = capped.context_valid.sum(1)
        np.testing.assert_array_equal(kept, np.minimum(full.context_valid.sum(1), cap))
        np.testing.assert_array_equal(capped.targets, full.targets)
        for row, valid, whole, whole_valid in zip(
            capped.context, capped.context_valid, full.context, full.context_valid
        ):  # the kept patches are patches of the uncapped context
            assert set(row[valid]) <= set(whole[whole_valid])
    assert claims._seeds(claims.parse_args(["--mask-seeds", "2"]), "ijepa_context_cap12") == 2
