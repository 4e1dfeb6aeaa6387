"""Predictions of a trained model over train (a seeded sample when large), bridge, dev and test,
plus the synthesised children of train and bridge images (domain ``synth``).

Eval mode, no augmentation, batched, on the GPU when present. A model with two sets of batch-norm
statistics (an arm's: :mod:`shiftkit.training.bnstats`) normalises the source domains' rows of train
and bridge (web, synth) with the source's and every other row with its own, the target's. The
output table follows ``schema.PREDICTIONS`` with the optional ``path`` (relative to the predictions file's folder,
so ``io.image_paths(predictions, path_of_predictions)`` finds the images) and ``source``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.console import console, make_progress
from shiftkit.core.errors import DataError, InputPathError
from shiftkit.stats.labelfree import unlabelled_rows
from shiftkit.training.params import EvaluateParams

if TYPE_CHECKING:
    import torch

# where a run directory keeps its predictions, in the order they are looked for
_RUN_DIR_CANDIDATES = ("predictions.parquet", "data/predictions/predictions.parquet")


@dataclass(frozen=True)
class EvalResult:
    path: Path
    counts: dict[str, int]
    accuracy: dict[str, float]
    seconds: float
    device: str


def resolve_predictions(path: str | os.PathLike[str]) -> Path:
    """A predictions file, or a run folder holding one.

    Raises:
        InputPathError: when neither the file nor a predictions table inside the folder exists.
    """
    p = Path(path)
    if p.is_dir():
        for cand in _RUN_DIR_CANDIDATES:
            if (p / cand).is_file():
                return p / cand
        raise InputPathError(
            f"Run folder {p} holds no predictions table; expected one of: {', '.join(_RUN_DIR_CANDIDATES)}."
        )
    if not p.exists():
        raise InputPathError(f"The predictions table {p} does not exist.")
    return p


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_predictions(df: pl.DataFrame, source: object) -> pl.DataFrame:
    """Refuse a predictions table that would make the report count or show wrong numbers.

    Every row needs a split, label, prediction, ``correct`` and a confidence in [0, 1] (the rows of
    an unlabelled split, ``unlabelled`` or ``unlabelled:<name>``, have no label and no ``correct``);
    an image has one prediction; ``correct`` says whether ``label == pred``.

    Raises:
        DataError: naming ``source``, the column and the first offending value.
    """
    where = f"The predictions table {source}"
    if df.height == 0:
        raise DataError(f"{where} has no rows.")
    labelled = df.filter(~unlabelled_rows())
    for col in ("image_id", "split", "label", "pred", "correct", "confidence"):
        nulls = (labelled if col in ("label", "correct") else df)[col].null_count()
        if nulls:
            raise DataError(f"{where} has {nulls} null value(s) in column {col!r}; every row needs one"
                            + (" (only the rows of an unlabelled split may lack it)." if col in ("label", "correct")
                               else "."))
    conf = df["confidence"]
    bad = df.filter(conf.is_nan() | (conf < 0) | (conf > 1))
    if bad.height:
        raise DataError(
            f"{where} has {bad.height} confidence value(s) that are NaN or outside [0, 1] "
            f"(first: {_short(bad['confidence'][0])} for image {_short(bad['image_id'][0])}); "
            "expected the probability of the predicted class."
        )
    dup = df.filter(pl.col("image_id").is_duplicated())
    if dup.height:
        raise DataError(
            f"{where} has {dup['image_id'].n_unique()} image_id value(s) on more than one row ({dup.height} rows; "
            f"first: {_short(dup['image_id'][0])}); expected one prediction per image."
        )
    wrong = df.filter(pl.col("label").is_not_null() & (pl.col("correct") != (pl.col("label") == pl.col("pred"))))
    if wrong.height:
        r = wrong.row(0, named=True)
        raise DataError(
            f"{where} has {wrong.height} row(s) whose column 'correct' contradicts label and pred (first: image "
            f"{_short(r['image_id'])}, label {_short(r['label'])}, pred {_short(r['pred'])}, correct {r['correct']}); "
            "expected correct == (label == pred)."
        )
    return df


def read_predictions(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read and check a predictions table (or the one in a run folder): see :func:`check_predictions`.

    Raises:
        InputPathError: when the file is missing.
        DataError: when it is empty, unreadable or fails :func:`check_predictions`.
        SchemaError: when a column is missing or mistyped.
    """
    p = resolve_predictions(path)
    return check_predictions(io.read_table(p, schema.PREDICTIONS), p)


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
    from shiftkit.training import loader as data

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
    frames.append(_unlabelled_items(man, manifest, spl))
    return pl.concat(frames, how="vertical_relaxed").unique("image_id", keep="first", maintain_order=True)


def _unlabelled_items(man: pl.DataFrame, manifest: str | os.PathLike[str], spl: pl.DataFrame) -> pl.DataFrame:
    """The images of the ``unlabelled`` pool (``ingest --unlabelled``), predicted without labels."""
    joined = man.select("image_id", "path", "root", "domain").join(
        spl.filter(pl.col("split") == schema.UNLABELLED).select("image_id", "split"), on="image_id", how="inner"
    ).sort("image_id")
    paths = [str(p) for p in io.image_paths(joined, manifest)] if joined.height else []
    return joined.select("image_id", "split", "domain", label=pl.lit(None, pl.String),
                         abspath=pl.Series(paths, dtype=pl.String), source=pl.lit("manifest"))


def _probabilities(model, meta: dict, rows: pl.DataFrame, params: EvaluateParams, device: torch.device, where: str):
    """Class probabilities of ``rows``: each image decoded once by the loader's workers (a cache
    would cost memory for images read only once), normalised on the device."""
    import torch

    from shiftkit.training import loader as data
    from shiftkit.training import models
    from shiftkit.training.batches import LoaderBatches

    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
    # rows without a label (an unlabelled pool) get a placeholder target: predict never reads targets
    targets = data.targets(rows.with_columns(pl.col("label").fill_null(meta["labels"][0])), meta["labels"], where=where)
    ds = data.ImageDataset(rows["abspath"].to_list(), targets, size=meta["img_size"], channels=meta["channels"])
    loader = data.make_loader(ds, batch_size=params.batch_size, shuffle=False, workers=params.workers, pin_memory=cuda)
    progress = make_progress()
    with progress:
        task = progress.add_task("evaluate", total=len(ds), rate="")
        batches = LoaderBatches(loader, device, mean, std, channels_last=cuda)
        return models.predict(model, batches, amp_dtype, progress=progress, task=task)


def source_rows(rows: pl.DataFrame, target_domain: str) -> np.ndarray:
    """Which rows an arm's model normalises with the source's batch-norm statistics: those of train and
    bridge from any domain but the target (web, synth). The target domain's rows, dev, test and the
    images without labels take the target's."""
    use = pl.col("split").is_in(["train", "bridge"]) & (pl.col("domain") != target_domain)
    return rows.select(use.fill_null(False)).to_series().to_numpy()


def _probabilities_per_domain(model, meta: dict, rows: pl.DataFrame, params: EvaluateParams, device: torch.device,
                              where: str, source: dict | None) -> torch.Tensor:
    """:func:`_probabilities`, with the source's batch-norm statistics swapped in for the
    :func:`source_rows` of a model that has them (``source``)."""
    if source is None:
        return _probabilities(model, meta, rows, params, device, where)
    import torch

    from shiftkit.training import bnstats

    use = source_rows(rows, bnstats.target_domain(meta))
    probs = torch.empty((rows.height, len(meta["labels"])), dtype=torch.float32)
    model.to(device)  # before the swap: the swapped-in statistics follow the model's device
    for mask, stats in ((~use, None), (use, source)):
        idx = np.flatnonzero(mask)
        if len(idx):
            with bnstats.swapped(model, stats):
                probs[torch.from_numpy(idx)] = _probabilities(model, meta, rows[idx], params, device, where)
    return probs


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
    from shiftkit.training import bnstats, models
    from shiftkit.training.batches import resolve_device

    t_start = time.perf_counter()
    model, meta = models.load_trained(model_dir)
    source = bnstats.read_source(model_dir, model, meta)
    checkpoint = str(Path(model_dir) / models.META_NAME)
    rows = select_rows(manifest, splits, synth, meta["labels"], params, checkpoint=checkpoint)
    device = resolve_device(params.device)
    probs = _probabilities_per_domain(model, meta, rows, params, device, str(manifest), source)
    conf, idx = probs.max(dim=1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
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
        pl.Series("entropy", entropy.double().numpy()),
    ).with_columns(correct=pl.col("pred") == pl.col("label"))  # null where there is no label
    io.write_table(table, out, schema.PREDICTIONS)
    stats = table.group_by("split", "domain").agg(pl.len().alias("n"), pl.col("correct").mean().alias("acc"))
    stats = stats.filter(pl.col("acc").is_not_null())  # an unlabelled pool has no accuracy
    counts = {f"{r['split']}/{r['domain']}": int(r["n"])
              for r in table.group_by("split", "domain").len("n").sort("split", "domain").to_dicts()}
    accuracy = {f"{r['split']}/{r['domain']}": float(r["acc"]) for r in stats.sort("split", "domain").to_dicts()}
    return EvalResult(out, counts, accuracy, time.perf_counter() - t_start, str(device))


def summary_line(result: EvalResult) -> str:
    """The one line that ``shiftkit evaluate`` prints about a predictions table it wrote."""
    acc = ", ".join(f"{k} {v:.3f}" for k, v in result.accuracy.items())
    return (f"predicted {sum(result.counts.values()):,} images on {result.device} in {result.seconds:.1f} s "
            f"({acc}) -> {result.path}")
