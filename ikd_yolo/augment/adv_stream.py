"""The cached adversarial images as training reads them: an endless shuffled stream, batch by batch, in its own
loader, each image flipped left-right like the training images (the adversarial loss compares student and teacher on
the same image, so the stream need not follow the clean mosaic).

Examples:
    >>> from ikd_yolo.augment.adv_cache import open_attack_cache
    >>> cache, _ = open_attack_cache(teacher, data, 640, settings, "cpu", 16)  # doctest: +SKIP
    >>> stream = AdversarialStream(cache, fliplr=0.5, workers=0, seed=0)  # doctest: +SKIP
    >>> stream.next(4, torch.device("cpu")).shape  # doctest: +SKIP
    torch.Size([4, 3, 640, 640])
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .adv_cache import AdversarialCache


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
        if self.fliplr and torch.rand(()) < self.fliplr:  # torch's RNG: seeded per loader worker
            img = img[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), -1


class AdversarialStream:
    """An endless shuffled stream of cached adversarial images, batch by batch, for the trainer."""

    def __init__(self, cache: AdversarialCache, fliplr: float, workers: int, seed: int) -> None:
        self.dataset = CachedImages(cache, fliplr)
        self.workers, self.seed, self.epoch = workers, seed, 0
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._size = 0

    def reseeded(self, seed: int) -> AdversarialStream:
        """A stream of the same images in another order (seed `seed`), in the main process."""
        return AdversarialStream(self.dataset.cache, self.dataset.fliplr, 0, seed)

    def next(self, k: int, device: torch.device) -> torch.Tensor:
        """The next `k` cached images on `device` as floats in [0, 1]; CacheEntryError names an entry gone bad."""
        if self._batches is None or k != self._size:
            self._size, self._batches = k, self._epochs(k)
        images, bad = next(self._batches)
        if (bad >= 0).any():
            i = int(bad[bad >= 0][0])
            raise self.dataset.cache.entry_error(i, self.dataset.cache.load(i)[1] or "damaged")
        return images.to(device, non_blocking=True).float() / 255

    def _epochs(self, k: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        while True:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            self.epoch += 1
            yield from DataLoader(self.dataset, batch_size=k, shuffle=True, drop_last=len(self.dataset) >= k,
                                  num_workers=self.workers, generator=g, persistent_workers=False)
