"""Cached adversarial images (`adv_mode=cached`): every training image attacked once per teacher, stored, reused.

The authors of IKD (Liang et al., ACM MM 2023) attacked each training image once, offline. Here `build_cache` attacks
the training split letterboxed to `imgsz` (no mosaic, no augmentation: the attack needs the image with its own boxes)
in batches on the training device, with the same `AdversarialAttack` the online mode runs, and stores what the attack
changed: the difference to the clean letterboxed image, a few values per pixel, coded losslessly (`cache_entry`); a
read adds it back to the clean image, read again from the dataset (`CleanImages`), bit for bit.

A cache lives under `<cache dir>/adv/<key>/`, where the key hashes the teacher's weights, the bytes of every training
image with its labels, `imgsz` and the attack settings: a change in any of them is a new cache, never a stale one.
Each image's input diversity is drawn from a random stream of its own, seeded by the image's content, so an entry
attacked alone (a resumed or repaired build, another rank's share) is the image a full build stores.

Each entry names its image and carries the checksums of its bytes, of its clean image and of its pixels; it is
written atomically. Before a run uses the cache every entry's file is checked, and a few entries in full (a change
in how images letterbox would spoil all of them); a missing one is attacked, a bad one is named in a warning and
attacked again, one gone bad later is named when read. The build first attacks one batch to measure its plan (bytes,
time) and refuses in one line if the disk cannot hold the rest (`cache_plan`). Under DDP every rank attacks its share
(`shards`). The entries of a format-2 cache (whole PNGs) are converted, not attacked again. Writers hold a lock on
the folder, so a second run building the same cache waits and then finds the entries done; a complete cache is read
without writing anything (a read-only volume will do). Training draws the cached images in their own loader stream
(`image_stream`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from ultralytics.utils import LOGGER, colorstr

from .attack import AdversarialAttack, AttackSettings, class_loss_criterion
from .cache_format2 import decode_png_entry
from .cache_plan import BuildPlan
from .cache_store import MISSING, AdversarialCache, CacheEntryError, CleanImages, io_threads, folder_name
from .shards import Shards

__all__ = ["FORMAT", "MISSING", "AdversarialCache", "CacheEntryError", "CacheJob", "CleanImages", "attack_dataset",
           "attack_entries", "build_cache", "cache_key", "image_ids", "image_seed", "label_task", "open_attack_cache",
           "open_cache", "prepare_cache"]

FORMAT = 3  # of the entries and the key; 3: what the attack changed (cache_entry); 2: whole PNGs (cache_format2)
PROBES = 4  # sound entries checked in full (clean image and pixels) before a run trusts the files of all
NAMED = 5  # bad entries named one per warning line; more are counted in one more line


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
    with ThreadPoolExecutor(io_threads()) as pool:
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
def open_cache(root: Path, teacher: nn.Module, dataset: Any, imgsz: int, settings: AttackSettings,
               seed: int) -> AdversarialCache:
    """The cache of this teacher, dataset (hashed once here), size, attack and seed under `root`."""
    ids = image_ids(dataset)
    return AdversarialCache(root, cache_key(teacher, dataset, imgsz, settings, seed, ids), dataset.im_files, ids,
                            CleanImages(dataset))


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
    loss gains), the attack, the device, images per batch, the seed of the input diversity, a progress bar or not,
    the loader's worker processes."""

    teacher: nn.Module
    attack: AdversarialAttack
    device: torch.device
    batch: int = 16
    seed: int = 0
    progress: bool = True
    workers: int = 0


def check_entries(cache: AdversarialCache, indices: list[int], shards: Shards, full: bool) -> dict[int, str | None]:
    """The status of the entries `indices`, each rank checking its share (`AdversarialCache.status`)."""
    return {i: problem for part in shards.gather(cache.check(shards.share(indices), full)) for i, problem in
            part.items()}


def needs_full_check(cache: AdversarialCache, status: dict[int, str | None], shards: Shards) -> bool:
    """True if one of the first PROBES entries whose files are sound fails its full check: then the clean images
    have changed for all of them (another Ultralytics or OpenCV that letterboxes differently)."""
    probes = [i for i, problem in status.items() if problem is None][:PROBES]
    return shards.from_lead(any(cache.check(probes, full=True).values()) if shards.lead else None)


def build_cache(cache: AdversarialCache, dataset: Any, job: CacheJob,
                shards: Shards | None = None) -> dict[str, float]:
    """Check every entry, convert those a format-2 cache holds and attack the other missing or bad ones; return
    {"images" attacked, "converted", "repaired", "seconds"}.

    A complete, sound cache is only read. Otherwise the folder is locked for writing (a concurrent writer is waited
    for, then the entries it wrote count as done) and each bad entry is named in one warning. `shards` (default: the
    DDP ranks, if any) share the work: every rank calls this, each attacks its share.
    """
    shards = Shards.current() if shards is None else shards
    indices = list(range(len(cache.im_files)))
    status = check_entries(cache, indices, shards, full=False)
    full = needs_full_check(cache, status, shards)
    if full:
        status = check_entries(cache, indices, shards, full=True)
    todo = {i: problem for i, problem in status.items() if problem is not None}
    if not todo:
        return {"images": 0, "converted": 0, "repaired": 0, "seconds": 0.0}
    start = time.perf_counter()
    bad = [f"; {cache.path(i)} is {problem}" for i, problem in todo.items() if problem != MISSING]
    with cache.writing(f"{len(todo)} of {len(cache.im_files)} images attacked{bad[0] if bad else ''}", shards):
        status = check_entries(cache, list(todo), shards, full)  # another writer may have done them meanwhile
        bad = {i: problem for i, problem in status.items() if problem not in (None, MISSING)}
        if shards.lead:
            for i, problem in list(bad.items())[:NAMED]:
                LOGGER.warning(f"{colorstr('ikd-yolo:')} adversarial cache entry {cache.path(i)} (image "
                               f"{cache.im_files[i]}) is {problem}: attacking it again")
            if len(bad) > NAMED:
                LOGGER.warning(f"{colorstr('ikd-yolo:')} and {len(bad) - NAMED} more bad entries in the adversarial "
                               f"cache {cache.folder}: attacking them again")
            cache.write_manifest()
        todo = [i for i, problem in status.items() if problem is not None]
        mine = shards.share(todo)
        former = cache.folder.parent / folder_name({**cache.key, "format": 2})
        converted = convert_entries(cache, former, mine)
        attack_entries(cache, dataset, job, [i for i in mine if i not in converted], shards)
        n_converted = sum(shards.gather(len(converted)))
    if shards.lead and n_converted:
        LOGGER.info(f"{colorstr('ikd-yolo:')} adversarial cache {cache.folder}: {n_converted} entries converted from "
                    f"the format-2 cache {former} ({sum(p.stat().st_size for p in former.glob('*.png')) / 1e6:.1f} "
                    "MB), which is no longer read: delete it to free the space")
    return {"images": len(todo) - n_converted, "converted": n_converted, "repaired": len(bad),
            "seconds": time.perf_counter() - start}


def convert_entries(cache: AdversarialCache, former: Path, todo: list[int]) -> set[int]:
    """Store the entries of `todo` whose format-2 entry in the folder `former` is sound (`cache_format2`); return
    their indices."""
    if not todo or not former.is_dir():
        return set()

    def convert(i: int) -> bool:
        try:
            image, _ = decode_png_entry((former / f"{i:07d}.png").read_bytes(), cache.image_ids[i], cache.imgsz)
        except OSError:
            return False
        if image is not None:
            cache.store(i, image)
        return image is not None

    with ThreadPoolExecutor(io_threads()) as pool:
        return {i for i, done in zip(todo, pool.map(convert, todo)) if done}


def attack_entries(cache: AdversarialCache, dataset: Any, job: CacheJob, todo: list[int],
                   shards: Shards = Shards()) -> None:
    """Attack the images `todo` (this rank's share) in batches on the job's device and store them; each image draws
    from its own random stream. The first batch measures the build's plan (`cache_plan`), which every rank of
    `shards` checks against the free disk (refusing in one line) and rank 0 logs; a progress bar follows the rest.
    Entries are written by threads while the next batch is attacked."""
    from torch.utils.data import DataLoader, Subset
    from ultralytics.utils import TQDM

    loader = DataLoader(Subset(dataset, todo), batch_size=job.batch, shuffle=False, collate_fn=dataset.collate_fn,
                        num_workers=job.workers if todo else 0)
    batches = zip(_chunks(todo, job.batch), loader)
    criterion = class_loss_criterion(job.teacher)
    with ThreadPoolExecutor(io_threads()) as pool:
        start = time.perf_counter()
        first, labels = next(batches, ([], None))
        for write in _attack_batch(cache, job, criterion, first, labels, pool) if first else []:
            write.result()  # the plan measures the first entries' bytes
        writes: list[Any] = []
        measured = (len(first), sum(cache.path(i).stat().st_size for i in first), time.perf_counter() - start,
                    len(todo) - len(first))
        plan = BuildPlan.of(shards.gather(measured), shutil.disk_usage(cache.folder).free)
        plan.check(cache.folder)
        if shards.lead and plan.remaining:
            LOGGER.info(plan.line(cache.folder))
        desc = "ikd-yolo attack" + (f" (rank 0 of {shards.world})" if shards.world > 1 else "")
        bar = TQDM(total=len(todo) - len(first), desc=desc, unit="img", disable=not job.progress or not plan.remaining)
        for chunk, labels in batches:
            writes = _attack_batch(cache, job, criterion, chunk, labels, pool, writes)
            bar.update(len(chunk))
        for write in writes:
            write.result()
        bar.close()


def _attack_batch(cache: AdversarialCache, job: CacheJob, criterion: Any, chunk: list[int], labels: dict,
                  pool: ThreadPoolExecutor, writes: list[Any] = ()) -> list[Any]:
    """Attack one batch; wait for the previous batch's `writes`, and return this batch's (entries being written)."""
    clean = labels["img"].permute(0, 2, 3, 1).numpy()  # uint8, what the entries are differences to
    labels["img"] = labels["img"].to(job.device, non_blocking=True).float() / 255
    streams = [torch.Generator().manual_seed(image_seed(job.seed, cache.image_ids[i])) for i in chunk]
    images = job.attack(job.teacher, criterion, labels, generator=streams)
    images = (images.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    for write in writes:
        write.result()  # raises a failed write's error here
    return [pool.submit(cache.store, i, image, c) for i, image, c in zip(chunk, images, clean)]


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
    gains (Ultralytics' defaults when None), then `prepare_cache`. Under DDP every rank calls it and attacks its
    share. Returns the cache, checked and completed, with its build stats.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.utils.torch_utils import select_device

    device = device if isinstance(device, torch.device) else select_device(device, verbose=False)
    teacher.to(device)
    teacher.args = get_cfg() if args is None else args  # the criterion reads the box/cls/dfl gains from here
    # loader workers keep a GPU fed; on the CPU they would take the cores the attack runs on
    workers = min(teacher.args.workers, os.cpu_count() or 1) if device.type == "cuda" else 0
    job = CacheJob(teacher, AdversarialAttack(settings), device, batch, seed, progress, workers)
    return prepare_cache(job, data, imgsz)
