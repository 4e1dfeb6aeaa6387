"""Predictions of images without labels: a folder, a listing, or the rows of a data drop.

``shiftkit evaluate --images PATH`` predicts them as the split ``unlabelled`` (or
``unlabelled:<name>``) with ``label`` and ``correct`` null, and can add them to an existing
predictions table (``--add-to``), where the report's label-free section and ``shiftkit check
--model`` read them beside the labelled dev split.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError, DataError, InputPathError
from shiftkit.training.params import EvaluateParams

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def split_name(name: str | None) -> str:
    """``unlabelled`` or ``unlabelled:<name>``.

    Raises:
        ConfigError: when the name is empty or holds a character other than letters, digits, ``-_.``.
    """
    if not name:
        return schema.UNLABELLED
    if not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"--name {name!r}: expected letters, digits, '-', '_' or '.' only.")
    return f"{schema.UNLABELLED}:{name}"


def image_files(source: str | os.PathLike[str], option: str = "") -> list[Path]:
    """The image files of a folder (recursively, by suffix) or of a CSV/parquet listing (column path).

    Raises:
        InputPathError: when the path does not exist.
        DataError: when it holds no image file, or a listing is malformed.
    """
    from shiftkit.ingest.walk import read_listing

    p = Path(source)
    what = f"{option} {p}" if option else f"The images {p}"
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    elif p.is_file():
        rows = read_listing(p, unlabelled_domain="unlabelled")
        files = [f if f.is_absolute() else p.resolve().parent / f for f in map(Path, rows["path"].to_list())]
        absent = [f for f in files if not f.is_file()]
        if absent:
            raise InputPathError(f"Listing {p} names {len(absent)} file(s) that do not exist (first: {absent[0]}).")
    else:
        raise InputPathError(f"{what}: no such folder or file (expected a folder of images or a CSV/parquet listing).")
    if not files:
        raise DataError(f"{what} holds no image file (expected suffixes: {', '.join(IMAGE_SUFFIXES)}).")
    return files


def predict_files(
    files: list[Path],
    model_dir: str | os.PathLike[str],
    params: EvaluateParams,
    *,
    split: str = schema.UNLABELLED,
    domain: str = "target",
    image_ids: list[str] | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """Predictions of ``files`` without labels (``schema.PREDICTIONS`` columns, ``abspath`` added)
    and the model's labels.

    Raises:
        DataError: when there is no file.
        ModelError: when the model folder is missing or corrupt.
        ImageDecodeError: when a file cannot be decoded.
    """
    from shiftkit.training import models
    from shiftkit.training.batches import resolve_device
    from shiftkit.training.evaluate import _probabilities

    if not files:
        raise DataError("There are no images to predict (an empty drop or folder).")
    model, meta = models.load_trained(model_dir)
    ids = image_ids or [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]
    rows = pl.DataFrame({
        "image_id": ids,
        "split": [split] * len(files),
        "domain": [domain] * len(files),
        "label": pl.Series([None] * len(files), dtype=pl.String),
        "abspath": [str(f) for f in files],
    }).unique("image_id", keep="first", maintain_order=True)
    probs = _probabilities(model, meta, rows, params, resolve_device(params.device), "the unlabelled images")
    conf, idx = probs.max(dim=1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    labels = list(meta["labels"])
    table = rows.with_columns(
        pred=pl.Series([labels[i] for i in idx.tolist()], dtype=pl.String),
        confidence=pl.Series(conf.double().numpy()),
        correct=pl.lit(None, pl.Boolean),
        entropy=pl.Series(entropy.double().numpy()),
        source=pl.lit("manifest"),
    )
    return table, labels


def evaluate_images(
    source: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    params: EvaluateParams,
    *,
    name: str | None = None,
    add_to: str | os.PathLike[str] | None = None,
) -> tuple[Path, int, str]:
    """Predict a folder or listing of unlabelled images into ``out_path`` (atomically): alone, or
    added to the predictions table ``add_to`` (its rows of the same split replaced).

    Returns the table's path, the number of images predicted and the split name.

    Raises:
        InputPathError, DataError, ConfigError, ModelError, ImageDecodeError: bad inputs.
    """
    from shiftkit.training.evaluate import check_predictions, read_predictions, resolve_predictions

    split = split_name(name)
    files = image_files(source, option="--images")
    table, _ = predict_files(files, model_dir, params, split=split)
    out = Path(out_path)
    base = out.resolve().parent
    table = table.with_columns(
        path=pl.Series([Path(os.path.relpath(p, base)).as_posix() for p in table["abspath"].to_list()],
                       dtype=pl.String)
    ).drop("abspath")
    if add_to is not None:
        old = read_predictions(add_to).filter(pl.col("split") != split)
        if "path" in old.columns:  # rebase the old rows' paths on the new table's folder
            old_base = resolve_predictions(add_to).resolve().parent
            old = old.with_columns(pl.col("path").map_elements(
                lambda p: Path(os.path.relpath(old_base / p, base)).as_posix(), return_dtype=pl.String))
        clash = old.join(table.select("image_id"), on="image_id", how="semi")
        if clash.height:
            raise DataError(f"{clash.height} of the unlabelled images are already in {add_to} (split "
                            f"{clash['split'][0]!r}, first {clash['image_id'][0][:12]}); expected new images.")
        table = pl.concat([old, table], how="diagonal_relaxed")
    check_predictions(table, out)
    io.write_table(table, out, schema.PREDICTIONS)
    return out, len(files), split


def live_estimator(
    model_dir: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    params: EvaluateParams,
    *,
    replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Callable[[dict[str, pl.DataFrame], pl.DataFrame], dict[str, Any]]:
    """The estimator ``shiftkit check --model`` hands the check stage (``check/live.py``): it predicts
    each drop's files with the model and estimates their error with the variant that has the smallest
    audited error on dev, calibrated on the model's labelled predictions (``predictions``).

    Raises:
        InputPathError, SchemaError, DataError: predictions missing, without confidences or dev.
        ModelError: a missing or corrupt model folder.
        DataError: a model for other labels than the predictions'.
    """
    from shiftkit.stats.bootstrap import cluster_ids
    from shiftkit.stats.labelfree import label_free, labelled, sample, sets_of
    from shiftkit.training import models
    from shiftkit.training.evaluate import read_predictions, resolve_predictions

    cal = labelled(read_predictions(predictions))
    meta = models.read_meta(Path(model_dir) / models.META_NAME)
    known = set(meta["labels"])
    foreign = sorted((set(cal["label"].to_list()) | set(cal["pred"].to_list())) - known)
    if foreign:
        raise DataError(
            f"The model {model_dir} knows labels {', '.join(map(repr, sorted(known)[:12]))}, but the predictions "
            f"{resolve_predictions(predictions)} hold {', '.join(map(repr, foreign[:12]))}: a model for other labels."
        )
    sets_of(cal)  # refuse predictions without a labelled dev split before anything is predicted

    def run(frames: dict[str, pl.DataFrame], reference: pl.DataFrame) -> dict[str, Any]:
        sets = sets_of(cal, cluster_ids(reference if reference.height else None))
        for name, frame in frames.items():
            if frame.height == 0:
                raise DataError(f"The {name} holds no image to predict (an empty drop); nothing to estimate.")
            table, _ = predict_files(list(map(Path, frame["file"].to_list())), model_dir, params,
                                     split=split_name(name.replace(" ", "-")), image_ids=frame["image_id"].to_list())
            sets[name] = sample(table)
        lf = label_free(sets, replicates=replicates, level=level, seed=seed)
        per = lf.estimates[lf.chosen]
        return {"estimator": lf.chosen, "dev_error": per["dev"].actual, "audit": lf.audit(lf.chosen),
                "drops": [{"drop": n, "images": per[n].n, "estimate": per[n].estimate, "ci_low": per[n].ci_low,
                           "ci_high": per[n].ci_high} for n in frames]}

    return run
