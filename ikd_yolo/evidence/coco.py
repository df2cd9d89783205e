"""Second evaluator for bench-distill: COCO ground truth from YOLO labels and pycocotools COCOeval of the same
predictions.json that Ultralytics' val writes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .tasks import COCO_TASKS, json_only_validator, task_scores

COCO_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AP_S": 3, "AP_M": 4, "AP_L": 5, "AR100": 8}


def check_evaluator() -> None:
    """One line, before any work, when pycocotools (the second evaluator) cannot be imported."""
    try:
        import pycocotools.cocoeval  # noqa: F401
    except ImportError:
        raise InputError("pycocotools is not installed, and bench-distill (and the demo) score every run with its "
                         "COCOeval too: pip install pycocotools (an ikd-yolo dependency: pip install ikd-yolo "
                         "brings it)") from None


def coco_ground_truth(data_yaml: str | Path, split: str = "val", task: str = "detect") -> dict[str, Any] | None:
    """COCO-format ground truth of a YOLO split's boxes, built from its label files (None for obb: its boxes are
    rotated, COCOeval's are not).

    A segment label's box is its polygon's extent (as Ultralytics takes it); a pose label's is its first four values.
    Boxes are in pixels of the original image (size read from the file), category_id = class + 1 (what Ultralytics'
    `pred_to_json` writes for non-COCO data), area = box w * h, iscrowd 0. Images without labels are kept (their
    detections are false positives). Image ids are 1..N in sorted file order; `file_name` is the image's name, which
    is how predictions are matched to images (see `match_predictions`).
    """
    from PIL import Image
    from ultralytics.data.utils import check_det_dataset, exif_size, img2label_paths

    from ..inputs import split_images

    if task not in COCO_TASKS:
        return None
    polygons = task == "segment"
    data = check_det_dataset(str(data_yaml))  # split paths resolved exactly as Ultralytics' val resolves them
    names = [data["names"][i] for i in sorted(data["names"])]
    images = split_images(data, split)
    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for image_id, (img, label) in enumerate(zip(images, img2label_paths([str(p) for p in images])), 1):
        with Image.open(img) as im:
            w, h = exif_size(im)
        gt["images"].append({"id": image_id, "file_name": img.name, "width": w, "height": h})
        for cls, cx, cy, bw, bh in label_boxes(Path(label), polygons):
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


def label_boxes(label: Path, polygons: bool = False) -> list[tuple[int, float, float, float, float]]:
    """(class, cx, cy, w, h) of each row of a YOLO label file, normalised; from the polygon's extent when `polygons`.

    Examples:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = file.write_text("2 0.1 0.2 0.5 0.2 0.3 0.6\\n")  # a triangle
        >>> [tuple(round(v, 3) for v in box) for box in label_boxes(file, polygons=True)]
        [(2, 0.3, 0.4, 0.4, 0.4)]
    """
    rows = [line.split() for line in label.read_text().splitlines() if line.strip()] if label.is_file() else []
    boxes = []
    for row in rows:
        cls, values = int(float(row[0])), [float(v) for v in row[1:]]
        if polygons:
            xs, ys = values[0::2], values[1::2]
            boxes.append((cls, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)))
        else:
            boxes.append((cls, *values[:4]))
    return boxes


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


def validate_twice(
    weights: str | Path, data: str | Path, gt: dict | None, area_scale: float, save_dir: Path,
    threads: int | None = None, task: str = "detect", **val_args: Any,
) -> dict[str, float | None]:
    """Ultralytics val of `weights` with save_json=True, then COCOeval of the same predictions' boxes; both score sets
    (with the task's own mAP for segment and pose; COCOeval's scores are None where `gt` is None, i.e. obb).

    `threads`: torch threads for the validation (Ultralytics would use its own count)."""
    from ultralytics import YOLO

    from .runs import keep_threads

    args = {"workers": 0, "batch": 16, **val_args}
    model = keep_threads(YOLO(str(weights)), threads)
    metrics = model.val(
        validator=json_only_validator(task), data=str(data), save_json=True, plots=False, verbose=False,
        project=str(save_dir.parent.resolve()), name=save_dir.name, exist_ok=True, **args,  # not under runs/detect
    )
    box = {"map50_95": float(metrics.box.map), "map50": float(metrics.box.map50), **task_scores(metrics, task)}
    if gt is None:
        return {**box, **dict.fromkeys(COCO_STATS)}
    pred_file = Path(metrics.save_dir) / "predictions.json"
    predictions = json.loads(pred_file.read_text()) if pred_file.exists() else []  # no file when nothing was found
    return {**box, **coco_eval(gt, match_predictions(gt, predictions), area_scale)}
