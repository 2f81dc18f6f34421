"""The GPU benchmark script runs on the CI's CPU in its smoke mode, so that it is known to work before a GPU runs it."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_script_runs_end_to_end_in_smoke_mode():
    results_before = (BENCHMARKS / "RESULTS.md").read_bytes()
    completed = subprocess.run(
        [sys.executable, "gpu.py", "--device", "cpu", "--smoke"], cwd=BENCHMARKS, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    rows = [line.split("|")[1:-1] for line in completed.stdout.splitlines() if line.startswith("| ")]
    header, measured = rows[0], rows[2:]
    assert [cell.strip() for cell in header][:4] == ["model", "attention", "image", "batch"]
    encoder = [row for row in measured if row[0].strip() == "encoder"]
    pretraining = [row for row in measured if row[0].strip().startswith("MAE step")]
    sizes_and_batches = [(row[2].strip(), row[3].strip()) for row in encoder]
    assert sizes_and_batches == [("96", "1"), ("96", "2"), ("128", "1"), ("128", "2")]
    assert len(pretraining) == 1
    for row in encoder + pretraining:
        assert float(row[4]) > 0 and float(row[5].split()[0]) > 0  # images/s and TFLOP/s were measured
    assert (BENCHMARKS / "RESULTS.md").read_bytes() == results_before  # smoke runs write nothing


def test_results_keep_each_device_section_when_another_part_is_rewritten(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setattr(run, "RESULTS", tmp_path / "RESULTS.md")
    run.write_results(cpu="# Benchmarks\n\nCPU one\n")
    run.write_results(gpu="## GPU: H100\n\nH100 one\n")
    run.write_results(gpu="## GPU: H200\n\nH200 one\n")
    run.write_results(gpu="## GPU: H100\n\nH100 two\n")  # a rerun replaces its own device's section
    run.write_results(cpu="# Benchmarks\n\nCPU two\n")
    expected = "# Benchmarks\n\nCPU two\n\n## GPU: H100\n\nH100 two\n\n## GPU: H200\n\nH200 one\n"
    assert (tmp_path / "RESULTS.md").read_text() == expected
    assert [path.name for path in tmp_path.iterdir()] == ["RESULTS.md"]  # no partial file left behind
