"""IKD adversarial feature loss for one feature level.

From Liang et al., "Exploring Inconsistent Knowledge Distillation for Object Detection with Data Augmentation",
ACM MM 2023 (arXiv:2209.09841): on an image perturbed against the teacher, the student's features are pulled
towards the teacher's with L_adv = alpha_adv * sum((F_s - F_t)^2) / batch_size per level; callers sum the levels.
"""

from __future__ import annotations

from torch import Tensor

from ._common import DistillLoss, check_pair


class AdvFeatureLoss(DistillLoss):
    """Squared feature difference summed over C, H, W and averaged over the batch, for adversarial images.

    loss = weight * sum((F_s - F_t)^2) / N, computed in fp32. The authors used weight 1e-5 for 256-channel FPN levels.

    Attributes:
        weight (float): Loss weight (alpha_adv).

    Examples:
        >>> import torch
        >>> loss = AdvFeatureLoss(weight=0.5)
        >>> loss(torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2))  # 0.5 * (2 * 12) / 2
        tensor(6.)
    """

    def __init__(self, weight: float = 1e-5) -> None:
        """Initialize with the loss weight (>= 0)."""
        super().__init__()
        self.weight = float(weight)

    def forward(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None) -> Tensor:
        """Return the weighted per-image sum of squared differences as a scalar fp32 tensor.

        `boxes` is unused: the common base-loss signature.
        """
        check_pair(student, teacher, "AdvFeatureLoss")
        return self.weight * (student.float() - teacher.float()).pow(2).sum() / max(student.shape[0], 1)

    def extra_repr(self) -> str:
        """Show the weight when the module is printed."""
        return f"weight={self.weight}"
