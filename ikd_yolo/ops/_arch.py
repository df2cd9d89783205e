"""Whether the compiled CUDA kernels run on a GPU, decided before anything is launched on it.

The extension says which GPU code it holds (`torch.ops.ikd._cuda_archs()`, from the build: e.g. sm_80,sm_90,
compute_120). A GPU of compute capability X.Y runs machine code sm_XZ for Z <= Y (the same major version; an
arch-specific sm_90a runs on 9.0 alone) and PTX compute_XZ of any capability up to its own (the driver compiles it).
A GPU that runs none of it gets the PyTorch reference for every op, with ONE warning line naming the GPU and how to
build for it, instead of a launch failing with "no kernel image is available for execution on the device".

Examples:
    >>> runs_on("sm_80", (8, 9)), runs_on("sm_80", (9, 0)), runs_on("compute_120", (12, 1)), runs_on("sm_90a", (9, 0))
    (True, False, True, True)
"""

from __future__ import annotations

import re

import torch

from . import _loader

_verdicts: dict[str, bool] = {}  # device -> its GPU runs the compiled kernels


def runs_on(code: str, capability: tuple[int, int]) -> bool:
    """True if the GPU code `code` (sm_XY[a|f] or compute_XY[a|f]) runs on a GPU of compute `capability`."""
    kind, digits, suffix = re.fullmatch(r"(sm|compute)_(\d+)([af]?)", code).groups()
    arch = (int(digits[:-1]), int(digits[-1]))
    if suffix == "a":  # arch-specific features: that GPU alone
        return arch == capability
    if kind == "compute":
        return arch <= capability
    return arch[0] == capability[0] and arch[1] <= capability[1]


def kernels_run_on(device: torch.device) -> bool:
    """True if the compiled CUDA kernels run on the GPU `device`; the first False for a device logs one warning.
    Without a GPU there is nothing to decide (True: `backend` then says what a GPU would run)."""
    key = str(device)
    if key not in _verdicts and torch.cuda.is_available():
        archs = _loader.cuda_archs()
        capability = torch.cuda.get_device_capability(device)
        _verdicts[key] = any(runs_on(code, capability) for code in archs)
        if not _verdicts[key]:
            from ultralytics.utils import LOGGER

            major, minor = capability
            LOGGER.warning(
                f"ikd_yolo.ops: the fused CUDA kernels were built for {', '.join(archs) or 'no GPU'}, which "
                f"{device} ({torch.cuda.get_device_name(device)}, compute capability {major}.{minor}) cannot run; "
                f"using the PyTorch reference ops on it (to build for it: TORCH_CUDA_ARCH_LIST={major}.{minor} pip "
                "install --no-build-isolation .)"
            )
    return _verdicts.get(key, True)


def reset() -> None:
    """Forget every verdict (tests)."""
    _verdicts.clear()
