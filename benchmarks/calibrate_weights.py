"""Measure every distillation term at the start of training and suggest loss weights for a teacher/student pair.

The authors' weights (IKD_METHOD.md §3) were tuned for 256-channel FPN maps at 1333x800; YOLO necks have other
widths and resolutions. The rule used for ikd-yolo's defaults: with an untrained student and a trained teacher, each
weighted term should start near `target` per image (the detection loss items start at a few units), so no term
drowns the others. This script prints, per term, its value with unit weight, the value with the current weight,
and the weight that would hit the target.

    python benchmarks/calibrate_weights.py teacher=teacher.pt data=data.yaml student=yolo11n.yaml imgsz=640 batch=8
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ikd_yolo.cli import parse_args  # noqa: E402
from ikd_yolo.config import DEFAULTS  # noqa: E402
from ikd_yolo.losses import AdvFeatureLoss, build_base_loss  # noqa: E402
from ikd_yolo.model import ADV_IMG, ADV_TEACHER_FEATS, TEACHER_FEATS, boxes_per_image  # noqa: E402
from ikd_yolo.trainer import IKDTrainer  # noqa: E402

UNIT = {**DEFAULTS, "mse_weight": 1.0, "cwd_weight": 1.0, "mgd_alpha": 1.0, "fgd_alpha": 1.0, "fgd_beta": 1.0,
        "fgd_gamma": 1.0, "fgd_lambda": 1.0}
WEIGHT_KEY = {"mse": "mse_weight", "cwd": "cwd_weight", "mgd": "mgd_alpha", "fgd.fg": "fgd_alpha",
              "fgd.bg": "fgd_beta", "fgd.attention": "fgd_gamma", "fgd.global": "fgd_lambda", "adv": "adv_weight"}


def measure(teacher: str, data: str, student: str = "yolo11n.yaml", imgsz: int = 640, batch: int = 8,
            batches: int = 3, target: float = 1.0, device: str = "cpu") -> list[tuple[str, float, float]]:
    """Return (term, mean unit-weight value per batch, suggested weight) for every term."""
    trainer = IKDTrainer(overrides=dict(model=student, teacher=teacher, data=data, imgsz=imgsz, batch=batch,
                                        device=device, distill="ikd-fgd", workers=0, plots=False, epochs=1))
    trainer.epoch, trainer.epochs = 0, 1
    trainer.setup_model()
    trainer.model.to(trainer.device)
    trainer.set_model_attributes()
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=batch, rank=-1, mode="train")
    model = trainer.model
    sums: dict[str, float] = {}
    for i, raw in zip(range(batches), loader):
        b = trainer.preprocess_batch(raw)
        with torch.no_grad():
            feats, preds = model.student_features(b["img"])
            adv_feats, _ = model.student_features(b[ADV_IMG])
            det, items = model.student.loss(b, preds)
            boxes = boxes_per_image(b)
            values = {k: float(v) for k, v in items.items()}
            for name in ("mse", "cwd", "mgd", "fgd"):
                for level, (s, t) in enumerate(zip(feats, b[TEACHER_FEATS])):
                    loss = build_base_loss(name, t.shape[1], UNIT).to(trainer.device)
                    s = model.distiller.adapters[level](s)
                    parts = loss.parts(s, t, boxes) if name == "fgd" else {"": loss(s, t, boxes)}
                    for part, v in parts.items():
                        key = f"{name}.{part}" if part else name
                        values[key] = values.get(key, 0.0) + float(v)
            adv = AdvFeatureLoss(1.0)
            values["adv"] = sum(float(adv(a(s), t)) for a, s, t in zip(model.distiller.adapters, adv_feats,
                                                                          b[ADV_TEACHER_FEATS]))
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v / batches
    return [(k, v, target / v if k in WEIGHT_KEY and v > 0 else float("nan")) for k, v in sums.items()]


def main() -> None:
    args = parse_args(sys.argv[1:])
    rows = measure(**args)
    print("\n| term | unit-weight value | default weight | weighted at default | weight for target |")
    print("|---|---:|---:|---:|---:|")
    for k, v, suggested in rows:
        default = DEFAULTS.get(WEIGHT_KEY.get(k, ""), float("nan"))
        print(f"| {k} | {v:.4g} | {default:.3g} | {v * default:.4g} | {suggested:.2g} |")


if __name__ == "__main__":
    main()
