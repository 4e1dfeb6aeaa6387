"""A decoded-image store shared by several trainings (the learning curve's arms and budgets).

Training decodes and resizes its images once into a uint8 cache (:func:`shiftkit.training.loader.build_cache`).
A learning curve trains the same images again and again: every arm at every budget. The store
decodes them once for all: ``pixels.npy`` (N, size, size, channels) uint8, ``index.parquet``
(``image_id`` -> row) and ``meta.json`` (size, channels). A training given the store copies the
rows of its images (memory-mapped, so only those rows are read) and decodes only what the store
lacks. ``image_id`` is the sha256 of the file's bytes, so a row is the decode of exactly those
bytes, wherever the file lies: the pixels, and so the trained model, are the same with or
without the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core.errors import DataError
from shiftkit.training import loader as data

PIXELS = "pixels.npy"
INDEX = "index.parquet"
META = "meta.json"
FORMAT = 1


def _items(manifest: str | os.PathLike[str], splits: str | os.PathLike[str],
           synth: str | os.PathLike[str] | None, copies_only: bool = False) -> pl.DataFrame:
    """Every image a training may read: the train and dev splits, with the train images' children
    (the children alone when ``copies_only``)."""
    man, spl, syn = data.read_inputs(manifest, splits, synth)
    rows = data.items(man, manifest, spl, ["train", "dev"], syn, synth)
    if copies_only:
        rows = rows.filter(pl.col("source") == "synth")
    return rows.select("image_id", "abspath").unique("image_id", keep="first", maintain_order=True)


def write_store(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], out_dir: str | os.PathLike[str],
    size: int, channels: int, *, synth: str | os.PathLike[str] | None = None, max_mb: int | None = None,
    workers: int = 0, skip: str = "", copies_only: bool = False,
) -> dict[str, Any]:
    """Decode every training image of ``splits`` (and ``synth``'s children) into the store at ``out_dir``.

    ``copies_only``: only ``synth``'s children (a store of the synthesised copies beside the
    manifest's, so that a model without synthesis never depends on it, while every training with
    copies copies them instead of decoding them again).

    When the pixels would take more than ``max_mb`` (a training's ``cache_mb``: it could not hold
    them either), or ``skip`` gives a reason, the store is written empty and says why; trainings
    then decode as usual. Returns the meta dict.

    Raises:
        DataError, InputPathError: on unreadable tables or images (as training would).
    """
    rows = _items(manifest, splits, synth, copies_only)
    n = rows.height
    need_mb = data.cache_bytes(n, size, channels) / 2**20
    if not skip and max_mb is not None and need_mb > max_mb:
        skip = f"{n:,} images at {size} px need {need_mb:,.0f} MB, more than train.cache_mb={max_mb}"
    kept = rows.head(0) if skip else rows
    meta = {"format": FORMAT, "size": size, "channels": channels, "images": kept.height, "skipped": skip}
    with io.replace_dir(out_dir, owned=(PIXELS, INDEX, META)) as tmp:
        arr = np.lib.format.open_memmap(tmp / PIXELS, mode="w+", dtype=np.uint8,
                                        shape=(kept.height, size, size, channels))
        if kept.height:
            data.build_cache(kept["abspath"].to_list(), size, channels, workers, out=arr)
        arr.flush()
        del arr
        index = kept.select("image_id", pl.int_range(pl.len(), dtype=pl.Int64).alias("row"))
        index.write_parquet(tmp / INDEX)
        io.write_json(tmp / META, meta)
    return meta


@dataclass
class PixelStore:
    """An opened store: its folder, size and channels, and row of each image id."""

    folder: Path
    size: int
    channels: int
    rows: dict[str, int]

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> PixelStore:
        """Raises: DataError when ``folder`` is not a store this version wrote."""
        f = Path(folder)
        try:
            meta = io.read_json(f / META)
            index = pl.read_parquet(f / INDEX)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            raise DataError(f"{f} is not a decoded-image store ({META} and {INDEX} expected): {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(f"{f / META} is not a decoded-image store of format {FORMAT}; rebuild it.")
        return cls(f, int(meta["size"]), int(meta["channels"]),
                   dict(zip(index["image_id"].to_list(), index["row"].to_list(), strict=True)))

    def matches(self, size: int, channels: int) -> bool:
        return (self.size, self.channels) == (size, channels)

    def fill(self, image_ids: list[str], out: np.ndarray) -> np.ndarray:
        """Copy the stored rows of ``image_ids`` into ``out`` (N, size, size, channels); returns a
        bool mask of the images found (the others are left for the caller to decode)."""
        found = np.array([i in self.rows for i in image_ids], dtype=bool)
        if found.any():
            pixels = np.load(self.folder / PIXELS, mmap_mode="r")
            src = np.array([self.rows[i] for i, ok in zip(image_ids, found, strict=True) if ok], dtype=np.int64)
            order = np.argsort(src, kind="stable")  # read the file front to back
            dst = np.flatnonzero(found)[order]
            out[dst] = pixels[src[order]]
        return found
