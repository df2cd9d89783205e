"""IKD augmentation ops: band-limited spectral mixing and the momentum adversarial step.

Each op runs a fused C++/CUDA kernel (`ikd_yolo._C`, `torch.ops.ikd.*`) when the extension is built, and the
pure-PyTorch reference (`ikd_yolo.ops.reference`, also the test oracle) otherwise. `backend(device)` tells which
one runs; `set_backend("reference" | "fused" | "auto")` chooses (env IKD_OPS_BACKEND sets the default). On a GPU,
each fused op is compared with the reference at its first use on each device; one that disagrees (or fails to
launch) logs one warning and runs the reference there from then on (`_self_check`; IKD_SELF_CHECK=0 skips it). A GPU
whose architecture the build holds no code for runs the reference for every op, with one warning (`_arch`).

Examples:
    >>> import torch
    >>> from ikd_yolo.ops import spectral_mix_noise, adv_step, backend
    >>> x = torch.rand(4, 3, 64, 64)
    >>> y = spectral_mix_noise(x, sigma=0.08, lo=0.5, hi=2.0, lam=1.0)
    >>> y.shape
    torch.Size([4, 3, 64, 64])
    >>> backend("cpu") in ("fused-cpu", "reference")  # "fused-cpu" when the extension is built
    True
"""

import os as _os

from . import _loader
from ._backend import backend, set_backend
from .adv_step import adv_step
from .spectral import spectral_mix, spectral_mix_noise, spectral_mix_shuffle

if _os.environ.get("IKD_OPS_BACKEND") != "reference":
    _loader.load()  # at import, not inside a first call that torch.compile may be tracing

__all__ = ["adv_step", "backend", "set_backend", "spectral_mix", "spectral_mix_noise", "spectral_mix_shuffle"]
