"""Labels for images nobody labelled: the teacher's own detections, in the form a detection criterion reads.

The attack ascends the teacher's class loss against labels; on unlabelled images (`unlabeled=`) it attacks what the
teacher itself detects there, so the perturbation moves the teacher away from its own answer, as it moves it away
from the ground truth on labelled images.

Examples:
    >>> labels = teacher_labels(teacher, images)  # a frozen detect teacher, (B, 3, H, W) in [0, 1]  # doctest: +SKIP
    >>> sorted(labels)  # doctest: +SKIP
    ['batch_idx', 'bboxes', 'cls']
"""

from __future__ import annotations

import torch
from torch import nn

CONF = 0.25  # Ultralytics' default prediction threshold


@torch.no_grad()
def teacher_labels(teacher: nn.Module, img: torch.Tensor, conf: float = CONF) -> dict[str, torch.Tensor]:
    """The detections of `teacher` (eval mode, a detect/segment/pose head) on `img` after NMS at `conf`, as labels:
    {"batch_idx": (N,), "cls": (N, 1), "bboxes": (N, 4) normalised xywh}."""
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import xyxy2xywh

    preds = teacher(img)
    preds = preds[0] if isinstance(preds, (tuple, list)) else preds
    head = teacher.model[-1]
    found = non_max_suppression(preds, conf_thres=conf, iou_thres=0.7, nc=int(head.nc),
                                end2end=getattr(head, "end2end", False))
    h, w = img.shape[-2:]
    scale = img.new_tensor([w, h, w, h])
    index = torch.cat([torch.full((len(d),), i, dtype=torch.float32, device=img.device) for i, d in enumerate(found)])
    boxes = torch.cat([d[:, :4] for d in found])
    return {"batch_idx": index, "cls": torch.cat([d[:, 5:6] for d in found]).float(),
            "bboxes": (xyxy2xywh(boxes) / scale).clamp(0, 1)}
