"""Distillation settings: defaults, presets, validation and the split from Ultralytics' own arguments.

All distillation keys are flat, like Ultralytics' (`fgd_alpha=1e-3`, `freq_mode=paper`), so they travel through
`key=value` on the command line, through `YOLO(...).train(**kwargs)` and through the trainer's `args` (which is what
Ultralytics' DDP launcher uses to rebuild the trainer in each rank). Precedence: `configs/default.yaml` < preset named
by `distill` < explicit keys.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Mapping

import yaml
from ultralytics.utils import DEFAULT_CFG_KEYS

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
if not CONFIGS_DIR.is_dir():  # non-editable install: setup.py ships configs/ as package data
    CONFIGS_DIR = Path(__file__).resolve().parent / "configs"

CHOICES = {
    "kd_loss": ("mse", "cwd", "mgd", "fgd", "none"),
    "freq_mode": ("off", "spectral", "paper"),
    "freq_mix": ("complex", "amplitude"),
    "freq_source": ("noise", "shuffle"),
}
NON_NEGATIVE = {
    "mse_weight", "cwd_weight", "cwd_tau", "mgd_alpha", "fgd_alpha", "fgd_beta", "fgd_gamma", "fgd_lambda",
    "fgd_temp", "freq_sigma", "freq_small", "adv_weight", "adv_steps", "adv_eps", "adv_step", "adv_decay",
}
UNIT_INTERVAL = {"mgd_ratio", "ikd_phase", "freq_p", "adv_di_p", "adv_frac"}
POSITIVE = {"cwd_tau", "fgd_temp", "adv_every"}
RANGES = {"freq_band_high", "freq_band_low", "freq_lam", "freq_crop"}


class DistillConfigError(ValueError):
    """A distillation setting is wrong; the message says which and how to fix it, on one line."""


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning parse errors into one readable line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise DistillConfigError(f"distill YAML '{path}' does not parse{line}: fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistillConfigError(f"distill YAML '{path}' must be a mapping of key: value, got {type(data).__name__}")
    return data


def load_defaults() -> dict[str, Any]:
    """Return the default value of every distillation key (from configs/default.yaml)."""
    return _read_yaml(CONFIGS_DIR / "default.yaml")


DEFAULTS = load_defaults()
DISTILL_KEYS = frozenset(DEFAULTS)


def key_help() -> list[tuple[str, Any, str]]:
    """Return (key, default, description) for every distillation key, from the comments in default.yaml."""
    rows = []
    for line in (CONFIGS_DIR / "default.yaml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\w+):[^#]*#\s*(.*)$", line)
        if m and m.group(1) in DEFAULTS:
            rows.append((m.group(1), DEFAULTS[m.group(1)], m.group(2)))
    return rows


def preset_names() -> list[str]:
    """Names of the presets shipped in configs/ (what `distill=` accepts besides a path)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml") if p.stem != "default")


def closest_key(key: str, candidates: set[str] | frozenset[str]) -> str:
    """A ' Did you mean ...?' hint for a misspelt key, or '' when nothing is close."""
    match = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def split_distill_args(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split trainer arguments into (distillation keys, Ultralytics keys).

    Raises DistillConfigError for a key that belongs to neither, with the closest valid key, so a typo such as
    `fgd_alpah=` fails here with a useful hint rather than inside Ultralytics' check, which knows only its own keys.
    """
    distill, rest = {}, {}
    for k, v in args.items():
        if k in DISTILL_KEYS:
            distill[k] = v
        elif k in DEFAULT_CFG_KEYS or k == "save_dir":  # save_dir is an internal Ultralytics extra
            rest[k] = v
        else:
            hint = closest_key(k, DISTILL_KEYS | set(DEFAULT_CFG_KEYS))
            raise DistillConfigError(f"'{k}' is not a valid ikd-yolo or Ultralytics argument.{hint} See 'ikd-yolo --help'")
    return distill, rest


def load_preset(name: Any) -> dict[str, Any]:
    """The keys set by the preset named by `distill` (a name in configs/ or a YAML path), validated against the schema."""
    if name is None:
        return {}
    path = Path(str(name))
    if path.suffix not in {".yaml", ".yml"}:
        path = CONFIGS_DIR / f"{name}.yaml"
        if not path.is_file() or path.stem == "default":
            hint = closest_key(str(name), set(preset_names()))
            raise DistillConfigError(
                f"distill='{name}' is neither a preset nor a YAML file.{hint} Presets: {', '.join(preset_names())}"
            )
    elif not path.is_file():
        raise DistillConfigError(f"distill YAML '{path}' not found: pass an existing file or a preset name")
    data = _read_yaml(path)
    for k in data:
        if k not in DISTILL_KEYS or k in {"distill", "teacher"}:
            valid = DISTILL_KEYS - {"distill", "teacher"}
            raise DistillConfigError(f"unknown key '{k}' in distill YAML '{path}'.{closest_key(k, valid)}")
    return data


def _check_value(key: str, value: Any) -> Any:
    """Validate one key against the type of its default and its allowed range; return the normalised value."""
    default = DEFAULTS[key]
    if key in {"teacher", "distill"}:
        return None if value is None else str(value)
    if key in CHOICES:
        if value is False and "off" in CHOICES[key]:  # YAML reads a bare `off` as false
            value = "off"
        if str(value).lower() not in CHOICES[key]:
            raise DistillConfigError(f"{key}={value!r} is not valid: choose one of {', '.join(CHOICES[key])}")
        return str(value).lower()
    if key in RANGES:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)
        if not ok or float(value[0]) > float(value[1]) or float(value[0]) < 0:
            raise DistillConfigError(f"{key}={value!r} must be a range [min, max] of two numbers with 0 <= min <= max")
        return [float(v) for v in value]
    if isinstance(default, bool) or not _is_number(value):
        raise DistillConfigError(f"{key}={value!r} must be a number (default {default})")
    value = int(value) if isinstance(default, int) and float(value).is_integer() else float(value)
    if isinstance(default, int) and not isinstance(value, int):
        raise DistillConfigError(f"{key}={value!r} must be a whole number (default {default})")
    if key in NON_NEGATIVE and value < 0:
        raise DistillConfigError(f"{key}={value} must not be negative: use 0 to turn the term off")
    if key in POSITIVE and value <= 0:
        raise DistillConfigError(f"{key}={value} must be greater than 0")
    if key in UNIT_INTERVAL and not 0 <= value <= 1:
        raise DistillConfigError(f"{key}={value} must lie in [0, 1]")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def resolve_distill_config(explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Merge defaults, the preset named by `distill` and the explicit keys; validate every value.

    Returns a plain dict holding every distillation key (so it can be stored in checkpoints and trainer args).
    """
    name = explicit.get("distill", DEFAULTS["distill"])
    preset = load_preset(name)
    merged = {**DEFAULTS, **preset, **explicit, "distill": name}
    return {k: _check_value(k, merged[k]) for k in DEFAULTS}


def parse_cli_value(text: str) -> Any:
    """Turn a command-line value into a Python value the way YAML reads it (numbers, lists, null, booleans)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads exponents without a dot (1e-5) as strings
        except ValueError:
            pass
    return value
