"""The adversarial attack of IKD part 2: momentum DI-FGSM against the frozen teacher, batched on the device.

The authors of IKD (Liang et al., ACM MM 2023) attack the frozen teacher offline, once per training image: untargeted
momentum DI-FGSM that *ascends* the teacher's classification loss against the ground truth (eps 8/255 L_inf, step
2/255, 5 steps, momentum decay 1.0 on the per-sample L1-normalised gradient, input diversity with probability 0.5, no
random start, pixels kept in the image's valid range). The same attack serves both of this project's forms: online on
the training batch (`adv_mode=online`) and once per training image for the cache (`adv_mode=cached`,
`augment/adv_cache.py`); the update rule is the fused `ikd_yolo.ops.adv_step`.

Examples:
    >>> from ikd_yolo.config import resolve_distill_config
    >>> attack = AdversarialAttack.from_config(resolve_distill_config({"distill": "ikd-fgd"}))  # validated settings
    >>> teacher.args = trainer.args  # the criterion reads the box/cls/dfl gains from here  # doctest: +SKIP
    >>> criterion = teacher.init_criterion()  # a trained teacher  # doctest: +SKIP
    >>> x_adv = attack(teacher, criterion, batch)  # (B, C, H, W): every image of the batch perturbed  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..config import Configured
from ..hooks import FeatureRecorder, neck_features
from ..ops import adv_step

__all__ = ["AdversarialAttack", "AttackSettings", "teacher_class_loss"]

LABEL_KEYS = ("batch_idx", "cls", "bboxes")  # what a detection criterion reads from the batch
Generators = torch.Generator | Sequence[torch.Generator] | None  # one stream for the batch, or one per image


def class_loss_criterion(teacher: nn.Module) -> Any:
    """The criterion whose class term the attack ascends: the teacher's own for detect and obb (the obb loss reads
    rotated boxes), a detection loss on the detection branch of a segment or pose teacher (the same class term, with
    the same assigner, without the masks and keypoints the attack's labels do not carry)."""
    from ultralytics.nn.tasks import guess_model_task
    from ultralytics.utils.loss import E2ELoss, v8DetectionLoss

    if guess_model_task(getattr(teacher, "yaml", None) or teacher) not in ("segment", "pose"):
        return teacher.init_criterion()
    end2end = getattr(teacher.model[-1], "one2one_cv2", None) is not None
    return E2ELoss(teacher, v8DetectionLoss) if end2end else v8DetectionLoss(teacher)


def teacher_class_loss(teacher: nn.Module, criterion: Any, img: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """Forward the teacher on `img` and return its classification loss against the batch's ground truth.

    The value is the criterion's own cls term: BCE against the task-aligned targets, divided by the target-score sum,
    times the `cls` gain of `teacher.args` and times the batch size (the cls column the teacher's training would sum
    into its loss). It stays in the autograd graph, so it is differentiable w.r.t. `img` when grad mode is on.

    For an end-to-end head (YOLO26, `E2ELoss`/`E2EDetectLoss`) the result is the unweighted SUM of the one-to-many and
    the one-to-one cls terms. Both heads read the same neck features that IKD distills; the one-to-one head is the one
    the deployed teacher predicts with, the one-to-many head (top-10 assignment) gives the denser gradient. Summing
    them, rather than using E2ELoss's o2m/o2o weights, keeps the attack independent of that schedule's state.

    Args:
        teacher (nn.Module): Ultralytics DetectionModel. In eval mode its forward returns (inference, train dict).
        criterion (Any): `class_loss_criterion(teacher)`: v8DetectionLoss (or a subclass with a "cls_loss"),
            E2ELoss.
        img (torch.Tensor): Images (B, C, H, W) in [0, 1], in the teacher's dtype.
        batch (Mapping): Labels for `img` as the criterion wants them: "batch_idx" (N,), "cls" (N, 1) and "bboxes"
            (N, 4) normalised xywh ((N, 5) xywhr for obb).

    Returns:
        (torch.Tensor): Scalar classification loss.
    """
    preds = teacher(img)
    preds = preds[1] if isinstance(preds, tuple) else preds  # eval mode: (inference, train outputs)
    if hasattr(criterion, "one2many") and hasattr(criterion, "one2one"):  # end-to-end criterion
        return _cls_term(criterion.one2many, preds["one2many"], batch) + _cls_term(
            criterion.one2one, preds["one2one"], batch
        )
    return _cls_term(criterion, preds, batch)


def _cls_term(criterion: Any, preds: dict, batch: Mapping) -> torch.Tensor:
    """Return the "cls_loss" entry of a v8DetectionLoss-style criterion's (gain-scaled, x batch size) loss vector."""
    loss, _ = criterion.loss(preds, batch)
    return loss[criterion.loss_names.index("cls_loss")]


@dataclass(frozen=True)
class AttackSettings:
    """The adv_* keys of how an image is perturbed, validated by `ikd_yolo.config` (field = key without `adv_`).

    When the attack runs, on which images and whether online or cached are its stream's (`ikd_yolo.streams`)."""

    PREFIX: ClassVar[str] = "adv_"
    steps: int
    eps: float
    step_size: float
    decay: float
    di_p: float


class AdversarialAttack(Configured):
    """Momentum DI-FGSM on a frozen Ultralytics teacher, batched, untargeted, ascending its classification loss.

    Each of `adv_steps` steps: (1) from the second step on, with probability `adv_di_p` per image, input diversity:
    resize by a random integer width in [ceil(0.9 W), W) (height in proportion, bilinear, align_corners=False) and
    zero-pad back to (H, W) at a random offset; the image's boxes are moved with it so the loss still targets the
    objects. Each image draws its own size and offset; the resize-and-pad is two batched matmuls with per-image
    interpolation matrices, so the backward pass is deterministic on every device. (2) Gradient of the teacher class
    loss w.r.t. the pre-diversity image, by autograd on the input alone. (3) `ikd_yolo.ops.adv_step`: L1-normalise the
    gradient per image, momentum, sign step, project to the eps ball around the clean image and clamp each channel to
    the clean image's own [min, max] of that channel (the authors' clipping). The first step attacks the clean images
    without input diversity, so that its forward also gives the teacher's clean feature maps (`with_features`): one
    teacher pass serves both.

    `with_features` attacks the first k images of a batch (its stream's share; Ultralytics shuffles its batches, so
    that is a random subset). The per-image gradient does not depend on the other images (the teacher is in eval mode
    and the criterion's batch normaliser is removed by the L1 normalisation), so attacking a part of the batch is just
    cheaper, not different.

    The teacher must be in eval mode (checked, so that BatchNorm statistics never move); its parameters get no .grad.
    The attack runs in fp32 with autocast disabled, whatever the caller's autocast state.

    Attributes:
        settings (AttackSettings): steps (0 returns the images unchanged), eps (L_inf budget in [0, 1] pixel units),
            step_size, decay (momentum), di_p (per-image, per-step probability of input diversity).

    Examples:
        >>> from ikd_yolo.config import resolve_distill_config
        >>> attack = AdversarialAttack.from_config(resolve_distill_config({"adv_steps": 5}))
        >>> x_adv = attack(  # a trained teacher and a training batch  # doctest: +SKIP
        ...     teacher, teacher.init_criterion(), batch, generator=torch.Generator().manual_seed(0))
    """

    DI_MIN_SCALE = 0.9  # input diversity resizes to [0.9 W, W)

    SETTINGS = AttackSettings

    def __repr__(self) -> str:
        """Return the attack's settings."""
        s = self.settings
        return (
            f"AdversarialAttack(steps={s.steps}, eps={s.eps:.6g}, step_size={s.step_size:.6g}, "
            f"decay={s.decay:g}, di_p={s.di_p:g})"
        )

    def __call__(
        self, teacher: nn.Module, criterion: Any, batch: Mapping, generator: Generators = None
    ) -> torch.Tensor | None:
        """Return adversarial copies of the images of batch["img"], or None for an empty batch.

        Args:
            teacher (nn.Module): Frozen Ultralytics DetectionModel in eval mode, `args` set for its criterion.
            criterion (Any): `teacher.init_criterion()`.
            batch (Mapping): Preprocessed training batch: "img" (B, C, H, W) float in [0, 1], "batch_idx", "cls",
                "bboxes" (normalised xywh).
            generator (torch.Generator | Sequence[torch.Generator], optional): Source of the input-diversity
                randomness (on any device); None uses torch's global CPU generator. A sequence gives each image of the
                batch its own stream, so an image's attack does not depend on the batch it is in (the cached mode).

        Returns:
            (torch.Tensor | None): Detached (B, C, H, W) images of batch["img"]'s dtype and device; None if B is 0.
        """
        return self.with_features(teacher, criterion, batch, None, batch["img"].shape[0], generator)[0]

    def with_features(
        self,
        teacher: nn.Module,
        criterion: Any,
        batch: Mapping,
        layers: list[int] | None,
        k: int,
        generator: Generators = None,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """The attack of the first `k` images of the batch (None when `k` is 0) and, with `layers`, the teacher's maps
        of those layers on the whole clean batch.

        The clean maps come from the attack's own first forward (the attacked images) and one gradient-free,
        head-free forward of the others: one teacher pass where a feature pass and the first attack step would run.
        Autocast is off in the attack, so these maps are fp32.
        """
        img = batch["img"]
        if not img.is_floating_point():
            raise TypeError(f"AdversarialAttack needs float images in [0, 1], got {img.dtype}")
        k = min(k, img.shape[0])
        if bad := [name or "<root>" for name, m in teacher.named_modules() if m.training]:
            raise RuntimeError(f"AdversarialAttack: teacher must be in eval mode (BN statistics), training: {bad[:3]}")
        if torch.is_inference_mode_enabled():
            raise RuntimeError("AdversarialAttack needs autograd; it cannot run under torch.inference_mode()")
        if k == 0 or self.settings.steps == 0:
            feats = None if layers is None else _no_grad_features(teacher, img, layers)
            return (None if k == 0 else img[:k].detach().clone()), feats
        labels = {key: batch[key].to(img.device) for key in LABEL_KEYS}
        keep = labels["batch_idx"] < k  # the attacked images are the first k: indices need no remapping
        labels = {key: v[keep] for key, v in labels.items()}
        with torch.autocast(img.device.type, enabled=False), torch.enable_grad():
            x_adv, attacked_feats = self._attack(teacher, criterion, img[:k].detach().float(), labels, generator,
                                                 layers)
        if layers is None:
            return x_adv.to(img.dtype), None
        rest = _no_grad_features(teacher, img[k:], layers) if k < img.shape[0] else None
        if rest is None:
            return x_adv.to(img.dtype), attacked_feats
        feats = [torch.cat((a, r.to(a.dtype))) for a, r in zip(attacked_feats, rest)]
        return x_adv.to(img.dtype), feats

    def _attack(
        self,
        teacher: nn.Module,
        criterion: Any,
        x: torch.Tensor,
        labels: dict,
        generator: Generators,
        layers: list[int] | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Run the momentum DI-FGSM steps on fp32 clean images `x` (K, C, H, W) with their labels.

        The first step attacks the clean images as they are (no input diversity): its forward is the one that also
        yields the clean maps of `layers`. The later steps are diversified with probability di_p per image.
        """
        s = self.settings
        dtype = next(teacher.parameters()).dtype  # forward in the teacher's precision, keep the attack state in fp32
        lo, hi = x.amin(dim=(2, 3)), x.amax(dim=(2, 3))  # (K, C) per-channel range of each clean image
        x_adv, momentum = x.clone(), torch.zeros_like(x)
        feats = None
        for step in range(s.steps):
            x_in = x_adv.detach().requires_grad_(True)
            if step == 0:
                with FeatureRecorder(layers or []).capture(teacher) as captured:
                    loss = teacher_class_loss(teacher, criterion, x_in.to(dtype), labels)
                feats = [f.detach() for f in captured] if layers else None
            else:
                x_div, labels_div = self._diversify(x_in, labels, generator)
                loss = teacher_class_loss(teacher, criterion, x_div.to(dtype), labels_div)
            (grad,) = torch.autograd.grad(loss, x_in)
            x_adv, momentum = adv_step(x_adv, x, grad, momentum, s.step_size, s.eps, lo, hi, s.decay)
        return x_adv.detach(), feats

    def _diversify(self, x: torch.Tensor, labels: dict, generator: Generators) -> tuple[torch.Tensor, dict]:
        """Input diversity: per image, with probability di_p, resize down and zero-pad back at a random offset.

        The same amount of randomness is drawn every call, so a seeded generator gives a reproducible attack.
        """
        di_p = self.settings.di_p
        if di_p == 0:
            return x, labels
        k, _, h, w = x.shape
        u = _uniform(k, 4, generator).to(x.device)  # apply, size, offset y, offset x
        apply = u[:, 0] < di_p  # no early exit when none applies: that would sync the device every step
        w_lo = min(math.ceil(self.DI_MIN_SCALE * w), w - 1)
        new_w = torch.where(apply, w_lo + (u[:, 1] * (w - w_lo)).floor().clamp(max=w - w_lo - 1), w)
        new_h = torch.where(apply, (new_w * h / w).round().clamp(1, h), h)
        off_y = (u[:, 2] * (h - new_h + 1)).floor().clamp(max=h - new_h)
        off_x = (u[:, 3] * (w - new_w + 1)).floor().clamp(max=w - new_w)

        rows = _resize_pad_matrix(h, new_h, off_y)  # (K, H, H)
        cols = _resize_pad_matrix(w, new_w, off_x)  # (K, W, W)
        x_div = rows.unsqueeze(1) @ x @ cols.unsqueeze(1).transpose(-1, -2)

        i = labels["batch_idx"].long()
        sx, sy = (new_w / w)[i], (new_h / h)[i]
        tx, ty = (off_x / w)[i], (off_y / h)[i]
        bx, by, bw, bh, *angle = labels["bboxes"].unbind(-1)  # obb: xywhr (the resize keeps the aspect, so r too)
        bboxes = torch.stack((bx * sx + tx, by * sy + ty, bw * sx, bh * sy, *angle), -1).to(labels["bboxes"].dtype)
        return x_div, {**labels, "bboxes": bboxes}


def _uniform(k: int, n: int, generator: Generators) -> torch.Tensor:
    """(k, n) uniform draws in [0, 1): from one stream for the batch, or row i from the i-th image's own stream."""
    if generator is None or isinstance(generator, torch.Generator):
        device = generator.device if generator is not None else torch.device("cpu")
        return torch.rand(k, n, generator=generator, device=device)
    if len(generator) < k:
        raise ValueError(f"AdversarialAttack: {len(generator)} per-image generators for {k} attacked images")
    return torch.stack([torch.rand(n, generator=g, device=g.device).cpu() for g in generator[:k]])


@torch.no_grad()
def _no_grad_features(teacher: nn.Module, img: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """The teacher's maps of `layers` for `img`, head-free and without autograd."""
    return neck_features(teacher, img, layers)


def _resize_pad_matrix(n: int, size: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Return (K, n, n) matrices A_k with A_k @ v = v bilinearly resized to size[k] and zero-padded to n at offset[k].

    Bilinear with align_corners=False and no antialiasing, like F.interpolate; size n with offset 0 is the identity.
    """
    out_pos = torch.arange(n, device=size.device, dtype=torch.float32)
    local = out_pos - offset[:, None]  # (K, n) position inside the placed, resized image
    inside = (local >= 0) & (local < size[:, None])
    src = ((local + 0.5) * (n / size[:, None]) - 0.5).clamp(0, n - 1)
    i0 = src.floor()
    w1 = (src - i0) * inside
    w0 = (1 - (src - i0)) * inside
    i0 = i0.long()
    i1 = (i0 + 1).clamp(max=n - 1)
    a = torch.zeros(size.shape[0], n, n, device=size.device, dtype=torch.float32)
    return a.scatter_add_(2, i0[..., None], w0[..., None]).scatter_add_(2, i1[..., None], w1[..., None])
