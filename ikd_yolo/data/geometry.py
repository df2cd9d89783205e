"""The labels of one drawn object for each Ultralytics task, from the pixels it kept in the image.

Every label is read from the object's visible pixels (after occlusion and the image border), as the detect box is:
  segment: the outer outline of its largest visible part, a polygon (a ring's hole is not cut out: Ultralytics'
           polygon labels have no holes);
  pose:    four keypoints, its topmost, rightmost, bottommost and leftmost visible pixel (defined for every class,
           always visible; a left-right flip swaps right and left: FLIP_IDX);
  obb:     the smallest rotated rectangle around its visible pixels, as four corners.
"""

from __future__ import annotations

import cv2
import numpy as np

LABEL_TASKS = ("detect", "segment", "pose", "obb")
KPT_SHAPE = (4, 3)  # top, right, bottom, left; x, y, visibility
KPT_NAMES = ("top", "right", "bottom", "left")
FLIP_IDX = (0, 3, 2, 1)


def outline_polygon(mask: np.ndarray) -> np.ndarray:
    """(n, 2) pixel-corner polygon of the largest part of a boolean mask (n >= 3), in the mask's coordinates."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    points = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64) + 0.5  # pixel centres
    if len(points) < 3:  # a one- or two-pixel-wide sliver: its box corners
        x0, y0 = points.min(0) - 0.5
        x1, y1 = points.max(0) + 0.5
        points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return points


def extreme_keypoints(mask: np.ndarray) -> np.ndarray:
    """(4, 2) pixel centres of the mask's topmost, rightmost, bottommost and leftmost pixel (the first in scan order
    on a tie)."""
    ys, xs = np.nonzero(mask)
    picks = (np.argmin(ys), np.argmax(xs), np.argmax(ys), np.argmin(xs))
    return np.array([[xs[i] + 0.5, ys[i] + 0.5] for i in picks])


def rotated_box(mask: np.ndarray) -> np.ndarray:
    """(4, 2) corners of the smallest rotated rectangle around the mask's pixels (their full squares)."""
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float32)
    return cv2.boxPoints(cv2.minAreaRect(corners)).astype(np.float64)


def label_row(task: str, cls: int, box: tuple[int, int, int, int], mask: np.ndarray, imgsz: int) -> str:
    """One Ultralytics label line of `task` for an object of class `cls` with pixel box (x0, y0, x1, y1) and visible
    pixels `mask` (the box's patch), coordinates normalised by `imgsz`."""
    x0, y0, x1, y1 = box
    if task == "detect":
        values = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
    elif task == "segment":
        values = list((outline_polygon(mask) + [x0, y0]).ravel())
    elif task == "obb":
        values = list((rotated_box(mask) + [x0, y0]).clip(0, imgsz).ravel())
    else:
        kpts = extreme_keypoints(mask) + [x0, y0]
        values = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        text = " ".join(f"{v / imgsz:.6f}" for v in values)
        return f"{cls} {text} " + " ".join(f"{x / imgsz:.6f} {y / imgsz:.6f} 2" for x, y in kpts) + "\n"
    return f"{cls} " + " ".join(f"{v / imgsz:.6f}" for v in values) + "\n"
