"""Focal and global distillation (FGD).

From Yang et al., "Focal and Global Knowledge Distillation for Detectors", CVPR 2022 (arXiv:2111.11837). The
feature imitation is split into foreground and background parts, each weighted per cell by the teacher's spatial
and channel attention ("focal"), plus an attention-imitation term and a "global" term that compares the features
after a GcBlock (global context block, Cao et al., "GCNet", ICCVW 2019) on each side.

Mask convention (`fgd_masks`): a box is xyxy in normalised [0, 1] image coordinates and the feature map of size
(H, W) covers the whole image, so cell (i, j) spans [j/W, (j+1)/W) x [i/H, (i+1)/H). A box covers the cells it
overlaps with positive area: columns floor(x1*W) .. ceil(x2*W) - 1 and rows floor(y1*H) .. ceil(y2*H) - 1 (a
tolerance of 1e-4 cell absorbs rounding, so 0.6 * 10 in fp32 does not spill into column 6). Coordinates are
clipped to [0, 1] first, and every box covers at least one cell (a zero-size box marks the cell it lies in).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import DistillLoss, check_pair

_CELL_TOL = 1e-4  # rounding tolerance in cell units when mapping box edges onto the grid


def _cell_span(lo: Tensor, hi: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Map normalised edges lo <= hi (n,) to integer cell ranges [start, stop) on an axis of `size` cells."""
    start = torch.floor(lo * size + _CELL_TOL).clamp(0, size - 1)
    stop = torch.ceil(hi * size - _CELL_TOL).clamp(max=size)
    stop = torch.maximum(stop, start + 1)
    return start, stop


def fgd_masks(
    boxes: Sequence[Tensor], feat_hw: tuple[int, int], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Build FGD's foreground and background masks for one feature level.

    Each box gets the value 1 / (h_cells * w_cells) on the cells it covers (module docstring for the convention),
    overlapping boxes keep the largest value, so each box's cells sum to at most 1 and small objects weigh as
    much as large ones. Cells no box touches form the background, each worth 1 / N_bg where N_bg is the number of
    background cells of that image (all zeros if there are none).

    Args:
        boxes (Sequence[Tensor]): One (n_i, 4) tensor per image of xyxy boxes in normalised [0, 1] coordinates.
        feat_hw (tuple[int, int]): Feature map height and width (H, W).
        device (torch.device | str | None): Device of the masks; the first box tensor's device when None.

    Returns:
        fg (Tensor): Foreground mask (N, H, W), fp32.
        bg (Tensor): Background mask (N, H, W), fp32.

    Examples:
        >>> import torch
        >>> fg, bg = fgd_masks([torch.tensor([[0.0, 0.0, 0.5, 0.5]])], (2, 2))
        >>> fg[0]
        tensor([[1., 0.],
                [0., 0.]])
        >>> bg[0, 1]
        tensor([0.3333, 0.3333])
    """
    h, w = int(feat_hw[0]), int(feat_hw[1])
    if device is None:
        device = boxes[0].device if len(boxes) else torch.device("cpu")
    fg = torch.zeros(len(boxes), h, w, device=device)
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    for i, b in enumerate(boxes):
        if b.numel() == 0:
            continue
        b = b.to(device=device, dtype=torch.float32).reshape(-1, 4).clamp(0, 1)
        x0, x1 = _cell_span(torch.minimum(b[:, 0], b[:, 2]), torch.maximum(b[:, 0], b[:, 2]), w)
        y0, y1 = _cell_span(torch.minimum(b[:, 1], b[:, 3]), torch.maximum(b[:, 1], b[:, 3]), h)
        in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])  # (n, H)
        in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])  # (n, W)
        value = 1.0 / ((y1 - y0) * (x1 - x0))  # (n,)
        fg[i] = (in_rows[:, :, None] & in_cols[:, None, :]).float().mul(value[:, None, None]).amax(0)
    bg = (fg == 0).float()
    bg = bg / bg.sum((1, 2), keepdim=True).clamp(min=1)
    return fg, bg


def spatial_attention(feat: Tensor, temp: float) -> Tensor:
    """Return A_S = H*W * softmax(mean_c |F| / temp) over the H*W positions, shape (N, 1, H, W), fp32."""
    n, _, h, w = feat.shape
    logits = feat.float().abs().mean(1).reshape(n, h * w) / temp
    return (h * w * F.softmax(logits, dim=1)).reshape(n, 1, h, w)


def channel_attention(feat: Tensor, temp: float) -> Tensor:
    """Return A_C = C * softmax(mean_hw |F| / temp) over the C channels, shape (N, C, 1, 1), fp32."""
    n, c = feat.shape[:2]
    logits = feat.float().abs().mean((2, 3)) / temp
    return (c * F.softmax(logits, dim=1)).reshape(n, c, 1, 1)


class GcBlock(nn.Module):
    """Global context block: adds a transformed, attention-pooled context vector to every position.

    Context: a 1x1 conv maps F (N, C, H, W) to one logit map, a softmax over the H*W positions turns it into
    weights, and the weighted sum of F gives a context (N, C, 1, 1). Transform: 1x1 conv C -> C/2, LayerNorm over
    [C/2, 1, 1], ReLU, 1x1 conv C/2 -> C. Output: F + transform(context). The last conv is zero-initialised, so a
    fresh block is the identity. Pooling and the residual sum are done in fp32.

    Attributes:
        context_conv (nn.Conv2d): 1x1 conv C -> 1 giving the attention logits.
        transform (nn.Sequential): conv - LayerNorm - ReLU - conv applied to the context.

    Examples:
        >>> import torch
        >>> x = torch.randn(2, 8, 4, 4)
        >>> torch.equal(GcBlock(8)(x), x)  # identity at initialisation
        True
    """

    def __init__(self, channels: int) -> None:
        """Initialize for `channels`-channel features; the hidden width is max(channels // 2, 1)."""
        super().__init__()
        hidden = max(int(channels) // 2, 1)
        self.context_conv = nn.Conv2d(channels, 1, kernel_size=1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def forward(self, feat: Tensor) -> Tensor:
        """Return feat + transform(context) as fp32, shape (N, C, H, W)."""
        x = feat.float()
        n, c = x.shape[:2]
        weights = F.softmax(self.context_conv(x).float().reshape(n, 1, -1), dim=-1)  # (N, 1, H*W)
        context = (x.reshape(n, c, -1) * weights).sum(-1).reshape(n, c, 1, 1)
        return x + self.transform(context).float()


class FGDLoss(DistillLoss):
    """FGD loss for one feature level: focal (foreground + background), attention and global terms.

    With N the batch size, M_fg / M_bg from `fgd_masks`, A_S / A_C the spatial / channel attention (module functions
    `spatial_attention`, `channel_attention`, temperature `temp`):
        fg        = alpha * sum(M_fg * A_S^t * A_C^t * (F_s - F_t)^2) / N
        bg        = beta  * sum(M_bg * A_S^t * A_C^t * (F_s - F_t)^2) / N
        att       = gamma * (sum|A_C^s - A_C^t| + sum|A_S^s - A_S^t|) / N
        global    = lambda_ * sum((GC_s(F_s) - GC_t(F_t))^2) / N
    As in FGD, both focal terms are weighted by the TEACHER's attention (the student imitates where the teacher
    looks; the attention term separately teaches the student to look there). Each side has its own `GcBlock`; both
    are trained with the student and are not part of the deployed model. All reductions are in fp32.

    Attributes:
        alpha, beta, gamma, lambda_ (float): Weights of the foreground, background, attention and global terms.
        temp (float): Attention temperature.
        gc_student (GcBlock): Global context block applied to the student features.
        gc_teacher (GcBlock): Global context block applied to the teacher features.

    Examples:
        >>> import torch
        >>> loss = FGDLoss(channels=8)
        >>> s, t = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
        >>> boxes = [torch.tensor([[0.1, 0.1, 0.6, 0.5]]), torch.zeros(0, 4)]
        >>> sorted(loss.parts(s, t, boxes))
        ['att', 'bg', 'fg', 'global']
    """

    WEIGHTS = {"fg": "alpha", "bg": "beta", "att": "gamma", "global": "lambda_"}

    def __init__(
        self,
        channels: int,
        alpha: float = 1e-3,
        beta: float = 5e-4,
        gamma: float = 5e-4,
        lambda_: float = 5e-6,
        temp: float = 0.5,
    ) -> None:
        """Initialize the term weights, the attention temperature and one GcBlock per side."""
        super().__init__()
        if int(channels) < 1:
            raise ValueError(f"FGDLoss channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.alpha, self.beta, self.gamma, self.lambda_ = float(alpha), float(beta), float(gamma), float(lambda_)
        self.temp = float(temp)
        self.gc_student = GcBlock(self.channels)
        self.gc_teacher = GcBlock(self.channels)

    def parts(self, student: Tensor, teacher: Tensor, boxes: Sequence[Tensor]) -> dict[str, Tensor]:
        """Return the four weighted terms {'fg', 'bg', 'att', 'global'}, scalar fp32 tensors summing to the loss.

        Args:
            student (Tensor): Student features (N, C, H, W), already aligned to the teacher's channels.
            teacher (Tensor): Teacher features (N, C, H, W), detached by the caller.
            boxes (Sequence[Tensor]): One (n_i, 4) tensor per image, xyxy in normalised [0, 1] image coordinates.

        Returns:
            (dict[str, Tensor]): The weighted terms, differentiable w.r.t. the student and the GcBlocks.
        """
        check_pair(student, teacher, "FGDLoss")
        n, c, h, w = student.shape
        if c != self.channels:
            raise ValueError(f"FGDLoss was built for {self.channels} channels, got features with {c}")
        if boxes is None or len(boxes) != n:
            got = "None" if boxes is None else f"{len(boxes)} box tensors"
            raise ValueError(f"FGDLoss needs one box tensor per image ({n}), got {got}")
        s, t = student.float(), teacher.float()
        fg, bg = fgd_masks(boxes, (h, w), device=s.device)
        s_att_s, c_att_s = spatial_attention(s, self.temp), channel_attention(s, self.temp)
        s_att_t, c_att_t = spatial_attention(t, self.temp), channel_attention(t, self.temp)

        weighted_sq = (s - t).pow(2) * s_att_t * c_att_t  # (N, C, H, W), teacher attention on both
        per_cell = weighted_sq.sum(1)  # (N, H, W)
        denom = max(n, 1)
        attention = (c_att_s - c_att_t).abs().sum() + (s_att_s - s_att_t).abs().sum()
        global_sq = (self.gc_student(s) - self.gc_teacher(t)).pow(2).sum()
        return {
            "fg": self.alpha * (per_cell * fg).sum() / denom,
            "bg": self.beta * (per_cell * bg).sum() / denom,
            "att": self.gamma * attention / denom,
            "global": self.lambda_ * global_sq / denom,
        }

    def forward(self, student: Tensor, teacher: Tensor, boxes: Sequence[Tensor] | None = None) -> Tensor:
        """Return the total FGD loss (the sum of `parts`) as a scalar fp32 tensor.

        Args:
            student (Tensor): Student features (N, C, H, W), already aligned to the teacher's channels.
            teacher (Tensor): Teacher features (N, C, H, W), detached by the caller.
            boxes (Sequence[Tensor] | None): One (n_i, 4) tensor per image, xyxy normalised; required.

        Returns:
            (Tensor): Scalar loss.
        """
        return sum(self.parts(student, teacher, boxes).values())

    def extra_repr(self) -> str:
        """Show the weights and temperature when the module is printed."""
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, lambda_={self.lambda_}, temp={self.temp}"
