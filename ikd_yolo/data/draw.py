"""Drawing one synthetic image: a background, objects of the eight classes at planned sizes, camera effects.

Each class is a shape with its own texture (solid, stripes, checkerboard, dots); every object's colour is drawn from
one distribution for all classes (two-colour textures are balanced so their mean is that colour), so colour alone
never tells a class. Objects are placed largest first and kept only while every object keeps most of its pixels; a
box is the tight extent of the pixels its object kept. `synthetic.py` writes datasets of these images.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

CLASS_NAMES = ("disc", "ring", "striped_square", "checkered_triangle", "cross", "star", "dotted_ellipse", "crescent")
EMPTY_SHARE, ONLY_SMALL_SHARE = 0.075, 0.125  # shares of images with no objects / only small objects
# Box side ranges per bucket as fractions of imgsz, kept clear of the thresholds so that rasterisation and
# occlusion (which can only shrink a box) do not move an object to another bucket.
_SIDE = {"small": (9 / 256, 28 / 256), "medium": (37 / 256, 88 / 256), "large": (104 / 256, 176 / 256)}
_ASPECT = (0.85, 0.8, 0.9, 0.85, 0.85, 0.9, 1.5, 0.9)  # per class: lowest stretch (width / height of the outline)
_TEXTURE = ("solid", "solid", "stripes", "checker", "solid", "solid", "dots", "solid")
_MIN_VISIBLE = 0.7  # every object keeps at least this share of its pixels (occlusion and image border)



def image_kinds(n: int, rng: np.random.Generator) -> list[str]:
    """Return a shuffled list of n image kinds with fixed shares of 'empty' and 'only_small' images."""
    n_empty, n_small = round(EMPTY_SHARE * n), round(ONLY_SMALL_SHARE * n)
    kinds = ["empty"] * n_empty + ["only_small"] * n_small + ["mixed"] * (n - n_empty - n_small)
    return [kinds[i] for i in rng.permutation(n)]


def _object_plan(rng: np.random.Generator, kind: str) -> list[str]:
    """Return the size buckets of the objects to place, largest first (so small ones are never buried)."""
    if kind == "empty":
        return []
    if kind == "only_small":
        return ["small"] * int(rng.integers(2, 9))
    n_large, n_medium = rng.choice(3, p=(0.1, 0.4, 0.5)), rng.choice(4, p=(0.1, 0.45, 0.35, 0.1))
    n_small = rng.choice(3, p=(0.4, 0.4, 0.2))
    return ["large"] * n_large + ["medium"] * n_medium + ["small"] * n_small


def render_image(
    rng: np.random.Generator, s: int, kind: str, clutter: float = 1.0, min_side: int = 0, masks: bool = False
) -> tuple[np.ndarray, list[tuple[int, ...]]] | tuple[np.ndarray, list[tuple[int, ...]], list[np.ndarray]]:
    """Draw one image of side s; return it (uint8 BGR) and its boxes (cls, x0, y0, x1, y1) in pixels, and with
    `masks` each object's visible pixels in its box (boolean, the box's shape). The drawing is the same either way."""
    img = _background(rng, s, clutter)
    owner = np.full((s, s), -1, np.int16)  # index of the object that owns each pixel, -1 for background
    full, visible, placed_objects = [], [], []  # full polygon area, visible pixel count, (class, patch) per object
    for bucket in _object_plan(rng, kind):
        for _ in range(15):  # placement attempts
            cls = int(rng.integers(len(CLASS_NAMES)))
            outer, hole = _outline(rng, cls)
            placed = _place(rng, outer, hole, bucket, s, min_side)
            if placed is None:
                continue
            (x0, y0, x1, y1), mask, area = placed
            under = owner[y0:y1, x0:x1][mask]
            covered = np.bincount(under[under >= 0], minlength=len(full))
            if mask.sum() < _MIN_VISIBLE * area or any(
                v - c < _MIN_VISIBLE * f for v, c, f in zip(visible, covered, full)
            ):
                continue
            patch = img[y0:y1, x0:x1]
            patch[mask] = _texture(rng, cls, patch, mask)
            owner[y0:y1, x0:x1][mask] = len(full)
            visible = [v - c for v, c in zip(visible, covered)] + [int(mask.sum())]
            full.append(area)
            placed_objects.append((cls, x0, y0, x1, y1))
            break
    img = _camera(rng, img)
    labels, kept = [], []
    for k, (cls, x0, y0, x1, y1) in enumerate(placed_objects):  # tight box of the pixels each object kept
        ys, xs = np.nonzero(owner[y0:y1, x0:x1] == k)
        if len(xs):
            box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
            labels.append((cls, *box))
            kept.append(owner[box[1]:box[3], box[0]:box[2]] == k)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return (img, labels, kept) if masks else (img, labels)


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Return the image with sensor effects: a slight blur half of the time, then Gaussian pixel noise."""
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.9))
    return img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 10))


def _background(rng: np.random.Generator, s: int, clutter: float = 1.0) -> np.ndarray:
    """Return a cluttered float32 background: gradient, smooth colour noise, and the share `clutter` of the usual
    textured blobs, lines and scribbles (counts drawn as at full clutter, then scaled, so clutter=1 is unchanged)."""
    a = rng.uniform(0, 2 * np.pi)
    t = np.arange(s, dtype=np.float32)[:, None] * math.sin(a) + np.arange(s, dtype=np.float32) * math.cos(a)
    t -= t.min()
    t /= t.max()
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    g = int(rng.integers(3, 9))
    img += cv2.resize(rng.normal(0, rng.uniform(10, 35), (g, g, 3)).astype(np.float32), (s, s))
    # irregular blobs: thresholded two-scale noise, plain or hatched
    for _ in range(round(rng.integers(1, 4) * clutter)):
        blob = sum(
            cv2.resize(rng.standard_normal((g, g), dtype=np.float32), (s, s), interpolation=cv2.INTER_CUBIC) * w
            for g, w in ((int(rng.integers(3, 6)), 1.0), (int(rng.integers(10, 16)), 0.4))
        )
        mask = blob > rng.uniform(0.9, 1.6)
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if rng.random() < 0.5:  # wavy hatching inside the blob (no class uses it)
            b = rng.uniform(0, np.pi)
            y, x = np.nonzero(mask)
            u = (x * math.cos(b) + y * math.sin(b)) / rng.uniform(3, 10)
            u += np.sin((y * math.cos(b) - x * math.sin(b)) / rng.uniform(4, 12)) * 0.4
            colour = np.where((u % 1 < 0.5)[:, None], colour, rng.uniform(0, 255, 3).astype(np.float32))
        img[mask] = colour
    for _ in range(round(rng.integers(3, 15) * clutter)):  # straight lines
        p, q = rng.integers(-s // 4, s + s // 4, (2, 2))
        cv2.line(img, tuple(map(int, p)), tuple(map(int, q)), rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 4)))
    for _ in range(round(rng.integers(1, 5) * clutter)):  # random-walk scribbles
        steps = rng.normal(0, s / 25, (int(rng.integers(5, 20)), 2)).cumsum(0) + rng.uniform(0, s, 2)
        colour = rng.uniform(0, 255, 3).tolist()
        cv2.polylines(img, [steps.astype(np.int32)], False, colour, int(rng.integers(1, 3)))
    return img


def _outline(rng: np.random.Generator, cls: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Return a class's outline (N x 2, unit scale, centred, stretched and rotated) and its hole outline or None."""
    circle = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    circle = np.stack([np.cos(circle), np.sin(circle)], 1)
    hole = None
    name = CLASS_NAMES[cls]
    if name in {"disc", "ring", "dotted_ellipse"}:
        outer = circle
        if name == "ring":
            hole = circle * rng.uniform(0.45, 0.7)
    elif name == "striped_square":
        outer = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    elif name == "checkered_triangle":
        ang = np.radians(np.array([90, 210, 330]) + rng.uniform(-12, 12, 3))
        outer = np.stack([np.cos(ang), np.sin(ang)], 1)
    elif name == "cross":
        w = rng.uniform(0.22, 0.38)
        arm, turn = np.array([[w, w], [1, w], [1, -w]]), np.array([[0, -1], [1, 0]])  # (x, y) @ turn = (y, -x)
        outer = np.concatenate([arm @ np.linalg.matrix_power(turn, i) for i in range(4)])
    elif name == "star":
        ang = np.linspace(0, 2 * np.pi, 10, endpoint=False) + np.pi / 2
        r = np.where(np.arange(10) % 2, rng.uniform(0.35, 0.5), 1.0)
        outer = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
    else:  # crescent: unit disc minus a disc of radius rb centred at (d, 0)
        d, rb = rng.uniform(0.35, 0.6), rng.uniform(0.8, 0.95)
        keep = np.linalg.norm(circle - [d, 0], axis=1) > rb
        bite = circle * rb + [d, 0]
        inside = np.linalg.norm(bite, axis=1) < 1
        outer = np.concatenate([circle[keep], bite[inside][::-1]])
    lo = _ASPECT[cls]
    stretch = math.sqrt(rng.uniform(lo, 2.2 if lo > 1 else 1 / lo))
    rot = rng.uniform(0, 2 * np.pi)
    m = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]]) @ np.diag([stretch, 1 / stretch])
    return outer @ m.T, None if hole is None else hole @ m.T


def _place(
    rng: np.random.Generator, outer: np.ndarray, hole: np.ndarray | None, bucket: str, s: int, min_side: int = 0
) -> tuple[tuple[int, int, int, int], np.ndarray, float] | None:
    """Scale an outline to a box in `bucket`, put it in the image and rasterise its clipped mask.

    Returns ((x0, y0, x1, y1) patch in pixels, boolean mask of the patch, full polygon area in pixels), or None if
    the object would lie entirely outside the image.
    """
    lo, hi = _SIDE[bucket]
    lo = min(max(lo, min_side / s), hi)
    side = s * math.exp(rng.uniform(math.log(lo), math.log(hi)))  # geometric mean of the box sides
    w0, h0 = np.ptp(outer, 0)
    k = side / math.sqrt(w0 * h0)
    w, h = w0 * k, h0 * k
    over = 0.25 if rng.random() < 0.15 else 0.0  # sometimes let the object hang over the image border
    cx = rng.uniform(w / 2 - over * w, s - w / 2 + over * w) if w < s else s / 2
    cy = rng.uniform(h / 2 - over * h, s - h / 2 + over * h) if h < s else s / 2
    pts = [p * k - (outer.min(0) * k) + [cx - w / 2, cy - h / 2] for p in (outer, hole) if p is not None]
    x0, y0 = (max(0, math.floor(v)) for v in pts[0].min(0))
    x1, y1 = (min(s, math.ceil(v) + 1) for v in pts[0].max(0))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = [np.round((p - [x0, y0]) * 16).astype(np.int32) for p in pts]  # 4 fractional bits
    cv2.fillPoly(mask, fixed[:1], 1, shift=4)
    if len(fixed) > 1:
        cv2.fillPoly(mask, fixed[1:], 0, shift=4)
    area = sum(cv2.contourArea(p.astype(np.float32)) * (1 if i == 0 else -1) for i, p in enumerate(pts))
    return (x0, y0, x1, y1), mask.astype(bool), area


def _texture(rng: np.random.Generator, cls: int, patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return the colours of the object's pixels (patch[mask]): solid with shading, stripes, checkerboard or dots.

    The object colour m is drawn from the same distribution for every class, away from the background under the
    object; two-colour textures use m + (1 - f) d and m - f d for pattern coverage f, so their mean is m too.
    """
    bg = patch[mask].mean(0)
    m = rng.uniform(0, 255, 3)
    for _ in range(10):
        if np.linalg.norm(m - bg) > 80:
            break
        m = rng.uniform(0, 255, 3)
    y, x = np.nonzero(mask)
    x, y = x - mask.shape[1] / 2, y - mask.shape[0] / 2
    a = rng.uniform(0, np.pi)
    u, v = x * math.cos(a) + y * math.sin(a), y * math.cos(a) - x * math.sin(a)
    size = min(mask.shape)
    kind = _TEXTURE[cls]
    if kind == "solid":
        return (m + rng.uniform(-25, 25, 3) * (u / size)[:, None]).astype(np.float32)
    period = max(2.5, size / rng.uniform(3, 5.5))
    if kind == "stripes":
        on, f = (u / period) % 1 < 0.5, 0.5
    elif kind == "checker":
        on, f = (np.floor(u / period) + np.floor(v / period)) % 2 == 0, 0.5
    else:  # dots on a square lattice, radius 0.32 of the period
        on, f = np.hypot((u / period) % 1 - 0.5, (v / period) % 1 - 0.5) < 0.32, math.pi * 0.32**2
    d = rng.standard_normal(3)
    d *= rng.uniform(50, 110) / np.linalg.norm(d)
    return np.where(on[:, None], m + (1 - f) * d, m - f * d).astype(np.float32)
