"""Momentum sign-gradient step of the IKD adversarial augmentation: public wrapper, fused kernel or reference.

The arguments come in the order of the op's schema (csrc/ops/adv_step.cpp) everywhere: wrapper, reference and kernels.
"""

from __future__ import annotations

import torch

from . import _backend, _checks, reference


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
    """One MI-FGSM update, out of place.

        g  = grad / ||grad||_1 per sample (a zero gradient gives g = 0)
        m' = decay * m + g
        x' = clamp(x_clean + clamp(x_adv + step_size * sign(m') - x_clean, -eps, eps), lo, hi)

    Args:
        x_adv, x_clean, grad, momentum (torch.Tensor): (B, C, H, W) float tensors on one device.
        step_size, eps (float | torch.Tensor): floats or (B,) tensors (per-sample step and L_inf radius).
        lo, hi (float | torch.Tensor): valid pixel range, floats or tensors broadcastable to (B, C) (per channel).
        decay (float): momentum decay.

    Returns:
        (tuple[torch.Tensor, torch.Tensor]): x_adv_new (dtype of x_adv) and momentum_new (dtype of momentum).

    Examples:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> x_adv, m = adv_step(x, x, torch.randn_like(x), torch.zeros_like(x), 2 / 255, 8 / 255)
    """
    op = "adv_step"
    x_adv = _checks.image(op, "x_adv", x_adv)
    x_clean = _checks.image(op, "x_clean", x_clean, like=x_adv).to(x_adv.dtype)
    grad = _checks.image(op, "grad", grad, like=x_adv).to(x_adv.dtype)
    m_dtype = _checks.image(op, "momentum", momentum, like=x_adv).dtype
    momentum = momentum.to(x_adv.dtype).contiguous()
    step_size, eps = (_checks.sample_param(op, n, v, x_adv) for n, v in (("step_size", step_size), ("eps", eps)))
    lo, hi = (_checks.channel_param(op, n, v, x_adv) for n, v in (("lo", lo), ("hi", hi)))
    if not isinstance(decay, (int, float)):
        raise TypeError(f"{op}: decay must be a float (got {type(decay).__name__})")
    if _backend.use_fused(op, x_adv.device):
        x_new, m_new = torch.ops.ikd.adv_step(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi, float(decay))
    else:
        x_new, m_new = reference.adv_step(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi, float(decay))
    return x_new, m_new.to(m_dtype)
