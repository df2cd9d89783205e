"""The plan of an adversarial cache build, measured on its first images: the bytes and the time the rest will take,
checked against the free space of the cache's disk before the rest is attacked.

Each rank building the cache attacks its first batch, then every rank's (images, bytes, seconds, images left) goes to
every rank (`Shards.gather`), so each one reaches the same plan: all go on, or all refuse with the same line.

Examples:
    >>> plan = BuildPlan.of([(16, 16 * 240_000, 4.0, 984), (16, 16 * 250_000, 4.5, 984)], free=10 ** 12)
    >>> round(plan.bytes_per_image), plan.remaining, round(plan.seconds_left)
    (245000, 1968, 277)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ultralytics.utils import colorstr

from ..errors import InputError

MARGIN = 1.1  # headroom over the estimate: entries vary in size with their images, and the first batch is a sample


class CacheSpaceError(InputError):
    """The disk of the adversarial cache cannot hold the images still to attack."""


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _duration(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


@dataclass(frozen=True)
class BuildPlan:
    """What the first batch of every rank measured (`measured` images of `bytes` on disk), what is left to attack
    (`remaining`, all ranks), when the slowest rank will be done at its measured pace (`seconds_left`), the number of
    ranks (`world`) and the bytes `free` on the cache's disk."""

    measured: int
    bytes: int
    remaining: int
    seconds_left: float
    world: int
    free: int

    @classmethod
    def of(cls, samples: list[tuple[int, int, float, int]], free: int) -> BuildPlan:
        """The plan from each rank's (images measured, their bytes, their seconds, images it has left)."""
        left = [rest * seconds / n for n, _, seconds, rest in samples if n]
        return cls(measured=sum(s[0] for s in samples), bytes=sum(s[1] for s in samples),
                   remaining=sum(s[3] for s in samples), seconds_left=max(left, default=0.0), world=len(samples),
                   free=free)

    @property
    def bytes_per_image(self) -> float:
        return self.bytes / self.measured if self.measured else 0.0

    @property
    def need(self) -> float:
        """Bytes the images left will take, with the MARGIN."""
        return self.remaining * self.bytes_per_image * MARGIN

    def check(self, folder: Path) -> None:
        """Refuse, in one line, a build whose images left would not fit on the disk."""
        if self.need > self.free:
            raise CacheSpaceError(
                f"adversarial cache {folder} needs about {_size(self.need)} more for its {self.remaining} images left "
                f"({self.bytes_per_image / 1e3:.0f} KB each as measured on the first {self.measured}, plus "
                f"{MARGIN - 1:.0%}) but its disk has {_size(self.free)} free: free some space, or set IKD_YOLO_CACHE "
                "to a folder on a larger disk")

    def line(self, folder: Path) -> str:
        """The plan as one log line."""
        rate = self.remaining / self.seconds_left if self.seconds_left else 0.0
        ranks = f" on {self.world} ranks" if self.world > 1 else ""
        return (f"{colorstr('ikd-yolo:')} adversarial cache {folder}: {self.remaining} images left to attack, about "
                f"{_size(self.remaining * self.bytes_per_image)} ({self.bytes_per_image / 1e3:.0f} KB each) and "
                f"{_duration(self.seconds_left)} ({rate:.1f} images/s{ranks}), as measured on the first "
                f"{self.measured}; {_size(self.free)} free")
