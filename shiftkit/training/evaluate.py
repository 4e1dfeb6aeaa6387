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

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.console import console, make_progress
from shiftkit.core.errors import DataError
from shiftkit.training import loader as data
from shiftkit.training import models
from shiftkit.training.params import EvaluateParams


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


def select_rows(
    manifest: str | os.PathLike[str],
    splits: str | os.PathLike[str],
    synth: str | os.PathLike[str] | None,
    model_labels: list[str],
    params: EvaluateParams,
    *,
    checkpoint: str = "model",
) -> pl.DataFrame:
    """The rows to predict: train (a capped, seeded sample), bridge, dev and test, with synth children.

    Raises:
        DataError: when a split is empty or a manifest label is not among the model's labels.
    """
    man, spl, syn = data.read_inputs(manifest, splits, synth)
    missing = sorted(set(data.labels_of(man)) - set(model_labels))
    if missing:
        raise DataError(
            f"Label(s) {', '.join(map(repr, missing[:10]))} of {manifest} are missing from the checkpoint "
            f"{checkpoint} (labels {', '.join(map(repr, model_labels[:20]))}); retrain on this manifest."
        )
    unmatched = data.unmatched_splits(man, spl, manifest, splits)
    if unmatched:
        console.print(
            f"[yellow]evaluate: {unmatched:,} of {spl.height:,} rows of {splits} name no image of {manifest}; "
            f"they are left out.[/]"
        )
    frames = []
    for split in schema.SPLITS:
        # one prediction per distinct image: byte-identical synthesised copies share an image_id
        f = data.items(man, manifest, spl, [split], syn, synth).unique("image_id", keep="first", maintain_order=True)
        real = f.filter(pl.col("source") == "manifest")
        if real.height == 0:
            raise DataError(
                f"The {split!r} split of {splits} holds no images; evaluate needs all of train, bridge, dev and test."
            )
        if split == "train":
            # a capped, seeded sample: train error needs an estimate, not every image
            kids = f.filter(pl.col("source") == "synth")
            f = pl.concat(
                [_sample(real, params.train_sample, params.seed), _sample(kids, params.train_sample, params.seed)]
            )
        frames.append(f)
    return pl.concat(frames).unique("image_id", keep="first", maintain_order=True)


def _probabilities(model, meta: dict, rows: pl.DataFrame, params: EvaluateParams, device: torch.device, where: str):
    """Class probabilities of ``rows``: each image decoded once by the loader's workers (a cache
    would cost memory for images read only once), normalised on the device."""
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
    targets = data.targets(rows, meta["labels"], where=where)
    ds = data.ImageDataset(rows["abspath"].to_list(), targets, size=meta["img_size"], channels=meta["channels"])
    loader = data.make_loader(ds, batch_size=params.batch_size, shuffle=False, workers=params.workers, pin_memory=cuda)
    progress = make_progress()
    with progress:
        task = progress.add_task("evaluate", total=len(ds), rate="")
        batches = data.LoaderBatches(loader, device, mean, std, channels_last=cuda)
        return models.predict(model, batches, amp_dtype, progress=progress, task=task)


def evaluate(
    manifest: str | os.PathLike[str],
    splits: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    params: EvaluateParams,
    *,
    synth: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """Write ``predictions.parquet`` (atomically) for train (sampled), bridge, dev, test and synth children.

    Raises:
        DataError: when a split is empty or a manifest label is not among the model's labels.
        ModelError: when the model folder is missing, corrupt or does not fit its metadata.
    """
    t_start = time.perf_counter()
    model, meta = models.load_trained(model_dir)
    checkpoint = str(Path(model_dir) / models.META_NAME)
    rows = select_rows(manifest, splits, synth, meta["labels"], params, checkpoint=checkpoint)
    device = data.resolve_device(params.device)
    probs = _probabilities(model, meta, rows, params, device, str(manifest))
    conf, idx = probs.max(dim=1)
    pred = np.array(meta["labels"], dtype=object)[idx.numpy()].tolist()
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
