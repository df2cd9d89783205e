"""Per-image random draws shared by the batch augmentations, from an optional generator on any device.

Each draw is made on the generator's device and moved to the batch's, so a seeded CPU generator gives the same
choices whatever device the batch lives on.
"""

from __future__ import annotations

import torch


def rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Draw U[0, 1) of shape (n,) from `generator` (on its device) or the default RNG of `device`; return on device."""
    gdev = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gdev).to(device)


def uniform(
    n: int, lo_hi: tuple[float, float], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Draw U[lo, hi] of shape (n,)."""
    lo, hi = (float(v) for v in lo_hi)
    return lo + (hi - lo) * rand(n, generator, device)


def random_derangement(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Return a random permutation of range(n) with no fixed point (a single random cycle) when n > 1."""
    gdev = generator.device if generator is not None else device
    order = torch.randperm(n, generator=generator, device=gdev)
    perm = torch.empty_like(order)
    perm[order] = order.roll(1)  # image order[k] takes its source from order[k-1]
    return perm.to(device)
