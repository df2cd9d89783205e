"""A `cfg=` YAML of train arguments (e.g. a run's args.yaml, as `yolo train cfg=...` reads it): read in one line or
refused in one, and what of it a new run keeps (`cfg_file_keys`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml
from ultralytics.utils import LOGGER

from .config import (
    AUTO, DEFAULTS, DISTILL_KEYS, WEIGHT_KEYS, adversarial_term_on, check_value, load_preset, resolve_distill_config,
)
from .errors import InputError
from .file_values import check_size, without_file_trust
from .losses import term_weight_keys


def read_cfg_file(value: Any) -> dict[str, Any]:
    """The mapping of a `cfg=` YAML of train arguments (e.g. a run's args.yaml); one line if it cannot be one."""
    path = Path(str(value))
    if not path.is_file():
        raise InputError(f"cfg={value} not found: pass a YAML of train arguments, e.g. a run's args.yaml")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        raise InputError(f"cfg={path} does not parse as YAML: pass a YAML of train arguments") from None
    if not isinstance(loaded, dict):
        raise InputError(f"cfg={path} must be a mapping of key: value (a YAML of train arguments)")
    check_size(loaded, f"cfg={path}", InputError)
    return loaded


def cfg_file_keys(loaded: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """What a `cfg=` YAML (`loaded`) adds under this command's own keys (`given`): never trust_checkpoints
    (`without_file_trust`), and with weights=auto none of its positive loss weights that neither `given` nor the
    preset sets: a run's args.yaml holds the numbers that run measured, and this run measures its own (one line names
    them, and the weights the command line keeps). A weight of 0 stays: it turned a term off."""
    kept = without_file_trust(loaded, where)
    merged = {**kept, **given}
    if check_value("weights", merged.get("weights", DEFAULTS["weights"])) != AUTO:
        return kept
    preset = load_preset(merged.get("distill", DEFAULTS["distill"]))
    again = [k for k in WEIGHT_KEYS if k in kept and k not in given and k not in preset
             and isinstance(kept[k], (int, float)) and kept[k] > 0]
    kept = {k: v for k, v in kept.items() if k not in again}
    cfg = resolve_distill_config({k: v for k, v in {**kept, **given}.items() if k in DISTILL_KEYS})
    measured = [k for k in term_weight_keys(cfg["kd_loss"], adversarial_term_on(cfg)).values() if k in again]
    if measured:  # the others belong to terms this run does not compute
        on_cli = [k for k in WEIGHT_KEYS if k in given]
        LOGGER.info(f"ikd-yolo: weights=auto measures {', '.join(measured)} again (the numbers in {where} are an "
                    f"earlier run's)" + (f"; kept as given on the command line: {', '.join(on_cli)}" if on_cli else ""))
    return kept
