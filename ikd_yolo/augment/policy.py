"""Which frequency band each image gets, from its ground-truth boxes (the policy of IKD's frequency augmentation).

An image whose boxes are all small (or that has no boxes, as the authors did) gets the HIGH frequency band, an image
with at least one large box gets the LOW band. "Small" means a box area below `freq_small`² pixels at the image's
ORIGINAL resolution. Used by both frequency modes (`frequency.py`, `paper.py`) and by `show_aug`.

Scale convention (original pixels -> network-input pixels). Ultralytics loads every image, mosaic tiles included,
with its long side resized to `imgsz` (`BaseDataset.load_image`); the training transforms then place it (mosaic,
RandomPerspective or LetterBox) on an `imgsz` canvas and `DetectionTrainer.preprocess_batch` may rescale the whole
batch for multi-scale training. So one image's scale is

    s = max(H, W) / max(h0, w0)        network px per original px,

with (H, W) the batch tensor's size (multi-scale included) and (h0, w0) = `batch["ori_shape"][i]`. For a mosaic,
`ori_shape` (and `ratio_pad`, the per-axis load gain) belong to the first tile only, the other tiles' resolutions are
not in the batch, so that tile's scale stands for all four. The random zoom of RandomPerspective (`scale` hyp) is not
recorded in the batch and so is not undone: a box is measured as the network sees it, expressed in original pixels
(an object zoomed out to below the threshold counts as small in that batch). A batch without `ori_shape` is taken at
s = 1 (network pixels = original pixels).
A box is small iff  w_px * h_px / s² < freq_small²  (w_px, h_px its size in network pixels); a relative tolerance of
1e-5 makes a box exactly at the threshold count as large despite float32 round-off of normalised coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

_AREA_RTOL = 1e-5  # boxes within this relative distance of freq_small² count as large (float32 round-off)


def input_scales(batch: Mapping[str, Any]) -> torch.Tensor:
    """Return each image's scale from original resolution to the network input, in network px per original px.

    Args:
        batch (Mapping): Ultralytics detection batch after `preprocess_batch`; uses `img` and `ori_shape`.

    Returns:
        (torch.Tensor): Scales of shape (B,), float32 on the device of `batch["img"]`; ones if `ori_shape` is missing.
    """
    img = batch["img"]
    b, dev = img.shape[0], img.device
    ori = batch.get("ori_shape")
    if ori is None:
        return torch.ones(b, device=dev)
    ori = torch.as_tensor([[float(v) for v in hw] for hw in ori], dtype=torch.float32).reshape(-1, 2)
    if len(ori) != b:
        raise ValueError(f"batch['ori_shape'] has {len(ori)} entries for {b} images")
    return (max(img.shape[-2:]) / ori.amax(1)).to(dev)


def box_is_small(
    bboxes: torch.Tensor, batch_idx: torch.Tensor, img_hw: tuple[int, int], scales: torch.Tensor, small: float
) -> torch.Tensor:
    """Tell which boxes are small, i.e. have an area below `small`² pixels at their image's original resolution.

    Args:
        bboxes (torch.Tensor): Boxes (n, 4), normalised xywh of the network input.
        batch_idx (torch.Tensor): Image index of each box (n,).
        img_hw (tuple[int, int]): Network input height and width in pixels.
        scales (torch.Tensor): Per-image scale (B,), network px per original px (see `input_scales`).
        small (float): Side of the small-area threshold, original pixels.

    Returns:
        (torch.Tensor): Boolean (n,), True for small boxes.
    """
    h, w = img_hw
    s = scales.to(bboxes.device)[batch_idx.long()]
    area = (bboxes[:, 2] * w) * (bboxes[:, 3] * h) / (s * s)  # original px²
    return area < float(small) ** 2 * (1.0 - _AREA_RTOL)


def image_all_small(is_small: torch.Tensor, batch_idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Reduce per-box smallness to per-image "every box is small" (an image without boxes counts as all small).

    Args:
        is_small (torch.Tensor): Boolean (n,) from `box_is_small`.
        batch_idx (torch.Tensor): Image index of each box (n,).
        batch_size (int): Number of images B.

    Returns:
        (torch.Tensor): Boolean (B,), True where the image has no large box.
    """
    n_large = torch.zeros(batch_size, device=is_small.device).index_add_(
        0, batch_idx.long().to(is_small.device), (~is_small).float()
    )
    return n_large == 0


def image_band_choice(batch: Mapping[str, Any], small: float) -> torch.Tensor:
    """Pick each image's band from its labels: True -> HIGH band (all boxes small or none), False -> LOW band.

    Args:
        batch (Mapping): Detection batch with `img`, `bboxes`, `batch_idx` and (optionally) `ori_shape`.
        small (float): `freq_small`, side of the small-area threshold in original pixels.

    Returns:
        (torch.Tensor): Boolean (B,) on the device of `batch["img"]`.
    """
    img = batch["img"]
    bboxes, batch_idx = batch["bboxes"].to(img.device), batch["batch_idx"].to(img.device)
    is_small = box_is_small(bboxes, batch_idx, tuple(img.shape[-2:]), input_scales(batch), small)
    return image_all_small(is_small, batch_idx, img.shape[0])
