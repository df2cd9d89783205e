"""Images a stream reads from a loader of its own: an endless shuffled stream, batch by batch, each image flipped
left-right like the training images (the distillation compares student and teacher on the same image, so the stream
need not follow the clean mosaic).

Two kinds of images: the adversarial cache's (`CachedImages`: each training image attacked once per teacher) and
letterboxed images of a dataset as Ultralytics' validation reads them (`LetterboxedImages`: a clean second stream).
Both give the same uint8 images for an attack that changes nothing, in the same order for the same seed.

Examples:
    >>> from ikd_yolo.augment.adv_cache import open_attack_cache
    >>> cache, _ = open_attack_cache(teacher, data, 640, settings, "cpu", 16)  # doctest: +SKIP
    >>> stream = ImageStream(CachedImages(cache, fliplr=0.5), workers=0, seed=0)  # doctest: +SKIP
    >>> stream.next(4, torch.device("cpu")).shape  # doctest: +SKIP
    torch.Size([4, 3, 640, 640])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .adv_cache import AdversarialCache


def _flipped(img: torch.Tensor, fliplr: float) -> torch.Tensor:
    """(C, H, W) `img` flipped left-right with probability `fliplr` (torch's RNG: seeded per loader worker)."""
    if fliplr and torch.rand(()) < fliplr:
        return img.flip(-1)
    return img


class CachedImages(torch.utils.data.Dataset):
    """The cache's images as ((C, H, W) uint8 tensor, -1), each flipped left-right with probability `fliplr`; a bad
    entry gives (zeros, its index), so that the stream raises its one-line error in the main process."""

    def __init__(self, cache: AdversarialCache, fliplr: float) -> None:
        self.cache, self.fliplr = cache, float(fliplr)

    def __len__(self) -> int:
        return len(self.cache.im_files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img, problem = self.cache.load(i)
        if img is None:
            return torch.zeros(3, self.cache.imgsz, self.cache.imgsz, dtype=torch.uint8), i
        return _flipped(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), self.fliplr), -1

    def problem(self, i: int) -> Exception:
        """The one-line error of image `i` gone bad while in use."""
        return self.cache.entry_error(i, self.cache.load(i)[1] or "damaged")


class LetterboxedImages(torch.utils.data.Dataset):
    """The images of an Ultralytics dataset built without augmentation (letterboxed to its size, as validation reads
    them) as ((C, H, W) uint8 tensor, -1), each flipped left-right with probability `fliplr`."""

    def __init__(self, dataset: Any, fliplr: float) -> None:
        self.dataset, self.fliplr = dataset, float(fliplr)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return _flipped(self.dataset[i]["img"], self.fliplr), -1


class ImageStream:
    """An endless shuffled stream of a dataset's images (`CachedImages`, `LetterboxedImages`), batch by batch."""

    def __init__(self, dataset: CachedImages | LetterboxedImages, workers: int, seed: int) -> None:
        self.dataset, self.workers, self.seed, self.epoch = dataset, workers, seed, 0
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._size = 0

    def reseeded(self, seed: int) -> ImageStream:
        """A stream of the same images in another order (seed `seed`), read in the main process."""
        return ImageStream(self.dataset, 0, seed)

    def next(self, k: int, device: torch.device) -> torch.Tensor:
        """The next `k` images on `device` as floats in [0, 1]; an image gone bad is one line naming it."""
        if self._batches is None or k != self._size:
            self._size, self._batches = k, self._epochs(k)
        images, bad = next(self._batches)
        if (bad >= 0).any():
            raise self.dataset.problem(int(bad[bad >= 0][0]))
        return images.to(device, non_blocking=True).float() / 255

    def _epochs(self, k: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        while True:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            self.epoch += 1
            yield from DataLoader(self.dataset, batch_size=k, shuffle=True, drop_last=len(self.dataset) >= k,
                                  num_workers=self.workers, generator=g, persistent_workers=False)
