"""What a benchmark runs: its methods, parsed once from their labels (`Method`), and its seeds.

A method is "none", "ultralytics" (Ultralytics' own `distill_model=`) or an ikd-yolo preset, which may carry settings
of its own in brackets: `ikd-fgd[adv_mode=cached;adv_steps=1]` is trained and reported beside `ikd-fgd`. Any method
may also change the profile's Ultralytics recipe in its brackets, so a comparison at matched cost is one report:
`ultralytics[dis=18]` (the built-in's loss weight), `ultralytics[epochs=21]` (trained for the same wall time).

Examples:
    >>> [m.label for m in parse_methods("none,adv-only,ikd-fgd[freq_p=0.25,adv_steps=1],ultralytics[dis=18]")]
    ['none', 'ikd-fgd', 'ikd-fgd[freq_p=0.25;adv_steps=1]', 'ultralytics[dis=18]']
    >>> parse_seeds(3), run_label("ikd-fgd[adv_steps=1]", 0)
    ([0, 1, 2], 'ikd-fgd_adv_steps_1_-s0')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
from ultralytics.utils import LOGGER

from ..config import DISTILL_KEYS, MERGED_PRESETS, DistillConfigError, preset_names

ALL_METHODS = ("none", "ultralytics", "fgd", "mgd", "score", "score-stream", "ikd-score", "ikd-fgd", "ikd-mgd",
               "ikd-fgd-freq")
ALIASES = {"no-kd": "none", "freq-only": "ikd-fgd-freq", "adv-only": "ikd-fgd", **MERGED_PRESETS}


def parse_methods(methods: Any) -> list[Method]:
    """The methods of a list or a comma-separated string of labels, aliases resolved (freq-only, adv-only, no-kd),
    each parsed once (`Method`), each distinct method once.

    A method may carry its own settings in brackets, e.g. `ikd-fgd[adv_mode=cached]`, `ikd-fgd[freq_p=0.25;
    adv_eps=0.02]` (`;` between keys) or `ultralytics[dis=18]`: a variant trained and reported beside the others. Two
    labels of the same method and settings (another order, `1` vs `1.0`) are one method, under the first label."""
    if not isinstance(methods, (str, list, tuple)):
        raise DistillConfigError(f"methods={methods!r} is not valid: give a comma-separated list, e.g. "
                                 "methods=none,fgd,ikd-fgd")
    words = methods.split(",") if isinstance(methods, str) else list(methods)
    words = _join_brackets([str(w).strip() for w in words])
    labels = [ALIASES.get(w, w) for w in words if w]
    if not labels:
        raise DistillConfigError(f"methods={methods!r} names no method: give at least one, e.g. "
                                 "methods=none,fgd,ikd-fgd")
    distinct: dict[tuple, Method] = {}
    for label in dict.fromkeys(labels):
        method = Method.parse(label)  # refuses unknown methods and keys
        first = distinct.setdefault(method.identity, method)
        if first is not method:
            LOGGER.warning(f"bench-distill: method '{label}' has the settings of '{first.label}': run once, as "
                           f"'{first.label}'")
    return list(distinct.values())


def _join_brackets(words: list[str]) -> list[str]:
    """Undo a comma split inside brackets: between a preset's settings the comma was a key separator, inside a
    value's own brackets it was the value's: ['a[x=1', 'y=[0', '1]]'] -> ['a[x=1;y=[0,1]]']."""
    out: list[str] = []
    for w in words:
        depth = out[-1].count("[") - out[-1].count("]") if out else 0
        if depth > 0:
            out[-1] = f"{out[-1]}{';' if depth == 1 else ','}{w}"
        else:
            out.append(w)
    return out


# Ultralytics arguments a method cannot set for itself: what every run of a benchmark shares to be comparable (data,
# student, image size, seed), where its output goes, and the teacher (the benchmark's own teacher=)
SHARED_ARGS = frozenset({"data", "model", "imgsz", "seed", "task", "mode", "project", "name", "exist_ok", "save_dir",
                         "resume", "distill_model", "device", "workers", "cfg"})


@dataclass(frozen=True)
class Method:
    """A benchmark method, parsed once from its label: `Method.parse("ikd-fgd[adv_mode=cached]")` is the preset
    "ikd-fgd" with the settings {"adv_mode": "cached"}; "none" and "ultralytics" are methods without a preset.
    Ultralytics arguments in the brackets (`ultralytics[dis=18;epochs=21]`) are the method's `recipe`: they change
    its training over the profile's, for any method.

    Examples:
        >>> m = Method.parse("ikd-fgd[freq_p=0.25;adv_steps=1;epochs=21]")
        >>> m.preset, dict(m.settings), dict(m.recipe), m.is_preset
        ('ikd-fgd', {'freq_p': 0.25, 'adv_steps': 1}, {'epochs': 21}, True)
    """

    label: str  # as given (the run's name, its results' key)
    preset: str  # "none", "ultralytics" or the ikd-yolo preset the label names
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the label's own distillation settings
    recipe: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the label's own Ultralytics arguments

    @classmethod
    def parse(cls, label: str) -> Method:
        """The method of `label`; an unknown method or key, or a value out of range, is refused in one line that
        names the method."""
        from ultralytics.utils import DEFAULT_CFG_KEYS

        from ..config import check_value, closest_key, parse_cli_value

        base, _, rest = label.partition("[")
        valid = {"none", "ultralytics", *preset_names()}
        if base not in valid:
            choices = ", ".join(["none", "ultralytics", *preset_names(), *ALIASES])
            raise DistillConfigError(f"method '{label}' is not known.{closest_key(base, valid)} Use one of {choices}")
        if not rest:
            return cls(label, base, MappingProxyType({}), MappingProxyType({}))
        if not rest.endswith("]"):
            raise DistillConfigError(f"method '{label}': close its settings with ']', e.g. ikd-fgd[freq_p=0.25]")
        settings, recipe = {}, {}
        for item in filter(None, rest[:-1].split(";")):
            key, _, value = item.partition("=")
            if key in DISTILL_KEYS - {"teacher", "distill"}:
                if base not in preset_names():
                    raise DistillConfigError(f"method '{label}': '{key}' is a distillation key, which only ikd-yolo "
                                             f"presets take (e.g. ikd-score[{key}=...])")
                try:
                    settings[key] = check_value(key, parse_cli_value(value))
                except DistillConfigError as e:
                    raise DistillConfigError(f"method '{label}': {e}") from None
            elif key in SHARED_ARGS:
                raise DistillConfigError(f"method '{label}': '{key}' is shared by every run of a benchmark: set it "
                                         f"for the whole benchmark ({key}=...), not for one method")
            elif key in DEFAULT_CFG_KEYS:
                recipe[key] = _recipe_value(label, key, parse_cli_value(value))
            else:
                hint = closest_key(key, (DISTILL_KEYS | set(DEFAULT_CFG_KEYS)) - SHARED_ARGS)
                raise DistillConfigError(f"method '{label}': '{key}' is neither a distillation key nor an "
                                         f"Ultralytics train argument.{hint}")
        return cls(label, base, MappingProxyType(settings), MappingProxyType(recipe))

    def __reduce__(self) -> tuple:
        # a MappingProxyType does not pickle, and parallel jobs send methods to worker processes: send the label
        return Method.parse, (self.label,)

    @classmethod
    def of(cls, method: Method | str) -> Method:
        """`method` itself, or the method its label names."""
        return method if isinstance(method, Method) else cls.parse(method)

    @property
    def is_preset(self) -> bool:
        """Whether an ikd-yolo preset trains this method (not "none" or Ultralytics' own distillation)."""
        return self.preset in preset_names()

    @property
    def identity(self) -> tuple:
        """What makes two labels one method: the preset and its settings in any order (values normalised)."""
        return self.preset, repr(sorted(self.settings.items())), repr(sorted(self.recipe.items()))

    def __str__(self) -> str:
        return self.label


def _recipe_value(label: str, key: str, value: Any) -> Any:
    """An Ultralytics argument of a method's brackets, type-checked as Ultralytics checks it (one line naming the
    method otherwise); whole-number floats become ints, so `epochs=21.0` and `epochs=21` are one method."""
    from ultralytics.cfg import get_cfg

    try:
        get_cfg(overrides={key: value})
    except (TypeError, ValueError, SyntaxError) as e:
        raise DistillConfigError(f"method '{label}': {str(e).strip().splitlines()[0]}") from None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse_seeds(seeds: Any) -> list[int]:
    """seeds=3 means seeds 0, 1, 2; a list or "0,4,7" gives those seeds: at least one, each once, none negative (one
    seed twice would count one run as two paired samples)."""
    how = "give a count (seeds=3) or a list of distinct seeds >= 0 (seeds=[0,4,7])"
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise DistillConfigError(f"seeds={seeds} runs nothing: {how}")
        return list(range(int(seeds)))
    if not isinstance(seeds, (str, list, tuple)):
        raise DistillConfigError(f"seeds={seeds!r} is not valid: {how}")
    words = [w.strip() if isinstance(w, str) else w for w in (seeds.split(",") if isinstance(seeds, str) else seeds)]
    if not all(_is_seed(w) for w in words) or not words:
        raise DistillConfigError(f"seeds={seeds!r} is not valid: {how}")
    values = [int(w) for w in words]
    if twice := sorted({v for v in values if values.count(v) > 1}):
        raise DistillConfigError(f"seeds={seeds!r} names seed {twice[0]} more than once: each seed is one run, {how}")
    return values


def _is_seed(word: Any) -> bool:
    """Whether `word` is a whole number >= 0 (an int, or its digits)."""
    if isinstance(word, str):
        return word.isdigit()
    return isinstance(word, (int, np.integer)) and not isinstance(word, bool) and word >= 0


def run_label(method: Method | str, seed: int) -> str:
    """The name of a run's folder, log and result file: `ikd-fgd[adv_steps=1]`, seed 0 -> `ikd-fgd_adv_steps_1_-s0`
    (a variant's brackets would be glob patterns in a path)."""
    return re.sub(r"[^\w.-]+", "_", f"{Method.of(method).label}-s{seed}")
