#!/usr/bin/env python
"""Cost of IKD's batch frequency augmentation as a fraction of one training step, on CPU.

Setup: an `IKDTrainer` with the plain `fgd` preset (student yolo11n.yaml, an untrained yolo11s teacher: timing needs
no trained one), synthetic shapes data at `imgsz`, `nbs = batch`. Its own train loader gives real mosaic batches.
Timed, interleaved round by round in a rotated order (benchmarks/_timing.py):

    (a) `FrequencyAugment` on a preprocessed batch (images already float in [0, 1]), the whole call: label policy,
        random draws, spectral op (or the paper rule), in three modes: spectral with a noise source, spectral with a
        shuffle source (another image of the batch), and the authors' paper rule (noise / crop). Each spectral mode
        runs with the fused kernels and with the PyTorch reference (`ikd_yolo.ops.set_backend`); the paper rule
        uses no `ikd_yolo.ops` op, so it has one row. Every mode also runs with freq_p = 1 (every image augmented,
        the upper bound); the preset rows use the presets' own freq_p (ikd-fgd-full 0.5, ikd-fgd-paper 0.3).
        All augmentation tasks of one round draw from the same seed, so they select the same images.
    (b) one full training step of the fgd trainer: preprocess (incl. teacher features), forward + loss, backward,
        optimizer step + EMA.

The ratio is the median over rounds of (a) / (b) of the same round. Prints a Markdown table and writes
benchmarks/results/aug_cost_cpu.json (--out to change).

Usage:
    python benchmarks/bench_aug_cost.py                 # imgsz 320, batch 16, 48 images, 15 rounds
    python benchmarks/bench_aug_cost.py --quick         # imgsz 160, batch 8, 5 rounds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402

MODES = {  # row label -> distillation settings of the FrequencyAugment
    "spectral, noise source": {"distill": "ikd-fgd-full", "freq_source": "noise"},
    "spectral, shuffle source": {"distill": "ikd-fgd-full", "freq_source": "shuffle"},
    "paper (noise / crop)": {"distill": "ikd-fgd-paper"},
}


def augment_tasks(batches: list[dict], backends: list[str]) -> dict:
    """Name -> (callable timing one FrequencyAugment call, row facts). One call per round, seeded by the round."""
    import torch

    from ikd_yolo import ops
    from ikd_yolo.augment.frequency import FrequencyAugment
    from ikd_yolo.config import resolve_distill_config

    tasks = {}
    for label, settings in MODES.items():
        for p in ("preset", 1.0):
            cfg = resolve_distill_config({**settings, **({} if p == "preset" else {"freq_p": p})})
            aug = FrequencyAugment.from_config(cfg)
            for backend in backends if aug.settings.mode == "spectral" else ["-"]:
                calls = {"n": 0}

                def run(aug=aug, backend=backend, calls=calls):
                    if backend != "-":
                        ops.set_backend(backend)
                    batch = batches[calls["n"] % len(batches)]
                    aug(batch, generator=torch.Generator().manual_seed(calls["n"]))
                    calls["n"] += 1

                name = f"{label} | p={aug.settings.p:g} | {backend}"
                tasks[name] = (run, {"mode": label, "freq_p": aug.settings.p, "backend": backend, "augment": repr(aug)})
    return tasks


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--imgsz", type=int, help="default 320 (--quick 160)")
    p.add_argument("--batch", type=int, help="default 16 (--quick 8)")
    p.add_argument("--images", type=int, help="synthetic training images; default 48 (--quick 16)")
    p.add_argument("--rounds", type=int, help="timed calls per task; default 15 (--quick 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--quick", action="store_true", help="a smaller case: imgsz 160, batch 8, 16 images, 5 rounds")
    p.add_argument("--out", type=Path, default=T.RESULTS / "aug_cost_cpu.json")
    a = p.parse_args(argv)
    defaults = dict(imgsz=160, batch=8, images=16, rounds=5) if a.quick else dict(imgsz=320, batch=16, images=48,
                                                                                   rounds=15)
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)

    from ultralytics.models.yolo.detect import DetectionTrainer

    from ikd_yolo import IKDTrainer, ops
    from ikd_yolo.ops import _loader

    backends = ["fused", "reference"] if _loader.load() is not None else ["reference"]
    data = T.bench_data(a.imgsz, a.images)
    teacher = T.bench_teacher(nc=8)
    with T.quiet():
        trainer = T.build_trainer(IKDTrainer, "aug_fgd", model="yolo11n.yaml", data=str(data), teacher=str(teacher),
                                  distill="fgd", imgsz=a.imgsz, batch=a.batch, nbs=a.batch, epochs=1)
        loader_batches = T.real_batches(trainer, max(1, a.images // a.batch))
    # what FrequencyAugment sees inside IKDTrainer.preprocess_batch: Ultralytics' own preprocessing of the batch
    ready = [DetectionTrainer.preprocess_batch(trainer, dict(b)) for b in loader_batches]

    aug = augment_tasks(ready, backends)
    steps = {"n": 0}

    def step():
        """One fgd training step on the next loader batch."""
        T.train_step(trainer, loader_batches[steps["n"] % len(loader_batches)])
        steps["n"] += 1

    STEP = "training step (fgd)"
    times = T.interleaved({STEP: step, **{k: fn for k, (fn, _) in aug.items()}}, rounds=a.rounds, warmup=a.warmup)
    ops.set_backend("auto")

    step_ms = T.summary(times[STEP])
    results = [{**facts, **T.summary(times[name]), "fraction_of_step": T.paired_ratio(times[name], times[STEP])}
               for name, (_, facts) in aug.items()]
    env = T.environment()
    report = {
        "benchmark": "aug_cost",
        "command": ("python benchmarks/bench_aug_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
        "config": {"imgsz": a.imgsz, "batch": a.batch, "images": a.images, "rounds": a.rounds, "warmup": a.warmup,
                   "student": "yolo11n.yaml", "teacher": "yolo11s.yaml (untrained)", "step_preset": "fgd",
                   "nbs": a.batch, "optimizer": type(trainer.optimizer).__name__, "amp": False,
                   "instances_per_batch": [int(b["cls"].shape[0]) for b in loader_batches]},
        "environment": env,
        "backends_timed": backends,
        "training_step": step_ms,
        "augment": results,
    }
    rows = [[r["mode"], f"{r['freq_p']:g}", r["backend"], f"{r['median_ms']:.1f}", f"{r['q1_ms']:.1f}-{r['q3_ms']:.1f}",
             f"{100 * r['fraction_of_step']:.1f}%"] for r in results]
    rows.append([STEP, "-", "-", f"{step_ms['median_ms']:.0f}", f"{step_ms['q1_ms']:.0f}-{step_ms['q3_ms']:.0f}",
                 "100%"])
    print(f"\nFrequencyAugment cost vs one training step on CPU: imgsz {a.imgsz}, batch {a.batch}, {a.rounds} rounds, "
          f"torch threads {env['torch_threads']}, load avg {env['load_avg_1m']:.1f}, ops backends {backends} "
          f"(auto -> {env['ops_backend_auto']})\n")
    print(T.markdown_table(["augmentation", "freq_p", "ops backend", "median ms", "IQR ms", "of a step"], rows))
    print(f"\nwrote {T.write_json(a.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
