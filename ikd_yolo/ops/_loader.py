"""Load the compiled extension `ikd_yolo._C` (fused ops, namespace `torch.ops.ikd`) once, or explain why not.

A missing or unloadable extension is not an error: the ops fall back to the PyTorch reference and ONE warning line
goes to the Ultralytics LOGGER.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_state: dict = {"tried": False, "module": None, "error": None, "cuda_version": -1, "cuda_archs": ()}


def _import_extension() -> tuple[ModuleType, int, tuple[str, ...]]:
    """Import the compiled module (registers the `ikd::` ops); return it, its CUDA version (-1: CPU only) and the GPU
    code its CUDA kernels were compiled to (`_arch`)."""
    import torch

    module = importlib.import_module("ikd_yolo._C")
    from . import _fake  # noqa: F401  (fake/meta kernels so the ops trace)

    archs = tuple(code for code in torch.ops.ikd._cuda_archs().split(",") if code)
    return module, int(torch.ops.ikd._cuda_version()), archs


def load() -> ModuleType | None:
    """Return the extension module, or None (after one warning) if it cannot be loaded."""
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["module"], _state["cuda_version"], _state["cuda_archs"] = _import_extension()
        except Exception as e:  # ImportError, OSError (undefined symbol, missing libs), RuntimeError
            lines = str(e).strip().splitlines()
            _state["error"] = f"{type(e).__name__}: {lines[0] if lines else ''}"
            from ultralytics.utils import LOGGER

            LOGGER.warning(
                f"ikd_yolo.ops: fused kernels unavailable ({_state['error']}); using the PyTorch reference "
                "(build them with `pip install --no-build-isolation -e .`)"
            )
    return _state["module"]


def error() -> str | None:
    """Why the extension could not be loaded (None if it loaded or was never tried)."""
    return _state["error"]


def cuda_compiled() -> bool:
    """True if the loaded extension contains the CUDA kernels."""
    return load() is not None and _state["cuda_version"] > 0


def cuda_archs() -> tuple[str, ...]:
    """The GPU code the loaded extension's CUDA kernels were compiled to (sm_90, compute_120, ...); () without."""
    return _state["cuda_archs"] if load() is not None else ()


def reset() -> None:
    """Forget the previous load attempt (tests use this to simulate a missing extension)."""
    _state.update(tried=False, module=None, error=None, cuda_version=-1, cuda_archs=())
