"""torchrun's process group for training: the world, this process's rank, a barrier and a sum.

One process (no WORLD_SIZE) is the default; nothing here starts a group then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _Dist:
    world_size: int
    rank: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = torch.cuda.is_available() and device_name != "cpu"
            dist.init_process_group(backend="nccl" if cuda else "gloo")
    return _Dist(world, rank, local)


def _barrier(d: _Dist) -> None:
    if d.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _all_sum(values: list[float], d: _Dist, device: torch.device) -> list[float]:
    if d.world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
