"""Masked generative distillation (MGD).

From Yang et al., "Masked Generative Distillation", ECCV 2022 (arXiv:2205.01529): random spatial positions of the
student's feature map are zeroed, and a small generator (conv3x3 - ReLU - conv3x3) has to rebuild the teacher's
full feature map from what is left, so the student learns features from which the teacher's can be generated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import DistillLoss, check_pair


class MGDLoss(DistillLoss):
    """Squared error between the teacher's features and features generated from the masked student's.

    A mask R of shape (N, 1, H, W) keeps each position with probability 1 - ratio (R = 1) and drops it otherwise
    (R = 0), shared by all channels. The loss is alpha * sum((G(F_s * R) - F_t)^2) / N with the generator
    G = conv3x3 - ReLU - conv3x3 (channels -> channels, padding 1). The squared error is reduced in fp32.
    The generator is trained with the student and is not part of the deployed model.

    Attributes:
        alpha (float): Loss weight (alpha_mgd).
        ratio (float): Probability that a position is masked out, in [0, 1].
        generator (nn.Sequential): The conv3x3 - ReLU - conv3x3 generator.

    Examples:
        >>> import torch
        >>> loss = MGDLoss(channels=8, alpha=2e-5, ratio=0.65)
        >>> loss(torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)).shape
        torch.Size([])
    """

    WEIGHTS = {"": "alpha"}

    def __init__(self, channels: int, alpha: float = 2e-5, ratio: float = 0.65) -> None:
        """Initialize the generator for `channels`-channel features, the loss weight and the drop ratio."""
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"MGDLoss channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.alpha = float(alpha)
        self.ratio = float(ratio)
        self.generator = nn.Sequential(
            nn.Conv2d(self.channels, self.channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(self.channels, self.channels, kernel_size=3, padding=1),
        )

    def draw_mask(self, feat: Tensor) -> Tensor:
        """Draw a random keep-mask (N, 1, H, W) on feat's device: 0 with probability `ratio`, else 1.

        Args:
            feat (Tensor): Feature map (N, C, H, W) whose batch size, size and device the mask follows.

        Returns:
            (Tensor): fp32 mask of zeros and ones.
        """
        n, _, h, w = feat.shape
        return (torch.rand((n, 1, h, w), device=feat.device) >= self.ratio).float()

    def forward(
        self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """Return the weighted generation error as a scalar fp32 tensor.

        Args:
            student (Tensor): Student features (N, C, H, W), already aligned to the teacher's channels.
            teacher (Tensor): Teacher features (N, C, H, W), detached by the caller.
            boxes (list[Tensor] | None): Unused; accepted for the common base-loss signature.
            mask (Tensor | None): Keep-mask broadcastable to (N, C, H, W), 1 = keep, 0 = drop; drawn with
                `draw_mask` when None.

        Returns:
            (Tensor): Scalar loss.
        """
        check_pair(student, teacher, "MGDLoss")
        if student.shape[1] != self.channels:
            raise ValueError(f"MGDLoss was built for {self.channels} channels, got features with {student.shape[1]}")
        if mask is None:
            mask = self.draw_mask(student)
        elif mask.dim() != 4:
            raise ValueError(f"MGDLoss mask must be 4-D (N, 1, H, W) or (N, C, H, W), got {tuple(mask.shape)}")
        generated = self.generator(student.float() * mask.to(student.device, torch.float32))
        error = (generated.float() - teacher.float()).pow(2).sum()
        return self.alpha * error / max(student.shape[0], 1)

    def extra_repr(self) -> str:
        """Show the weight and drop ratio when the module is printed."""
        return f"alpha={self.alpha}, ratio={self.ratio}"
