"""The GPU check must stay runnable where no GPU is: its tiny CPU run goes end to end."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_end_to_end_on_cpu_with_tiny_settings(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--smoke"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    for line in ("training throughput: fp32", "data wait with", "Grad-CAM in eval mode", "predict on cpu"):
        assert line in done.stdout, done.stdout


def test_network_drive_comparison_runs_and_reports_both_data_wait_shares(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train.py"), "--drive-only", "--drive-clips", "8",
                           "--batch", "2", "--frames", "4", "--size", "32", "--latency-ms", "5", "--gpu-step-ms", "5"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "simulated: 5 ms per file open" in done.stdout
    for line in ("read from the drive every epoch", r"local copy made once \(dflib\.localcopy\)"):
        assert re.search(line + r"\s+data wait\s+\d+\.\d% of step time", done.stdout), done.stdout
