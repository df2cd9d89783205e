"""`ikd-yolo` command line, in Ultralytics' key=value style.

    ikd-yolo train model=yolo11n.yaml teacher=teacher.pt data=data.yaml distill=ikd-score epochs=100 imgsz=640
    ikd-yolo train resume model=runs/detect/train/weights/last.pt
    ikd-yolo val|predict|export|track|benchmark model=runs/detect/train/weights/best.pt ...   (exactly as `yolo`)
    ikd-yolo synth out=datasets/synthetic n_train=200 n_val=50 imgsz=256 seed=0
    ikd-yolo show-aug data=data.yaml distill=ikd-fgd-full out=grid.png
    ikd-yolo attack data=data.yaml teacher=teacher.pt imgsz=640 preview=attack.png   (the cache adv_mode=cached uses)
    ikd-yolo demo
    ikd-yolo bench-distill profile=quick
    ikd-yolo version
"""

from __future__ import annotations

import errno
import inspect
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .cli_help import OUT_DEFAULTS, command_help
from .config import DistillConfigError, closest_key, key_help, parse_key_values, preset_names
from .errors import InputError, report_user_errors

USAGE = __doc__
PASSTHROUGH = ("val", "predict", "export", "track", "benchmark")  # Ultralytics' own modes, run by its `yolo` entry


def help_text() -> str:
    """Usage plus every distillation key with the value a run uses when nothing sets it (the default preset's)."""
    from .config import DEFAULTS

    rows = [f"  {k:<16} {str(v):<16} {doc}" for k, v, doc in key_help()]
    return (
        f"{USAGE}\nDistillation keys (any Ultralytics train argument is accepted too). Each value is what a run uses "
        f"when neither distill= nor key=value sets it:\nthe default preset, distill={DEFAULTS['distill']} (configs/"
        "default.yaml). A distill=my.yaml starts from these values, or from the preset its `extends:` line names.\n"
        + "\n".join(rows)
        + f"\n\nPresets for distill=: {', '.join(preset_names())}\n"
    )


def train(args: dict[str, Any]) -> None:
    """`ikd-yolo train`: Ultralytics training with the IKD trainer; every Ultralytics argument passes through."""
    from ultralytics import YOLO

    from .checkpoints import TRUST_KEY
    from .config import check_value
    from .inputs import InputError, check_student, find_weights, read_checkpoint
    from .preflight import resume_checkpoint
    from .trainer import IKDTrainer

    args = with_cfg_file(args)
    model = str(args.pop("model", "yolo11n.yaml"))
    trust = check_value(TRUST_KEY, args.get(TRUST_KEY, False))
    if args.get("resume") is True:
        args["resume"] = model  # as `yolo train resume model=last.pt`
        read_checkpoint(resume_checkpoint(model), "resume", InputError, trust)  # YOLO(model) would give a traceback
    else:
        check_student(model, trust)  # before YOLO(model), which cannot even build some of what it refuses (RT-DETR)
    if model.endswith(".pt"):
        model = str(find_weights(model, "model"))  # a local file or a clear line, never a download
    YOLO(model).train(trainer=IKDTrainer, **args)


# keys of a run's args.yaml that name that run rather than settings: a new run started from the file must not inherit
# them (Ultralytics would write into the old run's save_dir, or resume the old run's last.pt)
RUN_IDENTITY_KEYS = ("save_dir", "resume")


def with_cfg_file(args: dict[str, Any]) -> dict[str, Any]:
    """`args` with the keys of its `cfg=` YAML under them, as `yolo train cfg=...` reads it, minus the keys that tie a
    run's args.yaml to that run and those a file may not set (`cfg_files.cfg_file_keys`); refuses a start that would
    write into the run folder the file came from."""
    from .cfg_files import cfg_file_keys, read_cfg_file

    if args.get("cfg") is None:
        return args
    path = Path(str(args["cfg"]))
    given = {k: v for k, v in args.items() if k != "cfg"}
    kept = {k: v for k, v in read_cfg_file(path).items() if k not in {"cfg", *RUN_IDENTITY_KEYS}}
    merged = {**cfg_file_keys(kept, given, f"cfg={path}"), **given}
    refuse_writing_into_source(path, merged)
    return merged


def refuse_writing_into_source(cfg_path: Path, args: dict[str, Any]) -> None:
    """One line if a run with `args` would write into the run folder holding `cfg_path` (its args.yaml)."""
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir

    source = cfg_path.resolve().parent
    if not args.get("exist_ok") or not (source / "weights").is_dir():
        return  # without exist_ok Ultralytics numbers a new folder (name2, ...) beside an existing one
    target = get_save_dir(SimpleNamespace(project=args.get("project"), name=args.get("name"), task="detect",
                                          mode="train", exist_ok=True))
    if target == source:
        raise InputError(f"cfg={cfg_path} comes from run folder {source}, and with exist_ok=True this run would write "
                         f"into it (replacing its weights): pass another name= or exist_ok=False")


def ultralytics_mode(mode: str, words: list[str]) -> None:
    """`ikd-yolo val|predict|export|track|benchmark`: Ultralytics' own command, as `yolo <mode> ...` runs it.

    A distilled best.pt is a plain Ultralytics model, so nothing here is ikd-yolo's, except that a `.pt` model is
    read by the safe reader first (`trust_checkpoints=True` to opt out) and one that is not on this machine is refused
    in one line instead of being downloaded, a model YAML is checked before Ultralytics builds it, and a package
    Ultralytics would install (an export format's) is named in one line instead.
    """
    from ultralytics.cfg import entrypoint

    from .checkpoints import TRUST_KEY
    from .config import check_value
    from .inputs import find_weights, read_checkpoint, read_model_yaml

    args = parse_key_values(words)
    model = args.get("model")
    if model is None:  # Ultralytics would download its default model
        raise InputError(f"{mode} needs model=path/to/best.pt (a trained checkpoint; ikd-yolo never downloads)")
    trust = check_value(TRUST_KEY, args.get(TRUST_KEY, False))
    words = [w for w in words if not w.startswith(f"{TRUST_KEY}=")]  # ikd-yolo's key, unknown to Ultralytics
    saved = {}
    if isinstance(model, str) and model.endswith(".pt"):  # read safely before Ultralytics unpickles it
        saved = read_checkpoint(find_weights(model, "model"), "model", InputError, trust).get("train_args") or {}
    elif isinstance(model, str) and model.endswith((".yaml", ".yml")):  # checked before Ultralytics builds it
        read_model_yaml(model, "model")
    words += nothing_fetched(mode, args, saved)
    with as_yolo(["yolo", mode, *words]):  # entrypoint's debug string splits at spaces, so a path with one broke
        try:
            entrypoint()
        except ModuleNotFoundError as e:  # what Ultralytics would have installed (an export format's package)
            raise InputError(f"{mode} needs the Python package {e.name}, which is not installed: pip install {e.name} "
                             "(ikd-yolo never installs packages while it runs)") from None


def nothing_fetched(mode: str, args: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """Refuse, in one line, what Ultralytics would download for `mode`: a URL source, a dataset it knows by name (or
    whose YAML has a download: script), its default dataset when none is given (val falls back on the model's
    training data, `saved`). Returns words to add: a local default source for predict and track."""
    from ultralytics.utils import ASSETS

    from .inputs import load_data

    source = args.get("source")
    if mode in {"predict", "track"} and source is None:  # an obb model's default is an image on the web
        return [f"source={ASSETS}"]
    if str(source).lower().startswith(("http://", "https://", "ftp://")):
        raise InputError(f"source={source} is a URL (ikd-yolo never downloads): download it and pass its path")
    data = args.get("data") or (saved.get("data") if mode == "val" else None)
    if data:
        load_data(data)
    elif mode in {"val", "benchmark"} or (mode == "export" and args.get("int8")):
        raise InputError(f"{mode} needs data=path/to/data.yaml (Ultralytics would download its default dataset; "
                         "ikd-yolo never downloads)")
    return []


@contextmanager
def as_yolo(words: list[str]) -> Iterator[None]:
    """While the block runs, Ultralytics' `entrypoint()` sees `words` as its command line, each word intact, and its
    requirement checks install nothing (they say what is missing instead of running pip)."""
    import ultralytics.cfg
    import ultralytics.utils.checks as checks

    saved = ultralytics.cfg.ARGV, checks.AUTOINSTALL
    ultralytics.cfg.ARGV, checks.AUTOINSTALL = words, False
    try:
        yield
    finally:
        ultralytics.cfg.ARGV, checks.AUTOINSTALL = saved


def synth(args: dict[str, Any]) -> None:
    """`ikd-yolo synth`: write the procedural dataset and print its data.yaml path."""
    from .data import make_synthetic_dataset
    from .errors import DataError
    from .cache import unwritable

    options = {"out": OUT_DEFAULTS["synth"], **check_options("synth", args, make_synthetic_dataset)}
    out = Path(str(options["out"]))
    if problem := unwritable(out):
        raise DataError(f"out={out}: {problem}: pick a folder for the dataset")
    print(make_synthetic_dataset(**options))


def show_aug(args: dict[str, Any]) -> None:
    """`ikd-yolo show-aug`: PNG grid of originals, augmented images and their spectra."""
    from .config import DISTILL_KEYS, resolve_distill_config
    from .inputs import check_image_path
    from .show_aug import show_augmentation

    if "data" not in args:
        raise DistillConfigError("show-aug needs a dataset: ikd-yolo show-aug data=path/to/data.yaml")
    check_options("show-aug", args, show_augmentation, also=DISTILL_KEYS)
    distill = {k: args.pop(k) for k in list(args) if k in DISTILL_KEYS}
    options = {"out": OUT_DEFAULTS["show-aug"], **args}
    cfg = resolve_distill_config(distill)
    if cfg["freq_mode"] == "off":
        raise DistillConfigError(f"show-aug: distill={cfg['distill']} has freq_mode=off, there is no frequency "
                                 f"augmentation to show: pass distill=ikd-fgd-full or freq_mode=spectral (or paper)")
    for key, lowest in (("n", 1), ("imgsz", 32), ("seed", 0)):
        if key in options:
            check_whole_number(key, options[key], lowest)
    check_image_path(Path(str(options["out"])), "out")
    print(show_augmentation(cfg=cfg, **options))


def check_whole_number(key: str, value: Any, lowest: int) -> None:
    """One line unless `value` is a whole number >= `lowest`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise DistillConfigError(f"{key}={value!r} must be a whole number >= {lowest}")


def attack(args: dict[str, Any]) -> None:
    """`ikd-yolo attack`: attack every training image once with the teacher (the cache adv_mode=cached trains on)."""
    from .attack_command import run_attack
    from .config import DISTILL_KEYS

    for key in ("data", "teacher"):
        if key not in args:
            raise DistillConfigError(f"attack needs {key}=: "
                                     "ikd-yolo attack data=data.yaml teacher=teacher.pt imgsz=640")
    run_attack(**check_options("attack", args, run_attack, also=DISTILL_KEYS))


def demo(args: dict[str, Any]) -> None:
    """`ikd-yolo demo`: the embedded default run on the synthetic set."""
    from .demo import run_demo

    run_demo(**args)


def bench_distill(args: dict[str, Any]) -> None:
    """`ikd-yolo bench-distill`: matched students, one per method and seed (benchmarks/bench_distill.py)."""
    from .evidence import run_benchmark

    run_benchmark(**args)


def version(args: dict[str, Any]) -> None:
    """`ikd-yolo version`: this package's version and Ultralytics'."""
    import ultralytics

    from . import __version__

    print(f"ikd-yolo {__version__} (ultralytics {ultralytics.__version__})")


def check_options(command: str, args: dict[str, Any], fn: Callable,
                  also: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`args` if every key is a named parameter of `fn` or in `also` (the distillation keys); otherwise one line
    naming the key and the closest valid one."""
    own = {name for name, p in inspect.signature(fn).parameters.items()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"cfg"}
    for key in args:
        if key not in own | also:
            more = " and the distillation keys (ikd-yolo --help)" if also else ""
            raise DistillConfigError(f"'{key}' is not an option of {command}.{closest_key(key, own | also)} Options: "
                                     f"{', '.join(sorted(own))}{more}; see ikd-yolo {command} --help")
    return args


COMMANDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "train": train,
    "synth": synth,
    "show-aug": show_aug,
    "attack": attack,
    "demo": demo,
    "bench-distill": bench_distill,
    "version": version,
}


def run(command: str, words: list[str]) -> None:
    """Run one command on its key=value words."""
    if command in PASSTHROUGH:
        ultralytics_mode(command, words)
    else:
        COMMANDS[command](parse_key_values(words))


OWN_HELP = ("synth", "show-aug", "attack", "demo", "bench-distill")  # with `<command> --help` of their own


def own_help(command: str) -> str:
    """`ikd-yolo <command> --help` of a command of `OWN_HELP`."""
    fixed = ()
    if command == "demo":
        from .demo import DEMO_FIXED as fixed
    return command_help(command, *command_keys(command), fixed=fixed)


def command_keys(command: str) -> tuple[Callable, dict[str, Any], tuple[str, ...]]:
    """(the function that runs `command`, the defaults its command line sets, parameters the command line does not
    take) for synth, show-aug, attack, demo and bench-distill."""

    if command == "synth":
        from .data import make_synthetic_dataset

        return make_synthetic_dataset, {"out": OUT_DEFAULTS[command]}, ()
    if command == "show-aug":
        from .show_aug import show_augmentation

        return show_augmentation, {"out": OUT_DEFAULTS[command]}, ("cfg",)
    if command == "attack":
        from .attack_command import run_attack

        return run_attack, {}, ()
    if command == "demo":
        from .demo import run_demo

        return run_demo, {}, ()
    from .evidence import run_benchmark

    return run_benchmark, {}, ()

GO_ON = {"train": "go on with `ikd-yolo train resume model=<the run>/weights/last.pt`"}
GO_ON_DEFAULT = "run the same command again to go on from there"
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no space, over the disk quota
NOT_ALLOWED = (errno.EROFS, errno.EACCES, errno.EPERM)  # a read-only disk, a file or folder of another user


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ikd-yolo` console script; returns the process exit code.

    Errors a user can fix are one line and exit code 2; `verbose=True` (or IKD_YOLO_TRACEBACK=1) shows the traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(help_text())
        return 0
    command, rest = argv[0], argv[1:]
    if command in {"--version", "-V"}:
        command = "version"
    if command not in COMMANDS and command not in PASSTHROUGH:
        hint = closest_key(command, set(COMMANDS) | set(PASSTHROUGH))
        print(f"ikd-yolo: unknown command '{command}'.{hint} Use one of {', '.join([*COMMANDS, *PASSTHROUGH])} "
              "(ikd-yolo --help)", file=sys.stderr)
        return 2
    if rest[:1] in (["help"], ["-h"], ["--help"]):
        print(own_help(command) if command in OWN_HELP else help_text())
        return 0
    if "verbose=True" in rest or os.environ.get("IKD_YOLO_TRACEBACK") == "1":
        run(command, rest)
        return 0
    try:
        return report_user_errors(f"ikd-yolo {command}", run, command, rest)
    except KeyboardInterrupt:  # every long command keeps what it finished: say how to go on, not a traceback
        print(f"ikd-yolo {command}: stopped by Ctrl-C; what finished is kept: {GO_ON.get(command, GO_ON_DEFAULT)}",
              file=sys.stderr)
        return 130
    except OSError as e:  # checkpoints are written whole or not at all, so a full disk loses no finished work
        if e.errno in DISK_FULL:
            print(f"ikd-yolo {command}: error: {e.strerror}: free some space, then "
                  f"{GO_ON.get(command, GO_ON_DEFAULT)} (what was written before is whole)", file=sys.stderr)
        elif e.errno in NOT_ALLOWED:  # what the early checks could not see (a folder made read-only mid-run)
            print(f"ikd-yolo {command}: error: {e.strerror}" + (f": '{e.filename}'" if e.filename else ""),
                  file=sys.stderr)
        else:
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
