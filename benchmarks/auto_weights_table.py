#!/usr/bin/env python
"""Do auto weights hold their target? For teacher/student pairs and image sizes: the weights `weights=auto` chose,
and over the whole first epoch the mean of each weighted term divided by one detection-loss item (target: kd_share).

Each pair trains an ikd-fgd student (FGD parts + the adversarial term) for one epoch on the synthetic set drawn at
the training size; the teachers are trained briefly on the same images first (cached under the benchmark cache).

    python benchmarks/auto_weights_table.py                     # yolo11s, yolov8s, yolo11m -> yolo11n at 128 and 320 px
    python benchmarks/auto_weights_table.py --sizes 128 --teachers yolo11s.yaml
Writes benchmarks/results/auto_weights.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402


def run_pair(teacher_cfg: str, imgsz: int, n_train: int, teacher_epochs: int, batch: int) -> dict:
    """Train the teacher (cached), then one auto-weighted ikd-fgd epoch; per-term first-epoch share of a det item."""
    from ultralytics import YOLO

    from ikd_yolo import IKDTrainer
    from ikd_yolo.data import make_synthetic_dataset
    from ikd_yolo.model import FeatureDistiller

    data = make_synthetic_dataset(T.CACHE / f"auto_{imgsz}px_{n_train}", n_train=n_train, n_val=8, imgsz=imgsz,
                                  seed=0, clutter=0.0, min_side=8)
    name = f"teacher_{Path(teacher_cfg).stem}_{imgsz}_{n_train}_{teacher_epochs}"
    teacher = T.CACHE / "runs" / name / "weights" / "last.pt"
    common = dict(data=str(data), imgsz=imgsz, batch=batch, device="cpu", workers=0, plots=False, val=False,
                  verbose=False, exist_ok=True, project=str(T.CACHE / "runs"), optimizer="AdamW", lr0=0.004)
    if not teacher.exists():
        with T.quiet():
            YOLO(teacher_cfg).train(epochs=teacher_epochs, name=name, **common)

    sums: dict[str, float] = {}
    count = [0]
    base_parts, adv_parts = FeatureDistiller.base_parts, FeatureDistiller.adv_parts

    def record(parts: dict) -> dict:
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        return parts

    def on_batch_end(trainer):  # the detection items of each batch, beside its distillation parts
        count[0] += 1
        for k in ("box_loss", "cls_loss", "dfl_loss"):
            sums[k] = sums.get(k, 0.0) + float(trainer.loss_items[k])

    FeatureDistiller.base_parts = lambda self, *a: record(base_parts(self, *a))
    FeatureDistiller.adv_parts = lambda self, *a: record(adv_parts(self, *a))
    try:
        student = YOLO("yolo11n.yaml")
        student.add_callback("on_train_start", lambda trainer: sums.clear())  # not the weight measurement's batches
        student.add_callback("on_train_batch_end", on_batch_end)
        with T.quiet():
            student.train(trainer=IKDTrainer, teacher=str(teacher), distill="ikd-fgd", adv_steps=1, epochs=1,
                          name=f"student_{name}", **common)
    finally:
        FeatureDistiller.base_parts, FeatureDistiller.adv_parts = base_parts, adv_parts
    report = student.trainer.auto_weight_report
    det = sum(sums[k] for k in ("box_loss", "cls_loss", "dfl_loss")) / 3 / count[0]
    parts = {p: sums[p] / count[0] for p in report["keys"] if p in sums}
    return {"teacher": teacher_cfg, "imgsz": imgsz, "weights": report["weights"], "keys": report["keys"],
            "first_epoch_share": {p: v / det for p, v in parts.items()}, "detection_item": det, "batches": count[0],
            "kd_share": student.trainer.distill["kd_share"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teachers", nargs="+", default=["yolo11s.yaml", "yolov8s.yaml", "yolo11m.yaml"])
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 320])
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=T.RESULTS / "auto_weights.json")
    a = p.parse_args(argv)
    rows = [run_pair(t, s, a.n_train, a.teacher_epochs, a.batch) for t in a.teachers for s in a.sizes]
    T.write_json(a.out, {"rows": rows, "environment": T.environment(),
                         "command": "python benchmarks/auto_weights_table.py " + " ".join(argv or sys.argv[1:])})
    parts = list(rows[0]["keys"])
    head = ["teacher -> yolo11n", "imgsz"] + [f"{rows[0]['keys'][q]}" for q in parts] + [
        f"{q} / det item" for q in parts]
    body = [[r["teacher"].removesuffix(".yaml"), r["imgsz"]] + [f"{r['weights'][r['keys'][q]]:.3g}" for q in parts]
            + [f"{r['first_epoch_share'][q]:.2f}" for q in parts] for r in rows]
    print(T.markdown_table(head, body))
    worst = max(max(v / r["kd_share"], r["kd_share"] / v) for r in rows for v in r["first_epoch_share"].values())
    print(f"\nlargest factor from the target share over the first epoch: {worst:.2f} (target kd_share "
          f"{rows[0]['kd_share']:g}); wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
