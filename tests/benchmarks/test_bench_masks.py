"""benchmarks/bench_masks.py: the CLI runs, writes its table, and finds the reference code."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
_omp = os.environ.get("OMP_NUM_THREADS")
bench = pytest.importorskip("bench_masks")  # sets OMP_NUM_THREADS=1 when unset: undone here
if _omp is None:
    os.environ.pop("OMP_NUM_THREADS", None)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # main() sets one thread
    yield
    torch.set_num_threads(threads)


def test_bench_masks__tiny_run_writes_the_table(tmp_path, capsys):
    out = tmp_path / "masks.md"
    bench.main(
        ["--families", "mae,data2vec", "--batch-size", "4", "--repeats", "1", "--anchors",
         str(tmp_path), "--output", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    text = out.read_text()
    assert "| mae | 14x14, ratio 0.75 |" in text and "| data2vec |" in text
    assert "no reference" in text  # data2vec has none; mae's is missing under tmp_path
    assert "reference missing" in printed and "Command (from the repository root)" in text
    with pytest.raises(SystemExit):
        bench.main(["--families", "nope"])


def test_bench_masks__anchors_folder_and_the_older_ijepa_meaning(tmp_path, monkeypatch):
    class Args:
        anchors, official_code = str(tmp_path), None

    monkeypatch.delenv(bench.IJEPA_ENV, raising=False)
    monkeypatch.delenv(bench.ANCHORS_ENV, raising=False)
    assert bench.anchors_dirs(Args) == (str(tmp_path), str(tmp_path / "ijepa"))
    (tmp_path / "src" / "masks").mkdir(parents=True)
    (tmp_path / "src" / "masks" / "multiblock.py").write_text("")
    anchors, ijepa = bench.anchors_dirs(Args)  # --anchors naming an I-JEPA checkout
    assert ijepa == str(tmp_path) and anchors == os.path.abspath(bench.DEFAULT_ANCHORS)
