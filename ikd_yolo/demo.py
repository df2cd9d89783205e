"""`ikd-yolo demo`: the embedded default run, offline, on the synthetic dataset.

It is one seed of the evidence benchmark's `quick` profile restricted to two methods: make the synthetic set, train
(or reuse the cached) yolo11s teacher, then train the same yolo11n student without distillation and with the default
preset, side by side. Before any work it prints its plan; each student's output goes to its own log while one
progress line reports both; at the end it prints both scores, the teacher's and the difference, and draws
`detections.jpg`: the labels, the teacher's, the plain student's and the distilled student's detections on the same
validation images. Everything is written under one folder (default `runs/ikd-demo/`); the teacher and data are cached
and shared with `ikd-yolo bench-distill profile=quick`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .config import DEFAULTS, DistillConfigError
from .evidence import run_benchmark
from .evidence.bench import check_inputs, check_output_folders, prepare_data, resolve_settings, teacher_train_args
from .evidence.paths import local
from .evidence.profiles import PROFILES
from .evidence.runs import teacher_folder

DEMO_METHODS = ("none", str(DEFAULTS["distill"]))
DEMO_FIXED = ("profile", "name", "project", "report", "methods", "seeds")  # bench-distill keys the demo sets itself
# wall minutes of the two students, measured on 2 CPU cores (quick profile, two runs at a time), and of the teacher
STUDENT_MINUTES, TEACHER_MINUTES = 12, 7
N_IMAGES = 4  # validation images in detections.jpg


def run_demo(out: str = "runs/ikd-demo", seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Run the demo (any bench-distill override applies, e.g. epochs=3) and return the benchmark summary.

    Args:
        out (str): Folder of everything the demo writes (runs, logs, report, detections.jpg).
        seed (int): The one seed both students train with.
        **overrides: Any bench-distill profile key but those the demo fixes (profile, methods, seeds, name, project,
            report), e.g. epochs=3, imgsz=64; any Ultralytics train argument.
    """
    if fixed := [k for k in overrides if k in DEMO_FIXED]:
        raise DistillConfigError(f"'{fixed[0]}' is set by the demo (seed {seed} of profile=quick, methods "
                                 f"{' and '.join(DEMO_METHODS)}): choose it with ikd-yolo bench-distill instead")
    root = Path(out).resolve()
    s = resolve_settings("quick", methods=list(DEMO_METHODS), seeds=[seed], **overrides)
    check_inputs(s)  # before the plan, which draws the synthetic set
    check_output_folders(out=root)
    print(plan(root, seed, s, overrides))
    summary = run_benchmark(
        profile="quick", name="demo", out=root, project=root, methods=list(DEMO_METHODS), seeds=[seed], **overrides
    )
    report = draw_detections(summary, root / "demo" / "detections.jpg", project=root)
    print(format_demo(summary, report, project=root))
    return summary


def plan(root: Path, seed: int, s: dict[str, Any], overrides: dict[str, Any]) -> str:
    """One line: what trains (settings `s` of the quick profile with `overrides`), about how long, what is cached
    already, where everything goes."""
    data = prepare_data(s)[0]  # drawn once (seconds), then cached: its path is part of the teacher's key
    if s["teacher"]:
        teacher = f"teacher {s['teacher']}"
    else:
        folder = teacher_folder(data, s["teacher_model"], s["teacher_epochs"], s["imgsz"], s["batch"], 0,
                                **teacher_train_args(s))
        cached = (folder / "weights" / "best.pt").exists()
        teacher = (f"{Path(s['teacher_model']).stem} teacher cached in {folder}" if cached else
                   f"{Path(s['teacher_model']).stem} teacher trained first ({s['teacher_epochs']} epochs, about "
                   f"{TEACHER_MINUTES} min, then cached)")
    default_regime = all(k not in overrides for k in PROFILES["quick"])
    minutes = f", about {STUDENT_MINUTES} min on 2 CPU cores" if default_regime else ""
    return (f"ikd-yolo demo: {teacher}; then {Path(s['student']).stem} students {' and '.join(DEMO_METHODS)} "
            f"(seed {seed}, {s['epochs']} epochs at {s['imgsz']} px, {min(s['jobs'], 2)} at a time{minutes}); "
            f"everything under {root}")


def format_demo(summary: dict[str, Any], report: Path | None = None, project: Path | None = None) -> str:
    """Student without distillation vs distilled: mAP50-95, mAP50 and where the weights are."""
    runs = {r["method"]: r for r in summary["runs"]}
    lines = ["", "| student | mAP50-95 | mAP50 | s/epoch | weights |", "|---|---:|---:|---:|---|"]
    for method in DEMO_METHODS:
        r, scores = runs[method], runs[method]["scores"]
        label = "no distillation" if method == "none" else f"distilled ({method})"
        lines.append(
            f"| {label} | {scores['map50_95']:.4f} | {scores['map50']:.4f} | {scores['seconds_per_epoch']:.1f} "
            f"| {local(r['weights'], project)} |"
        )
    teacher = summary["teacher_scores"]
    delta = runs[DEMO_METHODS[1]]["scores"]["map50_95"] - runs["none"]["scores"]["map50_95"]
    lines += [
        "",
        f"distilled vs no distillation: {delta:+.4f} mAP50-95",
        f"teacher {summary['teacher']}: mAP50-95 {teacher['map50_95']:.4f}, mAP50 {teacher['map50']:.4f}",
        f"wall time: {summary['wall_seconds'] / 60:.1f} min",
    ]
    if report is not None:
        lines.append(f"detections side by side: {report}")
    return "\n".join(lines)


def draw_detections(summary: dict[str, Any], file: Path, n: int = N_IMAGES, conf: float = 0.25,
                    project: Path | None = None) -> Path:
    """A grid, one row per validation image (those with the most labelled objects among the first 50): the labels,
    then the teacher's, the plain student's and the distilled student's detections at `conf`."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    titles, pixels, images, boxes = detection_columns(summary, n, conf, project)
    fig = Figure(figsize=(2.4 * len(titles), 2.5 * len(images)), dpi=110, layout="constrained")
    axes = fig.subplots(len(images), len(titles), squeeze=False)
    for r, (image, _) in enumerate(images):
        for c, title in enumerate(titles):
            ax = axes[r, c]
            ax.imshow(pixels[r].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for x0, y0, x1, y1 in boxes[c][r].tolist():
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1, ec="white" if c == 0 else "lime"))
            ax.set_title(f"{title}: {len(boxes[c][r])}" if r == 0 else f"{len(boxes[c][r])}", fontsize=7)
            if c == 0:
                ax.set_ylabel(image.name, fontsize=7)
    fig.suptitle(f"validation images, boxes at conf >= {conf} (labels in white; title: mAP50-95, box count)",
                 fontsize=8)
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file)
    return file


def detection_columns(summary: dict[str, Any], n: int, conf: float,
                      project: Path | None = None) -> tuple[list[str], Any, list, list]:
    """The report's column titles, the images (n, 3, imgsz, imgsz in [0, 1]), their files and labels, and per column
    per image the boxes in pixels (xyxy): the labels, then each model's detections after NMS."""
    import cv2
    import torch

    from .inputs import load_data
    from .attack_command import detections
    from .teacher import load_teacher

    data = load_data(local(summary["data"]))
    imgsz = summary["settings"]["imgsz"]
    runs = {r["method"]: r for r in summary["runs"]}
    models = [(f"teacher ({summary['teacher_scores']['map50_95']:.3f})", local(summary["teacher"]))]
    models += [(f"{'no distillation' if m == 'none' else m} ({runs[m]['scores']['map50_95']:.3f})",
                local(runs[m]["weights"], project)) for m in DEMO_METHODS]
    images = pick_images(Path(data["val"] if isinstance(data["val"], str) else data["val"][0]), n)
    pixels = torch.stack([torch.from_numpy(cv2.resize(cv2.imread(str(f))[..., ::-1], (imgsz, imgsz)).copy())
                          for f, _ in images]).permute(0, 3, 1, 2).float().div(255)
    boxes = [[labels * imgsz for _, labels in images]]
    for _, weights in models:
        model = load_teacher(weights, nc=data["nc"], names=data["names"]).float().eval()
        boxes.append([found[:, :4].cpu().numpy() for found in detections(model, pixels, conf)])
    return ["labels", *(title for title, _ in models)], pixels, images, boxes


def pick_images(val_dir: Path, n: int, among: int = 50) -> list[tuple[Path, np.ndarray]]:
    """The `n` images with the most labelled objects among the first `among` of a YOLO image folder, with their
    labels as normalised xyxy boxes."""
    files = sorted(p for p in val_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:among]
    labelled = [(f, yolo_boxes(f)) for f in files]
    return sorted(labelled, key=lambda item: -len(item[1]))[:n]


def yolo_boxes(image: Path) -> np.ndarray:
    """An image's YOLO label file (…/labels/… beside …/images/…) as normalised xyxy boxes (n, 4)."""
    label = Path(str(image.parent).replace("images", "labels")) / f"{image.stem}.txt"
    rows = [line.split() for line in label.read_text().splitlines() if line.strip()] if label.exists() else []
    xywh = np.array([[float(v) for v in row[1:5]] for row in rows], dtype=float).reshape(-1, 4)
    return np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
