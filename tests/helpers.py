"""Helpers shared by the tests (not fixtures: those are in conftest.py)."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import torch


def read_results(run: Path) -> dict[str, list[float]]:
    """A run's results.csv as {column: one value per epoch}."""
    from ikd_yolo.evidence.runs import read_results_csv

    rows = read_results_csv(run)
    return {k: [row[k] for row in rows] for k in rows[0]}


def train_kwargs(project: Path, name: str, **extra) -> dict:
    """Ultralytics arguments for a fast CPU run in tests."""
    base = dict(
        epochs=1, imgsz=64, batch=8, workers=0, device="cpu", plots=False, project=str(project), name=name,
        exist_ok=True, verbose=False, seed=0,
    )
    return {**base, **extra}


def train_brief_teacher(model_yaml: str, data: Path, project: Path) -> Path:
    """Train a tiny teacher for 40 short epochs (2 iterations each) on the 64 px synthetic set; return its last.pt.

    Trained because an untrained teacher barely responds to an 8/255 attack (YOLO26's cls loss moves below fp32
    resolution).
    """
    from ultralytics import YOLO

    YOLO(model_yaml).train(
        data=str(data), epochs=40, imgsz=64, batch=8, workers=0, device="cpu", plots=False, val=False,
        save=False,  # checkpoints only after the last epoch
        amp=False, mosaic=0.0, warmup_epochs=0, optimizer="AdamW", lr0=0.01, seed=0, deterministic=True,
        verbose=False, project=str(project), name="teacher",
    )
    return project / "teacher" / "weights" / "last.pt"


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of named tensors, to compare weights across processes."""
    h = hashlib.sha256()
    for k, v in sorted(tensors.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


class Stop(Exception):
    """Raised from a callback to end a run once the state under test exists."""


def stop(trainer):
    raise Stop


# 16 images, batch 6: 3 iterations per epoch, an odd count, so an attack every 2nd iteration falls on other batches in
# each epoch. 3 epochs with ikd_phase 0.667: the IKD phase is epochs 1-2 (index 0, 1), epoch 3 is plain distillation.
# rect=True (no shuffle) and Ultralytics' own augmentation off: Ultralytics does not checkpoint its RNG or loader state,
# so with shuffling the resumed epoch 2 would see epoch 1's batch order. What is left differs only by IKD's own random
# draws (MGD masks, which images are frequency-mixed, input diversity), which a resume re-seeds as Ultralytics does.

KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from ultralytics import YOLO
    from ikd_yolo import IKDTrainer

    batches = []

    def save_then_kill(trainer):
        # epoch 2: after batch 1 write a checkpoint mid-epoch (mid_epoch.pt), after batch 2 SIGKILL this process
        if trainer.epoch != 1:
            return
        batches.append(1)
        if len(batches) == 1:
            last, best = trainer.last, trainer.best
            trainer.last = trainer.best = trainer.wdir / "mid_epoch.pt"
            trainer.save_model()
            trainer.last, trainer.best = last, best
        else:
            os.kill(os.getpid(), signal.SIGKILL)

    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_batch_end", save_then_kill)
    model.train(trainer=IKDTrainer, **json.loads(sys.argv[1]))
""")



def resume_kwargs(project: Path, name: str, synthetic_data: Path, teacher_pt: Path) -> dict:
    return dict(
        teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-mgd", mgd_ratio=0.5, adv_steps=1, adv_every=2,
        rect=True, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0,
        **train_kwargs(project, name, epochs=3, batch=6, val=False),
    )



def cache_job(teacher: torch.nn.Module, settings, batch: int = 8):
    """The adversarial cache job of a test: the attack of `settings` on the CPU, batches of `batch`, no progress
    bar."""
    from ikd_yolo.augment.adv_cache import CacheJob
    from ikd_yolo.augment.attack import AdversarialAttack

    return CacheJob(teacher, AdversarialAttack(settings), torch.device("cpu"), batch, progress=False)


def corrupt_keeping_trailer(path: Path) -> None:
    """Flip bytes in the middle of a cache entry's file; its size and its last bytes stay as they were."""
    buf = bytearray(path.read_bytes())
    mid = len(buf) // 2
    buf[mid:mid + 8] = bytes(b ^ 0x5A for b in buf[mid:mid + 8])
    path.write_bytes(bytes(buf))
