"""Shared fixtures: a tiny synthetic dataset, briefly trained teachers, a killed and a finished run, Ultralytics'
log lines.

Helpers that are not fixtures live in tests/helpers.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: never try the network from tests

from helpers import KILL_SCRIPT, cache_job, resume_kwargs, train_brief_teacher, train_kwargs  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """data.yaml of a 16-train / 8-val synthetic set at 64 px."""
    from ikd_yolo.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data", n_train=16, n_val=8, imgsz=64, seed=0)


@pytest.fixture(scope="session")
def teacher_pt(tmp_path_factory, synthetic_data) -> Path:
    """A yolo11s teacher (wider than the yolo11n students, so adapters are exercised) trained for 2 short epochs."""
    from ultralytics import YOLO

    project = tmp_path_factory.mktemp("teacher")
    YOLO("yolo11s.yaml").train(data=str(synthetic_data), **train_kwargs(project, "t", epochs=2, val=False))
    return project / "t" / "weights" / "last.pt"


@pytest.fixture(scope="session")
def attack_setup(synthetic_data, teacher_pt):
    """(data dict, the frozen teacher model with Ultralytics' args, a 2-step attack's settings, the synthetic set
    letterboxed to 64 px as the adversarial cache attacks it)."""
    from ultralytics.cfg import get_cfg

    from ikd_yolo.augment.adv_cache import attack_dataset
    from ikd_yolo.augment.attack import AttackSettings
    from ikd_yolo.config import resolve_distill_config, section
    from ikd_yolo.inputs import load_data
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    data = load_data(synthetic_data)
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=data["nc"])).model
    teacher.args = get_cfg()
    settings = section(AttackSettings, resolve_distill_config({"adv_steps": 2}))
    return data, teacher, settings, attack_dataset(data, 64, 8)


@pytest.fixture(scope="session")
def full_cache(attack_setup, tmp_path_factory):
    """A complete adversarial cache of the synthetic set built in one process in batches of 8, and its entries'
    bytes (read-only: tests copy them)."""
    from ikd_yolo.augment.adv_cache import build_cache, open_cache

    data, teacher, settings, dataset = attack_setup
    cache = open_cache(tmp_path_factory.mktemp("full"), teacher, dataset, 64, settings, 0)
    build_cache(cache, dataset, cache_job(teacher, settings))
    return cache, [cache.path(i).read_bytes() for i in range(len(dataset.im_files))]


@pytest.fixture(scope="session")
def yolo26_teacher_pt(tmp_path_factory, synthetic_data) -> Path:
    """A yolo26n teacher checkpoint (end-to-end head, one value per box side, E2ELoss), briefly trained."""
    return train_brief_teacher("yolo26n.yaml", synthetic_data, tmp_path_factory.mktemp("teacher26"))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, synthetic_data, teacher_pt) -> Path:
    """The folder of a finished one-epoch `ikd-yolo train` run (final_eval stripped its optimizer and ikd-yolo
    state)."""
    from ikd_yolo.cli import main

    project = tmp_path_factory.mktemp("finished")
    words = [f"{k}={v}" for k, v in train_kwargs(project, "run").items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", "distill=fgd",
                 *words]) == 0
    return project / "run"


@pytest.fixture
def ultralytics_log():
    """Messages Ultralytics' LOGGER emits during the test."""
    from ultralytics.utils import LOGGER

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    LOGGER.addHandler(handler)
    yield messages
    LOGGER.removeHandler(handler)


# A run SIGKILLed in the middle of epoch 2 (see helpers.KILL_SCRIPT), shared by the resume and checkpoint tests.
@pytest.fixture(scope="session")
def killed_run(tmp_path_factory, synthetic_data, teacher_pt) -> dict:
    """A run SIGKILLed in the middle of epoch 2, and untouched copies of the checkpoints it left behind."""
    project = tmp_path_factory.mktemp("killed")
    kwargs = resume_kwargs(project, "run", synthetic_data, teacher_pt)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(kwargs)], capture_output=True, text=True,
                          timeout=600, cwd=project)
    # killed by the signal, not by an error: training went on after the mid-epoch save
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    keep = tmp_path_factory.mktemp("killed_ckpts")
    for name in ("last.pt", "mid_epoch.pt"):
        shutil.copy(project / "run" / "weights" / name, keep / name)
    return {"run": project / "run", "last": keep / "last.pt", "mid_epoch": keep / "mid_epoch.pt"}

