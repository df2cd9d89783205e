"""Cached adversarial images (`adv_mode=cached`): every training image attacked once per teacher, stored, reused.

The authors of IKD (Liang et al., ACM MM 2023) attacked each training image once, offline. Here `build_cache` attacks
the training split letterboxed to `imgsz` (no mosaic, no augmentation: the attack needs the image with its own boxes)
in batches on the training device, with the same `AdversarialAttack` the online mode runs, and stores each result as
a PNG. The attack moves pixels in steps of adv_step_size inside an adv_eps ball around the 8-bit clean image, so with
the default 2/255 and 8/255 every adversarial pixel is again a multiple of 1/255 and the PNG holds it exactly.

A cache lives under `<cache dir>/adv/<key>/`, where the key hashes the teacher's weights, the training images and
their labels, `imgsz` and the attack settings: a change in any of them is a new cache, never a stale one. Entries are
written atomically one by one, so a killed build resumes with the images still missing; an entry that is not a
complete PNG is attacked again. Training draws the cached images in their own loader stream, flipped like the
training images (the adversarial loss compares student and teacher on the same image and uses no boxes, so the stream
need not follow the clean mosaic).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from .attack import AdversarialAttack, AttackSettings

_PNG_END = b"IEND\xaeB`\x82"  # the last 8 bytes of every complete PNG file


# ---------------------------------------------------------------------------------------------------- the key ----
def weights_digest(model: nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, values): what the teacher computes with."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dataset_digest(dataset: Any) -> str:
    """sha256 of an Ultralytics dataset's image files (path, size) and labels (classes, boxes) in dataset order."""
    h = hashlib.sha256()
    for file, label in zip(dataset.im_files, dataset.labels):
        h.update(f"{file}:{os.path.getsize(file)}".encode())
        h.update(np.ascontiguousarray(label["cls"], np.float32).tobytes())
        h.update(np.ascontiguousarray(label["bboxes"], np.float32).tobytes())
    return h.hexdigest()


def cache_key(teacher: nn.Module, dataset: Any, imgsz: int, settings: AttackSettings, seed: int) -> dict[str, Any]:
    """Everything the cached images depend on (the folder name is its hash)."""
    attack = {k: v for k, v in asdict(settings).items() if k in {"steps", "eps", "step_size", "decay", "di_p"}}
    return {"teacher": weights_digest(teacher), "data": dataset_digest(dataset), "imgsz": int(imgsz),
            "attack": attack, "seed": int(seed), "format": 1}


# ---------------------------------------------------------------------------------------------------- storage ----
class AdversarialCache:
    """One cache folder: `<index>.png` per training image (dataset order) and `cache.json` (the key, the files)."""

    def __init__(self, root: Path, key: dict[str, Any], im_files: list[str]) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / digest
        self.key, self.im_files = key, list(im_files)

    def path(self, i: int) -> Path:
        """Where image `i` is stored."""
        return self.folder / f"{i:07d}.png"

    def is_complete_entry(self, i: int) -> bool:
        """True if entry `i` is a whole PNG file (a killed write leaves none or a partial one)."""
        p = self.path(i)
        try:
            with open(p, "rb") as f:
                f.seek(-len(_PNG_END), os.SEEK_END)
                return f.read() == _PNG_END
        except OSError:
            return False

    def missing(self) -> list[int]:
        """Indices still to attack."""
        return [i for i in range(len(self.im_files)) if not self.is_complete_entry(i)]

    def write(self, i: int, image_chw: torch.Tensor) -> None:
        """Store one adversarial image (C, H, W) in [0, 1], rounded to 8 bits, atomically."""
        hwc = (image_chw.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(hwc[..., ::-1]))  # RGB tensor -> BGR file
        if not ok:
            raise OSError(f"could not encode adversarial image {i} as PNG")
        tmp = self.path(i).with_suffix(".tmp")
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, self.path(i))

    def read(self, i: int) -> np.ndarray:
        """Entry `i` as an RGB uint8 (H, W, C) array."""
        return cv2.imread(str(self.path(i)))[..., ::-1]

    def write_manifest(self) -> None:
        """Record the key and the image each entry belongs to (for humans; the folder name is what is looked up)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "cache.json").write_text(json.dumps({"key": self.key, "images": self.im_files}, indent=1))

    def size_bytes(self) -> int:
        """Bytes the stored images take on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("*.png"))


# ------------------------------------------------------------------------------------------------- building ----
def attack_dataset(data: dict[str, Any], imgsz: int, batch: int) -> Any:
    """The training split as the cache attacks it: letterboxed to imgsz, no augmentation, with its labels."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset

    cfg = get_cfg(overrides={"imgsz": imgsz, "task": "detect", "rect": False, "cache": False, "fraction": 1.0})
    return build_yolo_dataset(cfg, data["train"], batch, data, mode="val", rect=False)


def build_cache(
    cache: AdversarialCache,
    dataset: Any,
    teacher: nn.Module,
    attack: AdversarialAttack,
    device: torch.device,
    batch: int,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Attack every image the cache still misses, in batches on `device`; return {"images", "seconds"}.

    `teacher` must be frozen and in eval mode with `args` set (its criterion reads the loss gains); each batch's input
    diversity is seeded from (seed, first index), so a rebuilt entry is the same image again.
    """
    from torch.utils.data import DataLoader, Subset
    from ultralytics.utils import TQDM

    todo = cache.missing()
    cache.write_manifest()
    if not todo:
        return {"images": 0, "seconds": 0.0}
    criterion = teacher.init_criterion()
    loader = DataLoader(Subset(dataset, todo), batch_size=batch, shuffle=False, collate_fn=dataset.collate_fn)
    start, done = time.perf_counter(), 0
    bar = TQDM(total=len(todo), desc="ikd-yolo attack", disable=not progress)
    for chunk, labels in zip(_chunks(todo, batch), loader):
        labels["img"] = labels["img"].to(device, non_blocking=True).float() / 255
        generator = torch.Generator().manual_seed(seed * 1_000_003 + chunk[0])
        x_adv = attack(teacher, criterion, labels, generator=generator)
        for i, image in zip(chunk, x_adv):
            cache.write(i, image)
        done += len(chunk)
        bar.update(len(chunk))
    bar.close()
    return {"images": done, "seconds": time.perf_counter() - start}


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def prepare_cache(
    teacher: nn.Module,
    data: dict[str, Any],
    imgsz: int,
    settings: AttackSettings,
    device: torch.device,
    batch: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> tuple[AdversarialCache, dict[str, float]]:
    """The cache of this teacher, training split, size and attack, built (or completed) first; with build stats.

    `seed` drives the attack's input diversity, not the training: runs of every seed share one cache by default.
    """
    from ..cache import cache_dir

    dataset = attack_dataset(data, imgsz, batch)
    cache = AdversarialCache(cache_dir() / "adv", cache_key(teacher, dataset, imgsz, settings, seed), dataset.im_files)
    attack = AdversarialAttack(replace(settings, frac=1.0))  # every image of every batch
    stats = build_cache(cache, dataset, teacher, attack, device, batch, seed, progress)
    return cache, {**stats, "total": len(cache.im_files), "bytes": cache.size_bytes()}


# ----------------------------------------------------------------------------------------------- the stream ----
class CachedImages(torch.utils.data.Dataset):
    """The cache's images as (C, H, W) uint8 tensors, each flipped left-right with probability `fliplr`."""

    def __init__(self, cache: AdversarialCache, fliplr: float) -> None:
        self.cache, self.fliplr = cache, float(fliplr)

    def __len__(self) -> int:
        return len(self.cache.im_files)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.cache.read(i)
        if self.fliplr and torch.rand(()) < self.fliplr:  # torch's RNG: seeded per loader worker
            img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


class AdversarialStream:
    """An endless shuffled stream of cached adversarial images, batch by batch, for the trainer."""

    def __init__(self, cache: AdversarialCache, fliplr: float, workers: int, seed: int) -> None:
        self.dataset = CachedImages(cache, fliplr)
        self.workers, self.seed, self.epoch = workers, seed, 0
        self._batches: Iterator[torch.Tensor] | None = None
        self._size = 0

    def next(self, k: int, device: torch.device) -> torch.Tensor:
        """The next `k` cached images on `device` as floats in [0, 1]."""
        if self._batches is None or k != self._size:
            self._size, self._batches = k, self._epochs(k)
        return next(self._batches).to(device, non_blocking=True).float() / 255

    def _epochs(self, k: int) -> Iterator[torch.Tensor]:
        from torch.utils.data import DataLoader

        while True:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            self.epoch += 1
            yield from DataLoader(self.dataset, batch_size=k, shuffle=True, drop_last=len(self.dataset) >= k,
                                  num_workers=self.workers, generator=g, persistent_workers=False)
