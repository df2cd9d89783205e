#!/usr/bin/env bash
# Download into .whl/ (git-ignored) the wheels the GPU machine lacks, for its Python 3.12 on x86-64 Linux, so that
# benchmarks/gpu_check.sh can install them there offline: ultralytics itself (pure Python, installed --no-deps) and
# the few dependencies of it and of ikd-yolo that the machine's image does not have: ultralytics-thop, pycocotools,
# polars. polars is pinned to 1.9.0 (31.5 MiB, within ultralytics' polars>=0.20): the 2.x releases add a 54 MiB
# runtime wheel, and everything that travels to the machine must fit in 64 MiB. About 34 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { sed -n "s/^$1==//p" constraints.txt; }
mkdir -p .whl
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "ultralytics==$(pin ultralytics)" "pycocotools==$(pin pycocotools)" ultralytics-thop==2.2.3 polars==1.9.0
ls -l .whl && du -sh .whl
