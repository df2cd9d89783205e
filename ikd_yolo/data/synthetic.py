"""Procedural synthetic shapes dataset in Ultralytics YOLO format, made offline with numpy and OpenCV.

Eight classes that differ by shape and texture, never by colour (`draw.py` draws the images). Objects lie on
cluttered backgrounds (gradients, smooth colour noise, lines, scribbles and irregular textured blobs that belong to
no class; `clutter` scales how many of the latter); boxes are the tight extent of each object's visible pixels,
clipped to the image.

Size buckets are defined on the box area relative to the image area, anchored at the 256 px default:

    small  : w * h <  (32 / 256)^2 of the image  (< 32x32 px at imgsz=256, < 80x80 px at 640)
    medium : in between
    large  : w * h >  (96 / 256)^2 of the image  (> 96x96 px at imgsz=256, > 240x240 px at 640)

This equals COCO's pixel thresholds at 256 px and keeps the same composition at any `imgsz`, since objects scale
with the image (`min_side` keeps the smallest ones resolvable when the images themselves are small). Objects are sized
to give roughly equal instance counts per bucket; about 12.5% of images hold only small objects and 7.5% hold none.
Parameters are stored in `synthetic.json` next to `data.yaml`, so a second call with the same parameters returns at
once.

Examples:
    >>> from ikd_yolo.data import make_synthetic_dataset, dataset_stats
    >>> data = make_synthetic_dataset("datasets/shapes", n_train=200, n_val=50, imgsz=256, seed=0)
    >>> dataset_stats(data)["per_size"]
    {'small': ..., 'medium': ..., 'large': ...}
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..errors import DataError
from .draw import CLASS_NAMES, image_kinds, render_image
from .geometry import FLIP_IDX, KPT_NAMES, KPT_SHAPE, LABEL_TASKS, label_row

__all__ = ["CLASS_NAMES", "LARGE_AREA", "SMALL_AREA", "dataset_stats", "make_synthetic_dataset", "size_bucket"]

SMALL_AREA = (32 / 256) ** 2  # box area / image area below which a box is small
LARGE_AREA = (96 / 256) ** 2  # box area / image area above which a box is large
GENERATOR_VERSION = 1  # bump when the drawing changes, so stored datasets are regenerated
META_FILE = "synthetic.json"
def size_bucket(w: float, h: float) -> str:
    """Return 'small', 'medium' or 'large' for a box of normalised width and height."""
    area = w * h
    return "small" if area < SMALL_AREA else "large" if area > LARGE_AREA else "medium"


def make_synthetic_dataset(
    out: str | Path,
    n_train: int = 200,
    n_val: int = 50,
    imgsz: int = 256,
    seed: int = 0,
    clutter: float = 1.0,
    min_side: int = 0,
    task: str = "detect",
    n_unlabeled: int = 0,
) -> Path:
    """Write the synthetic dataset under `out` and return the path of its data.yaml.

    Layout: out/images/{train,val}/*.jpg, out/labels/{train,val}/*.txt and out/data.yaml. The labels are those of
    `task` (`geometry.py`): detect boxes (class cx cy w h, normalised), segment outline polygons, pose boxes with four
    keypoints (data.yaml gets kpt_shape, flip_idx and kpt_names), obb rotated boxes as four corners; the images are
    the same for every task. Output is deterministic for a seed (labels byte-identical; images identical for the same
    numpy, OpenCV and libjpeg). If `out` already holds a complete dataset made with the same parameters, nothing is
    rewritten; otherwise out/images, out/labels and the metadata are removed and generated again. Other files in
    `out` are left alone; a folder with images/ or labels/ that this function did not make is refused.

    Args:
        out (str | Path): Dataset root folder, created if missing.
        n_train (int): Number of training images.
        n_val (int): Number of validation images.
        imgsz (int): Side of the square images in pixels (>= 64).
        seed (int): Non-negative random seed.
        clutter (float): Share of the background distractors (blobs, lines, scribbles) drawn, in [0, 1]: 1 is the
            full clutter, 0 leaves the gradient and the smooth colour noise only.
        min_side (int): Smallest box side in pixels (>= 0): raises the lower end of each size bucket's range so
            that, at a small `imgsz`, no object is drawn smaller than the network can resolve.
        task (str): The labels to write: detect, segment, pose or obb.
        n_unlabeled (int): Images drawn like the training images but written without labels, in out/images/unlabeled
            (no split of data.yaml names it): what `unlabeled=` distils on.

    Returns:
        (Path): Absolute path of out/data.yaml.
    """
    lower = {"n_train": 1, "n_val": 1, "imgsz": 64, "seed": 0, "min_side": 0, "n_unlabeled": 0}
    values = {"n_train": n_train, "n_val": n_val, "imgsz": imgsz, "seed": seed, "min_side": min_side,
              "n_unlabeled": n_unlabeled}
    for key, v in values.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise DataError(f"{key}={v!r} must be a whole number")
        if v < lower[key]:
            raise DataError(f"{key}={v} must be >= {lower[key]}")
    if isinstance(clutter, bool) or not isinstance(clutter, (int, float)) or not 0 <= clutter <= 1:
        raise DataError(f"clutter={clutter!r} must be a number in [0, 1]")
    if task not in LABEL_TASKS:
        raise DataError(f"task={task!r} is not a task the synthetic data labels: use one of {', '.join(LABEL_TASKS)}")
    n_train, n_val, imgsz, seed, min_side, n_unlabeled = (int(v) for v in values.values())
    out = Path(out).resolve()
    params = {"version": GENERATOR_VERSION, "n_train": n_train, "n_val": n_val, "imgsz": imgsz, "seed": seed}
    if (clutter, min_side) != (1.0, 0):  # the defaults stay out, so datasets made before these options match
        params.update(clutter=float(clutter), min_side=min_side)
    if task != "detect":  # likewise: a detect dataset's metadata is what it was before tasks existed
        params["task"] = task
    if n_unlabeled:
        params["n_unlabeled"] = n_unlabeled
    meta_file, yaml_file = out / META_FILE, out / "data.yaml"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):  # missing or half-written
        meta = None
    if meta == {**params, "complete": True} and _files_complete(out, n_train, n_val, n_unlabeled):
        _write_yaml(yaml_file, out, task)  # the folder may have moved; rewritten only if its text changed
        return yaml_file

    if meta is None and any((out / d).exists() for d in ("images", "labels")):
        raise DataError(f"{out} holds images/ or labels/ not made by make_synthetic_dataset: pass another out=")
    for d in ("images", "labels"):
        shutil.rmtree(out / d, ignore_errors=True)
    yaml_file.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps({**params, "complete": False}, indent=2))

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # the images are small: OpenCV's thread pool costs more than it saves
    try:
        for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val), ("unlabeled", n_unlabeled))):
            if n:
                _write_split(out, split, split_id, n, imgsz, seed, float(clutter), min_side, task)
        shutil.rmtree(out / "labels" / "unlabeled", ignore_errors=True)  # drawn like the others, kept without labels
    finally:
        cv2.setNumThreads(threads)
    _write_yaml(yaml_file, out, task)
    meta_file.write_text(json.dumps({**params, "complete": True}, indent=2))
    return yaml_file


def dataset_stats(data_yaml: str | Path) -> dict:
    """Count the labels of a YOLO detection dataset per class, per size bucket and per image kind.

    Works on any detection data.yaml whose splits are image folders; labels are found as Ultralytics finds them
    (the last 'images' folder in the path becomes 'labels'), and an image without a label file counts as empty.

    Args:
        data_yaml (str | Path): Path of the dataset's data.yaml.

    Returns:
        (dict): {"images", "instances", "per_class" {name: n}, "per_size" {small, medium, large}, "only_small"
            (images whose boxes are all small), "empty" (images without boxes)} over all splits, and the same
            counts per split under "splits".
    """
    data_yaml = Path(data_yaml)
    data = yaml.safe_load(data_yaml.read_text())
    names = data["names"]
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    root = Path(data.get("path") or data_yaml.parent)
    root = root if root.is_absolute() else data_yaml.parent / root
    total, splits = _empty_counts(names), {}
    for split in ("train", "val", "test"):
        if not data.get(split):
            continue
        splits[split] = counts = _empty_counts(names)
        for img_dir in data[split] if isinstance(data[split], list) else [data[split]]:
            for label_file in _label_files(root / img_dir):
                has_rows = label_file.is_file() and label_file.stat().st_size
                rows = np.loadtxt(label_file, ndmin=2) if has_rows else np.zeros((0, 5))
                buckets = [size_bucket(w, h) for w, h in rows[:, 3:5]]
                for c in counts, total:
                    c["images"] += 1
                    c["instances"] += len(rows)
                    c["empty"] += not buckets
                    c["only_small"] += bool(buckets) and all(b == "small" for b in buckets)
                    for cls, b in zip(rows[:, 0].astype(int), buckets):
                        c["per_class"][names[cls]] += 1
                        c["per_size"][b] += 1
    return {**total, "splits": splits}


def _write_split(
    out: Path, split: str, split_id: int, n: int, imgsz: int, seed: int, clutter: float, min_side: int, task: str
) -> None:
    """Render and write the n images and label files of one split; each image has its own seeded generator."""
    (out / "images" / split).mkdir(parents=True)
    (out / "labels" / split).mkdir(parents=True)
    kinds = image_kinds(n, np.random.default_rng([seed, split_id, 1]))
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, split_id, 0, i])
        img, labels, masks = render_image(rng, imgsz, kind, clutter, min_side, masks=True)
        cv2.imwrite(str(out / "images" / split / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        text = "".join(label_row(task, c, box, m, imgsz) for (c, *box), m in zip(labels, masks))
        (out / "labels" / split / f"{i:06d}.txt").write_text(text)


def _empty_counts(names: list[str]) -> dict:
    """Return a zeroed counts dict for `dataset_stats`."""
    counts = dict.fromkeys(("images", "instances", "only_small", "empty"), 0)
    return counts | {"per_class": dict.fromkeys(names, 0), "per_size": dict.fromkeys(("small", "medium", "large"), 0)}


def _label_files(img_dir: Path) -> list[Path]:
    """Return the label file path (existing or not) of every image in `img_dir`."""
    parts = list(img_dir.parts)
    if "images" in parts:
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
    return [Path(*parts, f"{p.stem}.txt") for p in sorted(img_dir.iterdir()) if p.suffix.lower() in exts]


def _files_complete(out: Path, n_train: int, n_val: int, n_unlabeled: int = 0) -> bool:
    """Return True if every expected image and label file exists (the unlabelled images have none)."""
    labelled = all(
        (out / "images" / split / f"{i:06d}.jpg").is_file() and (out / "labels" / split / f"{i:06d}.txt").is_file()
        for split, n in (("train", n_train), ("val", n_val))
        for i in range(n)
    )
    return labelled and all((out / "images" / "unlabeled" / f"{i:06d}.jpg").is_file() for i in range(n_unlabeled))


def _write_yaml(file: Path, root: Path, task: str = "detect") -> None:
    """Write data.yaml for the dataset at `root`, leaving the file untouched if its text is already right."""
    body = {"path": str(root), "train": "images/train", "val": "images/val", "nc": len(CLASS_NAMES)}
    if task == "pose":
        body.update(kpt_shape=list(KPT_SHAPE), flip_idx=list(FLIP_IDX),
                    kpt_names={i: list(KPT_NAMES) for i in range(len(CLASS_NAMES))})
    text = (
        f"# Synthetic shapes dataset made by ikd_yolo.data.make_synthetic_dataset (parameters in {META_FILE})\n"
        + yaml.safe_dump(body, sort_keys=False)
        + yaml.safe_dump({"names": dict(enumerate(CLASS_NAMES))}, sort_keys=False)
    )
    if not file.exists() or file.read_text() != text:
        file.write_text(text)
