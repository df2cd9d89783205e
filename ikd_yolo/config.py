"""Distillation settings: the schema, validation (once, for every caller), presets and typed sections.

All distillation keys are flat, like Ultralytics' (`fgd_alpha=1e-3`, `freq_mode=paper`), so they travel through
`key=value` on the command line, through `YOLO(...).train(**kwargs)` and through the trainer's `args` (which is what
Ultralytics' DDP launcher uses to rebuild the trainer in each rank). Precedence: `configs/default.yaml` < preset named
by `distill` < explicit keys. default.yaml holds the default preset's values, so a run with no `distill=` and a
custom YAML that names only a few keys both start from what the default preset trains with; a YAML may instead start
from another preset with `extends: NAME`.

`configs/default.yaml` is the schema: each key's line holds its default and, at the start of its comment, its kind and
allowed values (`# (float in [0, 1]) ...`, `# (weight) ...`, `# (choice: off | spectral | paper) ...`). Adding a key
is one line there plus its use: validation, `--help` and the typed sections below follow from that line.

A component that reads one group of keys declares a frozen dataclass of them, named after its keys without their
prefix (`AttackSettings.eps` is `adv_eps`), and `section(AttackSettings, cfg)` fills it from validated values; the
rules that read several groups together are here, once (`adversarial_term_on`, `stream_attack`, `effective_settings`),
and `ikd_yolo.streams.streams_of` turns the stream keys into typed `Stream` records.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

import yaml
from ultralytics.utils import DEFAULT_CFG_KEYS, LOGGER

from .errors import UserError
from .file_values import check_size, shown, without_file_trust
from .losses import BASE_LOSSES
from .ops.reference import MIX_MODES
from .schema import KeySpec, number_text, parse_schema

# an installed package holds its presets as ikd_yolo/configs (pyproject.toml's package data); a source checkout (and an
# editable install) has them at the top of the repository. The package's own first: beside an installed ikd_yolo the
# parent folder is site-packages, where another package's configs/ may lie
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
if not CONFIGS_DIR.is_dir():
    CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"

# (choice) keys whose names are the implementations the code has, so they are defined there, once
CODE_CHOICES: dict[str, tuple[str, ...]] = {"kd_loss": (*BASE_LOSSES, "none"), "freq_mix": MIX_MODES}
AUTO = "auto"  # a weight value: measured at the start of training (weights=auto)
EXTENDS = "extends"  # a distill YAML's key naming the preset (or YAML) it starts from instead of default.yaml
# keys renamed since a release: old name -> new name (old configs, presets and checkpoints keep working until
# RENAMED_UNTIL, the release that drops the old names; see CHANGELOG.md)
RENAMED = {"adv_step": "adv_step_size"}
RENAMED_UNTIL = "0.3.0"
# presets merged into another of the same settings: old name -> the preset (accepted with one line until RENAMED_UNTIL)
MERGED_PRESETS = {"ikd-fgd-adv": "ikd-fgd"}


class DistillConfigError(UserError):
    """A distillation setting is wrong; the message says which and how to fix it, on one line."""


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning parse errors into one readable line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, RecursionError) as e:  # a RecursionError: brackets nested thousands deep
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise DistillConfigError(f"distill YAML '{path}' does not parse{line}: fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise DistillConfigError(f"distill YAML '{path}' is not UTF-8 text: save it as a YAML text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistillConfigError(f"distill YAML '{path}' must be a mapping of key: value, got {type(data).__name__}")
    check_size(data, f"distill YAML '{path}'", DistillConfigError)
    return data


DEFAULTS: dict[str, Any] = _read_yaml(CONFIGS_DIR / "default.yaml")
SCHEMA: dict[str, KeySpec] = parse_schema((CONFIGS_DIR / "default.yaml").read_text(encoding="utf-8"), DEFAULTS,
                                          CODE_CHOICES)
DISTILL_KEYS = frozenset(DEFAULTS)
WEIGHT_KEYS = tuple(k for k, s in SCHEMA.items() if s.kind == "weight")


def key_help() -> list[tuple[str, Any, str]]:
    """(key, value a run uses when nothing sets it, '(allowed values) description') for every key, in schema order.

    The values are `resolve_distill_config({})`'s, the default preset's; a weight measured by weights=auto also names
    the number weights=fixed would use.
    """
    effective = resolve_distill_config({})
    rows = []
    for k, s in SCHEMA.items():
        fixed = f"; weights=fixed: {number_text(s.default)}" if s.kind == "weight" and effective[k] == AUTO else ""
        rows.append((k, effective[k], f"({s.rule()}{fixed}) {s.doc}"))
    return rows


def preset_names() -> list[str]:
    """Names of the presets shipped in configs/ (what `distill=` accepts besides a path)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml") if p.stem != "default")


def closest_key(key: str, candidates: set[str] | frozenset[str]) -> str:
    """A ' Did you mean ...?' hint for a misspelt key, or '' when nothing is close."""
    match = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def upgrade_keys(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`values` with renamed keys under their new names (one deprecation line each); the new name wins if both."""
    out = dict(values)
    for old, new in RENAMED.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
            LOGGER.warning(f"ikd-yolo: '{old}' in {where} is now called '{new}'; the old name is accepted until "
                           f"ikd-yolo {RENAMED_UNTIL}")
    return out


# -------------------------------------------------------------------------------------------------- resolving ----
def split_distill_args(args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split trainer arguments into (distillation keys, Ultralytics keys).

    Raises DistillConfigError for a key that belongs to neither, with the closest valid key, so a typo such as
    `fgd_alpah=` fails here with a useful hint rather than inside Ultralytics' check, which knows only its own keys.
    """
    distill, rest = {}, {}
    for k, v in upgrade_keys(args, "the arguments").items():
        if k in DISTILL_KEYS:
            distill[k] = v
        elif k in DEFAULT_CFG_KEYS or k == "save_dir":  # save_dir is an internal Ultralytics extra
            rest[k] = v
        else:
            hint = closest_key(k, DISTILL_KEYS | set(DEFAULT_CFG_KEYS))
            raise DistillConfigError(f"'{k}' is not a valid ikd-yolo or Ultralytics argument.{hint} "
                                     "See 'ikd-yolo --help'")
    return distill, rest


def load_preset(name: Any) -> dict[str, Any]:
    """The keys set by the preset named by `distill` (a name in configs/ or a YAML path), checked against the schema.

    A YAML that says `extends: NAME` also gets the keys of preset (or YAML) NAME, under its own.
    """
    if name is None:
        return {}
    return _preset_keys(preset_path(name, "distill"), ())


def preset_path(name: Any, key: str, near: Path | None = None) -> Path:
    """The file of preset or YAML `name` given as `key` (distill or extends); a relative YAML path is looked up next to
    `near` first (the YAML that extends it), then from the working folder."""
    path = Path(str(name))
    if "[" in str(name) and not path.is_file():  # bench-distill's method syntax, ikd-score[adv_steps=1]
        base, _, rest = str(name).partition("[")
        keys = [k.strip() for k in rest.rstrip("]").replace(",", ";").split(";") if k.strip()]
        lines = "; ".join(k.replace("=", ": ", 1) for k in keys)
        how = (f"{key}={base} {' '.join(keys)}" if key == "distill" else
               f"extends: {base}, and the keys on lines of their own ({lines})")
        raise DistillConfigError(f"{key}='{name}': brackets are bench-distill's way to vary a method "
                                 f"(methods={name}); here write {how}")
    if path.suffix not in {".yaml", ".yml"}:
        if name in MERGED_PRESETS:
            LOGGER.warning(f"ikd-yolo: preset '{name}' is now '{MERGED_PRESETS[name]}' (the same settings); the old "
                           f"name is accepted until ikd-yolo {RENAMED_UNTIL}")
            name = MERGED_PRESETS[name]
        path = CONFIGS_DIR / f"{name}.yaml"
        if not path.is_file() or path.stem == "default":
            hint = closest_key(str(name), set(preset_names()))
            raise DistillConfigError(
                f"{key}='{name}' is neither a preset nor a YAML file.{hint} Presets: {', '.join(preset_names())}"
            )
        return path
    if near is not None and not path.is_absolute() and (near / path).is_file():
        return near / path
    if not path.is_file():
        raise DistillConfigError(f"{key} YAML '{path}' not found: pass an existing file or a preset name")
    return path


def _preset_keys(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The keys of the YAML at `path`, over those of what it extends; `chain` holds the YAMLs that extend it."""
    if path.resolve() in chain:
        loop = " -> ".join(p.name for p in (*chain, path.resolve()))
        raise DistillConfigError(f"distill YAML '{path}' extends itself ({loop}): remove one extends: line")
    data = without_file_trust(upgrade_keys(_read_yaml(path), f"'{path}'"), f"distill YAML '{path}'")
    base: dict[str, Any] = {}
    if EXTENDS in data:
        parent = data.pop(EXTENDS)
        if not isinstance(parent, str) or not parent.strip():
            raise DistillConfigError(f"extends: in distill YAML '{path}' must name one preset or YAML, e.g. "
                                     f"extends: ikd-fgd-full (got {parent!r})")
        if parent.strip() != "default":  # default.yaml's values are what every YAML starts from
            base = _preset_keys(preset_path(parent.strip(), "extends", path.parent), (*chain, path.resolve()))
    for k in data:
        if k in DEFAULT_CFG_KEYS and k not in DISTILL_KEYS:
            raise DistillConfigError(f"'{k}' in distill YAML '{path}' is an Ultralytics train argument, not a "
                                     f"distillation key: pass it as {k}=... (or in a cfg= YAML)")
        if k == "distill":
            raise DistillConfigError(f"distill: in distill YAML '{path}' cannot choose a preset: to start from one, "
                                     f"write extends: {data[k]} instead")
        if k not in DISTILL_KEYS:
            valid = (DISTILL_KEYS - {"distill"}) | {EXTENDS}
            raise DistillConfigError(f"unknown key '{k}' in distill YAML '{path}'.{closest_key(k, valid)}")
    return {**base, **data}


def check_value(key: str, value: Any) -> Any:
    """Validate one key against its schema line; return the normalised value (raises DistillConfigError).

    A weight may also be "auto" (measured at the start of training, see `resolve_distill_config`)."""
    spec = SCHEMA[key]
    if spec.kind in {"str", "path"}:
        return None if value is None else str(value)
    if spec.kind == "bool":
        if isinstance(value, bool) or str(value).lower() in {"true", "false"}:
            return value if isinstance(value, bool) else str(value).lower() == "true"
        raise DistillConfigError(f"{key}={shown(value)} must be True or False (default {spec.default})")
    if spec.kind == "choice":
        if value is False and "off" in spec.choices:  # YAML reads a bare `off` as false
            value = "off"
        if str(value).lower() not in spec.choices:
            raise DistillConfigError(f"{key}={shown(value)} is not valid: choose one of {', '.join(spec.choices)}")
        return str(value).lower()
    if spec.kind == "range":
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_finite(v) for v in value)
        if not ok or float(value[0]) > float(value[1]) or not all(_in_bounds(spec, float(v)) for v in value):
            lo = f"{number_text(spec.lo)} {'<' if spec.lo_open else '<='} " if spec.lo is not None else ""
            hi = f" {'<' if spec.hi_open else '<='} {number_text(spec.hi)}" if spec.hi is not None else ""
            raise DistillConfigError(f"{key}={shown(value)} must be a range [min, max] of two numbers "
                                     f"with {lo}min <= max{hi}")
        return [float(v) for v in value]
    if spec.kind == "weight" and value == AUTO:
        return AUTO
    if not _is_number(value):
        raise DistillConfigError(f"{key}={shown(value)} must be a number (default {spec.default})")
    if not math.isfinite(value):
        raise DistillConfigError(f"{key}={value} must be a finite number (default {spec.default})")
    if spec.kind == "int":
        if not float(value).is_integer():
            raise DistillConfigError(f"{key}={shown(value)} must be a whole number (default {spec.default})")
        value = int(value)
    else:
        value = float(value)
    if not _in_bounds(spec, value):
        raise DistillConfigError(f"{key}={value} must {spec.out_of_bounds(value)}")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _in_bounds(spec: KeySpec, v: float) -> bool:
    if spec.lo is not None and (v <= spec.lo if spec.lo_open else v < spec.lo):
        return False
    return spec.hi is None or (v < spec.hi if spec.hi_open else v <= spec.hi)


def resolve_distill_config(explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Merge defaults, the preset named by `distill` and the explicit keys; validate every value.

    Returns a plain dict holding every distillation key (so it can be stored in checkpoints and trainer args). With
    weights=auto, each weight that neither the preset nor `explicit` sets is "auto": the trainer measures it
    (`ikd_yolo.auto_weights`) and stores the number in its place, so a resumed run never measures again. A weight
    that default.yaml sets to 0 is a part that is off until asked for (score_kpt): weights=auto leaves it at 0.
    """
    explicit = upgrade_keys(explicit, "the arguments")
    name = explicit.get("distill", DEFAULTS["distill"])
    preset = load_preset(name)  # a user's YAML may name its teacher; an explicit teacher= wins
    given = {**preset, **{k: v for k, v in explicit.items() if v is not None or k != "teacher"}}
    merged = {**DEFAULTS, **given, "distill": name}
    if check_value("weights", merged["weights"]) == AUTO:
        merged.update({k: AUTO for k in WEIGHT_KEYS if k not in given and DEFAULTS[k] != 0})
    cfg = {k: check_value(k, merged[k]) for k in DEFAULTS}
    check_together(cfg)
    return cfg


def weight_on(value: float | str) -> bool:
    """Whether a term with this weight runs: a positive weight, or one still to be measured ("auto")."""
    return value == AUTO or value > 0


def stream_asked(cfg: Mapping[str, Any]) -> bool:
    """Whether the settings ask for IKD's extra image stream: adv_mode is not off and its weight is on."""
    return cfg["adv_mode"] != "off" and weight_on(cfg["adv_weight"])


def adversarial_term_on(cfg: Mapping[str, Any]) -> bool:
    """Whether IKD's extra image stream (the adv_* keys) runs: it is asked for (`stream_asked`), and its images are
    not the batch's own: attacked online (at least one step: adv_steps=0 would distil the clean batch a second time),
    or read by a loader of their own (adv_mode=cached or clean)."""
    return stream_asked(cfg) and (cfg["adv_mode"] != "online" or cfg["adv_steps"] > 0)


def attack_changes_nothing(cfg: Mapping[str, Any]) -> bool:
    """Whether the attack settings leave every image as it is (no step, a zero step or a zero budget)."""
    return cfg["adv_steps"] == 0 or cfg["adv_step_size"] == 0 or cfg["adv_eps"] == 0


def stream_attack(cfg: Mapping[str, Any]) -> str:
    """How the extra stream's images are attacked: "online", "cached", or "none" (adv_mode=clean, or a cached attack
    that changes nothing: its images are the clean ones, read without building a cache)."""
    if cfg["adv_mode"] == "clean" or (cfg["adv_mode"] == "cached" and attack_changes_nothing(cfg)):
        return "none"
    return cfg["adv_mode"]


def stream_images(cfg: Mapping[str, Any]) -> str:
    """Which images the extra stream reads when it reads its own: "train", "unlabeled" or "both" (`stream_source`;
    auto: both when unlabeled= is given, else train)."""
    if cfg["stream_source"] != "auto":
        return cfg["stream_source"]
    return "both" if cfg.get("unlabeled") else "train"


def effective_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a validated config that change what a run computes: the keys of another base loss, of a
    stream or an augmentation that is off, and of an attack that does not run are left out, and a cached attack that
    changes nothing is the clean stream it trains as. Two configs with the same effective settings train the same.

    Examples:
        >>> a = effective_settings(resolve_distill_config({"distill": "score", "adv_steps": 2}))
        >>> a == effective_settings(resolve_distill_config({"distill": "score"})), "adv_steps" in a, "fgd_alpha" in a
        (True, False, False)
    """
    out = {k: v for k, v in cfg.items()
           if not any(k.startswith(f"{loss}_") for loss in BASE_LOSSES if loss != cfg["kd_loss"])}
    if not adversarial_term_on(cfg):
        out = {k: v for k, v in out.items() if not k.startswith(("adv_", "stream_")) and k != "unlabeled"}
    elif stream_attack(cfg) == "none":
        out = {k: v for k, v in out.items() if k not in ATTACK_KEYS}
        out["adv_mode"] = "clean"
    if cfg["freq_mode"] == "off":
        out = {k: v for k, v in out.items() if not k.startswith("freq_") or k == "freq_mode"}
    if not adversarial_term_on(cfg) and cfg["freq_mode"] == "off":
        out.pop("ikd_phase")
    if "stream_source" in out:
        out["stream_source"] = stream_images(cfg)
    return out


ATTACK_KEYS = ("adv_steps", "adv_eps", "adv_step_size", "adv_decay", "adv_di_p")  # how an image is perturbed


def frequency_view_on(cfg: Mapping[str, Any]) -> bool:
    """Whether the frequency-mixed images are a distillation-only stream (`freq_apply=view`) this run computes."""
    return cfg["freq_mode"] != "off" and cfg["freq_apply"] == "view" and cfg["freq_weight"] > 0


def keypoints_distilled(cfg: Mapping[str, Any]) -> bool:
    """Whether the head-aware base distils a pose head's keypoints (`score_kpt` on)."""
    return cfg["kd_loss"] == "score" and weight_on(cfg["score_kpt"])


def check_together(cfg: Mapping[str, Any]) -> None:
    """Refuse values that are valid one by one but contradict each other (raises DistillConfigError)."""
    images = stream_images(cfg)
    if images != "train" and not cfg.get("unlabeled"):
        raise DistillConfigError(f"stream_source={images} reads the unlabelled images, and no unlabeled= is given: "
                                 "pass unlabeled=path/to/images (a folder, a .txt list or a glob)")
    if cfg.get("unlabeled") and not adversarial_term_on(cfg):
        raise DistillConfigError(f"unlabeled={cfg['unlabeled']} feeds the extra stream, which is off in this run "
                                 f"(distill={cfg['distill']}): use a preset with the stream (distill=score-stream), or "
                                 "adv_mode=clean to turn it on")
    if cfg.get("unlabeled") and images == "train":
        raise DistillConfigError(f"unlabeled={cfg['unlabeled']} is given but stream_source=train reads only the "
                                 "training images: use stream_source=unlabeled or both (or leave it auto)")
    clean_train = stream_attack(cfg) == "none" and images == "train"
    if cfg["stream_aug"] == "train" and adversarial_term_on(cfg) and not clean_train:
        raise DistillConfigError("stream_aug=train augments the training images as training does, for the clean "
                                 "stream of them: use adv_mode=clean and stream_source=train, or stream_aug=none")
    if adversarial_term_on(cfg) and cfg["adv_frac"] == 0:
        raise DistillConfigError("adv_frac=0 attacks no image: set adv_mode=off to turn the extra stream off, "
                                 "or adv_frac>0 to attack that fraction of each batch")
    if cfg["freq_apply"] == "view" and cfg["freq_mode"] == "paper":
        raise DistillConfigError("freq_apply=view needs freq_mode=spectral: the paper rule crops images, so its view "
                                 "would not line up with the batch whose teacher scores weight it")
    if cfg["freq_apply"] == "shared" and cfg["freq_mode"] != "off":
        if cfg["freq_mode"] == "paper":
            raise DistillConfigError("freq_apply=shared needs freq_mode=spectral: the paper rule crops images, so the "
                                     "attack's positions would not line up with the clean batch's teacher scores")
        if not adversarial_term_on(cfg):
            raise DistillConfigError("freq_apply=shared starts the attack from the mixed images, and this run has no "
                                     "attack: turn the adversarial term on (adv_weight, adv_steps), or freq_apply=view")
        if cfg["adv_mode"] != "online":
            raise DistillConfigError("freq_apply=shared needs adv_mode=online: cached attacks start from the clean "
                                     "images stored once per teacher; use adv_mode=online, or freq_apply=view")
    if frequency_view_on(cfg) and cfg["kd_loss"] == "none":
        raise DistillConfigError("freq_apply=view distils the mixed images with the base loss, and kd_loss=none has "
                                 "none: choose a kd_loss, or freq_apply=replace")


def auto_keys(cfg: Mapping[str, Any]) -> list[str]:
    """The weight keys of a resolved config still to be measured."""
    return [k for k in WEIGHT_KEYS if cfg[k] == AUTO]


def unit_for_auto(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg` with every weight still "auto" at 1.0: a loss built from it reports its terms at unit weight."""
    return {**cfg, **dict.fromkeys(auto_keys(cfg), 1.0)}


def restore_saved_config(saved: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A config saved by an earlier run (a checkpoint's): renamed keys upgraded, keys added since at their defaults.

    The saved values are kept as they are (its preset is not read again: the file may have changed or moved).
    """
    saved = upgrade_keys(saved, where)
    return {k: check_value(k, saved.get(k, DEFAULTS[k])) for k in DEFAULTS}


def parse_key_values(words: list[str]) -> dict[str, Any]:
    """Parse `key=value` words as `yolo` does (values read as YAML: numbers, lists, null); a bare word is a flag set
    to True (`resume`, `val`, ...), and only a flag may be bare."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    args = {}
    for i, word in enumerate(words):
        if "=" in word:
            key, value = word.split("=", 1)
            if not key or not value:
                raise DistillConfigError(f"'{word}' is not key=value: write e.g. epochs=10 (no spaces around =)")
            args[key.strip()] = value.strip() if key in {"name", "project"} else parse_cli_value(value.strip())
        elif isinstance(DEFAULT_CFG_DICT.get(word), bool) or word == "resume":
            args[word] = True
        elif word in DEFAULT_CFG_DICT or word in DISTILL_KEYS:
            after = f"={words[i + 1]}" if i + 1 < len(words) and "=" not in words[i + 1] else "=..."
            raise DistillConfigError(f"'{word}' needs a value: write {word}{after} (key=value, no spaces around =)")
        else:
            before = f"{words[i - 1]}=" if i and words[i - 1] in DEFAULT_CFG_DICT | DEFAULTS else "key="
            raise DistillConfigError(f"'{word}' is not key=value: write {before}{word} (no spaces around =)")
    return args


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


# --------------------------------------------------------------------------------------------------- sections ----
Section = TypeVar("Section")
Component = TypeVar("Component", bound="Configured")


def section(cls: type[Section], cfg: Mapping[str, Any]) -> Section:
    """Fill the frozen settings dataclass `cls` from a validated config: field `f` reads key `cls.PREFIX + f`.

    Examples:
        >>> from ikd_yolo.augment.attack import AttackSettings
        >>> section(AttackSettings, resolve_distill_config({})).eps  # adv_eps
        0.0313725
    """
    values = {}
    for field in dataclasses.fields(cls):
        key = cls.PREFIX + field.name
        value = cfg[key]
        values[field.name] = tuple(value) if isinstance(value, list) else value  # frozen: ranges become tuples
    return cls(**values)


class Configured:
    """A component built from one settings section: subclasses name it in `SETTINGS` and get `from_config`.

    Examples:
        >>> from ikd_yolo.augment.attack import AdversarialAttack
        >>> attack = AdversarialAttack.from_config(resolve_distill_config({}))
        >>> attack.settings.eps
        0.0313725
    """

    SETTINGS: ClassVar[type]

    def __init__(self, settings: Any) -> None:
        """Keep the validated settings (see `from_config`)."""
        self.settings = settings

    @classmethod
    def from_config(cls: type[Component], cfg: Mapping[str, Any]) -> Component:
        """The component of a validated distillation config (`resolve_distill_config`)."""
        return cls(section(cls.SETTINGS, cfg))
