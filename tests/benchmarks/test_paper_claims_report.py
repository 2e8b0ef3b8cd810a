"""benchmarks/paper_claims_report.py: seed statistics, verdicts and outputs from a results dict."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
report = pytest.importorskip("paper_claims_report")


def _figures(linear, **extra):
    return {
        "linear": linear,
        "linear_last4": linear + 0.01,
        "knn": linear - 0.1,
        "knn_last4": linear - 0.09,
        "attentive": linear + 0.02,
        "feature_std": 0.25,
        "effective_rank": 8.0,
        **extra,
    }


def _run(arm, seed, linear, common=None):
    return {
        "arm": arm,
        "seed": seed,
        "final": _figures(linear),
        "steps": 500 + seed,
        "planned_steps": 525,
        "train_seconds": 300.0,
        "cpu_seconds": 550.0,
        "snapshots": [{"train_seconds": 60.0, "linear": linear - 0.05}],
        "at_common_step": None if common is None else _figures(common),
    }


RESULTS = {
    "meta": {
        "budget_minutes": 5,
        "machine": "test",
        "probe_train": 100,
        "probe_test": 100,
        "batch_size": 64,
        "total_minutes": 60.0,
    },
    "raw_pixels": _figures(0.79, effective_rank=300.0),
    "random_init": [{"seed": 0, **_figures(0.64)}, {"seed": 1, **_figures(0.66)}],
    "common_step": 400,
    "runs": [
        _run("ijepa_multiblock", 0, 0.74, common=0.72),
        _run("ijepa_multiblock", 1, 0.76, common=0.74),
        _run("pixel_multiblock", 0, 0.70, common=0.73),
        _run("pixel_multiblock", 1, 0.70, common=0.73),
        _run("ijepa_block", 0, 0.75),
    ],
}


def test_summarize__mean_spread_and_gain_over_each_seeds_own_init():
    summary = report.summarize(RESULTS)
    linear = summary["ijepa_multiblock"]["linear"]
    assert linear["n"] == 2 and linear["mean"] == pytest.approx(0.75)
    assert linear["std"] == pytest.approx(0.0141421, rel=1e-4)  # sample std (ddof=1)
    gains = summary["ijepa_multiblock"]["linear_gain"]["values"]
    assert gains == pytest.approx([0.10, 0.10])  # 0.74 - 0.64, 0.76 - 0.66
    assert summary["ijepa_block"]["linear"]["n"] == 1
    assert "ijepa_raster" not in summary  # an arm that did not run has no row


def test_claims__verdicts_follow_the_numbers():
    claims = report.claims(report.summarize(RESULTS))
    verdicts = {text.split(":")[0]: verdict for text, verdict in claims}
    assert verdicts["I-JEPA beats its random init by >= 8 linear-probe points"] == "met"
    assert verdicts["I-JEPA beats the pixel-target baseline at equal time (linear)"] == "met"
    assert verdicts["I-JEPA beats the pixel-target baseline at equal steps (linear)"] == "NOT met"
    assert verdicts["multi-block beats single block masks (linear)"] == "NOT met"  # 75 vs 75
    assert verdicts["multi-block beats rasterized masks (linear)"] == "not measured"
    assert verdicts["moonshot"] == "NOT met"


def test_markdown_and_charts(tmp_path):
    summary = report.summarize(RESULTS)
    text = report.markdown(RESULTS, summary)
    assert "| I-JEPA, multi-block masks | 2 | 500 ± 1 (525 ± 0) | 5.0 | 75.0 ± 1.4 |" in text
    assert "Equal steps: every trained arm at step 400" in text
    report.bar_chart(summary, tmp_path / "bars.png")
    report.curve_chart(RESULTS, tmp_path / "curve.png")
    assert (tmp_path / "bars.png").stat().st_size > 1000
    assert (tmp_path / "curve.png").stat().st_size > 1000
