"""Images nobody labelled (`unlabeled=`): found, checked before any work, and read letterboxed for the extra stream.

The teacher's own scores choose where the student imitates it, so the distillation stream needs no labels: a folder
of raw frames or captures feeds it as well as the training split. `unlabeled_images` finds the files (a folder,
searched below; a .txt list of paths, relative to the list; or a glob) and refuses, in one line, a set that is empty,
unreadable, the training split itself or that shares an image with the validation split (by content, so a renamed
copy is caught too); a few unreadable files among many are skipped with one warning. `UnlabeledImages` reads one
image at a time (nothing holds the set in memory) and letterboxes it as Ultralytics' validation does.

Examples:
    >>> from ikd_yolo.data import make_synthetic_dataset
    >>> data = make_synthetic_dataset("/tmp/ikd-doc-unlabeled", n_train=4, n_val=2, imgsz=64, seed=0)  # doctest: +SKIP
    >>> files = unlabeled_images("/tmp/raw_frames", load_data(data))  # doctest: +SKIP
    >>> UnlabeledImages(files, 64)[0]["img"].shape  # doctest: +SKIP
    torch.Size([3, 64, 64])
"""

from __future__ import annotations

import glob
import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from ultralytics.utils import LOGGER, colorstr

from ..errors import DataError

SHOWN = 3  # unreadable files named in the warning


def image_suffixes() -> set[str]:
    """The image formats Ultralytics reads, as file suffixes (".jpg", ...)."""
    from ultralytics.data.utils import IMG_FORMATS

    return {f".{s}" for s in IMG_FORMATS}


def list_images(path: str | Path) -> list[Path]:
    """The image files `path` names: a folder (searched below, sorted), a .txt list (one path a line, relative to the
    list's folder) or a glob pattern; only files of an image format Ultralytics reads."""
    text = str(path)
    suffixes = image_suffixes()
    if any(c in text for c in "*?["):
        found = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
    elif Path(text).is_dir():
        found = sorted(p for p in Path(text).rglob("*") if p.is_file())
    elif Path(text).is_file() and Path(text).suffix == ".txt":
        base = Path(text).parent
        lines = [line.strip() for line in Path(text).read_text(errors="replace").splitlines()]
        found = [p if p.is_absolute() else base / p for p in map(Path, filter(None, lines))]
    elif Path(text).is_file():
        found = [Path(text)]
    else:
        raise DataError(f"unlabeled={path} not found: pass a folder of images, a .txt list of image paths or a glob")
    return [p for p in found if p.suffix.lower() in suffixes and p.is_file()]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def readable(path: Path) -> bool:
    """Whether an image file decodes (its header and data, as the stream will read it)."""
    try:
        return cv2.imread(str(path)) is not None
    except Exception:  # noqa: BLE001  (OpenCV raises on some truncated files instead of returning None)
        return False


def split_files(data: dict[str, Any], split: str) -> list[Path]:
    """The image files of a dataset split (Ultralytics' data dict: a folder, a .txt list or a list of them)."""
    entries = data.get(split) or []
    out: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        out += list_images(entry)
    return out


def unlabeled_images(path: str | Path, data: dict[str, Any], threads: int = 8) -> list[Path]:
    """The readable unlabelled images of `path`, checked against the dataset `data` (its train and val splits).

    Raises DataError (one line) for an empty set, a set with no readable image, the training split itself, or a set
    that shares an image with the validation split; unreadable files among readable ones are skipped with one warning.
    """
    files = list_images(path)
    if not files:
        formats = ", ".join(sorted(s[1:] for s in image_suffixes()))
        raise DataError(f"unlabeled={path} holds no image ({formats}): pass the folder, .txt list or glob of the "
                        "images nobody labelled")
    train = {p.resolve() for p in split_files(data, "train")}
    if train and {p.resolve() for p in files} <= train:
        raise DataError(f"unlabeled={path} is the training split itself: the stream already reads it "
                        "(stream_source=train); pass images nobody labelled")
    with ThreadPoolExecutor(threads) as pool:
        val = dict(zip(pool.map(file_digest, split_files(data, "val")), split_files(data, "val")))
        digests = list(pool.map(file_digest, files))
        shared = [(f, val[d]) for f, d in zip(files, digests) if d in val]
        if shared:
            f, v = shared[0]
            raise DataError(f"unlabeled={path} shares {len(shared)} image(s) with the validation split ({f} is "
                            f"{v}): distilling on validation images would leak them into the score; remove them")
        ok = list(pool.map(readable, files))
    bad = [f for f, good in zip(files, ok) if not good]
    if len(bad) == len(files):
        raise DataError(f"unlabeled={path}: none of its {len(files)} images can be read (first: {files[0]}): pass "
                        "images OpenCV decodes")
    if bad:
        named = ", ".join(str(f) for f in bad[:SHOWN]) + (", ..." if len(bad) > SHOWN else "")
        LOGGER.warning(f"{colorstr('ikd-yolo:')} {len(bad)} of the {len(files)} unlabelled images cannot be read and "
                       f"are skipped: {named}")
    return [f for f, good in zip(files, ok) if good]


class UnlabeledImages(torch.utils.data.Dataset):
    """Images read one at a time and letterboxed to `imgsz` as Ultralytics' validation reads its images (the long
    side resized to imgsz, bilinear, then padded with grey to a square): {"img": (3, imgsz, imgsz) uint8 RGB tensor},
    the form `LetterboxedImages` takes."""

    def __init__(self, files: list[Path], imgsz: int) -> None:
        from ultralytics.data.augment import LetterBox

        self.files, self.imgsz = [str(f) for f in files], int(imgsz)
        self.letterbox = LetterBox(new_shape=(self.imgsz, self.imgsz), scaleup=False)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        im = cv2.imread(self.files[i])
        if im is None:  # gone bad since the check: a grey image, not a crash mid-epoch
            im = np.full((self.imgsz, self.imgsz, 3), 114, np.uint8)
        h, w = im.shape[:2]
        r = self.imgsz / max(h, w)
        if r != 1:
            im = cv2.resize(im, (min(math.ceil(w * r), self.imgsz), min(math.ceil(h * r), self.imgsz)),
                            interpolation=cv2.INTER_LINEAR)
        im = self.letterbox(image=im)
        return {"img": torch.from_numpy(np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)))}
