"""Measure every distillation term at the start of training and suggest loss weights for a teacher/student pair.

The authors' weights (Liang et al., ACM MM 2023, and the FGD/MGD papers) were tuned for 256-channel FPN maps at 1333x800; YOLO necks have other
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ikd_yolo.config import DEFAULTS, WEIGHT_KEYS, parse_key_values  # noqa: E402
from ikd_yolo.hooks import detect_input_layers  # noqa: E402
from ikd_yolo.losses import BASE_LOSSES  # noqa: E402
from ikd_yolo.model import ADV_IMG, ADV_TEACHER_FEATS, TEACHER_FEATS, FeatureDistiller, boxes_per_image  # noqa: E402
from ikd_yolo.model import level_channels  # noqa: E402
from ikd_yolo.trainer import IKDTrainer  # noqa: E402

UNIT = {**DEFAULTS, **dict.fromkeys(WEIGHT_KEYS, 1.0)}


def measure(teacher: str, data: str, student: str = "yolo11n.yaml", imgsz: int = 640, batch: int = 8,
            batches: int = 3, target: float = 1.0, device: str = "cpu") -> list[tuple[str, float, float]]:
    """Return (term, mean unit-weight value per batch, suggested weight) for every part of every loss."""
    trainer = IKDTrainer(overrides=dict(model=student, teacher=teacher, data=data, imgsz=imgsz, batch=batch,
                                        device=device, distill="ikd-fgd", workers=0, plots=False, epochs=1))
    trainer.epoch, trainer.epochs = 0, 1
    trainer.setup_model()
    trainer.model.to(trainer.device)
    trainer.set_model_attributes()
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=batch, rank=-1, mode="train")
    model = trainer.model
    s_ch = level_channels(model.student, detect_input_layers(model.student))
    t_ch = level_channels(trainer.teacher.model, trainer.teacher.recorder.layers)
    distillers = [FeatureDistiller(s_ch, t_ch, {**UNIT, "kd_loss": name}).to(trainer.device) for name in BASE_LOSSES]
    sums: dict[str, float] = {}
    for _, raw in zip(range(batches), loader):
        b = trainer.preprocess_batch(raw)
        with torch.no_grad():
            feats, preds = model.student_features(b["img"])
            adv_feats, _ = model.student_features(b[ADV_IMG])
            _, items = model.student.loss(b, preds)
            values = {k: float(v) for k, v in items.items()}
            for distiller in distillers:
                values.update({k: float(v) for k, v in distiller.base_parts(feats, b[TEACHER_FEATS],
                                                                             boxes_per_image(b)).items()})
            values.update({k: float(v) for k, v in distillers[0].adv_parts(adv_feats, b[ADV_TEACHER_FEATS]).items()})
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v / batches
    return [(k, v, target / v if k not in items and v > 0 else float("nan")) for k, v in sums.items()]


def main() -> None:
    rows = measure(**parse_key_values(sys.argv[1:]))
    print("\n| term | unit-weight value | weight for target |")
    print("|---|---:|---:|")
    for k, v, suggested in rows:
        print(f"| {k} | {v:.4g} | {suggested:.2g} |")


if __name__ == "__main__":
    main()
