"""Input checks shared by the public op wrappers: one clear line per problem, raised as TypeError / ValueError."""

from __future__ import annotations

import torch

from .reference import MIX_MODES, per_channel, per_sample

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def image(op: str, name: str, t, like: torch.Tensor | None = None) -> torch.Tensor:
    """Check a (B, C, H, W) float image batch (same shape/device as `like` if given); return it contiguous."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor (got {type(t).__name__})")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be a float tensor (got {t.dtype}); convert with {name}.float() / 255")
    if t.dim() != 4:
        raise ValueError(f"{op}: {name} must have shape (B, C, H, W) (got {tuple(t.shape)})")
    if like is None:
        if min(t.shape) == 0:
            raise ValueError(f"{op}: {name} must not be empty (got shape {tuple(t.shape)})")
    else:
        if t.shape != like.shape:
            raise ValueError(f"{op}: {name} must have the shape of x, {tuple(like.shape)} (got {tuple(t.shape)})")
        if t.device != like.device:
            raise ValueError(f"{op}: {name} must be on {like.device} like x (got {t.device})")
    return t.contiguous()


def mode(op: str, value: str) -> str:
    """Check the spectral mixing mode."""
    if value not in MIX_MODES:
        raise ValueError(f"{op}: mode must be one of {MIX_MODES} (got {value!r})")
    return value


def sample_param(op: str, name: str, value, x: torch.Tensor) -> torch.Tensor:
    """A float or one-element / (B,) tensor -> float64 (B,) tensor on x.device."""
    b = x.shape[0]
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{op}: {name} must be a float or a real (B,) tensor (got {value.dtype})")
        if value.numel() != 1 and tuple(value.shape) != (b,):
            raise ValueError(f"{op}: {name} must be a float or a ({b},) tensor (got shape {tuple(value.shape)})")
        value = value.detach()
    elif not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a float or a (B,) tensor (got {type(value).__name__})")
    return per_sample(value, b, x.device).contiguous()


def channel_param(op: str, name: str, value, x: torch.Tensor) -> torch.Tensor:
    """A float or a tensor broadcastable to (B, C) (trailing singleton dims allowed) -> float64 (B, C) on x.device."""
    b, c = x.shape[:2]
    if isinstance(value, torch.Tensor):
        while value.dim() > 2 and value.shape[-1] == 1:  # (B, C, 1, 1) / (1, C, 1, 1) as for image normalisation
            value = value.squeeze(-1)
        try:
            ok = torch.broadcast_shapes(value.shape, (b, c)) == (b, c)
        except RuntimeError:
            ok = False
        if not ok or value.is_complex() or value.dtype == torch.bool:
            shape = tuple(value.shape)
            raise ValueError(f"{op}: {name} must be a float or a ({b}, {c}) tensor (got {value.dtype} {shape})")
        value = value.detach()
    elif not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a float or a (B, C) tensor (got {type(value).__name__})")
    return per_channel(value, b, c, x.device).contiguous()


def permutation(op: str, perm, x: torch.Tensor) -> torch.Tensor:
    """A (B,) integer index tensor with values in [0, B) -> int64 on x.device."""
    b = x.shape[0]
    if not isinstance(perm, torch.Tensor) or perm.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        got = perm.dtype if isinstance(perm, torch.Tensor) else type(perm).__name__
        raise TypeError(f"{op}: perm must be an integer tensor of batch indices (got {got})")
    if tuple(perm.shape) != (b,):
        raise ValueError(f"{op}: perm must have shape ({b},) (got {tuple(perm.shape)})")
    perm = perm.to(device=x.device, dtype=torch.long).contiguous()
    # a data-dependent check: CPU only (no GPU sync) and not while tracing (the kernels check / assert too)
    if perm.device.type == "cpu" and not torch.compiler.is_compiling() and (perm.min() < 0 or perm.max() >= b):
        raise ValueError(f"{op}: perm values must lie in [0, {b}) (got [{int(perm.min())}, {int(perm.max())}])")
    return perm
