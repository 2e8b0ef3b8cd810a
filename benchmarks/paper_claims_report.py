"""Tables, claims and figures of benchmarks/paper_claims.py (from its results dict).

Pure functions of the JSON-ready results: :func:`summarize` (mean and spread
over seeds), :func:`markdown` (the README table and the claims, met or not),
:func:`bar_chart`, :func:`curve_chart` and :func:`loss_probe_chart` (PNG
files, matplotlib Agg).

Informative loss (LeJEPA's claim: the training loss tracks downstream
accuracy, Spearman 0.85-0.94 in the paper): :func:`loss_probe_points` pairs
every evaluated point of a run (the curve snapshots and the final
evaluation) with the training loss just before it (the mean of the last
:data:`LOSS_WINDOW_CHUNKS` chunk losses, each the mean over that chunk's
steps), and :func:`spearman` gives the rank correlation per run (a loss
that tracks accuracy gives a rho near -1: lower loss, higher accuracy).
"""

from __future__ import annotations

import math

import numpy as np

FIGURES = ("linear", "linear_last4", "knn", "knn_last4", "attentive")
COMMON_FIGURES = ("linear", "linear_last4", "knn", "knn_last4")
LABELS = {
    "raw_pixels": "raw pixels",
    "random_init": "random-init encoder",
    "pixel_multiblock": "pixel-target baseline (multi-block)",
    "ijepa_multiblock": "I-JEPA, multi-block masks",
    "ijepa_block": "I-JEPA, single block",
    "ijepa_raster": "I-JEPA, rasterized",
    "ijepa_random": "I-JEPA, random patches",
    "lejepa": "LeJEPA (4 views, SIGReg)",
    "ijepa_sigreg": "I-JEPA + SIGReg (EMA target)",
    "ijepa_sigreg_online": "I-JEPA + SIGReg, online targets (no EMA)",
    "ijepa_context_cap24": "I-JEPA, multi-block, context capped at 24 slots",
    "ijepa_context_cap12": "I-JEPA, multi-block, context capped at 12 slots",
    "ijepa_official_masks": "I-JEPA (library step), official collator's masks, equal steps",
    "official_multiblock": "official I-JEPA code, multi-block, equal steps",
    "official_multiblock_time": "official I-JEPA code, multi-block, equal time",
}
ORDER = tuple(LABELS)
TRAINED = tuple(a for a in ORDER if a not in ("raw_pixels", "random_init"))
COLORS = {
    "ijepa_multiblock": "tab:blue",
    "pixel_multiblock": "tab:orange",
    "ijepa_block": "tab:olive",
    "ijepa_raster": "tab:brown",
    "ijepa_random": "tab:pink",
    "lejepa": "tab:green",
    "ijepa_sigreg": "tab:red",
    "ijepa_sigreg_online": "tab:purple",
    "ijepa_context_cap24": "lightsteelblue",
    "ijepa_context_cap12": "navy",
    "ijepa_official_masks": "tab:cyan",
    "official_multiblock": "tab:gray",
    "official_multiblock_time": "black",
}
LOSS_WINDOW_CHUNKS = 2  # training loss at a point: mean of the last 2 chunks (50 steps)
SPEARMAN_GOAL = 0.8
LEJEPA_GOAL = 0.80
FIDELITY_GOAL = 0.01  # equal steps: |library - official| linear probe, mean over seeds


def _rank(values):
    """Ranks 1..n, ties averaged (as ``scipy.stats.rankdata``)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x, y):
    """Spearman's rank correlation of two sequences (nan under 3 points or no spread)."""
    if len(x) != len(y) or len(x) < 3:
        return float("nan")
    rx, ry = _rank(x), _rank(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = math.sqrt(float(np.sum(rx * rx) * np.sum(ry * ry)))
    return float(np.sum(rx * ry) / norm) if norm > 0 else float("nan")


def loss_probe_points(run, window_chunks=LOSS_WINDOW_CHUNKS):
    """``[{"step", "loss", "linear"}]``: every evaluated point of a run with the loss before it.

    The points are the curve snapshots and the final evaluation; the loss is
    the mean of the last ``window_chunks`` chunk losses up to that step.
    """
    losses = run.get("losses") or []
    checkpoints = {
        p["step"]: p.get("linear") for p in run.get("snapshots") or [] if p.get("step") is not None
    }
    if run.get("final") and run.get("steps"):
        checkpoints[run["steps"]] = run["final"].get("linear")
    points = []
    for step in sorted(checkpoints):
        before = [x["loss"] for x in losses if x["step"] <= step and x["loss"] is not None]
        before = [v for v in before[-window_chunks:] if math.isfinite(v)]
        accuracy = checkpoints[step]
        if before and accuracy is not None:
            points.append({"step": step, "loss": float(np.mean(before)), "linear": accuracy})
    return points


def run_spearman(run, window_chunks=LOSS_WINDOW_CHUNKS):
    """Spearman's rho of training loss and linear probe over one run's points."""
    points = loss_probe_points(run, window_chunks)
    return spearman([p["loss"] for p in points], [p["linear"] for p in points])


def run_spearman_of_changes(run, window_chunks=LOSS_WINDOW_CHUNKS):
    """Spearman's rho of the changes between consecutive points (loss vs linear probe).

    Within one run both the loss and the probe mostly move monotonically with
    training time, so the rho of the levels is near -1 for any objective whose
    loss falls while features improve; the rho of the changes asks whether the
    loss falls *more* where the probe gains more (nan under 4 points).
    """
    points = loss_probe_points(run, window_chunks)
    loss = np.diff([p["loss"] for p in points])
    linear = np.diff([p["linear"] for p in points])
    return spearman(loss, linear)


def _window(results):
    return results.get("meta", {}).get("loss_window_chunks", LOSS_WINDOW_CHUNKS)


def _stats(values):
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return None
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": spread, "n": len(values), "values": values}


def views_per_second(run, batch_size):
    """Encoder inputs (images or views) per second of training after the first step.

    ``views_per_step`` is the batch times the views per image (runs recorded
    without it had one input per image); the first step, which compiles, is
    left out.
    """
    steps = run.get("steps", 0) - 1
    seconds = run.get("train_seconds", 0.0) - run.get("first_step_seconds", 0.0)
    if steps < 1 or seconds <= 0:
        return None
    return run.get("views_per_step", batch_size) * steps / seconds


def summarize(results):
    """``{arm: {figure: stats}}`` over seeds, for final and common-step figures."""
    summary = {}
    init_by_seed = {r["seed"]: r for r in results["random_init"]}
    for arm in ORDER:
        if arm == "raw_pixels":
            runs = [results["raw_pixels"]]
        elif arm == "random_init":
            runs = results["random_init"]
        else:
            runs = [r for r in results["runs"] if r["arm"] == arm]
        if not runs:
            continue
        entry = {}
        for name in FIGURES + ("feature_std", "effective_rank"):
            entry[name] = _stats(
                r["final"].get(name) if "final" in r else r.get(name) for r in runs
            )
        if arm not in ("raw_pixels", "random_init"):
            ratios = {
                "feature_std_ratio": [],
                "effective_rank_ratio": [],
                "linear_gain": [],
                "linear_last4_gain": [],
            }
            for r in runs:
                init = init_by_seed.get(r["seed"])
                if init is None:
                    continue
                ratios["feature_std_ratio"].append(r["final"]["feature_std"] / init["feature_std"])
                ratios["effective_rank_ratio"].append(
                    r["final"]["effective_rank"] / init["effective_rank"]
                )
                ratios["linear_gain"].append(r["final"]["linear"] - init["linear"])
                ratios["linear_last4_gain"].append(
                    r["final"]["linear_last4"] - init["linear_last4"]
                )
            entry.update({k: _stats(v) for k, v in ratios.items()})
            for name in ("steps", "planned_steps", "train_seconds", "cpu_seconds"):
                entry[name] = _stats(r[name] for r in runs)
            for name in COMMON_FIGURES:
                entry["common_" + name] = _stats(
                    (r.get("at_common_step") or {}).get(name) for r in runs
                )
            entry["common_step"] = _stats(r.get("common_step") for r in runs)
            batch = results["meta"]["batch_size"]
            entry["views_per_second"] = _stats(views_per_second(r, batch) for r in runs)
            window = _window(results)
            entry["spearman"] = _stats(run_spearman(r, window) for r in runs)
            entry["spearman_points"] = _stats(len(loss_probe_points(r, window)) for r in runs)
            entry["spearman_changes"] = _stats(run_spearman_of_changes(r, window) for r in runs)
            entry["run_ids"] = sorted({str(r.get("run_id", "previous")) for r in runs})
        summary[arm] = entry
    return summary


def _pct(stats, signed=False):
    if stats is None:
        return "n/a"
    mean = 100 * stats["mean"]
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return text + (f" ± {100 * stats['std']:.1f}" if stats["n"] > 1 else "")


def _num(stats, form=".2f"):
    if stats is None:
        return "-"
    text = format(stats["mean"], form)
    return text + (f" ± {format(stats['std'], form)}" if stats["n"] > 1 else "")


def _mean(summary, arm, name):
    stats = summary.get(arm, {}).get(name)
    return None if stats is None else stats["mean"]


def claims(summary):
    """The benchmark's goals and the paper's claims, each with its numbers and a verdict."""
    out = []

    def add(text, left, right, margin=0.0):
        if left is None or right is None:
            out.append((text, "not measured"))
        else:
            met = left - right >= margin if margin else left > right  # "beats": strictly
            out.append(
                (
                    f"{text}: {100 * left:.1f} vs {100 * right:.1f} "
                    f"({100 * (left - right):+.1f} points)",
                    "met" if met else "NOT met",
                )
            )

    ijepa = _mean(summary, "ijepa_multiblock", "linear")
    add(
        "I-JEPA beats its random init by >= 8 linear-probe points",
        ijepa,
        _mean(summary, "random_init", "linear"),
        0.08,
    )
    add(
        "I-JEPA beats the pixel-target baseline at equal time (linear)",
        ijepa,
        _mean(summary, "pixel_multiblock", "linear"),
    )
    add(
        "I-JEPA beats the pixel-target baseline at equal steps (linear)",
        _mean(summary, "ijepa_multiblock", "common_linear"),
        _mean(summary, "pixel_multiblock", "common_linear"),
    )
    for other in ("ijepa_block", "ijepa_raster", "ijepa_random"):
        add(
            f"multi-block beats {LABELS[other].split(', ')[1]} masks (linear)",
            ijepa,
            _mean(summary, other, "linear"),
        )
    add("moonshot: I-JEPA beats raw pixels (linear)", ijepa, _mean(summary, "raw_pixels", "linear"))

    lejepa = _mean(summary, "lejepa", "linear")
    text = f"LeJEPA reaches >= {100 * LEJEPA_GOAL:.0f}% linear"
    if lejepa is None:
        out.append((text, "not measured"))
    else:
        verdict = "met" if lejepa >= LEJEPA_GOAL else "NOT met"
        out.append((f"{text}: {100 * lejepa:.1f}", verdict))
    add("LeJEPA beats I-JEPA multi-block at equal time (linear)", lejepa, ijepa)
    init_rank = _mean(summary, "random_init", "effective_rank")
    for arm in ("ijepa_sigreg", "ijepa_sigreg_online"):
        text = (
            f"{LABELS[arm]} beats plain I-JEPA at equal time (linear) "
            "with an effective rank above random init"
        )
        mine, rank = _mean(summary, arm, "linear"), _mean(summary, arm, "effective_rank")
        if None in (mine, ijepa, rank, init_rank):
            out.append((text, "not measured"))
            continue
        met = mine > ijepa and rank > init_rank
        out.append(
            (
                f"{text}: {100 * mine:.1f} vs {100 * ijepa:.1f} ({100 * (mine - ijepa):+.1f} "
                f"points), rank {rank:.1f} vs {init_rank:.1f}",
                "met" if met else "NOT met",
            )
        )
    speed = [_mean(summary, arm, "views_per_second") for arm in ("lejepa", "ijepa_multiblock")]
    text = "a LeJEPA step is at least as fast per encoded view as an I-JEPA step (same encoder)"
    if None in speed:
        out.append((text, "not measured"))
    else:
        runs = set(summary["lejepa"]["run_ids"]) | set(summary["ijepa_multiblock"]["run_ids"])
        where = "" if len(runs) == 1 else ", measured in different invocations"
        out.append(
            (
                f"{text}: {speed[0]:.0f} vs {speed[1]:.0f} views/s (x{speed[0] / speed[1]:.2f}"
                f"{where})",
                "met" if speed[0] >= speed[1] else "NOT met",
            )
        )
    out += fidelity_claims(summary)
    for arm, name in (("lejepa", "LeJEPA"), ("ijepa_multiblock", "I-JEPA multi-block")):
        text = (
            f"informative loss, {name} (|Spearman rho| of training loss and linear probe "
            f">= {SPEARMAN_GOAL}, lower loss with higher accuracy)"
        )
        rho = summary.get(arm, {}).get("spearman")
        if rho is None:
            out.append((text, "not measured"))
            continue
        values = ", ".join(f"{v:+.2f}" for v in rho["values"])
        out.append(
            (
                f"{text}: mean {rho['mean']:+.2f} (per seed {values})",
                # a positive rho (the probe falls as the loss falls) is not an informative loss
                "met" if rho["mean"] <= -SPEARMAN_GOAL else "NOT met",
            )
        )
    return out


def _spread(stats):
    """The seed spread of one figure: max - min over the seeds."""
    return max(stats["values"]) - min(stats["values"])


def fidelity_claims(summary):
    """The library's I-JEPA against the official code's at equal steps (and at equal time).

    Linear probe: the means within :data:`FIDELITY_GOAL`; k-NN and the
    last-4-layer probe: the difference of the means within the larger of the
    two arms' seed spreads (max - min).
    """
    ours, theirs = summary.get("ijepa_multiblock"), summary.get("official_multiblock")
    text = (
        f"equal steps: the library's I-JEPA within {100 * FIDELITY_GOAL:.0f} linear-probe "
        "point of the official code's"
    )
    if ours is None or theirs is None:
        return [(text, "not measured")]
    gap = ours["linear"]["mean"] - theirs["linear"]["mean"]
    out = [
        (
            f"{text}: {100 * ours['linear']['mean']:.1f} vs {100 * theirs['linear']['mean']:.1f} "
            f"({100 * gap:+.1f} points)",
            "met" if abs(gap) <= FIDELITY_GOAL else "NOT met",
        )
    ]
    for name, label in (("knn", "k-NN"), ("linear_last4", "last-4-layer linear")):
        a, b = ours.get(name), theirs.get(name)
        if a is None or b is None:
            out.append((f"equal steps, {label} within the seed spread", "not measured"))
            continue
        diff, spread = a["mean"] - b["mean"], max(_spread(a), _spread(b))
        out.append(
            (
                f"equal steps, {label} within the seed spread: {100 * a['mean']:.1f} vs "
                f"{100 * b['mean']:.1f} ({100 * diff:+.1f}, spread {100 * spread:.1f})",
                "met" if abs(diff) <= spread else "NOT met",
            )
        )
    timed = summary.get("official_multiblock_time")
    if timed is not None:
        diff = ours["linear"]["mean"] - timed["linear"]["mean"]
        out.append(
            (
                f"equal time: the library's I-JEPA at least as good as the official code's "
                f"(linear): {100 * ours['linear']['mean']:.1f} vs "
                f"{100 * timed['linear']['mean']:.1f} ({100 * diff:+.1f} points; steps "
                f"{ours['steps']['mean']:.0f} vs {timed['steps']['mean']:.0f})",
                "met" if diff >= 0 else "NOT met",
            )
        )
    return out


def markdown(results, summary):
    """The README table (equal time), the equal-steps table and the claims."""
    meta = results["meta"]
    lines = [
        f"Fashion-MNIST, {meta['budget_minutes']:g} min of training per arm on "
        f"{meta['machine']}; probes on {meta['probe_train']} train / {meta['probe_test']} "
        f"test images; mean ± std over seeds (n = seeds). Total wall time "
        f"{meta.get('total_minutes', float('nan')):.1f} min.",
        "",
        "| arm | n | steps (planned) | train min | linear | linear last 4 | k-NN | "
        "k-NN last 4 | attentive | feat. std ratio | eff. rank (ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in ORDER:
        s = summary.get(arm)
        if s is None:
            continue
        n = (s.get("linear") or {}).get("n", 0)
        if "steps" in s:
            steps = f"{_num(s['steps'], '.0f')} ({_num(s['planned_steps'], '.0f')})"
            minutes = f"{s['train_seconds']['mean'] / 60:.1f}"
            ratio = _num(s.get("feature_std_ratio"))
            rank = f"{_num(s['effective_rank'], '.1f')} (x{_num(s.get('effective_rank_ratio'))})"
        else:
            steps, minutes, ratio = "-", "-", "1 (ref.)" if arm == "random_init" else "-"
            rank = _num(s["effective_rank"], ".1f")
        lines.append(
            f"| {LABELS[arm]} | {n} | {steps} | {minutes} | {_pct(s['linear'])} | "
            f"{_pct(s['linear_last4'])} | {_pct(s['knn'])} | "
            f"{_pct(s['knn_last4'])} | {_pct(s['attentive'])} | {ratio} | {rank} |"
        )
    common = results.get("common_step")
    steps_per_arm = {
        a: s["common_step"]["mean"] for a, s in summary.items() if s.get("common_step")
    }
    mixed = len(set(steps_per_arm.values()) | ({common} if common else set())) > 1
    if common:
        head = (
            "Equal steps: every trained arm at its step below (runs merged from "
            "invocations with different equal-steps points; mid-run for arms whose "
            "schedules plan more steps):"
            if mixed
            else f"Equal steps: every trained arm at step {common} "
            f"({common * meta['batch_size']} images; mid-run for arms whose schedules "
            "plan more steps):"
        )
        lines += [
            "",
            head,
            "",
            "| arm | "
            + ("step | " if mixed else "")
            + "linear | linear last 4 | k-NN | k-NN last 4 |",
            "|---|---|---|---|---|" + ("---|" if mixed else ""),
        ]
        for arm in ORDER:
            s = summary.get(arm)
            if s is None:
                continue
            prefix = "common_" if "common_linear" in s else ""  # references: no training
            step = f"{steps_per_arm[arm]:.0f} | " if arm in steps_per_arm else "- | "
            lines.append(
                f"| {LABELS[arm]} | "
                + (step if mixed else "")
                + " | ".join(_pct(s[prefix + name]) for name in COMMON_FIGURES)
                + " |"
            )
    lines += _collapse_lines(summary)
    lines += _informative_lines(results, summary)
    lines += ["", "Claims (linear probe on the last layer unless stated):", ""]
    lines += [f"- {text}: **{verdict}**" for text, verdict in claims(summary)]
    lines += _source_lines(results)
    return "\n".join(lines) + "\n"


def _collapse_lines(summary):
    init = summary.get("random_init", {}).get("effective_rank")
    trained = [a for a in TRAINED if a in summary]
    if init is None or not trained:
        return []
    lines = [
        "",
        "Collapse check: effective rank of the pooled last-layer test features "
        f"(random init {init['mean']:.1f}; per seed, trained / its own init):",
        "",
    ]
    for arm in trained:
        rank, ratio = summary[arm].get("effective_rank"), summary[arm].get("effective_rank_ratio")
        if rank is None:
            continue
        above = rank["mean"] > init["mean"]
        lines.append(
            f"- {LABELS[arm]}: {_num(rank, '.1f')} (x{_num(ratio)}): "
            + ("above random init" if above else "**below random init (collapsing)**")
        )
    return lines


def _informative_lines(results, summary):
    arms = [a for a in TRAINED if (summary.get(a) or {}).get("spearman")]
    if not arms:
        return []
    lines = [
        "",
        "Informative loss: Spearman's rho, per run, of the training loss (mean of the last "
        f"{_window(results)} chunks of {results['meta'].get('chunk', '?')} steps before a "
        "point) and the linear probe over the run's evaluated points (snapshots and final); "
        "a loss that tracks accuracy gives rho near -1 (LeJEPA paper: |rho| 0.85-0.94). "
        "Within a run both move with training time, so the levels' rho is near -1 for any "
        "loss that falls while the probe rises; the rho of the changes between consecutive "
        "points (last column) asks whether the loss falls more where the probe gains more:",
        "",
        "| arm | runs | points per run | rho per seed | mean rho | mean rho of changes |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        rho = summary[arm]["spearman"]
        points = summary[arm].get("spearman_points")
        changes = summary[arm].get("spearman_changes")
        lines.append(
            f"| {LABELS[arm]} | {rho['n']} | {_num(points, '.0f')} | "
            + ", ".join(f"{v:+.2f}" for v in rho["values"])
            + f" | {rho['mean']:+.2f} | "
            + ("n/a" if changes is None else f"{changes['mean']:+.2f}")
            + " |"
        )
    return lines


def _source_lines(results):
    sources = results.get("sources") or []
    if not sources:
        return []
    lines = ["", "Sources (the invocation each arm's runs come from):", ""]
    for src in sources:
        arms = ", ".join(src.get("arms") or []) or "no arm kept"
        if src["run_id"] == results.get("references_from"):
            arms += "; raw pixels and random init"
        minutes = src.get("total_minutes")
        wall = f", {minutes:.0f} min" if isinstance(minutes, (int, float)) else ""
        lines.append(
            f"- `{src['run_id']}`: {arms} (`{src.get('command')}`, {src.get('machine')}{wall})"
        )
    return lines


def bar_chart(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ORDER if a in summary]
    figures = [f for f in FIGURES if any(summary[a].get(f) for a in arms)]
    width = 0.8 / len(arms)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for i, arm in enumerate(arms):
        means = [100 * (summary[arm].get(f) or {"mean": np.nan})["mean"] for f in figures]
        stds = [100 * (summary[arm].get(f) or {"std": 0})["std"] for f in figures]
        ax.bar(
            np.arange(len(figures)) + (i - (len(arms) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=2,
            label=LABELS[arm],
        )
    ax.set_xticks(np.arange(len(figures)))
    ax.set_xticklabels([f.replace("_last4", " (last 4 layers)") for f in figures])
    ax.set_ylabel("test accuracy (%)")
    low = min(
        100 * s["mean"] for a in arms for f in figures if (s := summary[a].get(f)) is not None
    )
    ax.set_ylim(max(0, low - 10), 100)
    ax.set_title("Fashion-MNIST frozen-feature probes at equal training time (mean ± std)")
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curve_chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    inits = {r["seed"]: r["linear"] for r in results["random_init"]}
    for arm, color in COLORS.items():
        runs = [r for r in results["runs"] if r["arm"] == arm and r.get("snapshots")]
        for i, run in enumerate(runs):
            points = (
                [(0.0, inits.get(run["seed"]))]
                + [(p["train_seconds"] / 60, p["linear"]) for p in run["snapshots"]]
                + [(run["train_seconds"] / 60, run["final"]["linear"])]
            )
            points = [(t, 100 * a) for t, a in points if a is not None]
            ax.plot(
                *zip(*points),
                "o-",
                color=color,
                alpha=0.8,
                ms=3,
                label=LABELS[arm] if i == 0 else None,
            )
    ax.axhline(100 * results["raw_pixels"]["linear"], color="gray", ls="--", label="raw pixels")
    ax.set_xlabel("training time (min, this machine)")
    ax.set_ylabel("linear probe test accuracy (%)")
    ax.set_title("Linear probe vs training time (each line one seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def loss_probe_chart(results, path):
    """Training loss (x) against the linear probe (y) at every evaluated point.

    One panel per arm that has points (the losses of different objectives do
    not share a scale), one colour per arm, one line per seed (in step order),
    Spearman's rho in the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = _window(results)
    arms = [
        a
        for a in TRAINED
        if any(len(loss_probe_points(r, window)) >= 2 for r in results["runs"] if r["arm"] == a)
    ]
    fig, axes = plt.subplots(
        1, max(1, len(arms)), figsize=(3.2 * max(1, len(arms)), 3.6), sharey=True, squeeze=False
    )
    for ax, arm in zip(axes[0], arms):
        rhos = []
        for run in (r for r in results["runs"] if r["arm"] == arm):
            points = loss_probe_points(run, window)
            if not points:
                continue
            rhos.append(run_spearman(run, window))
            ax.plot(
                [p["loss"] for p in points],
                [100 * p["linear"] for p in points],
                "o-",
                color=COLORS[arm],
                alpha=0.8,
                ms=3,
            )
        finite = [r for r in rhos if math.isfinite(r)]
        rho = f"rho {np.mean(finite):+.2f}" if finite else "rho n/a"
        ax.set_title(f"{LABELS[arm]}\n{rho} (n={len(finite)})", fontsize=8)
        ax.set_xlabel("training loss", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("linear probe test accuracy (%)")
    if not arms:
        axes[0][0].text(0.5, 0.5, "no evaluated points", ha="center", va="center")
    fig.suptitle("Training loss vs linear probe at each evaluated point (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
