#!/usr/bin/env python
"""unlabeled= at scale: time per epoch, peak memory and the check before work, with an unlabelled set 10x (and 100x)
the labelled one, against the same clean stream over the labelled images alone.

Each variant trains one epoch of the quick profile's recipe (yolo11n student, an untrained yolo11s teacher: cost does
not depend on its training) in a process of its own, so its peak resident memory (ru_maxrss) is its own; the variants
run one after the other, each once per round, rounds interleaved. The epoch length is the labelled set's in every
variant (the stream draws from its own endless loader), so equal epoch times mean the unlabelled set costs no time per
step, and equal peak memory means nothing holds it in memory.

    python benchmarks/bench_unlabeled_scale.py                     # 200 labelled, 2000 / 20000 unlabelled, 96 px
    python benchmarks/bench_unlabeled_scale.py --n-train 100 --factors 10 --rounds 1   # a smaller case

Prints a Markdown table and writes benchmarks/results/unlabeled_scale_cpu.json (--out to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from ultralytics import YOLO
from ikd_yolo import IKDTrainer
from ikd_yolo.evidence.parallel import set_threads
set_threads(1)
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
from ikd_yolo.preflight import preflight
from ikd_yolo.config import split_distill_args
distill, rest = split_distill_args({k: v for k, v in args.items() if k != "model"})
preflight({**rest, "model": args["model"]}, distill)
check = time.perf_counter() - t0
model = YOLO(args.pop("model"))
epochs = []
model.add_callback("on_train_epoch_start", lambda t: epochs.append(time.perf_counter()))
model.add_callback("on_train_epoch_end", lambda t: epochs.append(time.perf_counter()))
model.train(trainer=IKDTrainer, **args)
print("RESULT " + json.dumps({"check_s": check, "epoch_s": epochs[1] - epochs[0],
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-train", type=int, default=200, help="labelled training images (default 200)")
    p.add_argument("--factors", default="10,100", help="unlabelled set sizes as multiples of --n-train (10,100)")
    p.add_argument("--imgsz", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="epochs timed per variant (default 2)")
    p.add_argument("--out", type=Path, default=T.RESULTS / "unlabeled_scale_cpu.json")
    a = p.parse_args(argv)
    from ikd_yolo.data import make_synthetic_dataset

    factors = [int(f) for f in a.factors.split(",")]
    most = max(factors) * a.n_train
    root = T.CACHE / f"unlabeled_scale_{a.imgsz}px_{a.n_train}"
    data = make_synthetic_dataset(root, n_train=a.n_train, n_val=8, imgsz=a.imgsz, n_unlabeled=most, clutter=0.0,
                                  min_side=8)
    everything = sorted((root / "images" / "unlabeled").iterdir())
    variants = {"training images only": None}
    for f in factors:
        listed = root / f"unlabeled_x{f}.txt"
        listed.write_text("\n".join(str(p) for p in everything[:f * a.n_train]) + "\n")
        variants[f"+ {f}x unlabelled ({f * a.n_train} images)"] = listed
    teacher = T.bench_teacher(nc=8)
    common = dict(model="yolo11n.yaml", data=str(data), teacher=str(teacher), distill="ikd-score", adv_mode="clean",
                  epochs=1, imgsz=a.imgsz, batch=a.batch, nbs=a.batch, workers=0, device="cpu", plots=False,
                  val=False, verbose=False, seed=0, exist_ok=True, project=str(T.CACHE / "runs"), ikd_phase=1.0)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    t0 = time.perf_counter()
    for r in range(a.rounds):
        names = list(variants)
        for name in names[r % len(names):] + names[:r % len(names)]:
            extra = {} if variants[name] is None else {"unlabeled": str(variants[name]), "stream_source": "both"}
            args = {**common, **extra, "name": f"scale_{len(runs[name])}_{abs(hash(name)) % 10**6}"}
            env = {**os.environ, "PYTHONPATH": str(T.ROOT), "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True,
                                 env=env, check=True).stdout
            runs[name].append(json.loads(out.split("RESULT ", 1)[1]))
    base = statistics.median(x["epoch_s"] for x in runs["training images only"])
    results = {name: {key: statistics.median(x[key] for x in rows) for key in ("epoch_s", "peak_rss_mb", "check_s")}
               | {"epoch_vs_training_only": statistics.median(x["epoch_s"] for x in rows) / base, "rounds": len(rows)}
               for name, rows in runs.items()}
    report = {"benchmark": "unlabeled_scale", "command": "python benchmarks/bench_unlabeled_scale.py "
              + " ".join(sys.argv[1:] if argv is None else argv), "config": {
                  "n_train": a.n_train, "imgsz": a.imgsz, "batch": a.batch, "stream": "ikd-score adv_mode=clean "
                  "(every second step, the teacher's scores weight the positions)", "teacher": "yolo11s (untrained)"},
              "environment": T.environment("cpu"), "wall_s": round(time.perf_counter() - t0, 1), "results": results}
    rows = [[name, f"{r['epoch_s']:.1f}", f"{r['epoch_vs_training_only']:.2f}x", f"{r['peak_rss_mb']:.0f}",
             f"{r['check_s']:.1f}"] for name, r in results.items()]
    print(f"\nOne epoch of {a.n_train} labelled images at {a.imgsz} px, batch {a.batch}, CPU, medians of {a.rounds}\n")
    print(T.markdown_table(["stream over", "s/epoch", "vs training images only", "peak RSS MB",
                            "check before work s"], rows))
    print(f"\nwrote {T.write_json(a.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
