"""The teacher: loading, checks against student and data, and freezing.

The teacher lives on the trainer, never inside the trained module, so it is by construction outside the optimizer,
the EMA, DDP and every saved checkpoint. `FrozenTeacher.train()` keeps it in eval mode whatever its caller asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel

from .hooks import FeatureRecorder, detect_input_layers, head_outputs, neck_features
from .inputs import TeacherError, checkpoint_model, detection_problem, find_weights, model_task, read_checkpoint

# the box geometry of each task's detection branch: the class and box outputs of two heads are comparable (and the
# attack's class loss reads the same labels) only within one geometry
BOX_GEOMETRY = {"detect": "axis-aligned", "segment": "axis-aligned", "pose": "axis-aligned", "obb": "rotated"}


def check_teacher_path(path: str | Path | None) -> Path:
    """Fail fast, before any data or model work, when the teacher file is missing; a bare `.pt` name is also looked
    for in Ultralytics' weights folder (nothing is downloaded)."""
    if not path:
        raise TeacherError("no teacher given: pass teacher=path/to/teacher.pt (a trained Ultralytics detection model)")
    if Path(str(path)).suffix != ".pt" and not Path(str(path)).is_dir():
        raise TeacherError(f"teacher={path} must be an Ultralytics .pt checkpoint (a trained detection model)")
    return find_weights(path, "teacher", TeacherError)


def load_teacher(
    path: str | Path, nc: int, names: Mapping[int, str] | None = None, single_cls: bool = False, trust: bool = False,
) -> DetectionModel:
    """Load a detection teacher from a .pt checkpoint and check its classes.

    The checkpoint is read as `read_checkpoint` reads it: model types only unless `trust` (trust_checkpoints=True).

    With `names` (the dataset's), the teacher's class names must be the same, in the same order: a teacher trained on
    other classes would distil them into the student's.
    """
    path = check_teacher_path(path)
    model = checkpoint_model(read_checkpoint(path, "teacher", TeacherError, trust))
    if problem := detection_problem(model):
        need = ("a teacher with a detection head (a model trained with task=detect, segment, pose or obb)"
                if "model (" in problem else
                "a YOLO teacher with a detection head (e.g. YOLOv8, YOLO11 or YOLO26 trained with task=detect)")
        raise TeacherError(f"teacher={path} is {problem}: IKD needs {need}")
    teacher_nc = int(model.model[-1].nc)
    if teacher_nc != nc:
        fix = ("drop single_cls=True (it trains one class) or use a single-class teacher" if single_cls else
               "use a teacher trained on the same dataset (same class list)")
        raise TeacherError(f"teacher={path} predicts {teacher_nc} classes but the data has nc={nc}: {fix}")
    if names is not None and not single_cls:
        theirs, ours = [model.names[i] for i in range(nc)], [names[i] for i in range(nc)]
        if theirs != ours:
            first = next(i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b)
            raise TeacherError(f"teacher={path} has other classes than the data (class {first}: '{theirs[first]}' vs "
                               f"'{ours[first]}'): use a teacher trained on this dataset (same names, same order)")
    return model


def check_task_pair(teacher: nn.Module, student: nn.Module) -> None:
    """Teacher and student must share the task, or at least their detection branch's box geometry: a detect teacher
    teaches a segment or pose student (and a segment or pose teacher a detect student) its features, classes and
    axis-aligned boxes; obb pairs only with obb (its boxes are distances in each object's rotated frame)."""
    t_task, s_task = model_task(teacher), model_task(student)
    if BOX_GEOMETRY[t_task] != BOX_GEOMETRY[s_task]:
        same = [task for task, geometry in BOX_GEOMETRY.items() if geometry == BOX_GEOMETRY[s_task]]
        raise TeacherError(f"the teacher (task={t_task}) and the student (task={s_task}) predict different boxes "
                           f"({BOX_GEOMETRY[t_task]} vs {BOX_GEOMETRY[s_task]}): use a teacher trained with "
                           f"task={' or '.join(same)}")


def check_compatible(teacher: nn.Module, student: nn.Module) -> None:
    """Teacher and student must share the box geometry (`check_task_pair`) and feed their heads the same number of
    levels at the same strides."""
    check_task_pair(teacher, student)
    t_levels, s_levels = detect_input_layers(teacher), detect_input_layers(student)
    if len(t_levels) != len(s_levels):
        raise TeacherError(
            f"teacher has {len(t_levels)} detection levels but the student has {len(s_levels)}: "
            "pick a teacher and student with the same head layout (e.g. both P3-P5)"
        )
    t_stride, s_stride = teacher.stride.tolist(), student.stride.tolist()
    if t_stride != s_stride:
        raise TeacherError(f"teacher strides {t_stride} differ from student strides {s_stride}: use matching heads")


class FrozenTeacher(nn.Module):
    """A detection-head model (detect, segment, pose or obb) fixed for distillation: eval mode always, no gradients
    to its weights, BN stats untouched.

    Examples:
        >>> teacher = FrozenTeacher(load_teacher("teacher.pt", nc=6))  # needs a teacher.pt  # doctest: +SKIP
        >>> feats = teacher.features(images)  # P3, P4, P5 maps, no autograd graph  # doctest: +SKIP
    """

    def __init__(self, model: DetectionModel, keypoints: bool = False) -> None:
        super().__init__()
        self.model = model.float()
        self.keypoints = keypoints  # `head` also runs a Pose head's keypoint branch (score_kpt on)
        self.recorder = FeatureRecorder(detect_input_layers(model))
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Ignore `mode`: the teacher's BatchNorm and any dropout stay in inference behaviour."""
        return super().train(False)

    @torch.no_grad()
    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Teacher maps at the Detect-head inputs for a batch of images in [0, 1] (the head itself does not run)."""
        return neck_features(self.model, img, self.recorder.layers)

    @torch.no_grad()
    def head(self, maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The teacher head's raw class and box outputs on its own neck `maps` (`hooks.head_outputs`): the head
        convolutions alone, after the pass that gave the maps."""
        return head_outputs(self.model, maps, self.keypoints)
