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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError, ImageDecodeError
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


@dataclass(frozen=True)
class Tables:
    """The tables a training reads, read once by whoever has them (the curve reads the manifest and
    the budget's splits to choose an arm's rows) and passed down as frames; the paths still name
    them in messages and anchor the image paths inside them (each table's ``root``)."""

    manifest: pl.DataFrame
    splits: pl.DataFrame
    synth: pl.DataFrame | None
    manifest_path: str | os.PathLike[str]
    splits_path: str | os.PathLike[str]
    synth_path: str | os.PathLike[str] | None = None


def read_tables(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], synth: str | os.PathLike[str] | None = None
) -> Tables:
    """:func:`read_inputs` as one :class:`Tables`."""
    man, spl, syn = read_inputs(manifest, splits, synth)
    return Tables(man, spl, syn, manifest, splits, synth)


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


INGESTED = "; it changed since ingest: run shiftkit ingest again (it quarantines the file), then split"


class UndecodableImage(DataError):
    """An image that ingest accepted no longer decodes (changed or damaged since): train and
    evaluate stop with one line naming the file (exit 2), never train or score around it.

    torch's DataLoader re-raises a worker's exception as ``type(exc)(text)`` where the text is
    "Caught UndecodableImage in DataLoader worker process N." plus the worker's traceback: the
    one line is taken back out of it, so the message still names the file first.
    """

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and f"{type(self).__name__}: " in message:
            message = message.rsplit(f"{type(self).__name__}: ", 1)[1].strip()
        super().__init__(message)

    def retold(self, advice: str) -> UndecodableImage:
        """The same failure told of a file ingest never saw (a folder of images without labels):
        "<path> does not decode (<reason>); <advice>" instead of the ingested file's advice."""
        what = str(self).removesuffix(INGESTED).replace(" no longer decodes ", " does not decode ", 1)
        return UndecodableImage(f"{what}; {advice}")


def decode_resized(path: str, size: int, channels: int) -> np.ndarray:
    """uint8 (size, size, channels): decoded with shiftkit's safe decoder, then resized.

    Raises:
        UndecodableImage: the file no longer decodes (the message names it and the reason).
    """
    import cv2

    try:
        px = load_pixels(path, channels=channels)
    except ImageDecodeError as exc:
        raise UndecodableImage(
            f"{path} no longer decodes ({exc.reason.value}: {exc.detail.removeprefix(f'{path}: ')}){INGESTED}"
        ) from exc
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
    from shiftkit.runtime.imap import imap

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

