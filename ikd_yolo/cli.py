"""`ikd-yolo` command line, in Ultralytics' key=value style.

    ikd-yolo train model=yolo11n.yaml teacher=teacher.pt data=data.yaml distill=ikd-fgd epochs=100 imgsz=640
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

import inspect
import os
import sys
from typing import Any, Callable

from .config import DistillConfigError, closest_key, key_help, parse_key_values, preset_names
from .errors import report_user_errors

USAGE = __doc__
PASSTHROUGH = ("val", "predict", "export", "track", "benchmark")  # Ultralytics' own modes, run by its `yolo` entry


def help_text() -> str:
    """Usage plus every distillation key with its default."""
    rows = [f"  {k:<16} {str(v):<16} {doc}" for k, v, doc in key_help()]
    return (
        f"{USAGE}\nDistillation keys (any Ultralytics train argument is accepted too):\n"
        + "\n".join(rows)
        + f"\n\nPresets for distill=: {', '.join(preset_names())}\n"
    )


def train(args: dict[str, Any]) -> None:
    """`ikd-yolo train`: Ultralytics training with the IKD trainer; every Ultralytics argument passes through."""
    from ultralytics import YOLO

    from .inputs import InputError, check_student, find_weights, read_checkpoint
    from .preflight import resume_checkpoint
    from .trainer import IKDTrainer

    model = str(args.pop("model", "yolo11n.yaml"))
    if args.get("resume") is True:
        args["resume"] = model  # as `yolo train resume model=last.pt`
        read_checkpoint(resume_checkpoint(model), "resume", InputError)  # YOLO(model) would read it with a traceback
    else:
        check_student(model)  # before YOLO(model), which cannot even build some of what it refuses (RT-DETR)
    if model.endswith(".pt"):
        model = str(find_weights(model, "model"))  # a local file or a clear line, never a download
    YOLO(model).train(trainer=IKDTrainer, **args)


def ultralytics_mode(mode: str, words: list[str]) -> None:
    """`ikd-yolo val|predict|export|track|benchmark`: Ultralytics' own command, as `yolo <mode> ...` runs it.

    A distilled best.pt is a plain Ultralytics model, so nothing here is ikd-yolo's; only a `.pt` that is not on this
    machine is refused in one line instead of being downloaded.
    """
    from ultralytics.cfg import entrypoint

    from .inputs import find_weights

    args = parse_key_values(words)
    model = args.get("model")
    if isinstance(model, str) and model.endswith(".pt"):
        find_weights(model, "model")
    entrypoint(" ".join(["yolo", mode, *words]))


def synth(args: dict[str, Any]) -> None:
    """`ikd-yolo synth`: write the procedural dataset and print its data.yaml path."""
    from .data import make_synthetic_dataset

    print(make_synthetic_dataset(**{"out": "datasets/ikd-synthetic", **check_options("synth", args,
                                                                                      make_synthetic_dataset)}))


def show_aug(args: dict[str, Any]) -> None:
    """`ikd-yolo show-aug`: PNG grid of originals, augmented images and their spectra."""
    from .config import resolve_distill_config, split_distill_args
    from .show_aug import show_augmentation

    if "data" not in args:
        raise DistillConfigError("show-aug needs a dataset: ikd-yolo show-aug data=path/to/data.yaml")
    own = {k: args.pop(k) for k in ("data", "out", "n", "imgsz", "seed") if k in args}
    distill, _ = split_distill_args(args)
    options = {"out": "ikd_augmentation.png", **check_options("show-aug", own, show_augmentation)}
    cfg = resolve_distill_config(distill)
    if cfg["freq_mode"] == "off":
        raise DistillConfigError(f"show-aug: distill={cfg['distill']} has freq_mode=off, there is no frequency "
                                 f"augmentation to show: pass distill=ikd-fgd-full or freq_mode=spectral (or paper)")
    print(show_augmentation(cfg=cfg, **options))


def attack(args: dict[str, Any]) -> None:
    """`ikd-yolo attack`: attack every training image once with the teacher (the cache adv_mode=cached trains on)."""
    from .show_attack import run_attack

    for key in ("data", "teacher"):
        if key not in args:
            raise DistillConfigError(f"attack needs {key}=: ikd-yolo attack data=data.yaml teacher=teacher.pt imgsz=640")
    run_attack(**args)


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


def check_options(command: str, args: dict[str, Any], fn: Callable) -> dict[str, Any]:
    """`args` if every key is a parameter of `fn`; otherwise one line naming the key and the closest valid one."""
    valid = set(inspect.signature(fn).parameters) - {"cfg"}
    for key in args:
        if key not in valid:
            raise DistillConfigError(f"'{key}' is not an option of {command}.{closest_key(key, valid)} "
                                     f"Options: {', '.join(sorted(valid))}")
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


GO_ON = {"train": "go on with `ikd-yolo train resume model=<the run>/weights/last.pt`"}
GO_ON_DEFAULT = "run the same command again to go on from there"


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
        print(help_text())
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


if __name__ == "__main__":
    sys.exit(main())
