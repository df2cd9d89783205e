"""Shared pieces of the CPU cost benchmarks: the bench setup, one training step, interleaved timing, reporting.

How a training step is timed. Each variant is a real Ultralytics trainer (`DetectionTrainer` or `IKDTrainer`) whose
`_setup_train()` has run, i.e. the model, dataloader, optimizer, EMA and (for IKD) teacher and augmentations exactly
as `model.train(...)` builds them. `train_step` then runs the body of Ultralytics' training loop
(`BaseTrainer._do_train`, Ultralytics 8.4) on one batch: `preprocess_batch` (for IKD: frequency augmentation,
teacher features, adversarial attack), `model(batch)` (forward + every loss), `loss.sum()`, `backward()` and
`optimizer_step()` (gradient clipping, optimizer, EMA update). It leaves out the warm-up learning-rate ramp, the
progress bar and the loader: batches are taken from the trainer's own train loader beforehand and handed out again
as shallow copies, so no variant pays for data loading and all see real mosaic batches. An optimizer step is taken
every iteration (as with `nbs=batch`). Driving the trainers step by step, rather than timing whole `model.train()`
runs, lets the variants be interleaved step by step in one process, which is what keeps ratios meaningful on a
shared, noisy CPU: every round times each variant once, in a rotated order, and the report uses medians.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")  # never reach for the network from a benchmark

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from ikd_yolo.evidence.machine import environment  # noqa: E402,F401  (one description of the machine for all)

CACHE = ROOT / ".ikd_cache" / "bench"  # synthetic data, the untrained teacher, trainer run folders (git-ignored)
RESULTS = ROOT / "benchmarks" / "results"


# ----------------------------------------------------------------------------------------------------- setup ----
def bench_data(imgsz: int, n_train: int, n_val: int = 8) -> Path:
    """data.yaml of the synthetic shapes set (8 classes) at `imgsz`, made once and reused."""
    from ikd_yolo.data import make_synthetic_dataset

    out = CACHE / f"synth_{imgsz}px_{n_train}"
    return make_synthetic_dataset(out, n_train=n_train, n_val=n_val, imgsz=imgsz, seed=0)


def bench_teacher(nc: int, cfg: str = "yolo11s.yaml") -> Path:
    """An UNTRAINED teacher checkpoint (random weights, the synthetic set's classes) in Ultralytics' format, made once.

    Timing does not need a good teacher: its cost depends on its architecture and the input size only. The file loads
    with `ultralytics.nn.tasks.load_checkpoint`: ikd-yolo's `teacher=` and Ultralytics' `distill_model=` both take it.
    """
    from ultralytics import __version__
    from ultralytics.nn.tasks import DetectionModel

    from ikd_yolo.data import CLASS_NAMES

    path = CACHE / f"teacher_{Path(cfg).stem}_nc{nc}_named.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = DetectionModel(cfg, nc=nc, verbose=False)
        model.names = dict(enumerate(CLASS_NAMES[:nc]))  # ikd-yolo checks the teacher's classes against the data
        ckpt = {"model": deepcopy(model).half(), "train_args": {}, "version": __version__, "date": None}
        torch.save(ckpt, path)
    return path


def build_trainer(trainer_cls: type, name: str, **overrides: Any):
    """A trainer of `trainer_cls` made ready to step: `_setup_train()` done, model in training mode, epoch 0."""
    args = dict(
        device="cpu", workers=0, amp=False, plots=False, val=False, verbose=False, seed=0, exist_ok=True,
        project=str(CACHE / "runs"), name=name,
    )
    trainer = trainer_cls(overrides={**args, **overrides})
    trainer._setup_train()
    trainer._model_train()
    trainer.epoch = 0
    trainer.optimizer.zero_grad()
    return trainer


def real_batches(trainer, n: int) -> list[dict]:
    """The first `n` collated batches of the trainer's train loader (mosaic etc. as in training)."""
    out = []
    while len(out) < n:
        for batch in trainer.train_loader:
            out.append(batch)
            if len(out) == n:
                break
    return out


def train_step(trainer, batch: dict) -> torch.Tensor:
    """One training step as Ultralytics' loop runs it: preprocess, forward + loss, backward, optimizer step + EMA.

    `batch` is a collated loader batch; it is shallow-copied, since `preprocess_batch` rewrites its entries.
    """
    from ultralytics.utils.torch_utils import autocast

    with autocast(torch.bfloat16 if trainer.args.amp == "bf16" else trainer.amp, device=trainer.device.type):
        batch = trainer.preprocess_batch(dict(batch))
        loss, trainer.loss_items = trainer.model(batch)
        trainer.loss = loss.sum()
    trainer.scaler.scale(trainer.loss).backward()
    trainer.optimizer_step()
    return trainer.loss.detach()


def step_memory(trainer, batches: list[dict]) -> dict[str, float]:
    """MB a training step of `trainer` holds, over one step per batch of `batches` (a cycle of its streams, some of
    which run every k-th step only): `state_mb`, what the trainer keeps between steps (model and teacher weights,
    gradients, optimizer state, EMA); `activations_mb`, the most that autograd saves for one backward pass (each
    storage counted once: the bulk of a step's peak on any device); on CUDA also `step_peak_mb`, the allocator's
    measured peak over those steps above what the process held before them (other trainers' state left out): a run of
    this trainer alone peaks at about state_mb + step_peak_mb."""

    def storages(tensors) -> dict[int, int]:
        return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if torch.is_tensor(t)}

    train_step(trainer, batches[0])  # gradients and optimizer state exist after a first step
    kept = [trainer.model.state_dict(), trainer.ema.ema.state_dict()]
    if getattr(trainer, "teacher", None) is not None:
        kept.append(trainer.teacher.model.state_dict())
    state = storages([t for d in kept for t in d.values()] + [p.grad for p in trainer.model.parameters()]
                     + [t for st in trainer.optimizer.state.values() for t in st.values()])
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
    activations = []
    for batch in batches:
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor, saved=saved) -> torch.Tensor:
            saved.update(storages([t]))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            train_step(trainer, batch)
        activations.append(sum(n for ptr, n in saved.items() if ptr not in state))
    out = {"state_mb": sum(state.values()) / 1e6, "activations_mb": max(activations) / 1e6}
    if cuda:
        out["step_peak_mb"] = (torch.cuda.max_memory_allocated() - resident) / 1e6
    return out


# ---------------------------------------------------------------------------------------------------- timing ----
def interleaved(
    tasks: dict[str, Callable[[], Any]],
    rounds: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    min_time: float = 0.0,
) -> dict[str, list[float]]:
    """Time each task once per round, in an order rotated every round; return seconds per call (warm-up dropped).

    Rotating the order means no task always runs first (after the loader) or right after the heaviest one. `sync`
    (e.g. torch.cuda.synchronize) runs around every sample, so asynchronous device work is counted; with `min_time`
    each sample repeats its task enough times to last about that long (for calls far shorter than the timer's noise).
    """
    sync = sync or (lambda: None)
    names = list(tasks)
    inner = dict.fromkeys(names, 1)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(warmup + rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                tasks[name]()
            sync()
            dt = (time.perf_counter() - t0) / inner[name]
            if r >= warmup:
                times[name].append(dt)
            elif min_time > 0:
                inner[name] = max(1, int(min_time / max(dt, 1e-6)))
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes in milliseconds."""
    ms = sorted(1e3 * s for s in seconds)
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {"median_ms": statistics.median(ms), "q1_ms": q[0], "q3_ms": q[2], "min_ms": ms[0], "max_ms": ms[-1],
            "n": len(ms)}


def paired_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num[i] / den[i]: each round's two timings saw the same machine load."""
    return statistics.median(a / b for a, b in zip(num, den))


# ---------------------------------------------------------------------------------------------------- report ----
def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, obj: dict) -> Path:
    """Write `obj` as indented JSON, creating the folder; every path in it as results record paths (`recorded`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recorded(obj), indent=2) + "\n")
    return path


def recorded(obj: Any) -> Any:
    """`obj` with this checkout's and the cache's folders written as results write them (repo-relative, `<cache>/`),
    in every string, so a committed result names no machine's folders."""
    from ikd_yolo.cache import cache_dir

    if isinstance(obj, dict):
        return {k: recorded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [recorded(v) for v in obj]
    if isinstance(obj, str):
        return obj.replace(f"{ROOT}/", "").replace(str(cache_dir()), "<cache>")
    return obj


class quiet:
    """Context manager: Ultralytics' LOGGER (and with it its progress bars) at WARNING level inside."""

    def __enter__(self) -> None:
        from ultralytics.utils import LOGGER

        self.level = LOGGER.level
        LOGGER.setLevel(30)

    def __exit__(self, *exc: Any) -> None:
        from ultralytics.utils import LOGGER

        LOGGER.setLevel(self.level)
