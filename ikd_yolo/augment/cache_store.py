"""The storage of an adversarial cache: one folder of entries (`cache_entry`), their manifest and a write lock.

`AdversarialCache` reads, checks and writes the entries of one cache; what fills it is `adv_cache`'s. Reading an entry
needs its image's clean letterboxed pixels (`CleanImages`), checking its file does not, so a run checks every file
and reads a few entries in full before it trusts a cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER, colorstr

from ..errors import InputError
from .cache_entry import decode_entry, encode_entry, entry_header
from .cache_plan import CacheSpaceError
from .shards import Shards

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, writers are not serialised
    fcntl = None

MISSING = "missing"  # the status of an entry never written


class CacheEntryError(InputError):
    """A cached adversarial image changed or vanished after the cache was checked."""


def io_threads() -> int:
    """Threads for hashing, checking and writing files (cv2, zlib and hashlib release the GIL)."""
    return min(8, os.cpu_count() or 1)


class CleanImages:
    """The clean letterboxed images the entries are differences to: image `i` of the attack's dataset (`attack_dataset`,
    which the attack read it from) as RGB uint8 (H, W, C).

    Reading one leaves Python's random state as it was: Ultralytics' transforms draw from it (Format tosses its BGR
    coin even at p=0), and a cached image read in the main process (workers=0) must not move the training batches'
    augmentation draws. The lock keeps threads reading at once from restoring each other's states."""

    _rng_lock = threading.Lock()

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __call__(self, i: int) -> np.ndarray:
        with self._rng_lock:
            state = random.getstate()
            try:
                return self.dataset[i]["img"].permute(1, 2, 0).numpy()
            finally:
                random.setstate(state)


def folder_name(key: dict[str, Any]) -> str:
    """The folder of the cache of `key`: its hash."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class AdversarialCache:
    """One cache folder: `<index>.adv` per training image (dataset order), `cache.json` (the key, the images) and
    `.lock` (held while writing). `image_ids` are the images' content ids (`image_ids`), which each entry names;
    `clean(i)` gives image i's clean letterboxed pixels (`CleanImages`), which reading an entry needs (checking an
    entry's file does not)."""

    def __init__(self, root: Path, key: dict[str, Any], im_files: list[str], image_ids: list[str],
                 clean: Callable[[int], np.ndarray] | None = None) -> None:
        self.folder = Path(root) / folder_name(key)
        self.key, self.im_files, self.image_ids, self.clean = key, list(im_files), list(image_ids), clean
        self.imgsz = int(key["imgsz"])

    def path(self, i: int) -> Path:
        """Where image `i` is stored."""
        return self.folder / f"{i:07d}.adv"

    def _bytes(self, i: int) -> tuple[bytes | None, str | None]:
        try:
            return self.path(i).read_bytes(), None
        except FileNotFoundError:
            return None, MISSING
        except OSError as e:
            return None, f"unreadable ({e.strerror})"

    def load(self, i: int) -> tuple[np.ndarray | None, str | None]:
        """(entry `i` as an RGB uint8 (H, W, C) array, None), or (None, MISSING or what is wrong with it)."""
        buf, problem = self._bytes(i)
        if buf is None:
            return None, problem
        if self.clean is None:
            raise ValueError("AdversarialCache.load needs the clean images (clean=CleanImages(dataset))")
        return decode_entry(buf, self.clean(i), self.image_ids[i], self.imgsz)

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

    def status(self, i: int, full: bool = False) -> str | None:
        """None when entry `i` is sound, else MISSING or what is wrong with it: its file's own checks (name, size,
        checksum of its bytes), and with `full` its clean image and its pixels too (`load`)."""
        if full:
            return self.load(i)[1]
        buf, problem = self._bytes(i)
        return problem if buf is None else entry_header(buf, self.image_ids[i], self.imgsz)[1]

    def check(self, indices: list[int] | None = None, full: bool = False) -> dict[int, str | None]:
        """Each entry's `status`."""
        indices = range(len(self.im_files)) if indices is None else indices
        if not self.folder.is_dir():
            return dict.fromkeys(indices, MISSING)
        with ThreadPoolExecutor(io_threads()) as pool:
            return dict(zip(indices, pool.map(lambda i: self.status(i, full), indices)))

    def missing(self) -> list[int]:
        """Indices still to attack: entries missing or bad."""
        return [i for i, status in self.check().items() if status is not None]

    @contextmanager
    def writing(self, need: str, shards: Shards = Shards()) -> Iterator[None]:
        """Let the ranks of `shards` write: rank 0 holds the folder's write lock (waiting for another writer) and
        removes leftover temporary files, then all write until all are done; `need` says in the error of a folder that
        cannot be written what was to be written."""
        fd = self._lock(need) if shards.lead else None
        try:
            shards.barrier()  # the other ranks write once rank 0 holds the lock
            yield
            shards.barrier()  # and rank 0 keeps it until every rank has written its share
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock

    def _lock(self, need: str) -> int:
        """Make the folder, take its write lock (waiting for another writer), remove leftover temporary files; return
        the lock's file descriptor."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise InputError(f"adversarial cache {self.folder} needs {need} but cannot be written ({e.strerror}): set "
                             "IKD_YOLO_CACHE to a writable folder, or build the cache with ikd-yolo attack where it "
                             "can be written") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                LOGGER.info(f"{colorstr('ikd-yolo:')} waiting for another run writing the adversarial cache "
                            f"{self.folder}")
                fcntl.flock(fd, fcntl.LOCK_EX)
        for tmp in self.folder.glob(".*.tmp"):  # left by a killed writer: under the lock, nobody else writes
            tmp.unlink(missing_ok=True)
        return fd

    def store(self, i: int, rgb: np.ndarray, clean: np.ndarray | None = None) -> None:
        """Store image i's adversarial pixels `rgb` (RGB uint8 (H, W, C)) as the difference to `clean`, image i's clean
        letterboxed pixels (read from the dataset when None), atomically."""
        clean = self.clean(i) if clean is None else clean
        self._replace(self.path(i), encode_entry(np.ascontiguousarray(rgb), np.ascontiguousarray(clean),
                                                 self.image_ids[i]))

    def write_manifest(self) -> None:
        """Record the key and the image of each entry (for humans: the folder name is what is looked up), if changed."""
        text = json.dumps({"key": self.key, "images": self.im_files, "image_ids": self.image_ids}, indent=1)
        manifest = self.folder / "cache.json"
        if not manifest.is_file() or manifest.read_text() != text:
            self._replace(manifest, text.encode())

    def _replace(self, path: Path, data: bytes) -> None:
        """Write `path` atomically through a temporary name of this writer's own; a full disk is one line."""
        tmp = self.folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise CacheSpaceError(f"the disk of the adversarial cache {self.folder} is full: free some space, or set "
                                  "IKD_YOLO_CACHE to a folder on a larger disk, and run again (the entries written "
                                  "so far are kept)") from None
        finally:
            tmp.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        """Bytes the stored entries take on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("*.adv"))
