"""Values read from files ikd-yolo did not write (a distill or cfg= YAML, a data or model YAML, a checkpoint's
settings): bounded before anything walks them (`check_size`: a few hundred bytes of YAML aliases expand to 10**9
values), quoted short in a message (`shown`), and never a grant of trust (`without_file_trust`).
"""

from __future__ import annotations

import math
import reprlib
from typing import Any, Mapping

from ultralytics.utils import LOGGER

from .errors import UserError

MAX_VALUES = 100_000  # values a file's settings may hold once their shared parts (YAML aliases) are expanded

TRUST_KEY = "trust_checkpoints"  # the distillation key that lets a trusted file load with plain torch.load


def shown(value: Any) -> str:
    """`repr(value)` cut short: a value quoted in a one-line message stays short, however big it is."""
    short = reprlib.Repr()  # its limits are attributes (keywords only from Python 3.12)
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict, short.maxstring, short.maxother = 3, 6, 6, 6, 60, 60
    return short.repr(value)


def expanded_size(value: Any) -> float:
    """How many values `value` holds with every shared part counted each time it is used, as a consumer that walks
    it sees it (YAML aliases share one list many times: 400 bytes can expand to 10**9 values); inf for a cycle.
    Counted once per distinct part, so it is cheap whatever the answer."""
    sizes: dict[int, float] = {}

    def size(v: Any, active: frozenset[int]) -> float:
        if not isinstance(v, (list, tuple, dict)):
            return 1
        if id(v) in active:
            return math.inf
        if id(v) not in sizes:
            items = [*v.keys(), *v.values()] if isinstance(v, dict) else v
            sizes[id(v)] = 1 + sum(size(item, active | {id(v)}) for item in items)
        return sizes[id(v)]

    try:
        return size(value, frozenset())
    except RecursionError:  # nested deeper than anything worth reading
        return math.inf


def check_size(value: Any, where: str, error: type[UserError]) -> None:
    """One line when `value` (read from `where`) expands to more than MAX_VALUES values."""
    if expanded_size(value) > MAX_VALUES:
        raise error(f"{where} holds more than {MAX_VALUES} values once its shared parts (YAML aliases) are expanded, "
                    "or nests them too deeply: these are not settings ikd-yolo reads")


def without_file_trust(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`values` read from a file (a distill YAML, a cfg= YAML, a run's args.yaml) without trust_checkpoints, with one
    warning when the file asks for trust: only the command line or the Python call may let a pickle run code, never a
    file that came with the checkpoints."""
    out = dict(values)
    asked = out.pop(TRUST_KEY, False)
    if asked is not None and asked is not False and str(asked).lower() != "false":
        LOGGER.warning(f"ikd-yolo: {TRUST_KEY}: {shown(asked)} in {where} is ignored: trust comes only from the "
                       f"command line or the Python call ({TRUST_KEY}=True), never from a file")
    return out
