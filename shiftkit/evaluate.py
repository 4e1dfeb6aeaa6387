"""Predictions of a trained model over train (a seeded sample when large), bridge, dev and test,
plus the synthesised children of train and bridge images (domain ``synth``).

Eval mode, no augmentation, batched, on the GPU when present. The output table follows
``schema.PREDICTIONS`` with the optional ``path`` (relative to the predictions file's folder,
so ``io.image_paths(predictions, path_of_predictions)`` finds the images) and ``source``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from shiftkit import data, io, models, schema
from shiftkit.config import EvaluateParams
from shiftkit.console import make_progress
from shiftkit.errors import DataError


@dataclass(frozen=True)
class EvalResult:
    path: Path
    counts: dict[str, int]
    accuracy: dict[str, float]
    seconds: float
    device: str


def _sample(frame: pl.DataFrame, cap: int, seed: int) -> pl.DataFrame:
    if frame.height <= cap:
        return frame
    return frame.sample(n=cap, seed=seed, shuffle=False).sort("image_id")


def evaluate(
    manifest: str | os.PathLike[str],
    splits: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    params: EvaluateParams,
    *,
    synth: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """Write ``predictions.parquet`` for train (sampled), bridge, dev, test and synth children.

    Raises:
        DataError: when a split is empty or a manifest label is not among the model's labels.
        ModelError: when the model folder is missing, corrupt or does not fit its metadata.
    """
    t_start = time.perf_counter()
    model, meta = models.load_trained(model_dir)
    man, spl, syn = data.read_inputs(manifest, splits, synth)
    missing = sorted(set(data.labels_of(man)) - set(meta["labels"]))
    if missing:
        raise DataError(
            f"Label(s) {', '.join(map(repr, missing[:10]))} of {manifest} are missing from the checkpoint "
            f"{Path(model_dir) / models.META_NAME} (labels {', '.join(map(repr, meta['labels'][:20]))}); "
            f"retrain on this manifest."
        )
    frames = []
    for split in schema.SPLITS:
        f = data.items(man, manifest, spl, [split], syn, synth)
        real = f.filter(pl.col("source") == "manifest")
        if real.height == 0:
            raise DataError(
                f"The {split!r} split of {splits} holds no images; evaluate needs all of train, bridge, dev and test."
            )
        if split == "train":
            # a capped, seeded sample: train error needs an estimate, not every image
            f = pl.concat(
                [
                    _sample(real, params.train_sample, params.seed),
                    _sample(f.filter(pl.col("source") == "synth"), params.train_sample, params.seed),
                ]
            )
        frames.append(f)
    rows = pl.concat(frames)

    device = data.resolve_device(params.device)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
    targets = data.targets(rows, meta["labels"], where=str(manifest))
    ds = data.ImageDataset(rows["abspath"].to_list(), targets, size=meta["img_size"], channels=meta["channels"])
    loader = data.make_loader(ds, batch_size=params.batch_size, shuffle=False, workers=params.workers, pin_memory=cuda)
    progress = make_progress()
    with progress:
        task = progress.add_task("evaluate", total=len(ds), rate="")
        batches = ((data.to_input(x, mean, std, device, cuda), y) for x, y in loader)
        probs = models.predict(model, batches, amp_dtype, progress=progress, task=task)
    conf, idx = probs.max(dim=1)
    labels = np.array(meta["labels"], dtype=object)
    pred = labels[idx.numpy()].tolist()
    out = Path(out_path)
    base = out.resolve().parent
    rel = [Path(os.path.relpath(p, base)).as_posix() for p in rows["abspath"].to_list()]
    table = rows.select(
        "image_id",
        "split",
        "domain",
        "label",
        pl.Series("pred", pred, dtype=pl.String),
        pl.Series("confidence", conf.double().numpy()),
        pl.Series("path", rel, dtype=pl.String),
        "source",
    ).with_columns(correct=pl.col("pred") == pl.col("label"))
    io.write_table(table, out, schema.PREDICTIONS)
    stats = table.group_by("split", "domain").agg(pl.len().alias("n"), pl.col("correct").mean().alias("acc"))
    counts = {f"{r['split']}/{r['domain']}": int(r["n"]) for r in stats.sort("split", "domain").to_dicts()}
    accuracy = {f"{r['split']}/{r['domain']}": float(r["acc"]) for r in stats.sort("split", "domain").to_dicts()}
    return EvalResult(out, counts, accuracy, time.perf_counter() - t_start, str(device))
