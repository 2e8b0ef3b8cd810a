"""I-JEPA's claims on Fashion-MNIST in minutes on a CPU: equal time, equal steps, seeds.

The paper (Assran et al., CVPR 2023) claims that predicting in
representation space learns more semantic features than reconstructing
pixels, faster, and that multi-block masking is what makes it work (Table 6:
multi-block 54.2, rasterized 15.5, single block 20.2, random 17.6 on 1%
ImageNet). This benchmark checks those claims at laptop scale. Arms:

- raw pixels and the random-init encoder (references, no training);
- the pixel-target baseline (``PixelBaseline``: the same encoder, masks,
  predictor and recipe, regressing normalized pixels);
- I-JEPA with multi-block, single-block, rasterized and random masks;
- LeJEPA (Balestriero & LeCun 2025: views, projector, SIGReg; no masks, no
  EMA) and I-JEPA multi-block + SIGReg with (``ijepa_sigreg``) and without
  (``ijepa_sigreg_online``) the EMA target: does each train without collapse
  (effective rank against the random init), and what does it gain?
- the official I-JEPA code (facebookresearch/ijepa: its modules, collator
  and training step, ``paper_claims_official``) with the same recipe, at
  equal steps (``official_multiblock``: the steps and schedules of the
  ``ijepa_multiblock`` run of the same seed) and at equal time
  (``official_multiblock_time``), and the library's step on the official
  collator's masks (``ijepa_official_masks``, ``--mask-seeds`` seeds): does
  the library train as the official code does? Skipped, with the reason,
  when the official code or torch is missing (``--official-code PATH``).
- I-JEPA multi-block with the context capped at 24 or 12 slots
  (``ijepa_context_cap24``, ``ijepa_context_cap12``:
  ``MultiBlockMaskSampler(context_length=...)``, ``--mask-seeds`` seeds): at
  equal time, does computing fewer context patches per step cost accuracy,
  or buy it in steps?

Every trained arm gets the same wall-clock budget (``--minutes``) and plans
its schedules for the steps it can do in it (calibrated first; see
``paper_claims_train``); the steps reached are reported, and every trained
arm is also evaluated at one common step count (equal steps). The main arms
(I-JEPA multi-block and the pixel baseline) run ``--seeds`` seeds, the other
masks ``--mask-seeds``. The evaluation protocol (``paper_claims_eval``) is
fixed and identical for every arm. The new arms run ``--seeds`` seeds and
are evaluated at more points along the way (``DENSE_CURVE_FRACTIONS``) for
LeJEPA's "informative loss" claim: the Spearman correlation, per run, of
the training loss (mean of the last ``LOSS_WINDOW_CHUNKS`` chunks before a
point) with the linear probe at that point (``paper_claims_report``).

``--arms`` trains a subset; ``--merge`` then adds it to earlier results (by
default the ``paper_claims.json`` in ``--output-dir``): runs of the arms
trained now replace that arm's earlier runs, the others are kept, and the
raw-pixel and random-init references are reused when the protocol matches
(budget, probe split, encoder, batch, chunk; a mismatch is an error). Every
run records the id of the invocation that produced it and the report lists
them (``Sources``). The equal-steps point of a merge is the earlier one when
every new arm reaches it, else a new one (the table then gives each arm's).

Outputs in ``--output-dir``: ``paper_claims.json`` (everything),
``paper_claims.md`` (tables and the claims, met or not),
``paper_claims_bars.png``, ``paper_claims_curve.png`` (linear probe against
training time) and ``paper_claims_loss_vs_probe.png`` (training loss against
the linear probe at every evaluated point).

    KERAS_BACKEND=jax python benchmarks/paper_claims.py            # ~4.5 h on 2 cores (estimate)
    python benchmarks/paper_claims.py --minutes 5 --merge \
        --arms lejepa,ijepa_sigreg,ijepa_sigreg_online             # ~78 min
    python benchmarks/paper_claims.py --minutes 5 --output-dir \
        benchmarks/results/paper_claims_official --arms \
        ijepa_multiblock,ijepa_official_masks,official_multiblock,official_multiblock_time
    python benchmarks/paper_claims.py --minutes 5 --seeds 3 --mask-seeds 3 --output-dir \
        benchmarks/results/paper_claims_context_cap --arms \
        ijepa_multiblock,ijepa_context_cap24,ijepa_context_cap12   # ~65 min
    python benchmarks/paper_claims.py --calibrate-only \
        --arms ijepa_multiblock,lejepa                             # step times, one process
    python benchmarks/paper_claims.py --quick                      # smoke test, < 3 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
# NumPy/scikit-learn BLAS on one thread: with two cores and a busy neighbour, OpenBLAS
# spin-waits and the L-BFGS probes ran ~100x slower (see paper_claims_eval).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import paper_claims_eval as evaluation
import paper_claims_official as official
import paper_claims_report as report
import paper_claims_train as training
from _official import ENV_VAR as OFFICIAL_CODE_ENV
from _official import missing_reason

MAIN_ARMS = ("ijepa_multiblock", "pixel_multiblock")
MASK_ARMS = ("ijepa_block", "ijepa_raster", "ijepa_random")
NEW_ARMS = ("lejepa", "ijepa_sigreg", "ijepa_sigreg_online")
# the official code (paper_claims_official): its step at equal steps and at equal time, and
# the library's step on the official collator's masks (a diagnostic, --mask-seeds seeds)
OFFICIAL_ARMS = official.OFFICIAL_ARMS
DIAGNOSTIC_ARMS = ("ijepa_official_masks",)
# multi-block with the context capped, at equal time (--mask-seeds seeds): what dropping
# context patches costs, or buys in steps
CAP_ARMS = ("ijepa_context_cap24", "ijepa_context_cap12")
# planned and stopped where the ijepa_multiblock run of the same seed was
EQUAL_STEPS_ARMS = ("official_multiblock", "ijepa_official_masks")
NEEDS_OFFICIAL_CODE = OFFICIAL_ARMS + DIAGNOSTIC_ARMS
ALL_ARMS = MAIN_ARMS + MASK_ARMS + NEW_ARMS + CAP_ARMS + DIAGNOSTIC_ARMS + OFFICIAL_ARMS
CURVE_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
# the new arms: 8 points along the run (plus the final one) for the loss-probe correlation
DENSE_CURVE_FRACTIONS = tuple(i / 9 for i in range(1, 9))
LOSS_WINDOW_CHUNKS = report.LOSS_WINDOW_CHUNKS
# what must match for runs of two invocations to be compared (equal time, same protocol)
MERGE_KEYS = (
    "budget_minutes",
    "quick",
    "probe_train",
    "probe_test",
    "train_images",
    "batch_size",
    "chunk",
)
ENCODER_KEYS = ("image_size", "patch_size", "embed_dim", "depth", "num_heads", "patch_init_std")
COMMON_FRACTION = 0.8
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "paper_claims")
# --quick never overwrites the committed results unless told to
QUICK_OUTPUT = os.path.join(tempfile.gettempdir(), "paper_claims_quick")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="training wall-clock budget per trained arm (default 10)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="seeds of I-JEPA multi-block and the pixel baseline (default 3)",
    )
    parser.add_argument(
        "--mask-seeds",
        type=int,
        default=1,
        help="seeds of the block / raster / random arms (default 1)",
    )
    parser.add_argument(
        "--no-masks", action="store_true", help="skip the block / raster / random arms"
    )
    parser.add_argument(
        "--arms",
        default=None,
        help="comma-separated arms to train (default: all): " + ",".join(ALL_ARMS),
    )
    parser.add_argument(
        "--merge",
        nargs="?",
        const="auto",
        default=None,
        metavar="JSON",
        help="merge with earlier results (default file: OUTPUT_DIR/paper_claims.json): "
        "the arms trained now replace theirs, the others are kept",
    )
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: search)")
    parser.add_argument(
        "--official-code",
        default=None,
        metavar="PATH",
        help="checkout of facebookresearch/ijepa for the official arms (default: "
        "$IJEPA_OFFICIAL_CODE, else ../shared/anchors/ijepa); without it they are skipped",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help=f"default {DEFAULT_OUTPUT} ({QUICK_OUTPUT} with --quick)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=25,
        help="steps per fit call; snapshots fall on multiples of it",
    )
    parser.add_argument("--calibration-steps", type=int, default=12)
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="only time a step of each of --arms (as the calibration before training) "
        "and print the seconds per step and the encoded views per second; writes nothing",
    )
    parser.add_argument("--probe-train", type=int, default=10_000)
    parser.add_argument("--probe-test", type=int, default=10_000)
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: tiny model, 2,000 images, seconds per arm"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.seeds, args.mask_seeds = 0.08, 1, 1
        args.chunk, args.calibration_steps = 4, 8
        args.probe_train, args.probe_test = 300, 300
    if args.output_dir is None:
        args.output_dir = QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT
    if args.arms is None:
        args.arms = [a for a in ALL_ARMS if not (args.no_masks and a in MASK_ARMS)]
    else:
        args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in args.arms if a not in ALL_ARMS]
        if unknown or not args.arms:
            parser.error(f"--arms: unknown {unknown}; choose among {','.join(ALL_ARMS)}")
        args.arms = [a for a in ALL_ARMS if a in args.arms]  # the benchmark's order
    if args.merge == "auto":
        args.merge = os.path.join(args.output_dir, "paper_claims.json")
    return args


def _machine():
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()} CPU, {cores} cores (load {load:.1f} at start)"


def _write(results, output_dir, final=False):
    """Save the results; the final call adds the summary, the tables and the charts.

    A merging run saves its progress to ``paper_claims.partial.json``: the
    file it merges with is replaced only once every arm has run.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "paper_claims.json")
    partial = os.path.join(output_dir, "paper_claims.partial.json")
    merging = bool(results["meta"].get("merged_from"))
    target = partial if merging and not final else path
    with open(target + ".tmp", "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=1, sort_keys=True)
    os.replace(target + ".tmp", target)
    if final and os.path.exists(partial):
        os.remove(partial)
    if final:
        summary = report.summarize(results)
        results["summary"] = summary
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(results, stream, indent=1, sort_keys=True)
        with open(os.path.join(output_dir, "paper_claims.md"), "w", encoding="utf-8") as f:
            f.write(report.markdown(results, summary))
        report.bar_chart(summary, os.path.join(output_dir, "paper_claims_bars.png"))
        report.curve_chart(results, os.path.join(output_dir, "paper_claims_curve.png"))
        report.loss_probe_chart(results, os.path.join(output_dir, "paper_claims_loss_vs_probe.png"))
        return summary
    return None


def calibrate_only(args, recipe, train_images, started):
    """``--calibrate-only``: every arm's step time, in this process, nothing written.

    Step times from different invocations need not compare (the machine's
    speed moves between days); this puts the arms side by side in one.
    """
    result = {}
    for arm in args.arms:
        if arm in OFFICIAL_ARMS:
            c = official.calibrate_official(recipe, train_images, args.calibration_steps)
            views = recipe["batch_size"]
        else:
            c = training.calibrate(arm, recipe, train_images, args.calibration_steps)
            views = training.views_per_step(training.ARMS[arm][1], recipe)
        result[arm] = {"seconds_per_step": c["seconds_per_step"], "views_per_step": views}
        _say(
            started,
            f"{arm}: {c['seconds_per_step']:.3f} s/step, "
            f"{views / c['seconds_per_step']:.0f} views/s ({views} per step)",
        )
    return result


def _say(started, text):
    print(f"[{(time.perf_counter() - started) / 60:6.1f} min] {text}", flush=True)


def load_previous(path, meta):
    """Earlier results to merge with: checked against this run's protocol, summary dropped.

    Raises ``SystemExit`` (a one-line reason) when a setting of ``MERGE_KEYS`` or
    the encoder of the recipe differs: equal time and the probes would not
    compare.
    """
    with open(path, encoding="utf-8") as stream:
        previous = json.load(stream)
    previous.pop("summary", None)
    old = previous["meta"]
    problems = [
        f"{key}: {old.get(key)!r} there, {meta[key]!r} here"
        for key in MERGE_KEYS
        if old.get(key) != meta[key]
    ]
    problems += [
        f"recipe {key}: {old['recipe'].get(key)!r} there, {meta['recipe'][key]!r} here"
        for key in ENCODER_KEYS
        if old.get("recipe", {}).get(key) != meta["recipe"][key]
    ]
    if problems:
        raise SystemExit(f"error: cannot merge with {path}: " + "; ".join(problems))
    previous_id = old.get("run_id", "previous")
    for run in previous["runs"]:
        run.setdefault("run_id", previous_id)
    previous.setdefault("sources", [_source(old, previous_id, previous["runs"])])
    return previous


def _source(meta, run_id, runs):
    arms = sorted({r["arm"] for r in runs if r.get("run_id", run_id) == run_id})
    return {
        "run_id": run_id,
        "arms": arms,
        **{
            key: meta.get(key)
            for key in ("command", "machine", "backend", "keras", "total_minutes", "seeds")
        },
        "recipe": meta.get("recipe"),
    }


def _reference_steps(runs, seed):
    """Steps of the ijepa_multiblock run of ``seed`` (the equal-steps arms stop there)."""
    for run in runs:
        if run["arm"] == "ijepa_multiblock" and run["seed"] == seed:
            return run["steps"]
    raise SystemExit(
        f"error: no ijepa_multiblock run of seed {seed} to take the steps of: "
        "train it in the same invocation (--arms) or --merge with results that have it"
    )


def _seeds(args, arm):
    return args.mask_seeds if arm in MASK_ARMS + CAP_ARMS + DIAGNOSTIC_ARMS else args.seeds


def _snapshot_steps(arm, planned, chunk, quick=False):
    """Steps of the curve snapshots: main arms 4, new arms 8 (4 with --quick); not the final."""
    if arm in NEW_ARMS:
        fractions = CURVE_FRACTIONS if quick else DENSE_CURVE_FRACTIONS
    elif arm in MAIN_ARMS + OFFICIAL_ARMS + DIAGNOSTIC_ARMS:
        fractions = CURVE_FRACTIONS
    else:
        return set()
    return {max(chunk, round(f * planned / chunk) * chunk) for f in fractions} - {planned}


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    import keras

    from jepa_components import datasets

    recipe = training.QUICK_RECIPE if args.quick else training.RECIPE
    if args.official_code:  # one place every official lookup reads
        os.environ[OFFICIAL_CODE_ENV] = os.path.abspath(args.official_code)
    needs_code = [a for a in args.arms if a in NEEDS_OFFICIAL_CODE]
    reason = missing_reason() if needs_code else None
    if reason:
        _say(started, f"skipping {', '.join(needs_code)}: {reason}")
        args.arms = [a for a in args.arms if a not in needs_code]
        if not args.arms:
            raise SystemExit(f"error: no arm left to train ({reason})")
    split = datasets.load_fashion_mnist(args.data)
    train_images = split.train_images[:2000] if args.quick else split.train_images  # [0, 1]
    if args.calibrate_only:
        return calibrate_only(args, recipe, train_images, started)
    data = evaluation.ProbeData(split, args.probe_train, args.probe_test)
    attentive = {"epochs": 2} if args.quick else {}
    budget = 60.0 * args.minutes
    arms = list(args.arms)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta = {
        "run_id": run_id,
        "arms": arms,
        "budget_minutes": args.minutes,
        "seeds": args.seeds,
        "mask_seeds": args.mask_seeds,
        "machine": _machine(),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "probe_train": data.num_train,
        "probe_test": data.num_test,
        "train_images": len(train_images),
        "batch_size": recipe["batch_size"],
        "chunk": args.chunk,
        "loss_window_chunks": LOSS_WINDOW_CHUNKS,
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()},
        "command": " ".join(["python", "benchmarks/paper_claims.py"] + sys.argv[1:]),
        "protocols": evaluation.__doc__,
    }
    previous = load_previous(args.merge, meta) if args.merge else None
    results = {"meta": meta, "runs": [], "random_init": [], "calibration": {}, "planned_steps": {}}
    if previous is not None:
        results["runs"] = [r for r in previous["runs"] if r["arm"] not in arms]
        results["random_init"] = list(previous["random_init"])
        results["raw_pixels"] = previous["raw_pixels"]
        results["calibration"] = dict(previous.get("calibration", {}))
        results["planned_steps"] = dict(previous.get("planned_steps", {}))
        meta["merged_from"] = args.merge
        results["references_from"] = previous.get(
            "references_from", previous["meta"].get("run_id", "previous")
        )
        _say(started, f"merging with {args.merge}: keeping {len(results['runs'])} runs")
    else:
        results["references_from"] = run_id
        _say(started, "raw pixels")
        results["raw_pixels"] = evaluation.evaluate_pixels(
            data, patch_size=recipe["patch_size"], attentive=attentive
        )
    known = {r["seed"] for r in results["random_init"]}
    for seed in range(max(args.seeds, args.mask_seeds)):
        if seed in known:
            continue
        _say(started, f"random init, seed {seed}")
        encoder = training.random_init_encoder(recipe, seed)
        results["random_init"].append(
            {"seed": seed, **evaluation.evaluate_encoder(encoder, data, attentive=attentive)}
        )
    results["random_init"].sort(key=lambda r: r["seed"])
    _write(results, args.output_dir)

    calibration = {}
    for arm in arms:
        if arm in EQUAL_STEPS_ARMS:
            continue  # planned as ijepa_multiblock
        if args.quick and calibration:  # one compile less per arm: --quick shares the first
            first = next(iter(calibration))
            calibration[arm] = dict(calibration[first], shared_with=first)
        elif arm in OFFICIAL_ARMS:
            calibration[arm] = official.calibrate_official(
                recipe, train_images, args.calibration_steps
            )
        else:
            calibration[arm] = training.calibrate(arm, recipe, train_images, args.calibration_steps)
        _say(started, f"calibrated {arm}: {calibration[arm]['seconds_per_step']:.3f} s/step")
    planned = {
        arm: training.plan_steps(budget, c["seconds_per_step"], args.chunk)
        for arm, c in calibration.items()
    }
    for arm in arms:
        if arm in EQUAL_STEPS_ARMS:
            reference = planned.get("ijepa_multiblock") or results["planned_steps"].get(
                "ijepa_multiblock"
            )
            if reference is None:
                raise SystemExit(
                    f"error: {arm} runs the steps of ijepa_multiblock: add it to --arms or "
                    "--merge with results that have it"
                )
            planned[arm] = reference
    # Equal steps: a step every arm reaches even when it runs up to 20% slower than
    # calibrated (the slowest arm's run stops at its budget, not at its planned steps).
    common_step = max(
        args.chunk, int(COMMON_FRACTION * min(planned.values())) // args.chunk * args.chunk
    )
    if previous is not None and previous.get("common_step"):
        if previous["common_step"] <= common_step:  # every new arm reaches the earlier one
            common_step = previous["common_step"]
        else:
            _say(
                started,
                f"equal steps: {common_step}, not the merged runs' {previous['common_step']}",
            )
    results["calibration"].update(calibration)
    results["planned_steps"].update(planned)
    results["common_step"] = common_step

    schedule = [
        (seed, arm)
        for seed in range(max(args.seeds, args.mask_seeds))
        for arm in arms
        if seed < _seeds(args, arm)
    ]
    for seed, arm in schedule:
        snapshot_steps = _snapshot_steps(arm, planned[arm], args.chunk, args.quick)

        def on_snapshot(encoder, step, seconds, *, arm=arm, seed=seed):  # this run's arm and seed
            point = {
                "step": step,
                "train_seconds": round(seconds, 1),
                **evaluation.snapshot(encoder, data),
            }
            _say(started, f"  {arm} seed {seed} step {step}: linear {point['linear']:.4f}")
            return point

        def on_common(encoder):
            return evaluation.evaluate_encoder(encoder, data, with_attentive=False)

        train, max_steps, arm_budget = training.train_arm, None, budget
        if arm in EQUAL_STEPS_ARMS:  # where the library's run of this seed stopped
            max_steps, arm_budget = _reference_steps(results["runs"], seed), math.inf
        if arm in OFFICIAL_ARMS:
            train = official.train_official
        limit = f"stop at {max_steps}" if max_steps else f"budget {budget:.0f} s"
        _say(started, f"train {arm} seed {seed}: plan {planned[arm]} steps, {limit}")
        encoder, run = train(
            arm,
            recipe,
            seed,
            train_images,
            budget_seconds=arm_budget,
            planned_steps=planned[arm],
            max_steps=max_steps,
            chunk=args.chunk,
            snapshot_steps=snapshot_steps,
            common_step=common_step,
            on_snapshot=on_snapshot,
            on_common=on_common,
        )
        run["final"] = evaluation.evaluate_encoder(encoder, data, attentive=attentive)
        run["load_after"] = os.getloadavg()[0]
        run["run_id"] = run_id
        results["runs"].append(run)
        _say(
            started,
            f"  {arm} seed {seed}: {run['steps']} steps in "
            f"{run['train_seconds']:.0f} s, linear {run['final']['linear']:.4f}, "
            f"linear last 4 {run['final']['linear_last4']:.4f}, "
            f"eff. rank {run['final']['effective_rank']:.1f}",
        )
        _write(results, args.output_dir)
        keras.backend.clear_session()

    meta["total_minutes"] = (time.perf_counter() - started) / 60
    results["sources"] = [
        src for src in (previous or {}).get("sources", []) if src["run_id"] != run_id
    ] + [_source(meta, run_id, results["runs"])]
    for src in results["sources"]:  # which arms each invocation still contributes
        src["arms"] = sorted(
            {r["arm"] for r in results["runs"] if r.get("run_id") == src["run_id"]}
        )
    results["runs"].sort(key=lambda r: (ALL_ARMS.index(r["arm"]), r["seed"]))
    summary = _write(results, args.output_dir, final=True)
    print(report.markdown(results, summary))
    print(f"total wall time: {meta['total_minutes']:.1f} min (outputs in {args.output_dir})")
    return results


if __name__ == "__main__":
    main()
