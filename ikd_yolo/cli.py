"""`ikd-yolo` command line, in Ultralytics' key=value style.

    ikd-yolo train model=yolo11n.yaml teacher=teacher.pt data=data.yaml distill=ikd-fgd epochs=100 imgsz=640
    ikd-yolo train resume model=runs/detect/train/weights/last.pt
    ikd-yolo synth out=datasets/synthetic n_train=200 n_val=50 imgsz=256 seed=0
    ikd-yolo show-aug data=data.yaml distill=ikd-fgd out=grid.png
    ikd-yolo demo
    ikd-yolo bench-distill profile=quick
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from .config import key_help, parse_key_values, preset_names
from .errors import report_user_errors

USAGE = __doc__


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

    from .trainer import IKDTrainer

    model = args.pop("model", "yolo11n.yaml")
    if args.get("resume") is True:
        args["resume"] = str(model)  # as `yolo train resume model=last.pt`
    YOLO(model).train(trainer=IKDTrainer, **args)


def synth(args: dict[str, Any]) -> None:
    """`ikd-yolo synth`: write the procedural dataset and print its data.yaml path."""
    from .data import make_synthetic_dataset

    print(make_synthetic_dataset(args.pop("out", "datasets/ikd-synthetic"), **args))


def show_aug(args: dict[str, Any]) -> None:
    """`ikd-yolo show-aug`: PNG grid of originals, augmented images and their spectra."""
    from .config import resolve_distill_config, split_distill_args
    from .show_aug import show_augmentation

    data, out = args.pop("data"), args.pop("out", "ikd_augmentation.png")
    options = {k: args.pop(k) for k in ("n", "imgsz", "seed") if k in args}
    distill, _ = split_distill_args(args)
    print(show_augmentation(data, resolve_distill_config(distill), out, **options))


def demo(args: dict[str, Any]) -> None:
    """`ikd-yolo demo`: the embedded default run on the synthetic set."""
    from .demo import run_demo

    run_demo(**args)


def bench_distill(args: dict[str, Any]) -> None:
    """`ikd-yolo bench-distill`: matched students, one per method and seed (benchmarks/bench_distill.py)."""
    from .evidence import run_benchmark

    run_benchmark(**args)


COMMANDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "train": train,
    "synth": synth,
    "show-aug": show_aug,
    "demo": demo,
    "bench-distill": bench_distill,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ikd-yolo` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(help_text())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ikd-yolo: unknown command '{command}': use one of {', '.join(COMMANDS)} (ikd-yolo --help)")
        return 2
    if rest[:1] in (["help"], ["-h"], ["--help"]):
        print(help_text())
        return 0
    return report_user_errors(f"ikd-yolo {command}", lambda: COMMANDS[command](parse_key_values(rest)))


if __name__ == "__main__":
    sys.exit(main())
