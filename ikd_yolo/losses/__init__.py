"""Feature-distillation losses: tensors in, scalar out, never reaching into a model.

Base losses (one per distilled feature level, chosen by the `kd_loss` config key): `MSELoss`, `CWDLoss`, `MGDLoss`,
`FGDLoss`; and `AdvFeatureLoss`, IKD's loss on adversarial images (Liang et al., ACM MM 2023). Every loss takes
student and teacher features (N, C, H, W) of equal shape (channel adapters live elsewhere) plus, for the common
signature, per-image boxes (xyxy, normalised to [0, 1]), and returns a scalar fp32 tensor.

Examples:
    >>> import torch
    >>> from ikd_yolo.losses import build_base_loss
    >>> loss = build_base_loss("mse", channels=64, cfg={"mse_weight": 1.0})
    >>> loss(torch.ones(2, 64, 8, 8), torch.zeros(2, 64, 8, 8))
    tensor(1.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .adv import AdvFeatureLoss
from .cwd import CWDLoss
from .fgd import FGDLoss, GcBlock, fgd_masks
from .mgd import MGDLoss
from .mse import MSELoss

__all__ = [
    "BASE_LOSSES",
    "AdvFeatureLoss",
    "CWDLoss",
    "FGDLoss",
    "GcBlock",
    "MGDLoss",
    "MSELoss",
    "build_base_loss",
    "fgd_masks",
]

BASE_LOSSES: dict[str, type[nn.Module]] = {"mse": MSELoss, "cwd": CWDLoss, "mgd": MGDLoss, "fgd": FGDLoss}

# name -> (whether the constructor takes `channels`, {constructor argument: config key})
_CFG_KEYS: dict[str, tuple[bool, dict[str, str]]] = {
    "mse": (False, {"weight": "mse_weight"}),
    "cwd": (False, {"weight": "cwd_weight", "tau": "cwd_tau"}),
    "mgd": (True, {"alpha": "mgd_alpha", "ratio": "mgd_ratio"}),
    "fgd": (
        True,
        {"alpha": "fgd_alpha", "beta": "fgd_beta", "gamma": "fgd_gamma", "lam": "fgd_lambda", "temp": "fgd_temp"},
    ),
}


def _cfg_value(cfg: Mapping[str, Any] | Any, key: str) -> Any:
    """Read `key` from a mapping or an attribute namespace (e.g. Ultralytics' IterableSimpleNamespace)."""
    if isinstance(cfg, Mapping):
        if key not in cfg:
            raise KeyError(f"distillation config is missing '{key}'")
        return cfg[key]
    if not hasattr(cfg, key):
        raise KeyError(f"distillation config is missing '{key}'")
    return getattr(cfg, key)


def build_base_loss(name: str, channels: int, cfg: Mapping[str, Any]) -> nn.Module:
    """Build the base distillation loss `name` for one feature level of `channels` channels from config values.

    Only the keys of the chosen loss are read: mse_weight; cwd_weight, cwd_tau; mgd_alpha, mgd_ratio; fgd_alpha,
    fgd_beta, fgd_gamma, fgd_lambda, fgd_temp. `kd_loss=none` is the caller's to handle (no module is built).

    Args:
        name (str): One of BASE_LOSSES (case-insensitive).
        channels (int): Channels of the (teacher-aligned) feature level; used by mgd and fgd.
        cfg (Mapping[str, Any]): Config values, a dict or an attribute namespace holding the keys above.

    Returns:
        (nn.Module): The loss module; mgd and fgd carry trainable parameters.

    Raises:
        ValueError: If `name` is not a known base loss.
        KeyError: If a key the loss needs is missing from `cfg`.
    """
    key = str(name).lower()
    if key not in BASE_LOSSES:
        raise ValueError(f"unknown base distillation loss '{name}', valid choices are {', '.join(BASE_LOSSES)}")
    takes_channels, keys = _CFG_KEYS[key]
    kwargs = {arg: _cfg_value(cfg, cfg_key) for arg, cfg_key in keys.items()}
    return BASE_LOSSES[key](channels, **kwargs) if takes_channels else BASE_LOSSES[key](**kwargs)
