"""The processes that build one adversarial cache together: every rank of a DDP run, or this process alone.

Under DDP (Ultralytics' launch: the ranks of one node, `torch.distributed` initialised) each rank checks and attacks
its share of the images, `items[rank::world]`, so that every image is attacked exactly once and eight GPUs build a
cache eight times faster than one; rank 0 alone locks the folder and writes the manifest. Alone, the share is
everything and the collectives return at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shards:
    """This process's `rank` among the `world` processes building a cache (0 of 1: alone)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Shards:
        """The ranks of the initialised default process group, else this process alone."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def lead(self) -> bool:
        """True on the rank that locks the folder, writes the manifest and logs (rank 0)."""
        return self.rank == 0

    def share(self, items: list[T]) -> list[T]:
        """This rank's share of `items`: every world-th item from the rank-th."""
        return items[self.rank::self.world]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order (a collective: every rank calls it)."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def from_lead(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a collective)."""
        return self.gather(value)[0]

    def barrier(self) -> None:
        """Wait until every rank gets here (a collective)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
