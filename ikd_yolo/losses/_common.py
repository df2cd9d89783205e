"""What the feature-distillation losses share: the base class with named, weighted parts and the shape check."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn


class DistillLoss(nn.Module):
    """A distillation loss made of named parts, each scaled by one weight; the loss is the sum of its parts.

    `WEIGHTS` maps each part to the constructor argument (and attribute) holding its weight; a single-part loss has
    the one part "". Parts let the trainer log and calibrate every term on its own (`FeatureDistiller.base_parts`).
    """

    WEIGHTS: ClassVar[dict[str, str]] = {"": "weight"}
    NEEDS_HEAD: ClassVar[bool] = False  # True: `parts` also takes the level's head outputs (`head=`)
    PROJECTOR: ClassVar[str] = "linear"  # how the distiller aligns student channels: "linear" (1x1 conv) or "mlp"

    def parts(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None) -> dict[str, Tensor]:
        """The weighted parts {name: scalar fp32 tensor}; a single-part loss returns {"": loss}.

        Args:
            student (Tensor): Student features (N, C, H, W), already aligned to the teacher's channels.
            teacher (Tensor): Teacher features (N, C, H, W), detached by the caller.
            boxes (list[Tensor] | None): One (n_i, 4) tensor per image, xyxy normalised to [0, 1] (FGD needs them).
        """
        return {"": self(student, teacher, boxes)}

    def weight_of(self, part: str) -> float:
        """The weight of part `part` ("" for a single-part loss), read through `WEIGHTS`."""
        return getattr(self, self.WEIGHTS[part])

    def set_weight(self, part: str, value: float) -> None:
        """Give part `part` ("" for a single-part loss) the weight `value`, through `WEIGHTS`."""
        setattr(self, self.WEIGHTS[part], float(value))


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
