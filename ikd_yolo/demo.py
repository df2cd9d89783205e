"""`ikd-yolo demo`: the embedded default run, offline, on the synthetic dataset.

It is one seed of the evidence benchmark's `quick` profile restricted to two methods: make the synthetic set, train
(or reuse the cached) yolo11s teacher, then train the same yolo11n student with and without IKD, side by side, and
print both scores, the teacher's and the difference with the weights' paths. Sized to finish within 20 minutes on 2
CPU cores from a cold cache; the teacher and data are shared with `ikd-yolo bench-distill profile=quick`.
"""

from __future__ import annotations

from typing import Any

from .evidence import run_benchmark

DEMO_METHODS = ("none", "ikd-fgd")


def run_demo(out: str = "runs/ikd-demo", seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Run the demo (any bench-distill override applies, e.g. epochs=3) and return the benchmark summary."""
    summary = run_benchmark(
        profile="quick", name="demo", out=out, project=out, methods=list(DEMO_METHODS), seeds=[seed], **overrides
    )
    print(format_demo(summary))
    return summary


def format_demo(summary: dict[str, Any]) -> str:
    """Student without distillation vs distilled: mAP50-95, mAP50 and where the weights are."""
    runs = {r["method"]: r for r in summary["runs"]}
    lines = ["", "| student | mAP50-95 | mAP50 | s/epoch | weights |", "|---|---:|---:|---:|---|"]
    for method in DEMO_METHODS:
        r, scores = runs[method], runs[method]["scores"]
        label = "no distillation" if method == "none" else f"distilled ({method})"
        lines.append(
            f"| {label} | {scores['map50_95']:.4f} | {scores['map50']:.4f} | {scores['seconds_per_epoch']:.1f} "
            f"| {r['weights']} |"
        )
    teacher = summary["teacher_scores"]
    delta = runs[DEMO_METHODS[1]]["scores"]["map50_95"] - runs["none"]["scores"]["map50_95"]
    lines += [
        "",
        f"distilled vs no distillation: {delta:+.4f} mAP50-95",
        f"teacher {summary['teacher']}: mAP50-95 {teacher['map50_95']:.4f}, mAP50 {teacher['map50']:.4f}",
        f"wall time: {summary['wall_seconds'] / 60:.1f} min",
    ]
    return "\n".join(lines)
