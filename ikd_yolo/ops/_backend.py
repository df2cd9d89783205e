"""Backend selection: the fused kernels when available (per device), the PyTorch reference otherwise."""

from __future__ import annotations

import os

import torch

from . import _loader, _self_check

BACKENDS = ("auto", "fused", "reference")
_choice = {"name": os.environ.get("IKD_OPS_BACKEND", "auto")}
if _choice["name"] not in BACKENDS:
    _choice["name"] = "auto"


def set_backend(name: str) -> None:
    """Choose the implementation: "auto" (fused if built, else reference), "fused" (required) or "reference"."""
    if name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of {BACKENDS}, got {name!r}")
    if name == "fused" and _loader.load() is None:
        raise RuntimeError(f"set_backend('fused'): the compiled extension is unavailable ({_loader.error()})")
    _choice["name"] = name


def _fused_available(device_type: str) -> bool:
    if _loader.load() is None:
        return False
    return device_type == "cpu" or (device_type == "cuda" and _loader.cuda_compiled())


def backend(device: torch.device | str = "cpu") -> str:
    """The implementation the ops use for tensors on `device`: "reference", "fused-cpu" or "fused-cuda"."""
    device_type = torch.device(device).type
    if _choice["name"] == "reference" or device_type not in ("cpu", "cuda"):
        return "reference"
    if _fused_available(device_type):
        return f"fused-{device_type}"
    if _choice["name"] == "fused":
        raise RuntimeError(f"ikd_yolo.ops: backend 'fused' was requested but has no kernels for {device_type}")
    return "reference"


def use_fused(op: str, device: torch.device) -> bool:
    """True if the fused kernel of `op` should run for tensors on `device` (on a GPU: once it passed its first-use
    check against the reference, see _self_check)."""
    return backend(device) != "reference" and _self_check.trusted(op, device)
