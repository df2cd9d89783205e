"""The teacher: loading, checks against student and data, and freezing.

The teacher lives on the trainer, never inside the trained module, so it is by construction outside the optimizer,
the EMA, DDP and every saved checkpoint. `FrozenTeacher.train()` keeps it in eval mode whatever its caller asks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel, guess_model_task, load_checkpoint

from .errors import UserError
from .hooks import FeatureRecorder, detect_input_layers


class TeacherError(UserError):
    """The teacher cannot be used; the message names the problem and the fix on one line."""


def check_teacher_path(path: str | Path | None) -> Path:
    """Fail fast, before any data or model work, when the teacher file is missing."""
    if not path:
        raise TeacherError("no teacher given: pass teacher=path/to/teacher.pt (a trained Ultralytics detection model)")
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"teacher '{path}' not found: pass teacher=path/to/teacher.pt (a trained detection checkpoint)")
    if path.suffix not in {".pt", ".yaml", ".yml"}:
        raise TeacherError(f"teacher '{path}' must be an Ultralytics .pt checkpoint (or a model .yaml for tests)")
    return path


def load_teacher(path: str | Path, nc: int, channels: int = 3) -> DetectionModel:
    """Load a detection teacher from a .pt checkpoint (or build one from a .yaml, for tests) and check its classes."""
    path = check_teacher_path(path)
    if path.suffix == ".pt":
        try:
            model, _ = load_checkpoint(path)
        except Exception as e:  # torch/pickle raise many types for a file that is not a checkpoint
            raise TeacherError(
                f"teacher '{path}' is not a readable Ultralytics checkpoint ({type(e).__name__}): "
                "pass the best.pt or last.pt of a detection training run"
            ) from None
    else:
        model = DetectionModel(str(path), nc=nc, ch=channels, verbose=False)
    task = guess_model_task(getattr(model, "yaml", None) or model)  # the architecture, not a stored label
    if task != "detect":
        raise TeacherError(
            f"teacher '{path}' is a {task} model ({type(model).__name__}): IKD needs a detection teacher "
            "(a model trained with task=detect)"
        )
    if type(model) is not DetectionModel:  # RT-DETR, YOLO-World, YOLOE: detectors, but not with a plain Detect head
        raise TeacherError(
            f"teacher '{path}' is a {type(model).__name__}, not a YOLO DetectionModel: IKD needs a YOLO detection "
            "teacher (e.g. YOLOv8, YOLO11 or YOLO26 trained with task=detect)"
        )
    teacher_nc = int(model.model[-1].nc)
    if teacher_nc != nc:
        raise TeacherError(
            f"teacher '{path}' predicts {teacher_nc} classes but the data has nc={nc}: "
            "use a teacher trained on the same dataset (same class list)"
        )
    return model


def check_compatible(teacher: nn.Module, student: nn.Module) -> None:
    """Teacher and student must feed their heads the same number of levels at the same strides."""
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
    """A detection model fixed for distillation: eval mode always, no gradients to its weights, BN stats untouched.

    Examples:
        >>> teacher = FrozenTeacher(load_teacher("teacher.pt", nc=6))
        >>> feats = teacher.features(images)  # P3, P4, P5 maps, no autograd graph
    """

    def __init__(self, model: DetectionModel) -> None:
        super().__init__()
        self.model = model.float()
        self.recorder = FeatureRecorder(detect_input_layers(model))
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Ignore `mode`: the teacher's BatchNorm and any dropout stay in inference behaviour."""
        return super().train(False)

    @torch.no_grad()
    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Teacher maps at the Detect-head inputs for a batch of images in [0, 1]."""
        with self.recorder.capture(self.model) as feats:
            self.model(img)
        return feats
