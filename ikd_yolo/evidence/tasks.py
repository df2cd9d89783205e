"""The task a benchmark measures (detect, segment, pose, obb): its models, its validator and its own metric.

`bench-distill task=segment` trains segmentation students: the profile's model YAMLs get the task's suffix
(yolo11n.yaml -> yolo11n-seg.yaml), the synthetic set draws outline polygons, and each run is scored by the task's
Ultralytics validator: box mAP as for detection plus the task's metric (mask mAP for segment, keypoint OKS mAP for
pose). An obb run's mAP is over rotated boxes, the task's metric itself; COCOeval (axis-aligned boxes) does not apply
to it. Without `task=` the task is the student's.

Examples:
    >>> task_models(None, "yolo11n.yaml", "yolo11s.yaml")
    ('detect', 'yolo11n.yaml', 'yolo11s.yaml')
    >>> task_models("segment", "yolo11n.yaml", "yolo11s.yaml")
    ('segment', 'yolo11n-seg.yaml', 'yolo11s-seg.yaml')
    >>> task_models(None, "yolo11n-pose.yaml", "yolo11s.yaml")
    ('pose', 'yolo11n-pose.yaml', 'yolo11s-pose.yaml')
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ..config import DistillConfigError
from ..inputs import TASKS

SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb"}
# the score of a task's own branch in Ultralytics' metrics (None: the box mAP is the task's metric)
TASK_METRIC = {"detect": None, "segment": "seg", "pose": "pose", "obb": None}
TASK_METRIC_NAME = {"segment": "mask mAP50-95", "pose": "pose mAP50-95"}
COCO_TASKS = ("detect", "segment", "pose")  # axis-aligned boxes: the second evaluator applies


def yaml_task(model: str) -> str:
    """The task a model name says (`-seg`, `-pose`, `-obb`, `-cls` before the suffix; detect otherwise)."""
    stem = Path(model).stem
    named = {**SUFFIX, "classify": "-cls"}
    return next((task for task, suffix in named.items() if suffix and stem.endswith(suffix)), "detect")


def task_models(task: str | None, student: str, teacher_model: str) -> tuple[str, str, str]:
    """The benchmark's task and the student and teacher model names for it: a detect YAML name gets the task's
    suffix; a name of another task than `task` is refused in one line."""
    if task is None and yaml_task(student) not in TASKS:
        raise DistillConfigError(f"student={student} is a {yaml_task(student)} model: bench-distill measures "
                                 f"students of task {', '.join(TASKS)}")
    task = task or yaml_task(student)
    if task not in TASKS:
        raise DistillConfigError(f"task={task} is not one bench-distill measures: use one of {', '.join(TASKS)}")
    names = []
    for key, model in (("student", student), ("teacher_model", teacher_model)):
        own = yaml_task(model)
        if own == "detect" and task != "detect" and str(model).endswith((".yaml", ".yml")):
            model = str(Path(model).with_name(f"{Path(model).stem}{SUFFIX[task]}{Path(model).suffix}"))
        elif own != task and str(model).endswith((".yaml", ".yml")):
            raise DistillConfigError(f"{key}={model} is a {own} model but task={task}: use a {task} model, e.g. "
                                     f"yolo11n{SUFFIX[task]}.yaml, or leave task= out")
        names.append(model)
    return task, names[0], names[1]


@cache
def json_only_validator(task: str) -> type:
    """Ultralytics' validator of `task` that writes predictions.json but does not score it (pycocotools does that
    here; Ultralytics would run faster-coco-eval on custom data, and try to pip-install it when missing)."""
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.models.yolo.obb import OBBValidator
    from ultralytics.models.yolo.pose import PoseValidator
    from ultralytics.models.yolo.segment import SegmentationValidator

    base = {"detect": DetectionValidator, "segment": SegmentationValidator, "pose": PoseValidator,
            "obb": OBBValidator}[task]
    return type(f"JsonOnly{base.__name__}", (base,), {"eval_json": lambda self, stats: stats})


def task_scores(metrics: Any, task: str) -> dict[str, float]:
    """The task branch's mAP50-95 and mAP50 from an Ultralytics val result (empty where the box mAP is the task's)."""
    branch = TASK_METRIC[task]
    if branch is None:
        return {}
    scores = getattr(metrics, branch)
    return {"task_map50_95": float(scores.map), "task_map50": float(scores.map50)}
