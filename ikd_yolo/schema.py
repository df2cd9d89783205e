"""The schema of the distillation settings: how a line of configs/default.yaml describes its key.

Each key's line holds its default and, at the start of its comment, its kind and allowed values:
`key: value  # (kind[: choices] [bound]) description`, e.g. `freq_p: 0.5  # (float in [0, 1]) ...`,
`adv_mode: cached  # (choice: online | cached) ...`, `fgd_alpha: auto  # (weight) ...`.

Examples:
    >>> spec = parse_schema("freq_p: 0.5  # (float in [0, 1]) probability", {"freq_p": 0.5}, {})["freq_p"]
    >>> spec.kind, spec.lo, spec.hi, spec.rule(), spec.out_of_bounds(2.0)
    ('float', 0.0, 1.0, 'float in [0, 1]', 'lie in [0, 1]')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class KeySpec:
    """One key of configs/default.yaml: its default, kind, allowed values and description."""

    name: str
    default: Any
    kind: str  # float, int, weight, range, choice, str, path or bool
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    def rule(self) -> str:
        """The allowed values as default.yaml writes them, e.g. 'float in [0, 1]', 'choice: off | spectral | paper'."""
        if self.kind == "choice":
            return f"choice: {' | '.join(self.choices)}"
        return f"{self.kind} {self.bound()}".strip()

    def bound(self) -> str:
        """The bound in words: 'in [0, 1]', '>= 0', '> 0' or '' (none); a weight's '>= 0' is implied."""
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"in {left}{number_text(self.lo)}, {number_text(self.hi)}{right}"
        if self.lo is not None and self.kind != "weight":
            return f"{'>' if self.lo_open else '>='} {number_text(self.lo)}"
        return ""

    def out_of_bounds(self, value: float) -> str:
        """Why `value` breaks the bound, as the end of 'key=value must ...'."""
        if self.hi is not None:
            return f"lie in {self.bound()[3:]}"
        if self.lo == 0 and not self.lo_open:
            return "not be negative" + (": use 0 to turn the term off" if self.kind == "weight" else "")
        return f"be greater than {number_text(self.lo)}" if self.lo_open else f"be >= {number_text(self.lo)}"


_LINE = re.compile(r"^(\w+):[^#]*#\s*\((\w+)(?::\s*([^)]*))?([^)]*)\)\s*(.*)$")
_BOUND = re.compile(r"^\s*(?:(>=|>)\s*(\S+)|in\s*([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")


def number_text(v: float) -> str:
    """A number as default.yaml writes it: 1e-05, 0.5, 2."""
    return f"{v:g}"


def parse_schema(text: str, defaults: Mapping[str, Any],
                 code_choices: Mapping[str, tuple[str, ...]]) -> dict[str, KeySpec]:
    """The KeySpec of every key in the schema YAML `text` (`defaults` are its parsed values); a `(choice)` without a
    list takes its choices from `code_choices`."""
    specs = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) not in defaults:
            continue
        name, kind, choice_text, bound, doc = m.groups()
        lo = hi = None
        lo_open = hi_open = False
        if kind == "weight":
            lo = 0.0
        if bound.strip():
            b = _BOUND.match(bound)
            if b is None:
                raise ValueError(f"configs/default.yaml: cannot read the bound '{bound.strip()}' of '{name}'")
            if b.group(1):
                lo, lo_open = float(b.group(2)), b.group(1) == ">"
            else:
                lo, hi = float(b.group(4)), float(b.group(5))
                lo_open, hi_open = b.group(3) == "(", b.group(6) == ")"
        choices = tuple(c.strip() for c in choice_text.split("|")) if choice_text else code_choices.get(name, ())
        if kind == "choice" and not choices:
            raise ValueError(f"configs/default.yaml: '{name}' is a (choice) without a list and none is defined in code")
        specs[name] = KeySpec(name, defaults[name], kind, lo, lo_open, hi, hi_open, choices, doc.strip())
    if missing := set(defaults) - set(specs):
        raise ValueError(f"configs/default.yaml: keys without a '# (kind) ...' comment: {sorted(missing)}")
    return specs
