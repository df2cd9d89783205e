"""Feature-distillation losses: tensors in, scalar out, never reaching into a model.

Base losses (one per distilled feature level, chosen by the `kd_loss` config key): `MSELoss`, `CWDLoss`, `MGDLoss`,
`FGDLoss`, the head-aware `ScoreLoss` (score-weighted features, class and box distillation); and `AdvFeatureLoss`,
IKD's loss on adversarial images (Liang et al., ACM MM 2023). Every loss takes student and teacher features
(N, C, H, W) of equal shape (channel projectors live elsewhere) plus, for the common signature, per-image boxes (xyxy,
normalised to [0, 1]); a head-aware loss also takes the level's head outputs (`LevelHead`). Each returns a scalar
fp32 tensor.

Examples:
    >>> import torch
    >>> from ikd_yolo.losses import build_base_loss
    >>> loss = build_base_loss("mse", channels=64, cfg={"mse_weight": 1.0})
    >>> loss(torch.ones(2, 64, 8, 8), torch.zeros(2, 64, 8, 8))
    tensor(1.)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ._common import DistillLoss
from .adv import AdvFeatureLoss
from .cwd import CWDLoss
from .fgd import FGDLoss, GcBlock, fgd_masks
from .mgd import MGDLoss
from .mse import MSELoss
from .score import LevelHead, ScoreLoss, position_weights

__all__ = [
    "BASE_LOSSES",
    "AdvFeatureLoss",
    "CWDLoss",
    "DistillLoss",
    "FGDLoss",
    "GcBlock",
    "LevelHead",
    "MGDLoss",
    "MSELoss",
    "ScoreLoss",
    "build_base_loss",
    "config_key",
    "fgd_masks",
    "part_name",
    "position_weights",
    "term_weight_keys",
]

BASE_LOSSES: dict[str, type[DistillLoss]] = {"mse": MSELoss, "cwd": CWDLoss, "mgd": MGDLoss, "fgd": FGDLoss,
                                             "score": ScoreLoss}


def config_key(loss: str, arg: str) -> str:
    """The config key of constructor argument `arg` of loss `loss`: `<loss>_<arg>`, e.g. fgd_alpha, fgd_lambda."""
    return f"{loss}_{arg.rstrip('_')}"  # a trailing underscore only dodges a Python keyword (lambda_)


def part_name(loss: str, part: str) -> str:
    """The name of part `part` of loss `loss` in the logs and the calibration: "fgd.fg", or "mse" for a lone part."""
    return f"{loss}.{part}" if part else loss


def term_weight_keys(kd_loss: str, adversarial: bool) -> dict[str, str]:
    """{part name: the config key of its weight} of every term a distiller computes: the parts of base loss `kd_loss`
    ("none": no base) and, when `adversarial`, IKD's adversarial term ("fgd.fg": "fgd_alpha", "adv": "adv_weight")."""
    keys = {} if kd_loss == "none" else {part_name(kd_loss, part): config_key(kd_loss, arg)
                                         for part, arg in BASE_LOSSES[kd_loss].WEIGHTS.items()}
    return {**keys, **({"adv": "adv_weight"} if adversarial else {})}


def build_base_loss(name: str, channels: int, cfg: Mapping[str, Any]) -> DistillLoss:
    """Build the base distillation loss `name` for one feature level of `channels` channels from config values.

    Every constructor argument but `channels` reads its key `config_key(name, arg)` (mse_weight; cwd_weight, cwd_tau;
    mgd_alpha, mgd_ratio; fgd_alpha, fgd_beta, fgd_gamma, fgd_lambda, fgd_temp), so a new argument needs no table.
    The values are taken as validated (`ikd_yolo.config`). `kd_loss=none` is the caller's to handle.

    Args:
        name (str): One of BASE_LOSSES (case-insensitive).
        channels (int): Channels of the (teacher-aligned) feature level; used by mgd and fgd.
        cfg (Mapping[str, Any]): Config values holding the keys above.

    Returns:
        (DistillLoss): The loss module; mgd and fgd carry trainable parameters.

    Raises:
        ValueError: If `name` is not a known base loss.
        KeyError: If a key the loss needs is missing from `cfg`.
    """
    key = str(name).lower()
    if key not in BASE_LOSSES:
        raise ValueError(f"unknown base distillation loss '{name}', valid choices are {', '.join(BASE_LOSSES)}")
    cls = BASE_LOSSES[key]
    args = inspect.signature(cls).parameters
    keys = {arg: config_key(key, arg) for arg in args if arg != "channels"}
    if missing := [k for k in keys.values() if k not in cfg]:
        raise KeyError(f"distillation config is missing '{missing[0]}'")
    kwargs = {arg: cfg[k] for arg, k in keys.items()}
    return cls(channels, **kwargs) if "channels" in args else cls(**kwargs)
