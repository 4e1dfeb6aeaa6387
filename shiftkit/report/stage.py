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
from shiftkit.core.errors import DataError, ImageDecodeError
from shiftkit.report.analysis import Analysis, Recommendation, analyse, recommend
from shiftkit.report.blocks import Section
from shiftkit.report.groups import clusters_manifest, group_summary
from shiftkit.report.params import ReportParams
from shiftkit.report.sections import build_sections
from shiftkit.stats.bootstrap import SYNTH_DOMAIN, cluster_ids, joint_table, run_table
from shiftkit.stats.decompose import GAP_TITLES, Change, Decomposition, check_human_error, compare, decompose
from shiftkit.stats.labelfree import LabelFree, label_free, labelled, sets_of
from shiftkit.training.evaluate import read_predictions, resolve_predictions

__all__ = ["ReportData", "build_report", "write_report", "run_report", "summary_line"]

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
    groups: dict | None = None  # groups per split (shiftkit/report/groups.py), when the manifest was given
    label_free: LabelFree | None = None  # label-free estimates and their dev audit (stats/labelfree.py)


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
    model: str | None = None,
    img_size: int = 224,
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
    preds_all = read_predictions(pred_path)
    preds = labelled(preds_all)  # the unlabelled splits feed the label-free estimates only
    man_df = io.read_table(manifest, schema.MANIFEST) if manifest is not None else None
    syn_df = io.read_table(synth, schema.SYNTH) if synth is not None else None
    if man_df is not None and man_df.height == 0:
        raise DataError(f"The manifest table {manifest} has no rows.")
    other = labelled(read_predictions(resolve_predictions(compare_to))) if compare_to is not None else None
    clusters = cluster_ids(clusters_manifest(man_df), syn_df)  # user groups joined with near copies
    synth_on = params.include_synth

    def decompose_run(p: pl.DataFrame) -> Decomposition:
        return decompose(run_table(p, clusters, include_synth=synth_on), human,
                         replicates=params.replicates, level=params.level, seed=params.seed,
                         min_gap=params.min_gap / 100)

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
    recs = recommend(d, a, compare=changes, min_count=params.min_count, model=model, img_size=img_size)
    curve_data = None
    if curve is not None:
        from shiftkit.report.curve import read_curve, recommendation

        curve_data = read_curve(curve)
        recs.insert(0, recommendation(curve_data))
    gallery = _gallery(a.confident_errors, man_df, Path(manifest) if manifest else None, pred_path, notes)
    groups = group_summary(preds, man_df)
    lf = _label_free(preds_all, clusters, params, notes)
    return ReportData(str(pred_path), d, a, recs, params, changes, compare_source, gallery, notes, curve_data, groups,
                      label_free=lf)


def _label_free(preds: pl.DataFrame, clusters: pl.DataFrame, params: ReportParams, notes: list[str]):
    """The label-free estimates, or None (with a note) when there is no labelled dev split to audit on."""
    if preds.filter(pl.col("split") == "dev").height == 0:
        notes.append("No dev predictions: the label-free estimates (audited on dev) are left out.")
        return None
    try:
        return label_free(sets_of(preds, clusters), replicates=params.replicates, level=params.level, seed=params.seed)
    except DataError as exc:
        notes.append(f"Label-free estimates left out: {exc}")
        return None


# what the report writes at the top of its folder (anything else there is refused, not deleted)
OUTPUTS = ("report.md", "report.html", "metrics.json", "analysis.json", "plots", "curve.png", "selection_curve.png")


def write_report(
    data: ReportData, out_dir: str | os.PathLike[str], sections: list[Section] | None = None
) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json, analysis.json and plots/ into ``out_dir``.

    ``sections``: the report's sections (:func:`shiftkit.report.sections.build_sections` of
    ``data``, built here when not given), laid out by the markdown and HTML writers alike.

    The folder is replaced as one set (:func:`shiftkit.core.files.replace_dir`, DVC's ``.gitignore``
    kept): a failure at any point leaves the previous report whole.

    Raises:
        InputPathError: when ``out_dir`` cannot be created or written, or holds files the report
            does not write.
    """
    from shiftkit.report import html, jsonout, markdown

    sections = build_sections(data) if sections is None else sections
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
            if (data.curve.get("selection") or {}).get("strategies"):  # the selection simulation's figure
                from shiftkit.report import selection

                sel = data.curve["selection"]
                written["selection"] = io.write_bytes(out / selection.SELECTION_PNG, selection.figure(sel))
        written["markdown"] = io.write_text(out / "report.md", markdown.render_sections(sections))
        written["html"] = io.write_text(out / "report.html", html.render_sections(sections))
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
    model: str | None = None,
    img_size: int = 224,
) -> ReportData:
    """Build the report, write it to ``out_dir`` and print its summary through
    :mod:`shiftkit.core.console` (quiet unless the caller turned output on).

    Raises:
        InputPathError, DataError, SchemaError, ConfigError: see :func:`build_report`.
    """
    from shiftkit.report.terminal import show

    data = build_report(
        predictions, manifest=manifest, synth=synth, compare_to=compare_to, params=params, human_error=human_error,
        curve=curve, model=model, img_size=img_size,
    )
    sections = build_sections(data)  # once, for every writer
    write_report(data, out_dir, sections)
    show(sections)
    return data


def summary_line(data: ReportData, out_dir: str | os.PathLike[str]) -> str:
    """The one line that ``shiftkit report`` and ``pipelines/report.py`` print about a written report."""
    d = data.decomposition
    return (f"report: diagnosis {d.diagnosis}; dev error {d.errors['dev']}; "
            f"wrote {out_dir}/report.md, report.html, metrics.json")
