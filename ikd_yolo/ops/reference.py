"""Pure-PyTorch reference of the IKD augmentation ops: the readable oracle and the fallback.

Every function here works on any device and any float dtype, with per-sample parameters given as Python floats or
tensors. The public wrappers in `ikd_yolo.ops` validate inputs and pick this or the fused kernels (csrc/); the fused
kernels are tested against these functions.

Conventions (shared with the kernels, see csrc/ops/device/spectral_mix.h):
    - spectra are `torch.fft.rfft2` of (B, C, H, W) images: (B, C, H, W // 2 + 1), unnormalised forward transform;
    - the radius of bin (fy, fx) is r = sqrt(fy**2 + fx**2) / 0.5 with fy, fx in cycles/pixel as
      `torch.fft.fftfreq(H)` / `torch.fft.rfftfreq(W)` give them (float64), so r lies in [0, sqrt(2)];
    - the band mask is the hard mask lo <= r < hi, per sample;
    - fp16/bf16 inputs are computed in fp32 (cuFFT half transforms only take powers of two) and cast back.
"""

from __future__ import annotations

import torch

MIX_MODES = ("complex", "amplitude")  # the spectral mixing rules (configs: freq_mix)


def per_sample(value, batch: int, device: torch.device) -> torch.Tensor:
    """Return a float or a one-element / (B,) tensor as a float64 (B,) tensor on `device`."""
    if not isinstance(value, torch.Tensor):  # torch.full: no host-to-device copy for a Python number
        return torch.full((batch,), float(value), dtype=torch.float64, device=device)
    t = value.to(device=device, dtype=torch.float64)
    return t.reshape(()).expand(batch) if t.numel() == 1 else t.reshape(batch)


def per_channel(value, batch: int, channels: int, device: torch.device) -> torch.Tensor:
    """Return a float or a tensor broadcastable to (B, C) as a float64 (B, C) tensor on `device`."""
    if not isinstance(value, torch.Tensor):
        return torch.full((batch, channels), float(value), dtype=torch.float64, device=device)
    return value.to(device=device, dtype=torch.float64).expand(batch, channels)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the ops compute in: fp32 for fp16/bf16, the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def band_radius(h: int, w: int, device=None) -> torch.Tensor:
    """Normalised radius r in [0, sqrt(2)] of every rfft2 bin of an (h, w) image, float64 (h, w // 2 + 1)."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64, device=device)[None, :]
    return torch.sqrt(fy * fy + fx * fx) / 0.5


def band_mask(h: int, w: int, lo, hi, batch: int = 1, device=None) -> torch.Tensor:
    """Hard radial band mask lo <= r < hi per sample, bool (B, 1, h, w // 2 + 1)."""
    r = band_radius(h, w, device)
    lo = per_sample(lo, batch, r.device).view(-1, 1, 1, 1)
    hi = per_sample(hi, batch, r.device).view(-1, 1, 1, 1)
    return (r >= lo) & (r < hi)


def mix_spectra(x_spec: torch.Tensor, s_spec: torch.Tensor, mask: torch.Tensor, lam, mode: str) -> torch.Tensor:
    """Mix source spectrum S into X inside `mask` with per-sample strength `lam` (complex or amplitude mode)."""
    lam = per_sample(lam, x_spec.shape[0], x_spec.device).to(x_spec.real.dtype).view(-1, 1, 1, 1)
    if mode == "complex":  # X' = X + lam * M * (S - X)
        return x_spec + (lam * mask) * (s_spec - x_spec)
    if mode == "amplitude":  # |X'| = |X| + lam * M * (|S| - |X|), arg X' = arg X
        ax = x_spec.abs()
        amp = ax + lam * (s_spec.abs() - ax)
        return torch.where(mask, torch.polar(amp, x_spec.angle()), x_spec)
    raise ValueError(f"mode must be one of {MIX_MODES}, got {mode!r}")


def spectral_mix(x: torch.Tensor, source: torch.Tensor, lo, hi, lam, mode: str = "complex") -> torch.Tensor:
    """Band-limited spectral mixing of `source` into `x`: clamp(irfft2(mix(rfft2(x), rfft2(source))), 0, 1)."""
    b, _, h, w = x.shape
    cdt = compute_dtype(x.dtype)
    x_spec = torch.fft.rfft2(x.to(cdt))
    s_spec = torch.fft.rfft2(source.to(cdt))
    mixed = mix_spectra(x_spec, s_spec, band_mask(h, w, lo, hi, b, x.device), lam, mode)
    return torch.fft.irfft2(mixed, s=(h, w)).clamp_(0.0, 1.0).to(x.dtype)


def spectral_mix_noise(x: torch.Tensor, sigma, lo, hi, lam, mode: str = "complex", generator=None) -> torch.Tensor:
    """`spectral_mix` with source = x + N(0, sigma^2) per pixel and channel (sigma per sample)."""
    cdt = compute_dtype(x.dtype)
    xc = x.to(cdt)
    gen_device = generator.device if generator is not None else x.device  # a CPU generator may drive CUDA images
    noise = torch.randn(x.shape, generator=generator, dtype=cdt, device=gen_device).to(x.device)
    sigma = per_sample(sigma, x.shape[0], x.device).to(cdt).view(-1, 1, 1, 1)
    return spectral_mix(xc, xc + sigma * noise, lo, hi, lam, mode).to(x.dtype)


def spectral_mix_shuffle(x: torch.Tensor, perm: torch.Tensor, lo, hi, lam, mode: str = "complex") -> torch.Tensor:
    """`spectral_mix` with source = x[perm] (another image of the batch)."""
    return spectral_mix(x, x[perm.to(device=x.device, dtype=torch.long)], lo, hi, lam, mode)


def adv_step(
    x_adv: torch.Tensor,
    x_clean: torch.Tensor,
    grad: torch.Tensor,
    momentum: torch.Tensor,
    step_size,
    eps,
    lo=0.0,
    hi=1.0,
    decay: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One momentum (MI/DI-FGSM) step: L1-normalise grad per sample, momentum, sign step, eps-ball and range clip.

    Returns (x_adv_new, momentum_new), out of place, in the dtypes of x_adv and momentum.
    """
    b, c = x_adv.shape[:2]
    dev, cdt = x_adv.device, compute_dtype(x_adv.dtype)
    step = per_sample(step_size, b, dev).to(cdt).view(-1, 1, 1, 1)
    eps = per_sample(eps, b, dev).to(cdt).view(-1, 1, 1, 1)
    lo = per_channel(lo, b, c, dev).to(cdt).view(b, c, 1, 1)
    hi = per_channel(hi, b, c, dev).to(cdt).view(b, c, 1, 1)
    g = grad.to(cdt)
    norm = g.abs().sum(dim=(1, 2, 3), keepdim=True)
    g = torch.where(norm > 0, g / norm, torch.zeros_like(g))  # zero gradient -> zero step direction
    m = decay * momentum.to(cdt) + g
    xc = x_clean.to(cdt)
    x = x_adv.to(cdt) + step * torch.sign(m)
    x = xc + torch.clamp(x - xc, -eps, eps)
    x = torch.clamp(x, lo, hi)
    return x.to(x_adv.dtype), m.to(momentum.dtype)
