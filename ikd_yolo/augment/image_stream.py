"""Images a stream reads from a loader of its own: an endless shuffled stream, batch by batch, each image flipped
left-right like the training images (the distillation compares student and teacher on the same image, so the stream
need not follow the clean mosaic).

Three kinds of images: the adversarial cache's (`CachedImages`: each training image attacked once per teacher),
letterboxed images of a dataset as Ultralytics' validation reads them (`LetterboxedImages`: a clean second stream of
the training split, of unlabelled images or of both), and a training dataset with its augmentations
(`AugmentedImages`). The first two give the same uint8 images for an attack that changes nothing, in the same order
for the same seed.

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


class AugmentedImages(torch.utils.data.Dataset):
    """The images of an Ultralytics training dataset with its augmentations (mosaic, affine, colour, flips), as
    ((C, H, W) uint8 tensor, -1): a second draw of what training sees, without its labels."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.dataset[i]["img"], -1

    def close_mosaic(self, hyp: Any) -> None:
        """Stop mosaic with the training loader (Ultralytics' last close_mosaic epochs)."""
        self.dataset.mosaic = False
        self.dataset.close_mosaic(hyp=hyp)


class ImageStream:
    """An endless shuffled stream of a dataset's images (`CachedImages`, `LetterboxedImages`, `AugmentedImages`),
    batch by batch; each pass over the images is a permutation drawn from `seed` and the pass number, so the stream can
    start at any batch (`drawn`: a resumed run goes on where it stopped) without reading the images before it. Under
    DDP every rank draws the same permutation and takes its own share of its batches (every `world`-th from `rank`)."""

    def __init__(self, dataset: torch.utils.data.Dataset, workers: int, seed: int, drawn: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        self.dataset, self.workers, self.seed = dataset, workers, seed
        self.rank, self.world = max(rank, 0), max(world, 1)
        self.drawn = drawn  # batches this rank handed out so far (of the size asked for)
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._size = 0

    def reseeded(self, seed: int) -> ImageStream:
        """A stream of the same images in another order (seed `seed`), read in the main process."""
        return ImageStream(self.dataset, 0, seed, rank=self.rank, world=self.world)

    def next(self, k: int, device: torch.device) -> torch.Tensor:
        """The next `k` images on `device` as floats in [0, 1]; an image gone bad is one line naming it."""
        if self._batches is None or k != self._size:
            self._size, self._batches = k, self._from(self.drawn, k)
        images, bad = next(self._batches)
        self.drawn += 1
        if (bad >= 0).any():
            raise self.dataset.problem(int(bad[bad >= 0][0]))
        return images.to(device, non_blocking=True).float() / 255

    def _from(self, drawn: int, k: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `k` images from batch `drawn` on: pass p's order is a permutation seeded by seed + p."""
        from torch.utils.data import DataLoader

        n = len(self.dataset)
        per_pass = n // k if n >= k else 1  # a pass drops its last partial batch, unless the set is smaller than k
        mine = max(per_pass // self.world, 1)  # each rank's batches of a pass: the same count on every rank
        p, first = divmod(drawn, mine)
        while True:
            g = torch.Generator().manual_seed(self.seed + p)
            # the draw a shuffling DataLoader makes before its permutation (its workers' base seed), so a pass orders
            # the images as a DataLoader(shuffle=True, generator=g) would
            torch.empty((), dtype=torch.int64).random_(generator=g)
            order = torch.randperm(n, generator=g).tolist()
            batches = [order[i:i + k] for i in range(0, per_pass * k if n >= k else n, k)]
            batches = (batches[self.rank::self.world] if per_pass >= self.world else batches)[:mine][first:]
            yield from DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers, generator=g,
                                  persistent_workers=False)
            p, first = p + 1, 0
