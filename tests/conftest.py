"""Shared fixtures: a tiny synthetic dataset and a briefly trained teacher, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: never try the network from tests


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """data.yaml of a 16-train / 8-val synthetic set at 64 px."""
    from ikd_yolo.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data", n_train=16, n_val=8, imgsz=64, seed=0)


def read_results(run: Path) -> dict[str, list[float]]:
    """A run's results.csv as {column: one value per epoch}."""
    from ikd_yolo.experiments import read_results_csv

    rows = read_results_csv(run)
    return {k: [row[k] for row in rows] for k in rows[0]}


def train_kwargs(project: Path, name: str, **extra) -> dict:
    """Ultralytics arguments for a fast CPU run in tests."""
    base = dict(
        epochs=1, imgsz=64, batch=8, workers=0, device="cpu", plots=False, project=str(project), name=name,
        exist_ok=True, verbose=False, seed=0,
    )
    return {**base, **extra}


@pytest.fixture(scope="session")
def teacher_pt(tmp_path_factory, synthetic_data) -> Path:
    """A yolo11s teacher (wider than the yolo11n students, so adapters are exercised) trained for 2 short epochs."""
    from ultralytics import YOLO

    project = tmp_path_factory.mktemp("teacher")
    YOLO("yolo11s.yaml").train(data=str(synthetic_data), **train_kwargs(project, "t", epochs=2, val=False))
    return project / "t" / "weights" / "last.pt"
