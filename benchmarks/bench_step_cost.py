#!/usr/bin/env python
"""Training-step cost of IKD on CPU: IKD with 1 and 5 attack steps vs plain FGD vs Ultralytics' own KD.

Variants, all with the same student (yolo11n.yaml), teacher (an untrained yolo11s, timing needs no trained one), data
(synthetic shapes), batch and imgsz:

    none         Ultralytics DetectionTrainer, no distillation
    ultralytics  DetectionTrainer with distill_model=teacher.pt (Ultralytics' DistillationModel, score-weighted L2)
    fgd          IKDTrainer distill=fgd (FGD at P3-P5, no IKD augmentation)
    ikd-adv1     IKDTrainer distill=ikd-fgd-full adv_steps=1 adv_every=1 (frequency augmentation + 1-step attack + FGD)
    ikd-cached   ikd-adv1 with adv_mode=cached (adversarial images from the cache, built during set-up, untimed)
    ikd-adv5     IKDTrainer distill=ikd-fgd-full adv_steps=5 adv_every=1 (the authors' 5 attack steps)
    ikd-tuned    IKDTrainer distill=ikd-fgd (the tuned default: no frequency augmentation), cached 1-step attack
    score-feat   IKDTrainer distill=score-feat (the control: Ultralytics' loss computed by ikd-yolo)
    score        IKDTrainer distill=score (head-aware base: score-weighted features, class and box distillation)
    ikd-score    IKDTrainer distill=ikd-score (IKD on the head-aware base), cached 1-step attack
    score-view   score with the frequency view (freq_mode=spectral freq_apply=view freq_p=0.5): a distillation-only
                 stream of the mixed images
    ikd-score-view  ikd-score with the same view: two extra streams (adversarial and frequency)
    ikd-score-online         ikd-score with the online 1-step attack (the shared form's baseline)
    ikd-score-online-view    ikd-score-online with the frequency view: two extra streams
    ikd-score-shared         ikd-score-online with freq_apply=shared: the attack starts from the mixed images, one
                             extra stream carries both parts (the clean maps then need their own teacher pass)

Two ways to time a step (see benchmarks/_timing.py):

    --method steps  (default) every trainer is set up once, then driven one training step at a time (preprocess,
                    forward + loss, backward, optimizer step + EMA), the variants interleaved step by step in a
                    rotated order; median over --rounds steps after --warmup. Ratios are medians of per-round ratios.
    --method loop   a real `YOLO(...).train(...)` run per variant and round (val=False, plots=False, nbs=batch), a
                    callback timing on_train_batch_start -> on_train_batch_end (the loop body without the data
                    loader); the first --warmup steps of each run are dropped; variants interleaved run by run.
                    Slower (each run sets up again); a cross-check that `steps` times what Ultralytics' loop does.

Usage:
    python benchmarks/bench_step_cost.py                          # imgsz 160, batch 8, 15 rounds
    python benchmarks/bench_step_cost.py --imgsz 320 --batch 16 --rounds 10
    python benchmarks/bench_step_cost.py --quick                  # imgsz 96, batch 4, 5 rounds
    python benchmarks/bench_step_cost.py --method loop --rounds 2
    python benchmarks/bench_step_cost.py --imgsz 96 --batch 8 --methods "ultralytics,ikd-score,ikd-score[adv_every=2]"
                                                                  # methods as bench-distill names them

Also the memory of a step of each variant (`_timing.step_memory`: the state a trainer keeps, the activations autograd
saves; on CUDA the measured peak of its steps). Prints a Markdown table and writes
benchmarks/results/step_cost_cpu.json (--out to change).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402


FREQ_VIEW = {"freq_mode": "spectral", "freq_apply": "view"}
FREQ_SHARED = {"freq_mode": "spectral", "freq_apply": "shared"}
ONLINE_1STEP = {"adv_steps": 1, "adv_every": 1, "adv_mode": "online"}


def variants(teacher: Path) -> dict[str, tuple[str, dict]]:
    """Name -> (trainer kind, trainer overrides)."""
    t = str(teacher)
    return {
        "none": ("ultralytics", {}),
        "ultralytics": ("ultralytics", {"distill_model": t}),
        "fgd": ("ikd", {"teacher": t, "distill": "fgd"}),
        "ikd-adv1": ("ikd", {"teacher": t, "distill": "ikd-fgd-full", "adv_steps": 1, "adv_every": 1}),
        "ikd-cached": ("ikd", {"teacher": t, "distill": "ikd-fgd-full", "adv_steps": 1, "adv_every": 1,
                               "adv_mode": "cached"}),
        "ikd-adv5": ("ikd", {"teacher": t, "distill": "ikd-fgd-full", "adv_steps": 5, "adv_every": 1}),
        "ikd-tuned": ("ikd", {"teacher": t, "distill": "ikd-fgd", "adv_steps": 1, "adv_every": 1,
                              "adv_mode": "cached"}),
        "score-feat": ("ikd", {"teacher": t, "distill": "score-feat"}),
        "score": ("ikd", {"teacher": t, "distill": "score"}),
        "ikd-score": ("ikd", {"teacher": t, "distill": "ikd-score", "adv_steps": 1, "adv_every": 1,
                              "adv_mode": "cached"}),
        "score-view": ("ikd", {"teacher": t, "distill": "score", **FREQ_VIEW}),
        "ikd-score-view": ("ikd", {"teacher": t, "distill": "ikd-score", "adv_steps": 1, "adv_every": 1,
                                   "adv_mode": "cached", **FREQ_VIEW}),
        "ikd-score-online": ("ikd", {"teacher": t, "distill": "ikd-score", **ONLINE_1STEP}),
        "ikd-score-online-view": ("ikd", {"teacher": t, "distill": "ikd-score", **ONLINE_1STEP, **FREQ_VIEW}),
        "ikd-score-shared": ("ikd", {"teacher": t, "distill": "ikd-score", **ONLINE_1STEP, **FREQ_SHARED}),
    }


def method_variants(labels: str, teacher: Path) -> dict[str, tuple[str, dict]]:
    """Variants named by bench-distill method labels (`none`, `ultralytics[dis=18]`, `ikd-score`,
    `ikd-score[adv_steps=2;adv_every=2]`): each trained exactly as that method runs, a preset with nothing but its
    own file and the label's settings, as a user's `distill=NAME` runs it."""
    from ikd_yolo.evidence.methods import parse_methods

    out = {}
    for m in parse_methods(labels):
        if m.is_preset:
            out[m.label] = ("ikd", {"teacher": str(teacher), "distill": m.preset, **m.settings, **m.recipe})
        else:
            teacher_arg = {"distill_model": str(teacher)} if m.preset == "ultralytics" else {}
            out[m.label] = ("ultralytics", {**teacher_arg, **m.recipe})
    return out


def cadence(trainer) -> int:
    """Training steps in one cycle of a trainer's extra streams (a stream runs every k-th step): timing whole cycles
    gives the mean step cost of a setting that distils a stream on some steps only."""
    return math.lcm(1, *(stream.every for stream in getattr(trainer, "streams", ())))


def trainer_class(kind: str) -> type:
    """IKDTrainer for "ikd", Ultralytics' DetectionTrainer otherwise."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from ikd_yolo import IKDTrainer

    return IKDTrainer if kind == "ikd" else DetectionTrainer


def time_steps(chosen: dict, common: dict, rounds: int, warmup: int, n_batches: int, sync=None,
               profile: bool = False) -> tuple[dict, dict]:
    """Set every variant up once, then time single training steps interleaved; return seconds and setup facts."""
    trainers, batches, facts = {}, {}, {}
    with T.quiet():
        for name, (kind, extra) in chosen.items():
            trainers[name] = T.build_trainer(trainer_class(kind), f"step_{name}", **common, **extra)
            batches[name] = T.real_batches(trainers[name], n_batches)
            facts[name] = {"optimizer": type(trainers[name].optimizer).__name__,
                           "model": type(trainers[name].model).__name__}
    counters = dict.fromkeys(chosen, 0)
    cycles = {name: cadence(trainer) for name, trainer in trainers.items()}
    for name, k in cycles.items():
        facts[name]["steps_per_sample"] = k

    def step(name):
        """One cadence cycle of variant `name` (`cadence` steps, each on its next pre-loaded batch)."""

        def run():
            for _ in range(cycles[name]):
                T.train_step(trainers[name], batches[name][counters[name] % n_batches])
                counters[name] += 1
        return run

    times = T.interleaved({name: step(name) for name in chosen}, rounds=rounds, warmup=warmup, sync=sync)
    times = {name: [t / cycles[name] for t in ts] for name, ts in times.items()}  # seconds per step
    for name, trainer in trainers.items():
        facts[name]["memory"] = T.step_memory(trainer, batches[name][:cycles[name]])
    if profile:
        for name in chosen:
            facts[name]["top_ops"] = top_ops(step(name))
    return times, facts


def top_ops(run, n: int = 12) -> list[dict]:
    """The `n` ops of one call of `run` with the most self time (torch.profiler), in ms."""
    from torch.profiler import ProfilerActivity, profile

    import torch

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total + getattr(e, "self_device_time_total", 0),
                    reverse=True)
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
             "self_device_ms": round(getattr(e, "self_device_time_total", 0) / 1e3, 2)} for e in events[:n]]


class _StopRun(Exception):
    """Raised from a callback once a run has given its steps, to skip the final validation and saving."""


def time_loop(chosen: dict, common: dict, rounds: int, warmup: int, steps: int) -> tuple[dict, dict]:
    """Time Ultralytics' own loop with callbacks: one short run per variant and round, interleaved run by run."""
    from ultralytics import YOLO

    times = {name: [] for name in chosen}
    facts = {}
    names = list(chosen)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            kind, extra = chosen[name]
            starts, ends = [], []

            def on_end(trainer, ends=ends):
                ends.append(time.perf_counter())
                if len(ends) == warmup + steps:
                    facts[name] = {"optimizer": type(trainer.optimizer).__name__, "model": type(trainer.model).__name__,
                                   "accumulate": trainer.accumulate}
                    raise _StopRun

            model = YOLO(common["model"])
            model.add_callback("on_train_batch_start", lambda trainer: starts.append(time.perf_counter()))
            model.add_callback("on_train_batch_end", on_end)
            run = {k: v for k, v in common.items() if k != "model"}
            with T.quiet():
                try:
                    model.train(trainer=trainer_class(kind), **{**dict(
                        device="cpu", workers=0, amp=False, plots=False, val=False, verbose=False, seed=0,
                        exist_ok=True, project=str(T.CACHE / "runs"), name=f"loop_{name}"), **run, **extra})
                except _StopRun:
                    pass
            times[name] += [e - s for s, e in zip(starts[warmup:], ends[warmup:])]
    return times, facts


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--imgsz", type=int, help="default 160 (--quick 96)")
    p.add_argument("--batch", type=int, help="default 8 (--quick 4)")
    p.add_argument("--rounds", type=int, help="timed steps per variant (steps) or runs per variant (loop); default 15 "
                   "(--quick 5)")
    p.add_argument("--warmup", type=int, help="untimed steps per variant, per run with --method loop; default 2 "
                   "(--quick 1)")
    p.add_argument("--steps-per-run", type=int, help="--method loop: timed steps per run; default 6 (--quick 3)")
    p.add_argument("--method", choices=("steps", "loop"), default="steps")
    p.add_argument("--variants", default=",".join(variants(Path("t.pt"))), help="comma-separated subset")
    p.add_argument("--methods", help="instead of --variants: bench-distill method labels, each run as that method "
                   "runs (none, ultralytics[dis=18], ikd-score, ikd-score[adv_steps=2;adv_every=2]); a variant whose "
                   "stream runs every k-th step is timed over whole k-step cycles")
    p.add_argument("--backend", choices=("auto", "fused", "reference"), default="auto", help="ikd_yolo.ops backend")
    p.add_argument("--quick", action="store_true", help="a smaller case: imgsz 96, batch 4, 5 rounds, 1 warm-up step")
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA device such as 0 (then AMP is on, as in training)")
    p.add_argument("--profile", action="store_true", help="also profile one step of each variant (top ops by time)")
    p.add_argument("--out", type=Path, default=T.RESULTS / "step_cost_cpu.json")
    a = p.parse_args(argv)
    defaults = dict(imgsz=96, batch=4, rounds=5, warmup=1, steps_per_run=3) if a.quick else dict(
        imgsz=160, batch=8, rounds=15, warmup=2, steps_per_run=6)
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)

    from ikd_yolo import ops
    from ikd_yolo.evidence.paths import portable

    ops.set_backend(a.backend)
    n_batches = 4
    n_train = a.batch * (n_batches if a.method == "steps" else a.warmup + a.steps_per_run)
    data = T.bench_data(a.imgsz, n_train)
    teacher = T.bench_teacher(nc=8)
    if a.methods:
        chosen = method_variants(a.methods, teacher)
    else:
        table = variants(teacher)
        chosen = {k: table[k] for k in a.variants.split(",")}
    cuda = a.device != "cpu"
    common = dict(model="yolo11n.yaml", data=str(data), imgsz=a.imgsz, batch=a.batch, nbs=a.batch, epochs=1,
                  device=a.device, amp=cuda)

    t0 = time.perf_counter()
    if a.method == "steps":
        import torch

        times, facts = time_steps(chosen, common, a.rounds, a.warmup, n_batches,
                                  sync=torch.cuda.synchronize if cuda else None, profile=a.profile)
    else:
        times, facts = time_loop(chosen, common, a.rounds, a.warmup, a.steps_per_run)
    wall = time.perf_counter() - t0

    def ratio(name, ref):
        if ref not in times:
            return None
        if a.method == "steps":  # per-round pairs saw the same machine load
            return T.paired_ratio(times[name], times[ref])
        return T.summary(times[name])["median_ms"] / T.summary(times[ref])["median_ms"]

    results = {name: {**T.summary(times[name]), "vs_none": ratio(name, "none"), "vs_fgd": ratio(name, "fgd"),
                      "vs_ultralytics": ratio(name, "ultralytics"), "setup": facts.get(name, {}),
                      "overrides": {k: portable(v) if k in ("teacher", "distill_model") else v
                                    for k, v in chosen[name][1].items()}} for name in chosen}
    env = T.environment(a.device)
    report = {
        "benchmark": "step_cost",
        "command": ("python benchmarks/bench_step_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
        "method": a.method,
        "config": {"imgsz": a.imgsz, "batch": a.batch, "rounds": a.rounds, "warmup": a.warmup,
                   "steps_per_run": a.steps_per_run if a.method == "loop" else None, "student": "yolo11n.yaml",
                   "teacher": "yolo11s.yaml (untrained)", "data": f"synthetic shapes, {n_train} train images",
                   "nbs": a.batch, "optimizer": "auto", "amp": cuda, "device": a.device},
        "environment": env,
        "wall_s": round(wall, 1),
        "results": results,
    }
    fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    mb = lambda r, key: f"{r['setup']['memory'][key]:.0f}" if key in r["setup"].get("memory", {}) else "-"  # noqa: E731
    memory = ("state_mb", "activations_mb", "step_peak_mb")
    rows = [[name, f"{r['median_ms']:.0f}", f"{r['q1_ms']:.0f}-{r['q3_ms']:.0f}", fmt(r["vs_none"]),
             fmt(r["vs_fgd"]), fmt(r["vs_ultralytics"]), *(mb(r, key) for key in memory)]
            for name, r in results.items()]
    print(f"\nStep cost on CPU, imgsz {a.imgsz}, batch {a.batch}, method {a.method}, {a.rounds} rounds, ops backend "
          f"{env['ops_backend']}, torch threads {env['torch_threads']}, load avg {env['load_avg_1m']:.1f}\n")
    print(T.markdown_table(["variant", "median ms/step", "IQR ms", "vs none", "vs fgd", "vs ultralytics", "state MB",
                            "activations MB", "step peak MB"], rows))
    print(f"\nwrote {T.write_json(a.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
