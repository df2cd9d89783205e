"""The IKD authors' frequency-augmentation rule (`freq_mode: paper`), applied to a training batch.

Liang et al. (ACM MM 2023) choose per image from its boxes at original resolution (see `policy.py` for the scale
convention and the small-box test):

- every box small, or no box: with probability `freq_p` (authors: 0.3) the image becomes clip(x + N(0, sigma²)),
  sigma = `freq_sigma` (authors: 0.08), per pixel and channel; no crop;
- at least one large box: always a random crop whose height and width fractions are drawn independently from
  U[`freq_crop`] (authors: [0.8, 1]) at a uniformly random position; boxes are shifted and clipped to the window,
  boxes left with no width or height are dropped.

Where it runs: on the batch, after `DetectionTrainer.preprocess_batch`, not as a dataset transform. Reasons:
(1) it must be the same hook as the spectral mode, so `freq_mode` switches between the two with nothing else changed
and the IKD phase can turn it off mid-training without rebuilding the dataloader; (2) teacher and student must see
the very same augmented images (the augmented batch replaces the clean one for every loss, as the authors' pipeline
replaced the training image), which is simplest where both forwards happen; (3) the policy needs the final boxes (after
mosaic/affine) together with `ori_shape`, which are both in the batch. The crop window is therefore resampled back to
the batch's (H, W) with one batched bilinear `grid_sample` (zoom by 1/fraction, up to 1.25; height and width
independently, so the aspect ratio may stretch by up to 1.25 as the authors' independent fractions imply) and the boxes
are mapped by the same affine transform, keeping the tensor shape. Unlike mmdetection's RandomCrop, a crop that removes
every box of an image is kept (the image becomes a background sample) rather than resampled.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .sampling import rand, uniform

PER_BOX_KEYS = ("cls", "bboxes", "batch_idx")
_UNSUPPORTED = ("masks", "keypoints", "segments", "obb")  # per-instance data this crop does not transform


def crop_windows(n: int, crop: tuple[float, float], generator: torch.Generator | None, device) -> torch.Tensor:
    """Draw n crop windows as normalised xyxy (n, 4): sides ~ U[crop] independently, position uniform."""
    fh = uniform(n, crop, generator, device)
    fw = uniform(n, crop, generator, device)
    y0 = rand(n, generator, device) * (1 - fh)
    x0 = rand(n, generator, device) * (1 - fw)
    return torch.stack((x0, y0, x0 + fw, y0 + fh), 1)


def crop_resize(img: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Resample the window `windows[i]` (normalised xyxy) of each image `img[i]` to the full (H, W), bilinear.

    Args:
        img (torch.Tensor): Images (n, C, H, W).
        windows (torch.Tensor): Crop windows (n, 4), normalised xyxy inside [0, 1].

    Returns:
        (torch.Tensor): Images (n, C, H, W).
    """
    x0, y0, x1, y1 = windows.to(img).unbind(1)
    zero = torch.zeros_like(x0)
    # affine_grid maps output coords u in [-1, 1] to input coords a*u + b (align_corners=False: pixel edges at ±1)
    theta = torch.stack(
        (torch.stack((x1 - x0, zero, x0 + x1 - 1), 1), torch.stack((zero, y1 - y0, y0 + y1 - 1), 1)), 1
    )
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_boxes(bboxes: torch.Tensor, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Map normalised xywh boxes into their crop window (one window per box), clip, and flag the non-empty ones.

    Args:
        bboxes (torch.Tensor): Boxes (n, 4), normalised xywh of the full image.
        windows (torch.Tensor): The crop window of each box's image (n, 4), normalised xyxy.

    Returns:
        boxes (torch.Tensor): Boxes (n, 4), normalised xywh of the resampled crop, clipped to [0, 1].
        keep (torch.Tensor): Boolean (n,), True where the clipped box still has positive width and height.
    """
    x0, y0, x1, y1 = windows.unbind(1)
    cx, cy, w, h = bboxes.unbind(1)
    bx0 = ((cx - w / 2 - x0) / (x1 - x0)).clamp(0, 1)
    bx1 = ((cx + w / 2 - x0) / (x1 - x0)).clamp(0, 1)
    by0 = ((cy - h / 2 - y0) / (y1 - y0)).clamp(0, 1)
    by1 = ((cy + h / 2 - y0) / (y1 - y0)).clamp(0, 1)
    keep = (bx1 > bx0) & (by1 > by0)
    return torch.stack(((bx0 + bx1) / 2, (by0 + by1) / 2, bx1 - bx0, by1 - by0), 1), keep


def paper_augment(
    batch: dict[str, Any],
    all_small: torch.Tensor,
    p: float,
    sigma: float,
    crop: tuple[float, float],
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Apply the authors' rule to a preprocessed detection batch: noise on all-small images, crop on the others.

    Random draws, in this order and for every image whatever it gets: noise coin (B,), crop height and width
    fractions (B,) each, crop position y and x (B,) each, then the noise of the noised images.

    Args:
        batch (dict): Batch after `preprocess_batch` (`img` float in [0, 1], `cls`, `bboxes`, `batch_idx`).
        all_small (torch.Tensor): Boolean (B,), True where every box is small or there is none
            (`policy.image_band_choice`).
        p (float): Probability an all-small image is noised.
        sigma (float): Noise standard deviation, pixel units.
        crop (tuple[float, float]): Range of the crop height and width fractions.
        generator (torch.Generator | None): Source of randomness (draws made on its device).

    Returns:
        (dict): Shallow copy of the batch with new `img`, `cls`, `bboxes`, `batch_idx` and a `freq_info` record:
            mode, selected, high (= all_small), noise, crop (booleans (B,)) and crop_box ((B, 4) normalised xywh,
            the full image where not cropped).
    """
    if any(k in batch for k in _UNSUPPORTED):
        raise NotImplementedError(f"freq_mode=paper crops detection batches only, found one of {_UNSUPPORTED}")
    x = batch["img"]
    b, dev = x.shape[0], x.device
    all_small = all_small.to(dev)
    noise = all_small & (rand(b, generator, dev) < p)
    cropped = ~all_small
    windows = crop_windows(b, crop, generator, dev)
    full = torch.tensor([0.0, 0.0, 1.0, 1.0], device=dev).expand(b, 4)
    windows = torch.where(cropped[:, None], windows, full)

    img = x
    idx = noise.nonzero().squeeze(1)
    if idx.numel():
        gdev = generator.device if generator is not None else dev
        n = torch.randn((len(idx), *x.shape[1:]), generator=generator, device=gdev).to(dev, x.dtype)
        img = img.index_copy(0, idx, (x[idx] + sigma * n).clamp_(0, 1))
    idx = cropped.nonzero().squeeze(1)
    out = {**batch}
    if idx.numel():
        img = img.index_copy(0, idx, crop_resize(x[idx], windows[idx]))
        bboxes, batch_idx = batch["bboxes"], batch["batch_idx"]
        bi = batch_idx.long().to(dev)
        boxes, keep = crop_boxes(bboxes.to(dev), windows[bi])
        in_crop = cropped[bi]
        boxes = torch.where(in_crop[:, None], boxes, bboxes.to(dev)).to(bboxes)
        keep = (keep | ~in_crop).to(bboxes.device)
        out.update({k: batch[k][keep] for k in PER_BOX_KEYS})
        out["bboxes"] = boxes[keep]
    wxy = torch.cat(((windows[:, :2] + windows[:, 2:]) / 2, windows[:, 2:] - windows[:, :2]), 1)
    out["img"] = img
    out["freq_info"] = {
        "mode": "paper",
        "selected": noise | cropped,
        "high": all_small,
        "noise": noise,
        "crop": cropped,
        "crop_box": wxy,
    }
    return out
