"""``shiftkit report``: the error decomposition, error analysis and next steps of one run.

Reads tables only (predictions, and optionally the manifest and the synth table); the numbers
come from :mod:`shiftkit.stats.decompose` and :mod:`shiftkit.report.analysis`; this package renders them:
``report.md``, a self-contained ``report.html``, ``metrics.json`` (design section 4),
``analysis.json``, plot data for ``dvc plots`` and a table in the terminal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError, ImageDecodeError, InputPathError
from shiftkit.report.analysis import Analysis, Recommendation, analyse, recommend
from shiftkit.report.params import ReportParams
from shiftkit.stats.decompose import (
    GAP_TITLES,
    SYNTH_DOMAIN,
    Change,
    Decomposition,
    check_human_error,
    cluster_ids,
    compare,
    decompose,
    joint_table,
    run_table,
)

__all__ = ["ReportData", "build_report", "write_report", "run_report", "read_predictions", "resolve_predictions"]

# where a run directory keeps its predictions, in the order they are looked for
_RUN_DIR_CANDIDATES = ("predictions.parquet", "data/predictions/predictions.parquet")


@dataclass
class ReportData:
    """Everything a report shows, computed once and rendered by every writer."""

    predictions: str
    decomposition: Decomposition
    analysis: Analysis
    recommendations: list[Recommendation]
    params: ReportParams
    compare: dict[str, Change] | None = None
    compare_source: str | None = None
    gallery: list[dict] = field(default_factory=list)  # rows + "thumb" (PNG bytes or None) + "file"
    notes: list[str] = field(default_factory=list)
    curve: dict | None = None  # the learning curve (shiftkit/report/curve.py), when one was built


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

    Every row needs a split, label, prediction, ``correct`` and a confidence in [0, 1]; an image
    has one prediction; ``correct`` says whether ``label == pred``.

    Raises:
        DataError: naming ``source``, the column and the first offending value.
    """
    where = f"The predictions table {source}"
    if df.height == 0:
        raise DataError(f"{where} has no rows.")
    for col in ("image_id", "split", "label", "pred", "correct", "confidence"):
        nulls = df[col].null_count()
        if nulls:
            raise DataError(f"{where} has {nulls} null value(s) in column {col!r}; every row needs one.")
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
    wrong = df.filter(pl.col("correct") != (pl.col("label") == pl.col("pred")))
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


def _gallery(rows: pl.DataFrame, manifest: pl.DataFrame | None, manifest_path: Path | None,
             predictions_path: Path, notes: list[str]) -> list[dict]:
    from shiftkit.images.decode import decode
    from shiftkit.report.figures import thumbnail

    files: dict[str, Path] = {}
    if manifest is not None and manifest_path is not None and rows.height:
        sub = manifest.join(rows.select("image_id"), on="image_id", how="semi")
        files = dict(zip(sub["image_id"].to_list(), io.image_paths(sub, manifest_path), strict=True))
    if not files and "path" in rows.columns:
        base = predictions_path.resolve().parent
        files = {i: base / p for i, p in zip(rows["image_id"].to_list(), rows["path"].to_list(), strict=True) if p}
    out, unreadable = [], 0
    for r in rows.to_dicts():
        f = files.get(r["image_id"])
        thumb = None
        if f is not None:
            try:
                thumb = thumbnail(decode(f).pixels)
            except (ImageDecodeError, OSError):
                unreadable += 1
        out.append({**r, "thumb": thumb, "file": None if f is None else os.path.relpath(f)})
    if rows.height and not files:
        notes.append("No image paths for the gallery (give --manifest): it lists the images without thumbnails.")
    if unreadable:
        notes.append(f"{unreadable} gallery image(s) could not be read: shown without thumbnails.")
    return out


def _cluster_notes(preds: pl.DataFrame, man_df: pl.DataFrame | None, syn_df: pl.DataFrame | None) -> list[str]:
    """What the clusters could not take into account, for lack of the manifest or synth table."""
    notes = []
    if man_df is None:
        notes.append("No manifest given: near copies (dup_group) are unknown, so each image and its "
                     "synthesised children form a cluster on their own; intervals may be too narrow.")
    has_kids = preds.filter(pl.col("domain") == SYNTH_DOMAIN).height > 0
    if has_kids and syn_df is None:
        notes.append("Synthesised images without the synth table (--synth): they cannot be tied to their "
                     "parents and are resampled as independent images; intervals may be too narrow.")
    return notes


def build_report(
    predictions: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    synth: str | os.PathLike[str] | None = None,
    compare_to: str | os.PathLike[str] | None = None,
    params: ReportParams | None = None,
    human_error: float | None = None,
    curve: str | os.PathLike[str] | None = None,
) -> ReportData:
    """Compute the decomposition, error analysis and recommendations of one run.

    Raises:
        InputPathError: when an input file is missing.
        DataError: when a table is empty or holds no usable rows.
        SchemaError: when a table lacks a column or has one of the wrong type.
        ConfigError: when the human error is outside [0, 1).
    """
    params = params or ReportParams()
    human = check_human_error(params.human_error if human_error is None else human_error)
    pred_path = resolve_predictions(predictions)
    preds = read_predictions(pred_path)
    man_df = io.read_table(manifest, schema.MANIFEST) if manifest is not None else None
    syn_df = io.read_table(synth, schema.SYNTH) if synth is not None else None
    if man_df is not None and man_df.height == 0:
        raise DataError(f"The manifest table {manifest} has no rows.")
    other = read_predictions(resolve_predictions(compare_to)) if compare_to is not None else None
    clusters = cluster_ids(man_df, syn_df)
    synth_on = params.include_synth

    def decompose_run(p: pl.DataFrame) -> Decomposition:
        return decompose(run_table(p, clusters, include_synth=synth_on), human,
                         replicates=params.replicates, level=params.level, seed=params.seed)

    d = decompose_run(preds)
    notes = [
        f"{GAP_TITLES[g.name].capitalize()} cannot be computed: the predictions have no "
        f"{' and no '.join(g.missing)} split."
        for g in d.gaps.values() if g.value is None
    ]
    notes += _cluster_notes(preds, man_df, syn_df)
    a = analyse(preds, manifest=man_df, synth=syn_df, properties=params.properties, buckets=params.buckets,
                gallery=params.gallery, level=params.level)
    notes += a.notes
    changes, compare_source = None, None
    if other is not None:
        changes = compare(d, decompose_run(other), joint_table(other, preds, clusters, include_synth=synth_on))
        compare_source = str(resolve_predictions(compare_to))
    recs = recommend(d, a, compare=changes, min_count=params.min_count)
    curve_data = None
    if curve is not None:
        from shiftkit.report.curve import read_curve, recommendation

        curve_data = read_curve(curve)
        recs.insert(0, recommendation(curve_data))
    gallery = _gallery(a.confident_errors, man_df, Path(manifest) if manifest else None, pred_path, notes)
    return ReportData(str(pred_path), d, a, recs, params, changes, compare_source, gallery, notes, curve_data)


# what the report writes at the top of its folder (anything else there is refused, not deleted)
OUTPUTS = ("report.md", "report.html", "metrics.json", "analysis.json", "plots", "curve.png")


def write_report(data: ReportData, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json, analysis.json and plots/ into ``out_dir``.

    The folder is replaced as one set (:func:`shiftkit.core.files.replace_dir`, DVC's ``.gitignore``
    kept): a failure at any point leaves the previous report whole.

    Raises:
        InputPathError: when ``out_dir`` cannot be created or written, or holds files the report
            does not write.
    """
    from shiftkit.report import html, jsonout, markdown

    final = Path(out_dir)
    with io.replace_dir(final, owned=OUTPUTS) as out:
        written = {
            "metrics": io.write_json(out / "metrics.json", jsonout.metrics(data)),
            "analysis": io.write_json(out / "analysis.json", jsonout.analysis(data)),
        }
        written.update(jsonout.write_plots(data, out / "plots"))
        if data.curve is not None:  # the learning curve's figure, which report.md shows
            from shiftkit.report.curve import CURVE_PNG, figure

            written["curve"] = io.write_bytes(out / CURVE_PNG, figure(data.curve))
        written["markdown"] = io.write_text(out / "report.md", markdown.render(data))
        written["html"] = io.write_text(out / "report.html", html.render(data))
    return {k: final / p.relative_to(out) for k, p in written.items()}


def run_report(
    predictions: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "reports",
    *,
    manifest: str | os.PathLike[str] | None = None,
    synth: str | os.PathLike[str] | None = None,
    compare_to: str | os.PathLike[str] | None = None,
    params: ReportParams | None = None,
    human_error: float | None = None,
    curve: str | os.PathLike[str] | None = None,
) -> ReportData:
    """Build the report, write it to ``out_dir`` and print its summary through
    :mod:`shiftkit.core.console` (quiet unless the caller turned output on).

    Raises:
        InputPathError, DataError, SchemaError, ConfigError: see :func:`build_report`.
    """
    from shiftkit.report.terminal import show

    data = build_report(
        predictions, manifest=manifest, synth=synth, compare_to=compare_to, params=params, human_error=human_error,
        curve=curve,
    )
    write_report(data, out_dir)
    show(data)
    return data
