"""Tables, claims and figures of benchmarks/paper_claims.py (from its results dict).

Pure functions of the JSON-ready results: :func:`summarize` (mean and spread
over seeds), :func:`markdown` (the README table and the claims, met or not),
:func:`bar_chart` and :func:`curve_chart` (PNG files, matplotlib Agg).
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
}
ORDER = tuple(LABELS)


def _stats(values):
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return None
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": spread, "n": len(values), "values": values}


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
    if common:
        lines += [
            "",
            f"Equal steps: every trained arm at step {common} "
            f"({common * meta['batch_size']} images; mid-run for arms whose schedules "
            "plan more steps):",
            "",
            "| arm | linear | linear last 4 | k-NN | k-NN last 4 |",
            "|---|---|---|---|---|",
        ]
        for arm in ORDER:
            s = summary.get(arm)
            if s is None:
                continue
            prefix = "common_" if "common_linear" in s else ""  # references: no training
            lines.append(
                f"| {LABELS[arm]} | "
                + " | ".join(_pct(s[prefix + name]) for name in COMMON_FIGURES)
                + " |"
            )
    lines += ["", "Claims (linear probe on the last layer unless stated):", ""]
    lines += [f"- {text}: **{verdict}**" for text, verdict in claims(summary)]
    return "\n".join(lines) + "\n"


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
    colors = {"ijepa_multiblock": "tab:blue", "pixel_multiblock": "tab:orange"}
    inits = {r["seed"]: r["linear"] for r in results["random_init"]}
    for arm, color in colors.items():
        runs = [r for r in results["runs"] if r["arm"] == arm]
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
