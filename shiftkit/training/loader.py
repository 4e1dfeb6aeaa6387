"""torch Dataset / DataLoader over the manifest, the splits and the synth table.

Batches are uint8 (B, C, H, W) tensors (a quarter of the bytes of float32 through the pinned
copy); the trainer converts and normalises them on the device. Small images are decoded and
resized once into one shared uint8 array (the cache) before the workers fork, so an epoch is
then indexing plus augmentation. The augmentation's random state is derived from (seed, epoch,
batch), never from process state, so that a resumed run or a different number of workers sees
exactly the same images.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError
from shiftkit.images.decode import load_pixels

ITEM_COLUMNS = ("image_id", "split", "domain", "label", "abspath", "source")


# ---------------------------------------------------------------------------------------------
# tables -> items


def read_inputs(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], synth: str | os.PathLike[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """Read and validate the manifest, splits and (optional) synth tables."""
    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    syn = io.read_table(synth, schema.SYNTH) if synth is not None else None
    return man, spl, syn


def unmatched_splits(
    manifest: pl.DataFrame,
    splits: pl.DataFrame,
    manifest_path: str | os.PathLike[str],
    splits_path: str | os.PathLike[str],
) -> int:
    """How many rows of the splits table name no image of the manifest (they are left out).

    Raises:
        DataError: when no row matches: the two tables come from different data sets.
    """
    known = splits["image_id"].is_in(manifest["image_id"].implode())
    matched = int(known.sum())
    if splits.height and matched == 0:
        raise DataError(
            f"None of the {splits.height:,} rows of the splits table {splits_path} names an image of the manifest "
            f"{manifest_path}; split this manifest again (shiftkit split)."
        )
    return splits.height - matched


def labels_of(manifest: pl.DataFrame) -> list[str]:
    """The label set, fixed from the manifest (sorted), so that every model of a data set agrees."""
    labels = sorted(manifest["label"].drop_nulls().unique().to_list())
    if not labels:
        raise DataError("The manifest has no labelled images; training needs at least one label.")
    return labels


def items(
    manifest: pl.DataFrame,
    manifest_path: str | os.PathLike[str],
    splits: pl.DataFrame,
    which: Sequence[str],
    synth: pl.DataFrame | None = None,
    synth_path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """The images of the splits ``which``, with absolute paths, plus the synthesised children of
    those images (domain ``synth``, the parent's split and label).

    Columns: image_id, split, domain, label, abspath, source ('manifest' or 'synth').
    """
    joined = manifest.select("image_id", "path", "root", "domain", "label").join(
        splits.select("image_id", "split"), on="image_id", how="inner"
    )
    joined = joined.filter(pl.col("split").is_in(list(which))).sort("image_id")
    paths = [str(p) for p in io.image_paths(joined, manifest_path)]
    out = joined.select(
        "image_id", "split", "domain", "label", pl.Series("abspath", paths, dtype=pl.String), source=pl.lit("manifest")
    )
    if synth is not None and synth.height:
        syn = synth.filter(pl.col("split").is_in(list(which)))
        if "label" not in syn.columns or syn["label"].null_count():
            parent = manifest.select(pl.col("image_id").alias("parent_id"), pl.col("label").alias("_plabel"))
            syn = syn.join(parent, on="parent_id", how="left")
            syn = syn.with_columns(
                (pl.coalesce("label", "_plabel") if "label" in syn.columns else pl.col("_plabel")).alias("label")
            )
        syn = syn.sort("image_id")
        base = Path(synth_path).resolve().parent
        roots = syn["root"].to_list() if "root" in syn.columns else [None] * syn.height
        # children written under a URL (synth --images-url) name it in ``root``; else they sit beside the table
        spaths = [f"{r}/{p}" if r else str(base / p) for r, p in zip(roots, syn["path"].to_list(), strict=True)]
        out = pl.concat(
            [
                out,
                syn.select(
                    "image_id",
                    "split",
                    pl.lit("synth").alias("domain"),
                    "label",
                    pl.Series("abspath", spaths, dtype=pl.String),
                    source=pl.lit("synth"),
                ),
            ],
            how="vertical_relaxed",
        )
    missing = out.filter(pl.col("label").is_null())
    if missing.height:
        raise DataError(
            f"{missing.height} image(s) of split(s) {', '.join(which)} have no label (e.g. {missing['abspath'][0]})."
        )
    return out


def targets(frame: pl.DataFrame, labels: Sequence[str], where: str = "the data") -> np.ndarray:
    """Label indices of ``frame`` rows in ``labels``.

    Raises:
        DataError: when a label of the frame is not in ``labels`` (for example a label the
            checkpoint was not trained on).
    """
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(frame["label"].unique().to_list()) - set(index))
    if unknown:
        raise DataError(
            f"Label(s) {', '.join(map(repr, unknown[:10]))} of {where} are missing from the model's labels "
            f"({', '.join(map(repr, labels[:20]))}); retrain on this manifest."
        )
    return np.array([index[v] for v in frame["label"].to_list()], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# decoding


def decode_resized(path: str, size: int, channels: int) -> np.ndarray:
    """uint8 (size, size, channels): decoded with shiftkit's safe decoder, then resized."""
    import cv2

    px = load_pixels(path, channels=channels)
    h, w = px.shape[:2]
    if (h, w) != (size, size):
        # area averaging when shrinking keeps thin strokes; bilinear when enlarging
        interp = cv2.INTER_AREA if h * w > size * size else cv2.INTER_LINEAR
        px = cv2.resize(px, (size, size), interpolation=interp)
        if px.ndim == 2:
            px = px[..., None]
    return np.ascontiguousarray(px)


def _decode_task(args: tuple[str, int, int]) -> np.ndarray:
    return decode_resized(*args)


def build_cache(
    paths: Sequence[str], size: int, channels: int, workers: int = 0, *, out: np.ndarray | None = None
) -> np.ndarray:
    """All images decoded and resized into one (N, size, size, channels) uint8 array (``out`` when
    given: for example the numpy view of a pinned tensor, see :func:`empty_cache`)."""
    from shiftkit.runtime.parallel import imap

    if out is None:
        out = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    tasks = ((p, size, channels) for p in paths)
    for i, px in enumerate(imap(_decode_task, tasks, workers=workers, chunksize=256)):
        out[i] = px
    return out


def cache_bytes(n: int, size: int, channels: int) -> int:
    return n * size * size * channels


def cache_fits(n: int, size: int, channels: int, cache_mb: int) -> bool:
    return cache_bytes(n, size, channels) <= cache_mb * 2**20


def empty_cache(n: int, size: int, channels: int, pinned: bool = False) -> torch.Tensor:
    """An uninitialised (N, size, size, channels) uint8 cache; in page-locked memory when ``pinned``
    (CUDA), so that batches indexed from it copy to the GPU asynchronously."""
    return torch.empty((n, size, size, channels), dtype=torch.uint8, pin_memory=pinned)


# ---------------------------------------------------------------------------------------------
# augmentation


@dataclass(frozen=True)
class Augment:
    """Geometric augmentation at the input size: a random affine (translate, scale, rotate about
    the centre, border pixels replicated), then a horizontal flip with probability 1/2.

    Two implementations of one distribution: :meth:`build` (albumentations, per uint8 image, in
    the loader's worker processes) and :func:`affine_thetas` + :func:`augment_batch` (one batched
    ``affine_grid`` / ``grid_sample`` on the device). Per image, both draw

    - a shift of ``U(-translate, translate)`` times the side in x and in y, independently,
      truncated towards zero to whole pixels (albumentations' ``Affine(translate_percent=...)``);
    - a scale of ``U(1 - scale, 1 + scale)`` in x and in y, independently (``keep_ratio=False``);
    - an angle of ``U(-rotate, rotate)`` degrees;
    - a flip of the result when ``hflip``, with probability 1/2.

    The batched version interpolates bilinearly like ``cv2.warpAffine`` (``INTER_LINEAR``) and
    replicates the border (``padding_mode="border"``), but keeps float values instead of
    rounding to uint8.
    """

    translate: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    hflip: bool = False

    def active(self) -> bool:
        return bool(self.translate or self.scale or self.rotate or self.hflip)

    def build(self):
        import albumentations as A
        import cv2

        ops = []
        if self.translate or self.scale or self.rotate:
            ops.append(
                A.Affine(
                    translate_percent=(-self.translate, self.translate),
                    scale=(1 - self.scale, 1 + self.scale),
                    rotate=(-self.rotate, self.rotate),
                    border_mode=cv2.BORDER_REPLICATE,
                    p=1.0,
                )
            )
        if self.hflip:
            ops.append(A.HorizontalFlip(p=0.5))
        return A.Compose(ops, seed=0)


class ImageDataset(torch.utils.data.Dataset):
    """Images by index as uint8 (C, H, W) tensors and int64 targets.

    ``__getitems__`` fetches a whole batch at once (the DataLoader calls it in each worker), so
    per-image Python overhead is one slice of the cache and one augmentation call.
    """

    def __init__(
        self,
        paths: Sequence[str],
        targets: np.ndarray,
        *,
        size: int,
        channels: int,
        augment: Augment | None = None,
        seed: int = 0,
        cache: np.ndarray | None = None,
    ) -> None:
        # numpy arrays, not lists of Python strings: forked workers then share the pages
        # instead of copying them as reference counts change
        self.paths = np.asarray(list(paths), dtype=np.str_)
        self.targets = np.asarray(targets, dtype=np.int64)
        if len(self.paths) != len(self.targets):
            raise ValueError("paths and targets differ in length")
        self.size = size
        self.channels = channels
        self.augment = augment if augment is not None and augment.active() else None
        self.seed = seed
        self.cache = cache
        self.epoch = 0
        self._aug = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.targets)

    def _pixels(self, i: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache[i]
        return decode_resized(str(self.paths[i]), self.size, self.channels)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = [int(i) for i in indices]
        if self.cache is not None and self.augment is None:
            batch = self.cache[idx]
        else:
            batch = np.empty((len(idx), self.size, self.size, self.channels), dtype=np.uint8)
            if self.augment is not None:
                if self._aug is None:
                    self._aug = self.augment.build()
                # one seed per (seed, epoch, batch), independent of worker processes and resumes
                seq = np.random.SeedSequence([self.seed, self.epoch, idx[0], len(idx)])
                self._aug.set_random_seed(int(seq.generate_state(1)[0]))
            for j, i in enumerate(idx):
                px = self._pixels(i)
                if self._aug is not None and self.augment is not None:
                    px = self._aug(image=px)["image"]
                    if px.ndim == 2:
                        px = px[..., None]
                batch[j] = px
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)  # channels-last strides, (B, C, H, W) shape
        y = torch.from_numpy(self.targets[idx])
        return x, y

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([i])
        return x[0], y[0]


def _collate(batch):
    # __getitems__ already returns a collated (images, targets) pair
    return batch


def make_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
    world_size: int = 1,
    rank: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader whose order depends only on (seed, epoch): call ``loader.sampler.set_epoch``.

    A DistributedSampler is used even in one process, because its order is a pure function of
    seed and epoch (what resume needs); with several processes each rank gets its shard.
    """
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last and world_size > 1
    )
    kwargs = {}
    if workers > 0:
        kwargs["prefetch_factor"] = 4
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=_collate,
        # workers are forked at each epoch, so they see the dataset's current epoch
        persistent_workers=False,
        **kwargs,
    )


def set_epoch(loader: torch.utils.data.DataLoader, epoch: int) -> None:
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)


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
