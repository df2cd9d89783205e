"""Band-limited spectral mixing (IKD frequency augmentation): public wrappers, fused kernel or reference."""

from __future__ import annotations

import torch

from . import _backend, _checks, reference


def spectral_mix(x: torch.Tensor, source: torch.Tensor, lo, hi, lam, mode: str = "complex") -> torch.Tensor:
    """Mix the spectrum of `source` into `x` inside a radial frequency band, per sample.

    With X = rfft2(x), S = rfft2(source) and the hard band mask M = [lo <= r < hi], where r = sqrt(fy^2 + fx^2) / 0.5
    is the bin radius (fy, fx in cycles/pixel as torch.fft.fftfreq / rfftfreq give them, so r is in [0, sqrt(2)]):
        mode "complex":   X' = X + lam * M * (S - X)
        mode "amplitude": |X'| = |X| + lam * M * (|S| - |X|), phase of X kept
    and the result is clamp(irfft2(X', s=(H, W)), 0, 1).

    Args:
        x (torch.Tensor): (B, C, H, W) float images in [0, 1]; any H, W; fp16/bf16 are computed in fp32.
        source (torch.Tensor): (B, C, H, W) float images, same shape and device as x.
        lo, hi (float | torch.Tensor): band limits on r, floats or (B,) tensors.
        lam (float | torch.Tensor): mixing strength, float or (B,) tensor (0 keeps x, 1 replaces the band).
        mode (str): "complex" or "amplitude".

    Returns:
        (torch.Tensor): mixed images, same shape, dtype and device as x.

    Examples:
        >>> x, s = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        >>> y = spectral_mix(x, s, lo=torch.tensor([0.0, 0.5]), hi=torch.tensor([0.25, 2.0]), lam=0.5)
    """
    op = "spectral_mix"
    x = _checks.image(op, "x", x)
    source = _checks.image(op, "source", source, like=x).to(x.dtype)
    lo, hi, lam = (_checks.sample_param(op, n, v, x) for n, v in (("lo", lo), ("hi", hi), ("lam", lam)))
    mode = _checks.mode(op, mode)
    if _backend.use_fused(op, x.device):
        return torch.ops.ikd.spectral_mix(x, source, lo, hi, lam, mode)
    return reference.spectral_mix(x, source, lo, hi, lam, mode)


def spectral_mix_noise(x: torch.Tensor, sigma, lo, hi, lam, mode: str = "complex", generator=None) -> torch.Tensor:
    """`spectral_mix` with a Gaussian-noise source, source = x + N(0, sigma^2) per pixel and channel.

    The fused kernel draws the noise spectrum directly in the frequency domain (only inside the band), with a
    counter-based RNG keyed by a seed drawn from `generator` (the default CPU generator if None), so it costs one
    rfft2 and one irfft2 and is a pure function of that seed. The reference draws the noise image with torch.randn.
    Both have the same distribution; their values differ.

    Args:
        x (torch.Tensor): (B, C, H, W) float images in [0, 1].
        sigma (float | torch.Tensor): noise standard deviation, float or (B,) tensor.
        lo, hi, lam, mode: as in `spectral_mix`.
        generator (torch.Generator | None): source of randomness (a CUDA generator costs one host sync).
    """
    op = "spectral_mix_noise"
    x = _checks.image(op, "x", x)
    sigma, lo, hi, lam = (
        _checks.sample_param(op, n, v, x) for n, v in (("sigma", sigma), ("lo", lo), ("hi", hi), ("lam", lam))
    )
    mode = _checks.mode(op, mode)
    if _backend.use_fused(op, x.device):
        device = generator.device if generator is not None else "cpu"
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=device))
        return torch.ops.ikd.spectral_mix_noise(x, sigma, lo, hi, lam, mode, seed)
    return reference.spectral_mix_noise(x, sigma, lo, hi, lam, mode, generator=generator)


def spectral_mix_shuffle(x: torch.Tensor, perm: torch.Tensor, lo, hi, lam, mode: str = "complex") -> torch.Tensor:
    """`spectral_mix` with source = x[perm], another image of the same batch (the fused kernel reuses the batch's
    own spectrum: one rfft2 and one irfft2).

    Args:
        x (torch.Tensor): (B, C, H, W) float images in [0, 1].
        perm (torch.Tensor): (B,) integer indices into the batch (e.g. torch.randperm(B)).
        lo, hi, lam, mode: as in `spectral_mix`.
    """
    op = "spectral_mix_shuffle"
    x = _checks.image(op, "x", x)
    perm = _checks.permutation(op, perm, x)
    lo, hi, lam = (_checks.sample_param(op, n, v, x) for n, v in (("lo", lo), ("hi", hi), ("lam", lam)))
    mode = _checks.mode(op, mode)
    if _backend.use_fused(op, x.device):
        return torch.ops.ikd.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)
    return reference.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)
