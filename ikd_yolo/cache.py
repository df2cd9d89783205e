"""Where ikd-yolo keeps what it makes once and reuses: synthetic datasets, trained teachers, adversarial images."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder (IKD_YOLO_CACHE, else ~/.cache/ikd-yolo), made if missing."""
    path = Path(os.environ.get("IKD_YOLO_CACHE", Path.home() / ".cache" / "ikd-yolo")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
