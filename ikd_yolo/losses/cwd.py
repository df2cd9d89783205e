"""Channel-wise distillation (CWD).

From Shu et al., "Channel-wise Knowledge Distillation for Dense Prediction", ICCV 2021 (arXiv:2011.13256): each
channel of a feature map is turned into a distribution over the H*W positions by a softmax with temperature tau,
and the student's distribution is pulled towards the teacher's with KL(teacher || student).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._common import DistillLoss, check_pair


class CWDLoss(DistillLoss):
    """KL divergence between per-channel spatial softmax distributions of teacher and student.

    For every image n and channel c: p = softmax(F_t[n, c] / tau), q = softmax(F_s[n, c] / tau) over the H*W
    positions, and KL(p || q) = sum_k p_k * (log p_k - log q_k). The loss is
    weight * tau^2 * sum_{n, c} KL / (C * N), computed in fp32.

    Attributes:
        weight (float): Loss weight.
        tau (float): Softmax temperature (> 0).

    Examples:
        >>> import torch
        >>> loss = CWDLoss(weight=1.0, tau=1.0)
        >>> x = torch.randn(2, 8, 4, 4)
        >>> loss(x, x)
        tensor(0.)
    """

    def __init__(self, weight: float = 1.0, tau: float = 1.0) -> None:
        """Initialize with the loss weight (>= 0) and the temperature (> 0)."""
        super().__init__()
        self.weight = float(weight)
        self.tau = float(tau)

    def forward(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None) -> Tensor:
        """Return the weighted channel-wise KL divergence as a scalar fp32 tensor.

        `boxes` is unused: the common base-loss signature.
        """
        check_pair(student, teacher, "CWDLoss")
        n, c = student.shape[:2]
        log_q = F.log_softmax(student.float().flatten(2) / self.tau, dim=-1)  # (N, C, H*W)
        log_p = F.log_softmax(teacher.float().flatten(2) / self.tau, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum()
        return self.weight * self.tau**2 * kl / max(n * c, 1)

    def extra_repr(self) -> str:
        """Show the weight and temperature when the module is printed."""
        return f"weight={self.weight}, tau={self.tau}"
