"""Plain mean-squared-error feature distillation, the simplest baseline for the base distillation loss."""

from __future__ import annotations

from torch import Tensor

from ._common import DistillLoss, check_pair


class MSELoss(DistillLoss):
    """Weighted mean squared difference between student and teacher feature maps.

    loss = weight * mean((F_s - F_t)^2), the mean taken over every element (N * C * H * W). Computed in fp32;
    an empty batch gives 0.

    Attributes:
        weight (float): Loss weight.

    Examples:
        >>> import torch
        >>> loss = MSELoss(weight=1.0)
        >>> loss(torch.ones(2, 8, 4, 4), torch.zeros(2, 8, 4, 4))
        tensor(1.)
    """

    def __init__(self, weight: float = 1.0) -> None:
        """Initialize with the loss weight (>= 0)."""
        super().__init__()
        self.weight = float(weight)

    def forward(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None) -> Tensor:
        """Return the weighted MSE as a scalar fp32 tensor (`boxes` is unused: the common base-loss signature)."""
        check_pair(student, teacher, "MSELoss")
        return self.weight * (student.float() - teacher.float()).pow(2).sum() / max(student.numel(), 1)

    def extra_repr(self) -> str:
        """Show the weight when the module is printed."""
        return f"weight={self.weight}"
