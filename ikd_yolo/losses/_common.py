"""Small checks shared by the feature-distillation losses."""

from __future__ import annotations

from torch import Tensor


def check_pair(student: Tensor, teacher: Tensor, name: str) -> None:
    """Raise ValueError unless student and teacher are NCHW feature maps of the same shape.

    Args:
        student (Tensor): Student feature map, expected shape (N, C, H, W).
        teacher (Tensor): Teacher feature map, expected to match the student's shape.
        name (str): Loss name used in the error message.
    """
    if student.dim() != 4 or student.shape != teacher.shape:
        raise ValueError(
            f"{name} expects student and teacher features of the same (N, C, H, W) shape, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )


def check_positive(value: float, name: str) -> float:
    """Return value as float, raising ValueError if it is not > 0."""
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_nonnegative(value: float, name: str) -> float:
    """Return value as float, raising ValueError if it is negative (or NaN)."""
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value
