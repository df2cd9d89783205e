"""Head-aware distillation: imitate where the teacher's detector fires (features), what it says (class scores) and
where it puts the box (box distributions), all weighted per position by the teacher's own score.

- Feature term: the feature imitation of FRS (Du et al., "Distilling Object Detectors with Feature Richness",
  NeurIPS 2021), which Ultralytics' built-in `distill_model=` uses: squared error weighted per position by the
  teacher's max-over-classes sigmoid score, a weighted mean per level (divided by C * sum of weights), so every
  level counts equally whatever its size.
- Class term: Bernoulli KL between the teacher's and the student's sigmoid class scores (FRS / BCKD-style head
  distillation, Yang et al., "Bridging Cross-task Protocol Inconsistency for Distillation in Dense Object Detection",
  ICCV 2023), at the same weighted positions.
- Box term: for heads with DFL bins on both sides and the same bin count, the KL between the temperature-softened
  teacher and student distributions of each box side, times T^2 (LD: Zheng et al., "Localization Distillation for
  Dense Object Detection", CVPR 2022); otherwise (YOLO26-style heads with one value per side, or bin counts that
  differ) 1 - IoU of the two ltrb boxes predicted at the same anchor.
- Keypoint term (pose pairs, off unless `score_kpt` is set): at the same positions, the smooth-L1 distance between
  the teacher's and the student's keypoint offsets from the anchor (in strides), weighted per keypoint by the
  teacher's visibility, plus the Bernoulli KL of the visibilities: the box term's counterpart for the keypoint
  branch, which reads the same neck maps.

Every term is a weighted mean over positions, so its size does not grow with the image or the channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import DistillLoss, check_pair

_EPS = 1e-9  # as in the weighted mean of Ultralytics' distill_model, so the control is the same number


@dataclass(frozen=True)
class LevelHead:
    """One level's head outputs of teacher and student, channels first at the level's (H, W).

    Attributes:
        teacher_logits (Tensor): Teacher class logits (N, nc, H, W).
        student_logits (Tensor): Student class logits (N, nc, H, W).
        teacher_box (Tensor): Teacher box output (N, 4 * R_t, H, W): DFL logits (R_t bins per side) or ltrb (R_t = 1).
        student_box (Tensor): Student box output (N, 4 * R_s, H, W).
        weight (Tensor): Position weights (N, 1, H, W), >= 0, without gradient (see `position_weights`).
        teacher_kpt, student_kpt (Tensor | None): A Pose head's raw keypoint outputs (N, nk * kpt_dim, H, W), where
            both heads have them and keypoints are distilled.
        kpt_dim (int): Values per keypoint: 2 (x, y) or 3 (x, y, visibility logit).
    """

    teacher_logits: Tensor
    student_logits: Tensor
    teacher_box: Tensor
    student_box: Tensor
    weight: Tensor
    teacher_kpt: Tensor | None = None
    student_kpt: Tensor | None = None
    kpt_dim: int = 3


def position_weights(*teacher_logits: Tensor) -> Tensor:
    """The teacher's confidence per position: max over classes of sigmoid(mean of the given logit maps), (N, 1, H, W).

    A head with two branches (one-to-many and one-to-one, YOLO26 / YOLOv10) gives both; their logits are averaged
    first, as Ultralytics' distill_model does.
    """
    logits = torch.stack([t.float() for t in teacher_logits]).mean(0)
    return logits.sigmoid().amax(1, keepdim=True).detach()


def bernoulli_kl(teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
    """KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s))) per element: binary cross-entropy with the teacher's
    probability as the target, minus its entropy (so it is 0 where the scores agree; the gradient is the BCE's)."""
    p = teacher_logits.float().sigmoid()
    s, t = student_logits.float(), teacher_logits.float()
    return (F.binary_cross_entropy_with_logits(s, p, reduction="none")
            - F.binary_cross_entropy_with_logits(t, p, reduction="none"))


def dfl_kl(teacher_box: Tensor, student_box: Tensor, temp: float) -> Tensor:
    """LD's term per position: KL(softmax(t / T) || softmax(s / T)) * T^2 of each side's bins, mean over the 4 sides;
    (N, 4 * R, H, W) in, (N, 1, H, W) out."""
    n, c, h, w = teacher_box.shape
    t = (teacher_box.float() / temp).reshape(n, 4, c // 4, h, w)
    s = (student_box.float() / temp).reshape(n, 4, c // 4, h, w)
    kl = (t.softmax(2) * (t.log_softmax(2) - s.log_softmax(2))).sum(2)  # (N, 4, H, W)
    return kl.mean(1, keepdim=True) * temp * temp


def side_distances(box: Tensor) -> Tensor:
    """The four ltrb distances (N, 4, H, W) of a box output: the expectation over the bins of a DFL head, the
    output itself for a head with one value per side."""
    n, c, h, w = box.shape
    bins = c // 4
    if bins == 1:
        return box.float()
    prob = box.float().reshape(n, 4, bins, h, w).softmax(2)
    steps = torch.arange(bins, device=box.device, dtype=prob.dtype).view(1, 1, bins, 1, 1)
    return (prob * steps).sum(2)


def ltrb_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of two boxes given as ltrb distances from the same anchor (N, 4, H, W) -> (N, 1, H, W); a negative
    extent counts as an empty box."""
    (la, ta, ra, ba), (lb, tb, rb, bb) = a.clamp(min=0).unbind(1), b.clamp(min=0).unbind(1)
    inter = (torch.minimum(la, lb) + torch.minimum(ra, rb)) * (torch.minimum(ta, tb) + torch.minimum(ba, bb))
    union = (la + ra) * (ta + ba) + (lb + rb) * (tb + bb) - inter
    return (inter / (union + 1e-7)).unsqueeze(1)


def box_discrepancy(teacher_box: Tensor, student_box: Tensor, temp: float) -> Tensor:
    """(N, 1, H, W): LD's KL where both heads have the same number (> 1) of DFL bins, else 1 - IoU of the boxes."""
    if teacher_box.shape[1] == student_box.shape[1] and teacher_box.shape[1] > 4:
        return dfl_kl(teacher_box, student_box, temp)
    return 1.0 - ltrb_iou(side_distances(teacher_box).detach(), side_distances(student_box))


def keypoint_discrepancy(teacher_kpt: Tensor, student_kpt: Tensor, kpt_dim: int = 3) -> Tensor:
    """(N, 1, H, W): per position, the smooth-L1 distance of the keypoint offsets in strides (a Pose head's raw x, y
    are half-strides from the anchor), averaged over the keypoints weighted by the teacher's visibility, plus (with
    visibilities) their Bernoulli KL averaged over the keypoints.

    Examples:
        >>> t = torch.tensor([0.5, 0.0, 20.0]).view(1, 3, 1, 1)  # one keypoint, certainly visible
        >>> keypoint_discrepancy(t, torch.tensor([0.0, 0.0, 20.0]).view(1, 3, 1, 1)).flatten()  # x off by a stride
        tensor([0.2500])
    """
    n, c, h, w = teacher_kpt.shape
    t = teacher_kpt.float().reshape(n, c // kpt_dim, kpt_dim, h, w)
    s = student_kpt.float().reshape(n, c // kpt_dim, kpt_dim, h, w)
    offset = F.smooth_l1_loss(2 * s[:, :, :2], 2 * t[:, :, :2].detach(), reduction="none").mean(2)  # (N, K, H, W)
    if kpt_dim < 3:
        return offset.mean(1, keepdim=True)
    seen = t[:, :, 2].detach().sigmoid()
    located = (offset * seen).sum(1, keepdim=True) / (seen.sum(1, keepdim=True) + _EPS)
    return located + bernoulli_kl(t[:, :, 2], s[:, :, 2]).mean(1, keepdim=True)


def weighted_mean(values: Tensor, weight: Tensor, channels: int = 1) -> Tensor:
    """sum(weight * values) / (channels * sum(weight)): the weighted mean of per-position `values` (N, C, H, W)
    over positions and channels, with `weight` (N, 1, H, W)."""
    return (values * weight).sum() / (weight.sum() * channels + _EPS)


class ScoreLoss(DistillLoss):
    """Head-aware distillation of one level: score-weighted features, class scores and boxes.

    With w the teacher's score per position (`position_weights`), C the channels, for one level:
        feat = feat_w * sum(w * (P(F_s) - F_t)^2) / (C * sum(w))
        cls  = cls_w  * sum(w * mean_c KL_bernoulli(p_t || p_s)) / sum(w)
        box  = box_w  * sum(w * D_box) / sum(w),   D_box = LD's KL (same DFL bins) or 1 - IoU (see module doc)
        kpt  = kpt_w  * sum(w * D_kpt) / sum(w),   D_kpt = `keypoint_discrepancy` (pose pairs; 0 elsewhere)
    P is the student's projector (held by the distiller, applied before this loss). With feat_w = 6, cls_w = box_w =
    0 this is exactly Ultralytics' built-in distillation loss for that level (its `dis` = 6).

    Attributes:
        feat, cls, box, kpt (float): Weights of the terms (0 turns one off; kpt is off unless set).
        temp (float): LD's softmax temperature for the box distributions.

    Examples:
        >>> import torch
        >>> f, logits, box = torch.zeros(1, 2, 1, 1), torch.zeros(1, 3, 1, 1), torch.zeros(1, 64, 1, 1)
        >>> head = LevelHead(logits, logits, box, box, weight=torch.ones(1, 1, 1, 1))
        >>> ScoreLoss(feat=1.0)(f + 1, f, head=head)  # (1 - 0)^2 averaged over 2 channels at weight 1
        tensor(1.)
    """

    WEIGHTS = {"feat": "feat", "cls": "cls", "box": "box", "kpt": "kpt"}
    NEEDS_HEAD = True
    PROJECTOR = "mlp"  # the distiller aligns student channels with 1x1 conv - ReLU - 1x1 conv, as FRS and Ultralytics

    def __init__(self, feat: float = 6.0, cls: float = 1.0, box: float = 1.0, temp: float = 10.0,
                 kpt: float = 0.0) -> None:
        """Initialize the four weights and LD's temperature."""
        super().__init__()
        self.feat, self.cls, self.box, self.temp = float(feat), float(cls), float(box), float(temp)
        self.kpt = float(kpt)

    def parts(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None,
              head: LevelHead | None = None) -> dict[str, Tensor]:
        """The weighted terms {'feat', 'cls', 'box'} of one level (and 'kpt' where its weight is on), scalar fp32
        tensors.

        Args:
            student (Tensor): Projected student features (N, C, H, W).
            teacher (Tensor): Teacher features (N, C, H, W), detached by the caller.
            boxes (list[Tensor] | None): Unused: the weighting comes from the teacher's scores, not the labels.
            head (LevelHead): This level's head outputs and position weights; required.
        """
        check_pair(student, teacher, "ScoreLoss")
        if head is None:
            raise ValueError("ScoreLoss needs the level's head outputs (head=LevelHead(...))")
        w = head.weight.float()
        zero = student.new_zeros((), dtype=torch.float32)
        feat = weighted_mean((student.float() - teacher.float()).pow(2), w, student.shape[1]) if self.feat else zero
        cls = weighted_mean(bernoulli_kl(head.teacher_logits, head.student_logits).mean(1, keepdim=True), w) \
            if self.cls else zero
        box = weighted_mean(box_discrepancy(head.teacher_box, head.student_box, self.temp), w) if self.box else zero
        parts = {"feat": self.feat * feat, "cls": self.cls * cls, "box": self.box * box}
        if self.kpt:  # off unless asked for (score_kpt): then a part of its own, 0 where a head has no keypoints
            kpt = zero
            if head.teacher_kpt is not None and head.student_kpt is not None:
                kpt = weighted_mean(keypoint_discrepancy(head.teacher_kpt, head.student_kpt, head.kpt_dim), w)
            parts["kpt"] = self.kpt * kpt
        return parts

    def forward(self, student: Tensor, teacher: Tensor, boxes: list[Tensor] | None = None,
                head: LevelHead | None = None) -> Tensor:
        """The sum of `parts`."""
        return sum(self.parts(student, teacher, boxes, head).values())

    def extra_repr(self) -> str:
        """Show the weights and the temperature when the module is printed."""
        return f"feat={self.feat}, cls={self.cls}, box={self.box}, kpt={self.kpt}, temp={self.temp}"
