"""benchmarks/gpu_check.sh, the one script of device checks, runs end to end on CPU in its dry mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ikd_yolo.ops import _loader

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["environment", "wheels", "build", "tests", "bench_kernels", "step_cost", "evidence"]


@pytest.mark.skipif(_loader.load() is None, reason=f"fused extension not built ({_loader.error()})")
def test_gpu_check_dry_run_writes_its_summary(tmp_path):
    """The dry run reuses the build, runs the emulated-kernel and self-check tests and a tiny CPU benchmark."""
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log = (tmp_path / "gpu_check.log").read_text() if (tmp_path / "gpu_check.log").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps = summary["steps"]
    assert summary["dry"] is True and list(steps) == STEPS
    assert {steps[s]["status"] for s in ("environment", "tests", "bench_kernels")} == {"ok"}
    assert steps["step_cost"]["status"] == steps["evidence"]["status"] == "skipped"  # they need CUDA
    assert steps["build"]["status"] == "skipped" and "reusing the existing build" in steps["build"]["note"]
    # the emulated kernels and the self-check ran, and passed
    assert summary["tests"]["failures"] == summary["tests"]["errors"] == 0 and summary["tests"]["tests"] > 150
    kernels = json.loads((tmp_path / "kernels_cpu.json").read_text())["results"]
    assert {r["op"] for r in kernels} == {"spectral_mix", "spectral_mix_shuffle", "spectral_mix_noise", "adv_step"}
    assert all(step in log for step in STEPS)
