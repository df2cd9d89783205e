"""Matched training runs of the evidence benchmark (and so of `ikd-yolo demo`): cached teachers, one student per run.

A run is (method, seed) on fixed data, student, teacher, epochs and image size: only the distillation differs.
Methods: "none" (plain Ultralytics training), "ultralytics" (Ultralytics' built-in `distill_model=` distillation)
and any ikd-yolo preset name (fgd, mgd, ikd-fgd, ...), trained with IKDTrainer.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import ultralytics
from ultralytics import YOLO
from ultralytics.utils import LOGGER, colorstr

from ..cache import cache_dir
from ..config import preset_names


def config_hash(settings: dict[str, Any]) -> str:
    """Short stable hash of run settings (plus the Ultralytics version, which changes training)."""
    text = json.dumps({**settings, "ultralytics": ultralytics.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def keep_threads(model: YOLO, threads: int | None) -> YOLO:
    """Make `model`'s training and validation use `threads` torch threads (None: leave Ultralytics' choice).

    Ultralytics sets its own thread count when it picks the device, so the count is set again when training and
    validation start.
    """
    if threads:
        from .parallel import set_threads

        for event in ("on_pretrain_routine_start", "on_train_start", "on_val_start"):
            model.add_callback(event, lambda _, n=threads: set_threads(n))
    return model


def teacher_folder(data: str | Path, model: str, epochs: int, imgsz: int, batch: int, seed: int = 0,
                   **train_args: Any) -> Path:
    """The cache folder of a teacher trained with these settings."""
    from .paths import portable

    settings = dict(data=portable(data), model=model, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed)
    if train_args:  # only when given, so the keys of teachers cached before this argument existed stay the same
        settings["train_args"] = {k: portable(v) if k == "pretrained" else v for k, v in train_args.items()}
    return cache_dir() / "teachers" / f"{Path(model).stem}-{config_hash(settings)}"


def cached_teacher(
    data: str | Path, model: str, epochs: int, imgsz: int, batch: int, device: str, seed: int = 0,
    threads: int | None = None, **train_args: Any,
) -> Path:
    """Train a teacher once per settings and reuse its best.pt afterwards.

    Extra Ultralytics arguments (e.g. workers=8) are passed to training and, when given, are part of the cache key;
    `threads` (torch threads) is not.
    """
    folder = teacher_folder(data, model, epochs, imgsz, batch, seed, **train_args)
    best, last = folder / "weights" / "best.pt", folder / "weights" / "last.pt"
    epoch = checkpoint_epoch(last)
    if best.exists() and epoch == -1:
        LOGGER.info(f"{colorstr('ikd-yolo:')} reusing cached teacher {best}")
        return best
    if epoch is not None:  # a teacher run that was stopped: go on from its last epoch instead of starting over
        LOGGER.info(f"{colorstr('ikd-yolo:')} resuming the stopped teacher run {last}")
        keep_threads(YOLO(last), threads).train(resume=True)
        return best
    keep_threads(YOLO(model), threads).train(
        **{"workers": 0, "plots": False, "verbose": False, **train_args},
        data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, device=device, seed=seed,
        project=str(folder.parent), name=folder.name, exist_ok=True,
    )
    return best


def checkpoint_epoch(last: Path) -> int | None:
    """The epoch an Ultralytics `last.pt` was written at: -1 once the run finished (its final step strips the
    optimizer and sets epoch -1); None when there is no readable file (missing, or cut short by a kill: start over).
    A file holding more than model types is refused (UntrustedCheckpoint), not started over: it is read safely."""
    from ..checkpoints import UntrustedCheckpoint, load_pt

    try:
        return int(load_pt(last).get("epoch", -1))
    except UntrustedCheckpoint:
        raise
    except Exception:  # noqa: BLE001  (missing or truncated: either way nothing to resume from)
        return None


def read_results_csv(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of an Ultralytics run's results.csv as {column: value}, one per epoch (column names stripped)."""
    lines = (Path(run_dir) / "results.csv").read_text().splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    return [dict(zip(header, (float(x) for x in line.split(",")))) for line in lines[1:] if line.strip()]


def epoch_curve(run_dir: str | Path) -> list[dict[str, float]]:
    """Per epoch from results.csv: validation mAP (0 where the epoch was not validated), the training detection
    losses and the cumulative training time (s): the learning curve of a run."""
    nan = float("nan")
    return [
        {
            "epoch": int(row["epoch"]),
            "map50_95": row.get("metrics/mAP50-95(B)", nan),
            "map50": row.get("metrics/mAP50(B)", nan),
            "box_loss": row.get("train/box_loss", nan),
            "cls_loss": row.get("train/cls_loss", nan),
            "time": row.get("time", nan),
        }
        for row in read_results_csv(run_dir)
    ]


def train_student(
    method: str,
    data: str | Path,
    teacher: str | Path,
    student: str,
    project: str | Path,
    name: str,
    threads: int | None = None,
    **train_args: Any,
) -> dict[str, Any]:
    """Train one student with `method`; return its metrics, weights path, wall time per epoch and learning curve.

    `train_args` go to Ultralytics (workers defaults to 0); `threads` is the run's torch thread count. The returned
    dict holds method, map50_95, map50, weights, seconds_per_epoch (wall time of the whole call / epochs), save_dir
    and curve (`epoch_curve` of the run).
    """
    model = keep_threads(YOLO(student), threads)
    project = Path(project).resolve()  # Ultralytics puts a relative project under runs/<task>/
    common = dict(data=str(data), project=str(project), name=name, exist_ok=True, **{"workers": 0, **train_args})
    start = time.time()
    if method == "none":
        metrics = model.train(**common)
    elif method == "ultralytics":
        metrics = model.train(distill_model=str(teacher), **common)
    elif method in preset_names():
        from ..trainer import IKDTrainer

        metrics = model.train(trainer=IKDTrainer, teacher=str(teacher), distill=method, **common)
    else:
        raise ValueError(f"unknown method '{method}': use none, ultralytics or a preset ({', '.join(preset_names())})")
    seconds = time.time() - start
    save_dir = Path(model.trainer.save_dir)
    return {
        "method": method,
        "map50_95": float(metrics.box.map),
        "map50": float(metrics.box.map50),
        "weights": str(Path(model.trainer.best)),
        "seconds_per_epoch": seconds / max(int(train_args.get("epochs", 1)), 1),
        "save_dir": str(save_dir),
        "curve": epoch_curve(save_dir) if (save_dir / "results.csv").exists() else [],
    }
