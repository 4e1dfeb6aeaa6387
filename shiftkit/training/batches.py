"""Batches on the device: the normalised model input of each batch, from the worker-process loader
(:class:`LoaderBatches`) or assembled on the device from the uint8 cache (:class:`DeviceBatches`:
index, copy as uint8, one batched random affine drawing :class:`~shiftkit.training.loader.Augment`'s
distribution, normalise), and the :class:`Feed` that says where and how batches reach the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shiftkit.training.loader import Augment, set_epoch

# ---------------------------------------------------------------------------------------------
# device side


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: the process's CUDA device when present, else the CPU.

    Raises:
        ConfigError: when CUDA is asked for and there is none.
    """
    from shiftkit.core.errors import ConfigError

    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"The 'device' parameter is {name!r}, but no CUDA device is available; use 'auto' or 'cpu'.")
    return torch.device(name)


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Float pixel values in [0, 255] -> ``(x / 255 - mean) / std``, in the memory format asked."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    return x.mul_(1.0 / 255.0).sub_(mean).div_(std)


def to_input(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device, channels_last: bool
) -> torch.Tensor:
    """uint8 batch -> normalised float on ``device`` (the copy overlaps compute from pinned memory)."""
    return normalise(x.to(device, non_blocking=True).float(), mean, std, channels_last)


class LoaderBatches:
    """The worker-process path as a batch source: a :func:`make_loader` DataLoader's uint8 batches
    (decoded and augmented per image on the CPU), normalised on the device.

    Used when the images do not fit the cache, or the cache is switched off.
    """

    def __init__(
        self,
        loader: torch.utils.data.DataLoader,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        channels_last: bool = False,
    ) -> None:
        self.loader, self.device, self.mean, self.std, self.channels_last = loader, device, mean, std, channels_last

    def set_epoch(self, epoch: int) -> None:
        set_epoch(self.loader, epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield (
                to_input(x, self.mean, self.std, self.device, self.channels_last),
                y.to(self.device, non_blocking=True),
            )


# ---------------------------------------------------------------------------------------------
# the device path: batches indexed from the uint8 cache, augmented on the device


def batch_generator(seed: int, epoch: int, rank: int, batch: int) -> torch.Generator:
    """The CPU generator of one batch's augmentation: a function of (seed, epoch, rank, batch)
    alone, so that a resumed run, another device or another number of processes per batch
    draws the same parameters."""
    words = np.random.SeedSequence([seed, epoch, rank, batch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def affine_thetas(augment: Augment, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) float32 matrices for ``F.affine_grid`` drawing :class:`Augment`'s distribution for
    images of ``size`` x ``size`` pixels; the draws come from ``generator`` (on the CPU)."""
    u = torch.rand((n, 6), generator=generator, dtype=torch.float64) * 2 - 1  # U(-1, 1)
    # albumentations' Affine: whole pixels, truncated towards zero
    tx, ty = torch.trunc(u[:, 0] * augment.translate * size), torch.trunc(u[:, 1] * augment.translate * size)
    flip = u[:, 5] < 0 if augment.hflip else torch.zeros(n, dtype=torch.bool)
    return affine_matrix(
        tx, ty, 1 + u[:, 2] * augment.scale, 1 + u[:, 3] * augment.scale, u[:, 4] * augment.rotate, flip, size
    )


def affine_matrix(
    tx: torch.Tensor,
    ty: torch.Tensor,
    sx: torch.Tensor,
    sy: torch.Tensor,
    degrees: torch.Tensor,
    flip: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices of the map albumentations' ``Affine`` builds (shift by
    (tx, ty) pixels, scale (sx, sy), rotate ``degrees``, all about the image centre), followed by
    a horizontal flip where ``flip``."""
    c, s = torch.cos(torch.deg2rad(degrees)), torch.sin(torch.deg2rad(degrees))
    f = torch.where(flip, -1.0, 1.0).to(torch.float64)
    tx, ty = tx * (2.0 / size), ty * (2.0 / size)  # pixels -> normalised units (the side is 2)
    # forward: out = R S in + t with R = [[c, s], [-s, c]], then out is flipped in x (F);
    # affine_grid maps output to input: in = S^-1 R^T (F out - t)
    rows = [
        torch.stack([c * f / sx, -s / sx, -(c * tx - s * ty) / sx], dim=1),
        torch.stack([s * f / sy, c / sy, -(s * tx + c * ty) / sy], dim=1),
    ]
    return torch.stack(rows, dim=1).float()


def augment_batch(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """One batched random affine: float (B, C, H, W) images warped by ``theta`` (B, 2, 3), bilinear,
    border pixels replicated. Forward only (deterministic on CUDA; its backward would not be)."""
    import torch.nn.functional as F

    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class DeviceBatches:
    """Batches assembled on the device from a uint8 cache (N, H, W, C).

    Per batch: the indices of a :class:`~torch.utils.data.distributed.DistributedSampler` (the
    same order as :func:`make_loader`), the images indexed from the cache (into page-locked
    memory on CUDA), copied as uint8 with ``non_blocking``, augmented in one batched affine
    (:func:`augment_batch`), normalised, in channels-last when asked. On CUDA the next batch is
    prepared on a side stream while the current one computes (as timm's ``PrefetchLoader``); on
    the CPU the same code runs in order on CPU tensors.
    """

    def __init__(
        self,
        cache: torch.Tensor | np.ndarray,
        targets: np.ndarray,
        *,
        batch_size: int,
        feed: Feed,
        augment: Augment | None = None,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        from torch.utils.data.distributed import DistributedSampler

        self.cache = torch.from_numpy(cache) if isinstance(cache, np.ndarray) else cache
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        if self.cache.shape[0] != len(self.targets):
            raise ValueError("cache and targets differ in length")
        self.batch_size, self.feed, self.seed = batch_size, feed, seed
        self.augment = augment if augment is not None and augment.active() else None
        self.drop_last = drop_last  # the sampler evens out replicas; __len__ drops a short last batch
        self.sampler = DistributedSampler(
            range(len(self.targets)),
            num_replicas=feed.world_size,
            rank=feed.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=self.drop_last,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _chunks(self) -> list[list[int]]:
        order = list(iter(self.sampler))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return chunks[: len(self)]

    def _batch(self, b: int, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        feed, cuda = self.feed, self.feed.device.type == "cuda"
        idx_t = torch.as_tensor(idx, dtype=torch.int64)
        if cuda:  # gather straight into page-locked memory: the copy to the GPU is then asynchronous
            xb = torch.empty((len(idx), *self.cache.shape[1:]), dtype=torch.uint8, pin_memory=True)
            torch.index_select(self.cache, 0, idx_t, out=xb)
            yb = self.targets.index_select(0, idx_t).pin_memory()
        else:
            xb, yb = self.cache.index_select(0, idx_t), self.targets.index_select(0, idx_t)
        x = xb.permute(0, 3, 1, 2)  # (B, C, H, W) with channels-last strides
        y = yb.to(feed.device, non_blocking=True)
        if self.augment is None:
            return to_input(x, feed.mean, feed.std, feed.device, feed.channels_last), y
        gen = batch_generator(self.seed, self.epoch, feed.rank, b)
        theta = affine_thetas(self.augment, len(idx), x.shape[-1], gen)
        theta = (theta.pin_memory() if cuda else theta).to(feed.device, non_blocking=True)
        xf = augment_batch(x.to(feed.device, non_blocking=True).float(), theta)
        return normalise(xf, feed.mean, feed.std, feed.channels_last), y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        chunks = self._chunks()
        if self.feed.device.type != "cuda":
            for b, idx in enumerate(chunks):
                yield self._batch(b, idx)
            return
        yield from self._prefetched(chunks)

    def _prefetched(self, chunks: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batch b+1 is gathered and enqueued on a side stream before batch b is handed out; the host
        runs at most two steps ahead of the GPU (each prepared batch holds page-locked memory)."""
        from collections import deque

        device = self.feed.device
        side, main = torch.cuda.Stream(device=device), torch.cuda.current_stream(device)
        handed: deque[torch.cuda.Event] = deque()

        def load(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.cuda.stream(side):
                return self._batch(b, chunks[b])

        ready = load(0) if chunks else None
        for b in range(len(chunks)):
            main.wait_stream(side)
            x, y = ready
            x.record_stream(main)
            y.record_stream(main)
            if b + 1 < len(chunks):
                while len(handed) >= 2:
                    handed.popleft().synchronize()
                ready = load(b + 1)
            yield x, y
            event = torch.cuda.Event()
            event.record(main)
            handed.append(event)


@dataclass(frozen=True)
class Feed:
    """Where and how batches reach the model: the device, the normalisation (tensors shaped
    (1, C, 1, 1) on the device), the memory format and this process's shard."""

    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    channels_last: bool = False
    world_size: int = 1
    rank: int = 0

    @classmethod
    def of(cls, device: torch.device, mean, std, channels_last: bool = False, world_size: int = 1, rank: int = 0):
        """A feed from plain (mean, std) sequences."""
        m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return cls(device, m, s, channels_last, world_size, rank)
