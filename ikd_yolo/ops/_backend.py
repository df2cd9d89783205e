"""Backend selection: the fused kernels when available (per device), the PyTorch reference otherwise."""

from __future__ import annotations

import os

import torch

from . import _arch, _loader, _self_check

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


def _fused_available(device: torch.device) -> bool:
    if _loader.load() is None:
        return False
    if device.type == "cuda":  # kernels compiled, and for this GPU's architecture (one warning if not)
        return _loader.cuda_compiled() and _arch.kernels_run_on(device)
    return True


def backend(device: torch.device | str = "cpu") -> str:
    """The implementation the ops use for tensors on `device`: "reference", "fused-cpu" or "fused-cuda"."""
    device = torch.device(device)
    if _choice["name"] == "reference" or device.type not in ("cpu", "cuda"):
        return "reference"
    if _fused_available(device):
        return f"fused-{device.type}"
    if _choice["name"] == "fused":
        raise RuntimeError(f"ikd_yolo.ops: backend 'fused' was requested but has no kernels for {device}")
    return "reference"


def use_fused(op: str, device: torch.device) -> bool:
    """True if the fused kernel of `op` should run for tensors on `device` (on a GPU: once it passed its first-use
    check against the reference, see _self_check)."""
    return backend(device) != "reference" and _self_check.trusted(op, device)
