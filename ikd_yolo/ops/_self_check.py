"""First-use self-check of the fused kernels on a GPU.

The first time a fused op runs on a CUDA device in a process, it is compared with the PyTorch reference on a small
fixed batch (a few milliseconds). On a mismatch or an error (a kernel image missing for the GPU, a failed launch) ONE
warning line names the op and the device, and that op runs the reference on that device for the rest of the
process; training goes on. `IKD_SELF_CHECK=0` turns the check off.

The noise op draws its noise in the frequency domain, so its values differ from the reference's torch.randn by
design. It is checked in two exact ways instead: its noise spectrum must equal the CPU kernel's for the same seed, and
its output must equal the reference's explicit-source mixing with that very noise as the source.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from . import reference as ref
from .reference import MIX_MODES

CHECKED_DEVICE_TYPES = ("cuda",)  # the tests check the check on "cpu"
TOLERANCE = 1e-4  # the kernels agree with the reference to ~1e-6; a wrong index or launch is off by ~1e-2 or more
_verdicts: dict[tuple[str, str], bool] = {}  # (op, device) -> the fused kernel passed its check


def trusted(op: str, device: torch.device) -> bool:
    """True if the fused kernel of `op` may run on `device`; on a checked device the first call runs the check."""
    if device.type not in CHECKED_DEVICE_TYPES or os.environ.get("IKD_SELF_CHECK", "1") == "0":
        return True
    key = (op, str(device))
    if key not in _verdicts:
        if torch.compiler.is_compiling() or (device.type == "cuda" and torch.cuda.is_current_stream_capturing()):
            return True  # no real kernels can run while tracing or capturing: the first eager call checks
        failure = check(op, device)
        _verdicts[key] = failure is None
        if failure is not None:
            from ultralytics.utils import LOGGER

            LOGGER.warning(
                f"ikd_yolo.ops: the fused {op} kernel failed its first-use check on {device} ({failure}); using the "
                f"PyTorch reference for {op} on {device} from now on (IKD_SELF_CHECK=0 skips the check)"
            )
    return _verdicts[key]


def check(op: str, device: torch.device) -> str | None:
    """Compare the fused kernel of `op` on `device` with the reference; None if it passes, else why not (one line)."""
    try:
        with torch.no_grad():
            return CHECKS[op](torch.device(device))
    except Exception as e:  # a launch error, a kernel image missing for this GPU, ...
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}"


def reset() -> None:
    """Forget every verdict (tests)."""
    _verdicts.clear()


def _difference(name: str, got: torch.Tensor, want: torch.Tensor, scale: float = 1.0) -> str | None:
    wide = torch.complex128 if got.is_complex() else torch.float64
    err = (got.to(wide) - want.to(wide)).abs().max().item() / scale
    if not err <= TOLERANCE:  # NaN fails too
        return f"{name}: max |fused - reference| = {err:.3g} > {TOLERANCE:g}"
    return None


def _first(*results: str | None) -> str | None:
    return next((r for r in results if r is not None), None)


def _images(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed (3, 2, 24, 19) batch and source, with per-sample bands (full, partial, high) and strengths."""
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(3, 2, 24, 19, generator=g), torch.rand(3, 2, 24, 19, generator=g)
    lo, hi, lam = torch.tensor([0.0, 0.1, 0.5]), torch.tensor([2.0, 0.6, 2.0]), torch.tensor([1.0, 0.7, 0.4])
    return x.to(device), s.to(device), *(t.double().to(device) for t in (lo, hi, lam))


def _check_spectral_mix(device: torch.device) -> str | None:
    x, s, lo, hi, lam = _images(device)
    return _first(*(_difference(mode, torch.ops.ikd.spectral_mix(x, s, lo, hi, lam, mode),
                                ref.spectral_mix(x, s, lo, hi, lam, mode)) for mode in MIX_MODES))


def _check_spectral_mix_shuffle(device: torch.device) -> str | None:
    x, _, lo, hi, lam = _images(device)
    perm = torch.tensor([2, 0, 0], device=device)
    return _first(*(_difference(mode, torch.ops.ikd.spectral_mix_shuffle(x, perm, lo, hi, lam, mode),
                                ref.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)) for mode in MIX_MODES))


def _check_spectral_mix_noise(device: torch.device) -> str | None:
    x, _, lo, hi, lam = _images(device)
    sigma, seed = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64), 12345
    b, c, h, w = x.shape
    noise = torch.ops.ikd.noise_spectrum(sigma.to(device), c, h, w, seed)
    scale = 0.2 * (h * w) ** 0.5  # the largest noise bins' std
    cpu_noise = torch.ops.ikd.noise_spectrum(sigma, c, h, w, seed)
    failure = _difference("noise spectrum vs the CPU kernel's", noise.cpu(), cpu_noise, scale)
    source = x + torch.fft.irfft2(noise, s=(h, w))  # the op's own noise as an explicit source
    sigma = sigma.to(device)
    return _first(failure, *(_difference(mode, torch.ops.ikd.spectral_mix_noise(x, sigma, lo, hi, lam, mode, seed),
                                         ref.spectral_mix(x, source, lo, hi, lam, mode)) for mode in MIX_MODES))


def _check_adv_step(device: torch.device) -> str | None:
    g = torch.Generator().manual_seed(1)
    shape, f64 = (2, 3, 33, 40), {"dtype": torch.float64}
    x_clean = torch.rand(shape, generator=g)
    x_adv = (x_clean + 0.02 * torch.randn(shape, generator=g)).clamp(0, 1)
    grad, momentum = torch.randn(shape, generator=g), 0.01 * torch.randn(shape, generator=g)
    step, eps = torch.tensor([0.01, 0.02], **f64), torch.tensor([0.03, 0.05], **f64)
    lo, hi = torch.full((2, 3), 0.05, **f64), torch.full((2, 3), 0.95, **f64)
    args = [t.to(device) for t in (x_adv, x_clean, grad, momentum, step, eps, lo, hi)]
    x_f, m_f = torch.ops.ikd.adv_step(*args, 0.9)
    x_r, m_r = ref.adv_step(*args, 0.9)
    return _first(_difference("x_adv", x_f, x_r), _difference("momentum", m_f, m_r, m_r.abs().max().item()))


CHECKS: dict[str, Callable[[torch.device], str | None]] = {
    "spectral_mix": _check_spectral_mix,
    "spectral_mix_shuffle": _check_spectral_mix_shuffle,
    "spectral_mix_noise": _check_spectral_mix_noise,
    "adv_step": _check_adv_step,
}
