"""Cached adversarial images (`adv_mode=cached`): every training image attacked once per teacher, stored, reused.

The authors of IKD (Liang et al., ACM MM 2023) attacked each training image once, offline. Here `build_cache` attacks
the training split letterboxed to `imgsz` (no mosaic, no augmentation: the attack needs the image with its own boxes)
in batches on the training device, with the same `AdversarialAttack` the online mode runs, and stores each result as
a PNG. The attack moves pixels in steps of adv_step_size inside an adv_eps ball around the 8-bit clean image, so with
the default 2/255 and 8/255 every adversarial pixel is again a multiple of 1/255 and the PNG holds it exactly.

A cache lives under `<cache dir>/adv/<key>/`, where the key hashes the teacher's weights, the bytes of every training
image with its labels, `imgsz` and the attack settings: a change in any of them is a new cache, never a stale one.
Each image's input diversity is drawn from a random stream of its own, seeded by the image's content, so an entry
attacked alone (a resumed or repaired build) is the image a full build stores.

Each entry is one PNG (`cache_entry`: it names its image and carries its pixels' sha256), written atomically and
checked before a run uses the cache; a missing one is attacked, a bad one is named in a warning and attacked again.
Writers hold a lock on the folder, so a second run building the same cache waits and then finds the entries done; a
complete cache is read without writing anything (a read-only volume will do). Training draws the cached images in
their own loader stream (`image_stream`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from ultralytics.utils import LOGGER, colorstr

from ..errors import InputError
from .attack import AdversarialAttack, AttackSettings, class_loss_criterion
from .cache_entry import decode_entry, encode_entry

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, writers are not serialised
    fcntl = None

FORMAT = 2  # of the entries and the key; 2: content-keyed, per-image random streams, checksummed entries
MISSING = "missing"  # the status of an entry never written


class CacheEntryError(InputError):
    """A cached adversarial image changed or vanished after the cache was checked."""


def _threads() -> int:
    """Threads for hashing and checking files (cv2 and hashlib release the GIL)."""
    return min(8, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------------- the key ----
def weights_digest(model: nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, values): what the teacher computes with."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def image_digest(file: str, label: dict[str, Any]) -> str:
    """sha256 of one training image's file bytes and its labels (classes, boxes): the image's content id."""
    h = hashlib.sha256(Path(file).read_bytes())
    h.update(np.ascontiguousarray(label["cls"], np.float32).tobytes())
    h.update(np.ascontiguousarray(label["bboxes"], np.float32).tobytes())
    return h.hexdigest()


def image_ids(dataset: Any) -> list[str]:
    """The content id (`image_digest`) of every image of an Ultralytics dataset, in dataset order."""
    with ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(image_digest, dataset.im_files, dataset.labels))


def dataset_digest(ids: list[str]) -> str:
    """sha256 of the images' content ids in dataset order."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def cache_key(
    teacher: nn.Module, dataset: Any, imgsz: int, settings: AttackSettings, seed: int, ids: list[str] | None = None
) -> dict[str, Any]:
    """Everything the cached images depend on (the folder name is its hash); `ids` saves hashing the images again."""
    return {"teacher": weights_digest(teacher), "data": dataset_digest(image_ids(dataset) if ids is None else ids),
            "imgsz": int(imgsz), "attack": asdict(settings), "seed": int(seed), "format": FORMAT}


def image_seed(seed: int, image_id: str) -> int:
    """The seed of one image's input-diversity stream: the same image and seed, the same attack, in any batch."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{image_id}".encode()).digest()[:8], "little")


# ---------------------------------------------------------------------------------------------------- storage ----
class AdversarialCache:
    """One cache folder: `<index>.png` per training image (dataset order), `cache.json` (the key, the images) and
    `.lock` (held while writing). `image_ids` are the images' content ids (`image_ids`), which each entry names."""

    def __init__(self, root: Path, key: dict[str, Any], im_files: list[str], image_ids: list[str]) -> None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / digest
        self.key, self.im_files, self.image_ids = key, list(im_files), list(image_ids)
        self.imgsz = int(key["imgsz"])

    def path(self, i: int) -> Path:
        """Where image `i` is stored."""
        return self.folder / f"{i:07d}.png"

    def load(self, i: int) -> tuple[np.ndarray | None, str | None]:
        """(entry `i` as an RGB uint8 (H, W, C) array, None), or (None, MISSING or what is wrong with it)."""
        try:
            buf = self.path(i).read_bytes()
        except FileNotFoundError:
            return None, MISSING
        except OSError as e:
            return None, f"unreadable ({e.strerror})"
        return decode_entry(buf, self.image_ids[i], self.imgsz)

    def read(self, i: int) -> np.ndarray:
        """Entry `i` as an RGB uint8 (H, W, C) array; CacheEntryError if it is missing or bad."""
        image, problem = self.load(i)
        if image is None:
            raise self.entry_error(i, problem)
        return image

    def entry_error(self, i: int, problem: str) -> CacheEntryError:
        """The one-line error of entry `i` gone bad while in use."""
        return CacheEntryError(f"adversarial cache entry {self.path(i)} (image {self.im_files[i]}) is {problem}; it "
                               "was sound when the run started (is the disk failing?): run again, or run ikd-yolo "
                               "attack, to attack it again")

    def check(self, indices: list[int] | None = None) -> dict[int, str | None]:
        """Each entry's status: None when sound, MISSING, or what is wrong with it (decoded and checksummed)."""
        indices = range(len(self.im_files)) if indices is None else indices
        if not self.folder.is_dir():
            return dict.fromkeys(indices, MISSING)
        with ThreadPoolExecutor(_threads()) as pool:
            return dict(zip(indices, pool.map(lambda i: self.load(i)[1], indices)))

    def missing(self) -> list[int]:
        """Indices still to attack: entries missing or bad."""
        return [i for i, status in self.check().items() if status is not None]

    @contextmanager
    def writing(self, need: str) -> Iterator[None]:
        """Hold the folder's write lock (waiting for another writer), with leftover temporary files removed; `need`
        says in the error of a folder that cannot be written what was to be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise InputError(f"adversarial cache {self.folder} needs {need} but cannot be written ({e.strerror}): set "
                             "IKD_YOLO_CACHE to a writable folder, or build the cache with ikd-yolo attack where it "
                             "can be written") from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    LOGGER.info(f"{colorstr('ikd-yolo:')} waiting for another run writing the adversarial cache "
                                f"{self.folder}")
                    fcntl.flock(fd, fcntl.LOCK_EX)
            for tmp in self.folder.glob(".*.tmp"):  # left by a killed writer: under the lock, nobody else writes
                tmp.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write(self, i: int, image_chw: torch.Tensor) -> None:
        """Store one adversarial image (C, H, W) in [0, 1], rounded to 8 bits, atomically."""
        hwc = (image_chw.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        self._replace(self.path(i), encode_entry(hwc, self.image_ids[i]))

    def write_manifest(self) -> None:
        """Record the key and the image of each entry (for humans: the folder name is what is looked up), if changed."""
        text = json.dumps({"key": self.key, "images": self.im_files, "image_ids": self.image_ids}, indent=1)
        manifest = self.folder / "cache.json"
        if not manifest.is_file() or manifest.read_text() != text:
            self._replace(manifest, text.encode())

    def _replace(self, path: Path, data: bytes) -> None:
        """Write `path` atomically through a temporary name of this writer's own."""
        tmp = self.folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        """Bytes the stored images take on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("*.png"))


def open_cache(root: Path, teacher: nn.Module, dataset: Any, imgsz: int, settings: AttackSettings,
               seed: int) -> AdversarialCache:
    """The cache of this teacher, dataset (hashed once here), size, attack and seed under `root`."""
    ids = image_ids(dataset)
    return AdversarialCache(root, cache_key(teacher, dataset, imgsz, settings, seed, ids), dataset.im_files, ids)


# ------------------------------------------------------------------------------------------------- building ----
def attack_dataset(data: dict[str, Any], imgsz: int, batch: int, task: str = "detect") -> Any:
    """The training split as the cache attacks it: letterboxed to imgsz, no augmentation, with its labels read as
    `task` reads them (`label_task`)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset

    cfg = get_cfg(overrides={"imgsz": imgsz, "task": task, "rect": False, "cache": False, "fraction": 1.0})
    return build_yolo_dataset(cfg, data["train"], batch, data, mode="val", rect=False)


def label_task(teacher: nn.Module, data: dict[str, Any]) -> str:
    """How the attacked split's labels are read: rotated boxes for an obb teacher, pose rows for a keypoint dataset,
    else boxes (a segment dataset's polygons become their boxes)."""
    from ultralytics.nn.tasks import guess_model_task

    if guess_model_task(getattr(teacher, "yaml", None) or teacher) == "obb":
        return "obb"
    return "pose" if "kpt_shape" in data else "detect"


@dataclass(frozen=True)
class CacheJob:
    """Who attacks the images of a cache, and how: the frozen teacher (eval mode, `args` set: its criterion reads the
    loss gains), the attack, the device, images per batch, the seed of the input diversity, a progress bar or not."""

    teacher: nn.Module
    attack: AdversarialAttack
    device: torch.device
    batch: int = 16
    seed: int = 0
    progress: bool = True


def build_cache(cache: AdversarialCache, dataset: Any, job: CacheJob) -> dict[str, float]:
    """Check every entry and attack those missing or bad; return {"images" attacked, "repaired", "seconds"}.

    A complete, sound cache is only read. Otherwise the folder is locked for writing (a concurrent writer is waited
    for, then the entries it wrote count as done) and each bad entry is named in one warning.
    """
    todo = {i: problem for i, problem in cache.check().items() if problem is not None}
    if not todo:
        return {"images": 0, "repaired": 0, "seconds": 0.0}
    bad = [f"; {cache.path(i)} is {problem}" for i, problem in todo.items() if problem != MISSING]
    with cache.writing(f"{len(todo)} of {len(cache.im_files)} images attacked{bad[0] if bad else ''}"):
        status = cache.check(list(todo))  # another writer may have done them while this one waited
        bad = {i: problem for i, problem in status.items() if problem not in (None, MISSING)}
        for i, problem in bad.items():
            LOGGER.warning(f"{colorstr('ikd-yolo:')} adversarial cache entry {cache.path(i)} (image "
                           f"{cache.im_files[i]}) is {problem}: attacking it again")
        cache.write_manifest()
        todo = [i for i, problem in status.items() if problem is not None]
        start = time.perf_counter()
        attack_entries(cache, dataset, job, todo)
    return {"images": len(todo), "repaired": len(bad), "seconds": time.perf_counter() - start if todo else 0.0}


def attack_entries(cache: AdversarialCache, dataset: Any, job: CacheJob, todo: list[int]) -> None:
    """Attack the images `todo` in batches on the job's device and store them; each image draws from its own random
    stream."""
    from torch.utils.data import DataLoader, Subset
    from ultralytics.utils import TQDM

    if not todo:
        return
    criterion = class_loss_criterion(job.teacher)
    loader = DataLoader(Subset(dataset, todo), batch_size=job.batch, shuffle=False, collate_fn=dataset.collate_fn)
    bar = TQDM(total=len(todo), desc="ikd-yolo attack", disable=not job.progress)
    for chunk, labels in zip(_chunks(todo, job.batch), loader):
        labels["img"] = labels["img"].to(job.device, non_blocking=True).float() / 255
        streams = [torch.Generator().manual_seed(image_seed(job.seed, cache.image_ids[i])) for i in chunk]
        for i, image in zip(chunk, job.attack(job.teacher, criterion, labels, generator=streams)):
            cache.write(i, image)
        bar.update(len(chunk))
    bar.close()


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def prepare_cache(job: CacheJob, data: dict[str, Any], imgsz: int) -> tuple[AdversarialCache, dict[str, float]]:
    """The cache of the job's teacher and attack for this training split and size, checked and completed first; with
    build stats.

    The job's seed drives the attack's input diversity, not the training: runs of every seed share one cache.
    """
    from ..cache import cache_dir

    dataset = attack_dataset(data, imgsz, job.batch, label_task(job.teacher, data))
    cache = open_cache(cache_dir() / "adv", job.teacher, dataset, imgsz, job.attack.settings, job.seed)
    stats = build_cache(cache, dataset, job)
    return cache, {**stats, "total": len(cache.im_files), "bytes": cache.size_bytes()}


def open_attack_cache(
    teacher: nn.Module,
    data: dict[str, Any],
    imgsz: int,
    settings: AttackSettings,
    device: str | torch.device,
    batch: int = 16,
    seed: int = 0,
    progress: bool = True,
    args: Any = None,
) -> tuple[AdversarialCache, dict[str, float]]:
    """The front door of the adversarial cache (training, `ikd-yolo attack`, the benchmark): a `CacheJob` of the
    frozen teacher model `teacher` (a `FrozenTeacher`'s model: the attack refuses one in training mode), moved to
    `device` (a torch.device as it is, else Ultralytics' device string) and given `args` for its criterion's loss
    gains (Ultralytics' defaults when None), then `prepare_cache`. Returns the cache, checked and completed, with its
    build stats.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.utils.torch_utils import select_device

    device = device if isinstance(device, torch.device) else select_device(device, verbose=False)
    teacher.to(device)
    teacher.args = get_cfg() if args is None else args  # the criterion reads the box/cls/dfl gains from here
    job = CacheJob(teacher, AdversarialAttack(settings), device, batch, seed, progress)
    return prepare_cache(job, data, imgsz)
