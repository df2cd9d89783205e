"""Second evaluator for bench-distill: COCO ground truth from YOLO labels and pycocotools COCOeval of the same
predictions.json that Ultralytics' val writes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.models.yolo.detect import DetectionValidator

COCO_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AP_S": 3, "AP_M": 4, "AP_L": 5, "AR100": 8}


def coco_ground_truth(data_yaml: str | Path, split: str = "val") -> dict[str, Any]:
    """COCO-format ground truth of a YOLO detection split, built from its label files.

    Boxes are in pixels of the original image (size read from the file), category_id = class + 1 (what Ultralytics'
    `pred_to_json` writes for non-COCO data), area = box w * h, iscrowd 0. Images without labels are kept (their
    detections are false positives). Image ids are 1..N in sorted file order; `file_name` is the image's name, which
    is how predictions are matched to images (see `match_predictions`).
    """
    from PIL import Image
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset, exif_size, img2label_paths

    data = check_det_dataset(str(data_yaml))  # split paths resolved exactly as Ultralytics' val resolves them
    names = [data["names"][i] for i in sorted(data["names"])]
    images = []
    for entry in data[split] if isinstance(data[split], list) else [data[split]]:
        path = Path(entry)
        if path.is_dir():
            images += [p for p in path.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS]
        else:  # a .txt list of image paths, relative to the list's folder when relative
            images += [(path.parent / line.strip()).resolve() for line in path.read_text().splitlines() if line.strip()]
    images = sorted(set(images))
    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for image_id, (img, label) in enumerate(zip(images, img2label_paths([str(p) for p in images])), 1):
        with Image.open(img) as im:
            w, h = exif_size(im)
        gt["images"].append({"id": image_id, "file_name": img.name, "width": w, "height": h})
        rows = np.loadtxt(label, ndmin=2) if Path(label).is_file() and Path(label).stat().st_size else np.zeros((0, 5))
        for cls, cx, cy, bw, bh in rows[:, :5]:
            x0, y0 = max(cx - bw / 2, 0.0) * w, max(cy - bh / 2, 0.0) * h
            x1, y1 = min(cx + bw / 2, 1.0) * w, min(cy + bh / 2, 1.0) * h
            box = [x0, y0, x1 - x0, y1 - y0]
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [round(float(v), 3) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0,
            })
    if len({im["file_name"] for im in gt["images"]}) != len(images):
        raise ValueError(f"{data_yaml} '{split}' has images with the same file name: predictions could not be matched")
    return gt


def match_predictions(gt: dict[str, Any], predictions: list[dict]) -> list[dict]:
    """Predictions from Ultralytics' predictions.json with image_id replaced by the ground truth's id (by file name)."""
    ids = {im["file_name"]: im["id"] for im in gt["images"]}
    return [{**p, "image_id": ids[p["file_name"]]} for p in predictions]


def coco_eval(gt: dict[str, Any], predictions: list[dict], area_scale: float = 1.0) -> dict[str, float | None]:
    """pycocotools COCOeval (bbox) of `predictions` against `gt`: AP, AP50, AP75, AP_S, AP_M, AP_L, AR100.

    `area_scale` multiplies COCO's small/medium/large area limits (32², 96² px); 1.0 is standard COCO. A size range
    without ground truth gives None. No predictions at all gives 0 everywhere (None for empty ranges).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        api = COCO()
        api.dataset = json.loads(json.dumps(gt))
        api.createIndex()
        if not predictions:
            scores = dict.fromkeys(COCO_STATS, 0.0)
            for key, (lo, hi) in zip(("AP_S", "AP_M", "AP_L"), area_ranges(area_scale)[1:]):
                if not any(lo <= a["area"] < hi for a in gt["annotations"]):
                    scores[key] = None
            return scores
        evaluator = COCOeval(api, api.loadRes(json.loads(json.dumps(predictions))), "bbox")
        evaluator.params.areaRng = area_ranges(area_scale)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: (float(evaluator.stats[i]) if evaluator.stats[i] >= 0 else None) for k, i in COCO_STATS.items()}


def area_ranges(scale: float) -> list[list[float]]:
    """COCOeval's areaRng (all, small, medium, large) with the 32² and 96² limits times `scale`."""
    small, large = 32**2 * scale, 96**2 * scale
    return [[0.0, 1e10], [0.0, small], [small, large], [large, 1e10]]


class JsonOnlyValidator(DetectionValidator):
    """Ultralytics' detection validator that writes predictions.json but does not score it: pycocotools does that
    here (Ultralytics would run faster-coco-eval on custom data, and try to pip-install it when missing)."""

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Return the Ultralytics stats unchanged."""
        return stats


def validate_twice(
    weights: str | Path, data: str | Path, gt: dict, area_scale: float, save_dir: Path, threads: int | None = None,
    **val_args: Any,
) -> dict[str, float | None]:
    """Ultralytics val of `weights` with save_json=True, then COCOeval of the same predictions; both score sets.

    `threads`: torch threads for the validation (Ultralytics would use its own count)."""
    from ultralytics import YOLO

    from .runs import keep_threads

    args = {"workers": 0, "batch": 16, **val_args}
    model = keep_threads(YOLO(str(weights)), threads)
    metrics = model.val(
        validator=JsonOnlyValidator, data=str(data), save_json=True, plots=False, verbose=False,
        project=str(save_dir.parent.resolve()), name=save_dir.name, exist_ok=True, **args,  # not under runs/detect
    )
    pred_file = Path(metrics.save_dir) / "predictions.json"
    predictions = json.loads(pred_file.read_text()) if pred_file.exists() else []  # no file when nothing was found
    coco = coco_eval(gt, match_predictions(gt, predictions), area_scale)
    return {"map50_95": float(metrics.box.map), "map50": float(metrics.box.map50), **coco}
