"""What a measurement ran on: one description of the machine and software, shared by the evidence and benchmarks."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else what platform reports)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(device: str | None = None) -> dict[str, Any]:
    """Date, hardware, load, thread count, versions and which op backend runs on `device` (default: cpu)."""
    import torch
    import ultralytics

    from .. import ops
    from .._version import __version__
    from ..ops import _loader

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
        "ikd_yolo": __version__,
        "fused_available": _loader.load() is not None,
        "ops_backend": ops.backend("cuda" if device not in (None, "cpu") and gpu else "cpu"),
    }
