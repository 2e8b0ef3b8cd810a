"""I-JEPA's claims on Fashion-MNIST in minutes on a CPU: equal time, equal steps, seeds.

The paper (Assran et al., CVPR 2023) claims that predicting in
representation space learns more semantic features than reconstructing
pixels, faster, and that multi-block masking is what makes it work (Table 6:
multi-block 54.2, rasterized 15.5, single block 20.2, random 17.6 on 1%
ImageNet). This benchmark checks those claims at laptop scale. Arms:

- raw pixels and the random-init encoder (references, no training);
- the pixel-target baseline (``PixelBaseline``: the same encoder, masks,
  predictor and recipe, regressing normalized pixels);
- I-JEPA with multi-block, single-block, rasterized and random masks.

Every trained arm gets the same wall-clock budget (``--minutes``) and plans
its schedules for the steps it can do in it (calibrated first; see
``paper_claims_train``); the steps reached are reported, and every trained
arm is also evaluated at one common step count (equal steps). The main arms
(I-JEPA multi-block and the pixel baseline) run ``--seeds`` seeds, the other
masks ``--mask-seeds``. The evaluation protocol (``paper_claims_eval``) is
fixed and identical for every arm. Outputs in ``--output-dir``:
``paper_claims.json`` (everything), ``paper_claims.md`` (tables and the
claims, met or not), ``paper_claims_bars.png`` and ``paper_claims_curve.png``
(linear probe against training time for I-JEPA and the pixel baseline).

    KERAS_BACKEND=jax python benchmarks/paper_claims.py            # ~100 min on 2 cores
    python benchmarks/paper_claims.py --quick                      # smoke test, < 2 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
# NumPy/scikit-learn BLAS on one thread: with two cores and a busy neighbour, OpenBLAS
# spin-waits and the L-BFGS probes ran ~100x slower (see paper_claims_eval).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


import paper_claims_eval as evaluation
import paper_claims_report as report
import paper_claims_train as training

MAIN_ARMS = ("ijepa_multiblock", "pixel_multiblock")
MASK_ARMS = ("ijepa_block", "ijepa_raster", "ijepa_random")
CURVE_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
COMMON_FRACTION = 0.8
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "paper_claims")


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
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: search)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--chunk",
        type=int,
        default=25,
        help="steps per fit call; snapshots fall on multiples of it",
    )
    parser.add_argument("--calibration-steps", type=int, default=12)
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
    return args


def _machine():
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()} CPU, {cores} cores (load {load:.1f} at start)"


def _write(results, output_dir, final=False):
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "paper_claims.json")
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    if final:
        summary = report.summarize(results)
        results["summary"] = summary
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(results, stream, indent=1, sort_keys=True)
        with open(os.path.join(output_dir, "paper_claims.md"), "w", encoding="utf-8") as f:
            f.write(report.markdown(results, summary))
        report.bar_chart(summary, os.path.join(output_dir, "paper_claims_bars.png"))
        report.curve_chart(results, os.path.join(output_dir, "paper_claims_curve.png"))
        return summary
    return None


def _say(started, text):
    print(f"[{(time.perf_counter() - started) / 60:6.1f} min] {text}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    import keras

    from jepa_components import datasets

    recipe = training.QUICK_RECIPE if args.quick else training.RECIPE
    split = datasets.load_fashion_mnist(args.data)
    train_images = evaluation.normalize(
        split.train_images[:2000] if args.quick else split.train_images
    )
    data = evaluation.ProbeData(split, args.probe_train, args.probe_test)
    attentive = {"epochs": 2} if args.quick else {}
    budget = 60.0 * args.minutes
    arms = list(MAIN_ARMS) + ([] if args.no_masks else list(MASK_ARMS))
    results = {
        "meta": {
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
            "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()},
            "command": " ".join(["python", "benchmarks/paper_claims.py"] + sys.argv[1:]),
            "protocols": evaluation.__doc__,
        },
        "runs": [],
        "random_init": [],
    }

    _say(started, "raw pixels")
    results["raw_pixels"] = evaluation.evaluate_pixels(
        data, patch_size=recipe["patch_size"], attentive=attentive
    )
    for seed in range(args.seeds):
        _say(started, f"random init, seed {seed}")
        encoder = training.random_init_encoder(recipe, seed)
        results["random_init"].append(
            {"seed": seed, **evaluation.evaluate_encoder(encoder, data, attentive=attentive)}
        )
    _write(results, args.output_dir)

    calibration = {}
    for arm in arms:
        if args.quick and calibration:  # one compile less per arm: --quick shares the first
            calibration[arm] = dict(calibration[arms[0]], shared_with=arms[0])
        else:
            calibration[arm] = training.calibrate(arm, recipe, train_images, args.calibration_steps)
        _say(started, f"calibrated {arm}: {calibration[arm]['seconds_per_step']:.3f} s/step")
    planned = {
        arm: training.plan_steps(budget, c["seconds_per_step"], args.chunk)
        for arm, c in calibration.items()
    }
    # Equal steps: a step every arm reaches even when it runs up to 20% slower than
    # calibrated (the slowest arm's run stops at its budget, not at its planned steps).
    common_step = max(
        args.chunk, int(COMMON_FRACTION * min(planned.values())) // args.chunk * args.chunk
    )
    results.update(calibration=calibration, planned_steps=planned, common_step=common_step)

    schedule = [
        (seed, arm)
        for seed in range(max(args.seeds, args.mask_seeds))
        for arm in arms
        if seed < (args.seeds if arm in MAIN_ARMS else args.mask_seeds)
    ]
    for seed, arm in schedule:
        snapshot_steps = set()
        if arm in MAIN_ARMS:
            snapshot_steps = {
                max(args.chunk, round(f * planned[arm] / args.chunk) * args.chunk)
                for f in CURVE_FRACTIONS
            } - {planned[arm]}

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

        _say(started, f"train {arm} seed {seed}: plan {planned[arm]} steps, budget {budget:.0f} s")
        encoder, run = training.train_arm(
            arm,
            recipe,
            seed,
            train_images,
            budget_seconds=budget,
            planned_steps=planned[arm],
            chunk=args.chunk,
            snapshot_steps=snapshot_steps,
            common_step=common_step,
            on_snapshot=on_snapshot,
            on_common=on_common,
        )
        run["final"] = evaluation.evaluate_encoder(encoder, data, attentive=attentive)
        run["load_after"] = os.getloadavg()[0]
        results["runs"].append(run)
        _say(
            started,
            f"  {arm} seed {seed}: {run['steps']} steps in "
            f"{run['train_seconds']:.0f} s, linear {run['final']['linear']:.4f}, "
            f"linear last 4 {run['final']['linear_last4']:.4f}",
        )
        _write(results, args.output_dir)
        keras.backend.clear_session()

    results["meta"]["total_minutes"] = (time.perf_counter() - started) / 60
    summary = _write(results, args.output_dir, final=True)
    print(report.markdown(results, summary))
    print(
        f"total wall time: {results['meta']['total_minutes']:.1f} min "
        f"(outputs in {args.output_dir})"
    )
    return results


if __name__ == "__main__":
    main()
