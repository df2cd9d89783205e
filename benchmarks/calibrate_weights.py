"""Print the loss weights `weights=auto` measures for a teacher/student pair and image size, without training.

The same library code as the trainer's start-of-training measurement (`ikd_yolo.auto_weights`, through
`IKDTrainer._setup_train`): a few real training batches at unit weight, each weight set so its term starts at
`kd_share` detection-loss items. Use it to see the numbers before a long run, or to copy them into a weights=fixed run.

    python benchmarks/calibrate_weights.py teacher=teacher.pt data=data.yaml student=yolo11n.yaml imgsz=640 batch=8
    python benchmarks/calibrate_weights.py teacher=teacher.pt data=data.yaml distill=ikd-mgd kd_share=0.5
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ikd_yolo.config import parse_key_values  # noqa: E402
from ikd_yolo.errors import report_user_errors  # noqa: E402


def measure(teacher: str, data: str, student: str = "yolo11n.yaml", imgsz: int = 640, batch: int = 8,
            device: str = "cpu", distill: str = "ikd-fgd", **keys: Any) -> dict[str, Any]:
    """The trainer's auto-weight report for this pair: per term its unit value and weight, and the detection item."""
    from ikd_yolo import IKDTrainer

    trainer = IKDTrainer(overrides=dict(model=student, teacher=teacher, data=data, imgsz=imgsz, batch=batch,
                                        device=device, distill=distill, workers=0, plots=False, val=False, epochs=1,
                                        **keys))
    trainer._setup_train()
    return trainer.auto_weight_report


def main() -> int:
    def run() -> None:
        report = measure(**parse_key_values(sys.argv[1:]))
        print(f"\none detection-loss item: {report['detection_item']:.4g} ({report['batches']} batches)\n")
        print("| term | key | unit-weight value | auto weight |\n|---|---|---:|---:|")
        for part, key in report["keys"].items():
            print(f"| {part} | {key} | {report['values'][part]:.4g} | {report['weights'][key]:.3g} |")

    return report_user_errors("calibrate_weights", run)


if __name__ == "__main__":
    sys.exit(main())
