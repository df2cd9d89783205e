#!/usr/bin/env bash
# Every device check of ikd-yolo in one run on one GPU (an H100 or H200), within IKD_GPU_CHECK_BUDGET_S (480 s):
#   environment    python, torch, GPU, nvcc
#   wheels         the Python packages the GPU machine lacks, carried in .whl/ (benchmarks/fetch_gpu_wheels.sh)
#   build          the extension from the clean tree against that machine's torch (TORCH_CUDA_ARCH_LIST, 9.0)
#   tests          the CUDA tests, the emulated kernels, the self-check, the arch fallback, the property tests
#                  (junit.xml)
#   bench_kernels  benchmarks/bench_kernels.py on CUDA: fp32/fp16/bf16, vs reference, vs FFT floor, GB/s
#   step_cost      benchmarks/bench_step_cost.py on GPU 0 at 640 px (step_cost_gpu.json)
#   scale_cache    the adversarial cache at 640 px on GPU 0 (cache_gpu.json): bytes per image against the source,
#                  build and read images/s (benchmarks/bench_cache.py; docs/scale.md)
#   scale_step     no KD vs ikd-score at 640 px, batch 16: ms/step and GPU memory (state kept + a step's measured
#                  peak) of each (step_cost_scale_gpu.json; docs/scale.md)
#   evidence       `ikd-yolo bench-distill profile=gpu`, only if IKD_GPU_CHECK_EVIDENCE_MIN_S (120 s) remain; packed
#                  into evidence.tar.gz (its Ultralytics runs stay in the scratch folder)
# Each step is timed, logged to gpu_check.log and capped by the time left; a failing step does not stop the next.
# summary.json lists step -> status (ok, failed, timeout, skipped), seconds and a note, the machine, test counts.
#
# Usage: bash benchmarks/gpu_check.sh [--dry] [FOLDER]
#   FOLDER   where the files go: default $OUT when set, else .ikd_cache/gpu_check
#   --dry    checks the plan, runs nothing (seconds, no GPU): every step that would run is recorded as planned, with
#            its command, or as failed when its program, Python module or a file it names is missing
#            (CI runs this: tests/test_gpu_check.py)
# Env: PYTHON (python3), IKD_GPU_CHECK_SCRATCH (/tmp/ikd_gpu_check: installed wheels, Ultralytics runs).
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
folder=""
for arg in "$@"; do
  case "$arg" in
    --dry) dry=1 ;;
    -h | --help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) folder="$arg" ;;
  esac
done
folder="${folder:-${OUT:-.ikd_cache/gpu_check}}"
mkdir -p "$folder" && folder="$(cd "$folder" && pwd)"
scratch="${IKD_GPU_CHECK_SCRATCH:-/tmp/ikd_gpu_check}"
mkdir -p "$scratch"
PY="${PYTHON:-python3}"
budget=${IKD_GPU_CHECK_BUDGET_S:-480}
evidence_min=${IKD_GPU_CHECK_EVIDENCE_MIN_S:-120}
log="$folder/gpu_check.log"
steps="$(mktemp)"  # one line per step: name, status, seconds, note
trap 'rm -f "$steps"' EXIT
: >"$log"
start=$SECONDS
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

left() { echo $((budget - (SECONDS - start))); }

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$steps"; }

skip() {  # skip NAME NOTE
  echo "=== $1: skipped ($2)" >>"$log"
  record "$1" skipped 0 "$2"
}

plan() {  # plan NAME CMD...: a dry run's step, what CMD would run and whether its program, modules and files exist
  local name=$1 arg prev="" missing=()
  shift
  command -v "$1" >/dev/null || missing+=("$1")
  for arg in "${@:2}"; do
    if [[ $prev == -m ]]; then
      "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' "$arg" \
        2>/dev/null || missing+=("module $arg")
    elif [[ $arg == "$PY" ]]; then
      command -v "$arg" >/dev/null || missing+=("$arg")
    elif [[ $arg == *.py || $arg == *.whl ]]; then
      [[ -f $arg ]] || missing+=("$arg")
    fi
    prev=$arg
  done
  local cmd="${*//$'\n'/; }"
  echo "=== $name (dry run): $cmd" >>"$log"
  if ((${#missing[@]})); then
    echo "=== $name: failed, missing ${missing[*]}" >>"$log"
    record "$name" failed 0 "missing ${missing[*]}"
  else
    record "$name" planned 0 "would run: $cmd"
  fi
}

run_step() {  # run_step NAME CAP_S CMD...: CMD under a timeout of min(CAP_S, time left); in a dry run, its plan
  local name=$1 cap=$2 t0=$SECONDS rc status limit
  shift 2
  if ((dry)); then
    plan "$name" "$@"
    return
  fi
  limit=$(left)
  ((cap < limit)) && limit=$cap
  if ((limit < 5)); then
    skip "$name" "out of time"
    return
  fi
  echo "=== $name (limit ${limit}s): $*" >>"$log"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  echo "=== $name: $status (exit $rc) after $((SECONDS - t0))s" >>"$log"
  record "$name" "$status" $((SECONDS - t0)) "exit $rc"
}

# ----- environment ----------------------------------------------------------------------------------------------
for tool in "nvidia-smi -L" "nvcc --version"; do command -v "${tool%% *}" >/dev/null && $tool >>"$log" 2>&1; done
run_step environment 60 "$PY" -c 'import sys, torch
print(sys.version)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.is_available() and torch.cuda.get_device_name(0))'

# ----- wheels ---------------------------------------------------------------------------------------------------
shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]} == 0)); then
  skip wheels "no .whl/ folder (benchmarks/fetch_gpu_wheels.sh makes one)"
else
  run_step wheels 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$scratch/site" "${wheels[@]}"
  export PYTHONPATH="$PYTHONPATH:$scratch/site" PATH="$scratch/site/bin:$PATH"
fi

# ----- build ----------------------------------------------------------------------------------------------------
run_step build 300 env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" "$PY" setup.py build_ext --inplace

# ----- tests ----------------------------------------------------------------------------------------------------
pytest_args=(-q -p no:cacheprovider --junitxml="$folder/junit.xml")
run_step tests 240 "$PY" -m pytest tests/test_ops_fused.py tests/test_emulated_cuda.py tests/test_self_check.py \
  tests/test_cuda_arch.py tests/test_properties.py "${pytest_args[@]}"

# ----- kernel benchmark -----------------------------------------------------------------------------------------
run_step bench_kernels 180 "$PY" benchmarks/bench_kernels.py --devices cuda --out "$folder"

# ----- training-step cost at 640 px -----------------------------------------------------------------------------
run_step step_cost 180 "$PY" benchmarks/bench_step_cost.py --device 0 --imgsz 640 --batch 16 --rounds 10 \
  --out "$folder/step_cost_gpu.json"

# ----- the figures of docs/scale.md: the cache and a step at 640 px -----------------------------------------------
run_step scale_cache 120 "$PY" benchmarks/bench_cache.py --device 0 --sizes 640 --n 128 --batch 32 \
  --out "$folder/cache_gpu.json"
run_step scale_step 150 "$PY" benchmarks/bench_step_cost.py --device 0 --imgsz 640 --batch 16 \
  --methods none,ikd-score --rounds 10 --out "$folder/step_cost_scale_gpu.json"

# ----- evidence profile, if time remains ------------------------------------------------------------------------
if (($(left) < evidence_min)); then
  skip evidence "$(left)s left, under ${evidence_min}s"
else
  run_step evidence $(($(left) - 20)) "$PY" -m ikd_yolo.cli bench-distill profile=gpu out="$scratch/evidence" \
    project="$scratch/runs"
  ((dry)) || [[ ! -d "$scratch/evidence" ]] || tar -czf "$folder/evidence.tar.gz" -C "$scratch" evidence
fi

# ----- summary --------------------------------------------------------------------------------------------------
"$PY" - "$steps" "$folder" "$dry" "$budget" $((SECONDS - start)) <<'EOF'
import json, platform, sys, xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

steps_tsv, folder, dry, budget, total = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", *map(int, sys.argv[4:])
steps = {}
for line in Path(steps_tsv).read_text().splitlines():
    name, status, seconds, note = line.split("\t")
    steps[name] = {"status": status, "seconds": int(seconds), "note": note}
summary = {"dry": dry, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget_s": budget,
           "total_s": total, "steps": steps, "python": platform.python_version()}
try:
    import torch
    summary["torch"] = torch.__version__
    summary["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as e:
    summary["torch"] = f"unavailable: {e}"
junit = folder / "junit.xml"
if junit.exists():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
(folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
for name, s in steps.items():
    print(f"{name:<14} {s['status']:<8} {s['seconds']:>4}s  {s['note']}")
print(f"total {total}s -> {folder}")
EOF
! grep -qE $'\t(failed|timeout)\t' "$steps"  # exit 1 if a step failed or ran out of time
