#!/usr/bin/env python
"""Distillation evidence benchmark: matched students per (method, seed), two independent evaluators.

Same as `ikd-yolo bench-distill ...`, with summaries under this repository's benchmarks/results/<name>/ and Ultralytics
runs under runs/bench-distill/<name>/ unless out= / project= say otherwise. Arguments are key=value, as for `yolo`:

    python benchmarks/bench_distill.py profile=quick                  # 3 seeds x none, ultralytics, score, ikd-score
    python benchmarks/bench_distill.py profile=gpu device=0           # 3 seeds x the same 4, one GPU
    python benchmarks/bench_distill.py profile=full data=my.yaml teacher=big.pt methods=none,ultralytics,fgd,ikd-fgd
    python benchmarks/bench_distill.py profile=quick methods=none,fgd seeds=[0] epochs=1 name=smoke

Keys: profile, name, out, project, data, teacher, student, methods (list or comma-separated; aliases freq-only,
adv-only, no-kd), seeds (a count, or a list), epochs, imgsz, batch, device, workers, n_train, n_val, data_imgsz,
teacher_model, teacher_epochs, teacher_init (a .pt whose weights the trained teacher starts from, e.g. a detect teacher
for a segment one); any ikd-yolo distillation key (ikd-yolo methods only) or Ultralytics train argument.
Finished (method, seed) runs are kept in <out>/<name>/runs/*.json and are not trained again on a rerun.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from ikd_yolo.config import parse_key_values  # noqa: E402
from ikd_yolo.errors import report_user_errors  # noqa: E402
from ikd_yolo.evidence import run_benchmark  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with this repository's output folders as defaults; return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["help"], ["-h"], ["--help"]):
        print(__doc__)
        return 0
    defaults = {"out": ROOT / "benchmarks" / "results", "project": ROOT / "runs" / "bench-distill"}
    return report_user_errors("bench_distill", lambda: run_benchmark(**{**defaults, **parse_key_values(argv)}))


if __name__ == "__main__":
    sys.exit(main())
