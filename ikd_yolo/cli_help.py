"""`ikd-yolo <command> --help` for the commands of ikd-yolo's own: each key with its default and meaning, read from
the function that runs the command (its signature and the `Args:` of its docstring; `cli.command_keys` names it), so
the help cannot drift from what the command accepts. `train` lists the distillation keys (`cli.help_text`); val,
predict, export, track and benchmark are Ultralytics' own.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

ROW = "  {key:<16} {default:<22} {doc}"

OUT_DEFAULTS = {"synth": "datasets/ikd-synthetic", "show-aug": "ikd_augmentation.png"}  # what out= is when not given


def arg_docs(fn: Callable) -> dict[str, str]:
    """{parameter: its description, on one line} from the `Args:` section of `fn`'s (Google-style) docstring."""
    docs: dict[str, str] = {}
    lines = (inspect.getdoc(fn) or "").splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "Args:"), len(lines))
    for line in lines[start:]:
        if line and not line.startswith(" "):  # the next section (Returns:, Examples:)
            break
        entry = re.match(r"\s{4}\**(\w+)(?: \([^)]*\))?: (.*)", line)
        if entry:
            key = entry[1]
            docs[key] = entry[2]
        elif line.strip() and docs:
            docs[key] += " " + line.strip()
    return docs


def rows(fn: Callable, defaults: dict[str, Any] | None = None, skip: tuple[str, ...] = ()) -> list[str]:
    """One help row per named parameter of `fn`: its default (`defaults` first: what the command line uses) and its
    description."""
    docs = arg_docs(fn)
    out = []
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = (defaults or {}).get(name, "(required)" if p.default is p.empty else p.default)
        out.append(ROW.format(key=name, default=_text(default), doc=docs.get(name, "")))
    return out


def command_help(command: str, fn: Callable, defaults: dict[str, Any], skip: tuple[str, ...] = (),
                 fixed: tuple[str, ...] = ()) -> str:
    """The help of `command` (synth, show-aug, attack, demo or bench-distill), run by `fn` with the command line's
    `defaults` and without the parameters `skip`: usage, its keys, and what else it takes (the demo: but the
    bench-distill keys it `fixed` itself)."""
    from .config import preset_names

    usage = {
        "synth": "ikd-yolo synth out=datasets/shapes task=detect n_train=200 n_val=50 imgsz=256\n\nWrite the synthetic "
                 "shapes dataset and print its data.yaml path.",
        "show-aug": "ikd-yolo show-aug data=data.yaml distill=ikd-fgd-full out=grid.png\n\nDraw training images, their "
                    "frequency-mixed versions and spectra.",
        "attack": "ikd-yolo attack data=data.yaml teacher=teacher.pt imgsz=640 preview=attack.png\n\nAttack every "
                  "training image once with the teacher: the cache adv_mode=cached trains on.",
        "demo": "ikd-yolo demo [epochs=3 ...]\n\nThe embedded default run: the synthetic set, a cached yolo11s "
                "teacher, a yolo11n student without and with the default preset, side by side.",
        "bench-distill": "ikd-yolo bench-distill profile=quick methods=none,ultralytics,ultralytics[epochs=16],"
                         "score seeds=3\n\nMatched students, one per method and seed, scored by Ultralytics "
                         "and by pycocotools; ultralytics[epochs=N] trains the built-in for N epochs (the default's "
                         "wall time or more).",
    }[command]
    text = [f"{usage}\n", "Keys (default, meaning):", *rows(fn, defaults, skip)]
    if command in {"show-aug", "attack"}:
        which = "the freq_* keys" if command == "show-aug" else "the adv_* keys"
        text.append(f"\nAlso any distillation key (ikd-yolo --help), {which} above all; distill= starts from a preset "
                    f"({', '.join(preset_names())}).")
    if command in {"demo", "bench-distill"}:
        text += bench_keys(command, fixed)
    return "\n".join(text) + "\n"


def bench_keys(command: str, fixed: tuple[str, ...] = ()) -> list[str]:
    """The profile keys (with the quick profile's values; not those `fixed`) and the method syntax, for
    bench-distill and the demo."""
    from .config import preset_names
    from .evidence.methods import ALIASES
    from .evidence.profiles import PROFILE_KEYS, PROFILES

    quick = {"data": None, "teacher": None, **PROFILES["quick"]}
    others = ", ".join(p for p in PROFILES if p != "quick")
    text = [f"\nProfile keys (values of profile=quick; the other profiles: {others}):"]
    text += [ROW.format(key=k, default=_text(quick[k]), doc=doc) for k, doc in PROFILE_KEYS.items() if k not in fixed]
    if command == "demo":
        text.append(f"\nThe demo fixes {', '.join(fixed)}; choose them with ikd-yolo bench-distill.")
        return text
    text += [
        "",
        "methods: comma-separated, each none (no distillation), ultralytics (Ultralytics' own distill_model=) or an",
        f"  ikd-yolo preset ({', '.join(preset_names())}; aliases {', '.join(ALIASES)}).",
        "  Brackets give one method settings of its own, trained and reported beside the others: distillation keys",
        "  for a preset, ikd-score[adv_steps=1] or ikd-fgd[freq_p=0.25;adv_eps=0.02] (';' between keys), and",
        "  Ultralytics train arguments for any method, ultralytics[dis=18] or ikd-score[epochs=21]. Brackets are",
        "  bench-distill's: on train, write the keys beside the preset (distill=ikd-score adv_steps=1).",
        "",
        "A distillation key goes in a method's brackets (a bare preset runs exactly what distill=NAME runs); an",
        "Ultralytics train argument given outside them goes to every student.",
    ]
    return text


def _text(value: Any) -> str:
    """A default as the command line writes it: a tuple of methods as `a,b,c`."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
