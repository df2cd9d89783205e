"""benchmarks/gpu_check.sh, the one script of device checks: its dry run checks the plan of a GPU run on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["environment", "wheels", "build", "tests", "bench_kernels", "step_cost", "scale_cache", "scale_step",
         "evidence"]
GPU_TESTS = ["tests/test_ops_fused.py", "tests/test_emulated_cuda.py", "tests/test_self_check.py",
             "tests/test_cuda_arch.py", "tests/test_properties.py"]


def dry_run(root: Path, folder: Path) -> tuple[subprocess.CompletedProcess, dict, str]:
    """`bash <root>/benchmarks/gpu_check.sh --dry <folder>`: the process, summary.json and gpu_check.log."""
    env = {**os.environ, "PYTHON": sys.executable, "IKD_GPU_CHECK_SCRATCH": str(folder / "scratch")}
    proc = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh"), "--dry", str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    log = (folder / "gpu_check.log").read_text() if (folder / "gpu_check.log").exists() else ""
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else {}
    return proc, summary, log


def test_gpu_check_dry_run_plans_every_step_of_the_gpu_run_and_runs_none(tmp_path):
    proc, summary, log = dry_run(ROOT, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-3000:]
    steps = summary["steps"]
    assert summary["dry"] is True and list(steps) == STEPS
    planned = [s for s in STEPS if s != "wheels" or any((ROOT / ".whl").glob("*.whl"))]
    assert {steps[s]["status"] for s in planned} == {"planned"}, steps
    notes = {s: steps[s]["note"] for s in STEPS}
    assert "setup.py build_ext --inplace" in notes["build"]
    assert all(f in notes["tests"] for f in GPU_TESTS) and "-m pytest" in notes["tests"]
    assert "benchmarks/bench_kernels.py --devices cuda" in notes["bench_kernels"]
    assert "benchmarks/bench_step_cost.py --device 0 --imgsz 640" in notes["step_cost"]
    # docs/scale.md's device figures: the cache at 640 px, and a step of each side alone with its peak memory
    assert "benchmarks/bench_cache.py --device 0 --sizes 640" in notes["scale_cache"]
    assert "--methods none,ikd-score" in notes["scale_step"] and "--imgsz 640 --batch 16" in notes["scale_step"]
    assert "-m ikd_yolo.cli bench-distill profile=gpu" in notes["evidence"]
    assert all(steps[s]["seconds"] == 0 for s in STEPS)  # nothing ran
    assert "tests" not in summary and not (tmp_path / "junit.xml").exists()
    assert not list(tmp_path.glob("kernels_*.json")) and not (tmp_path / "step_cost_gpu.json").exists()
    assert all(step in log for step in STEPS)


def test_gpu_check_dry_run_fails_on_a_file_its_plan_names_that_is_missing(tmp_path):
    """A copy of the script in a tree without two of the files it would run: those steps fail, the script exits 1."""
    tree = tmp_path / "tree"
    for rel in ["benchmarks/gpu_check.sh", "benchmarks/bench_kernels.py", "setup.py", *GPU_TESTS[1:]]:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tree / rel)
    proc, summary, log = dry_run(tree, tmp_path / "out")
    assert proc.returncode == 1, proc.stdout + proc.stderr + log[-3000:]
    steps = summary["steps"]
    assert steps["tests"] == {"status": "failed", "seconds": 0, "note": "missing tests/test_ops_fused.py"}
    assert steps["step_cost"] == {"status": "failed", "seconds": 0, "note": "missing benchmarks/bench_step_cost.py"}
    assert {steps[s]["status"] for s in ("environment", "build", "bench_kernels")} == {"planned"}
