"""The report's content as data: sections of blocks, built once and drawn by every writer.

Each builder in :data:`BUILDERS` turns the computed :class:`~shiftkit.report.stage.ReportData` into
zero or more :class:`Section` objects; the markdown, HTML and terminal writers only lay those
out. To add a section to the report, write one builder here (a function from the report's data
to a list of sections) and put it in ``BUILDERS`` at the place where the section should appear;
every writer then shows it.

Inline text may carry ``**bold**`` and ```code``` markup: markdown keeps it, HTML turns it
into ``<strong>`` and ``<code>``, the terminal drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core.schema import SPLITS
from shiftkit.report.analysis import shown_classes
from shiftkit.report.blocks import DIAGNOSIS_MARK, Block, Bullets, Figure, Gallery, Section, Steps, Table, Text
from shiftkit.report.groups import groups_section
from shiftkit.report.labelfree import label_free_section
from shiftkit.report.selection import selection_section
from shiftkit.report.text import ci, level_text, pct, pts
from shiftkit.stats.decompose import CLAIM_METHOD, GAP_NAMES, GAP_TITLES, INCONCLUSIVE

FORMULA = {
    "avoidable_bias": "train − human",
    "variance": "bridge − train",
    "data_mismatch": "dev − bridge",
    "dev_overfit": "test − dev",
}


# ---------------------------------------------------------------------------------------------
# sentences


def claim_rule(d) -> str:
    """How the diagnosis decides, in words: method, tests and family-wise error."""
    tests = sum(g.value is not None for g in d.gaps.values())
    return (f"{CLAIM_METHOD}'s step-down over the {tests} computed gap(s), family-wise error "
            f"{level_text(d.family_error)}")


def _above(d) -> str:
    """What a claim says a gap is above: zero, or the practical threshold ``report.min_gap``."""
    m = getattr(d, "min_gap", 0.0)
    return "zero" if not m else f"{100 * m:.1f} points (`report.min_gap`)"


def no_gap_sentence(d) -> str:
    """With a practical threshold: no gap is worth acting on, the dev error, and what would change that."""
    r, lo_hi = d.resolve, d.error_ci.get("dev")
    g = d.gaps[r.gap]
    dev = f"Dev error {pct(d.errors.get('dev'))} {ci(*lo_hi, '%') if lo_hi else ''}".rstrip()
    change = (f"About {r.more_images:,} more {r.split} images would show it above the threshold if it is as large "
              "as measured." if r.split else
              "It is not shown above the threshold and more images would not change that unless it grows: a "
              "harder target, another model or data, or a lower `report.min_gap`.")
    return (f"**No gap worth acting on**: none is shown above {_above(d)} ({claim_rule(d)}). {dev}. The largest is "
            f"{GAP_TITLES[r.gap]}, {pts(g.value)} points, {level_text(d.level)} interval {ci(g.ci_low, g.ci_high)}. "
            f"{change}")


def diagnosis_sentence(d) -> str:
    """One sentence: what the run's main problem is, or why none can be named yet."""
    if d.diagnosis == INCONCLUSIVE:
        r = d.resolve
        if r is None:
            return "**Inconclusive**: no gap could be computed."
        if getattr(d, "min_gap", 0.0):
            return no_gap_sentence(d)
        g = d.gaps[r.gap]
        more = (
            f" About {r.more_images:,} more {r.split} images (at the same error rates) would let it be claimed."
            if r.split
            else " Growing one split alone would not resolve it: the gap may be negligible."
        )
        return (
            f"**Inconclusive**: no gap is claimed above zero ({claim_rule(d)}). The largest is "
            f"{GAP_TITLES[r.gap]}, {pts(g.value)} points, {level_text(d.level)} interval "
            f"{ci(g.ci_low, g.ci_high)}.{more}"
        )
    g = d.gaps[d.diagnosis]
    return (
        f"**{GAP_TITLES[d.diagnosis].capitalize()}**: the largest gap claimed above {_above(d)} ({claim_rule(d)}), "
        f"{pts(g.value)} points, {level_text(d.level)} interval {ci(g.ci_low, g.ci_high)}."
    )


def unit_sentence(d) -> str:
    """What the intervals resample: how many clusters, how many replicates, which seed."""
    clusters = sum(d.clusters.values()) if d.clusters else sum(c.n for c in d.counts.values())
    images = sum(c.n for c in d.counts.values())
    return (
        f"Intervals over {clusters:,} clusters ({images:,} images): a cluster is an image with its near "
        f"copies and its synthesised children, resampled as one within each split; {d.replicates:,} "
        f"replicates, seed {d.seed}. Intervals are {level_text(d.level)} per gap; the diagnosis claims a gap "
        f"only when it passes {claim_rule(d)}, so it may say less than the table."
    )


def mismatch_sentence(compare: dict, level: str) -> str:
    """One sentence that answers "did the change shrink the data mismatch?" from a comparison."""
    c = compare["data_mismatch"]
    if c.value is None:
        return "The data-mismatch change cannot be computed: a run lacks its bridge or dev split."
    change = f"{pts(c.value)} points, {level} interval {ci(c.ci_low, c.ci_high)}"
    if c.verdict == "shrank":
        return f"**Data mismatch shrank** against the compared run ({change}): the change worked on the target."
    if c.verdict == "grew":
        return (f"**Data mismatch grew** against the compared run ({change}): the change made the target "
                "relatively worse.")
    return (
        f"**No clear change in data mismatch** against the compared run ({change}): the interval "
        "includes zero, so this run does not show that the change reduced it."
    )


# ---------------------------------------------------------------------------------------------
# rows


def error_rows(d) -> list[list[str]]:
    """Rows of the errors table: human, then each split with images, clusters, wrong, error, interval."""
    rows = [["human", "—", "—", "—", pct(d.human_error), "fixed input"]]
    for s in SPLITS:
        c = d.counts.get(s)
        if c is None:
            rows.append([s, "0", "0", "0", "n/a", "no predictions"])
            continue
        lo, hi = d.error_ci[s]
        rows.append([s, f"{c.n:,}", f"{d.clusters.get(s, c.n):,}", f"{c.errors:,}", pct(c.error), ci(lo, hi, "%")])
    return rows


def gap_mark(d, g) -> str:
    if g.value is None:
        return f"cannot be computed (no {', '.join(g.missing)})"
    if g.name == d.diagnosis:
        return DIAGNOSIS_MARK
    if g.claimed:
        return "claimed > 0"
    return "interval > 0, not claimed" if g.significant else ""


def gap_rows(d) -> list[list[str]]:
    """Rows of the gaps table: gap, formula, points, interval, Holm-adjusted p, mark."""
    return [
        [GAP_TITLES[name], FORMULA[name], pts(d.gaps[name].value), ci(d.gaps[name].ci_low, d.gaps[name].ci_high),
         "n/a" if d.gaps[name].p_adjusted is None else f"{d.gaps[name].p_adjusted:.3f}", gap_mark(d, d.gaps[name])]
        for name in GAP_NAMES
    ]


def compare_rows(compare: dict) -> list[list[str]]:
    """Rows of the comparison table (errors in %, gaps in points)."""
    rows = []
    for key in (*SPLITS, *GAP_NAMES):
        c = compare[key]
        title = f"{key} error" if key in SPLITS else GAP_TITLES[key]
        shown = pct if key in SPLITS else pts
        rows.append([title, shown(c.before), shown(c.after), pts(c.value), ci(c.ci_low, c.ci_high), c.verdict])
    return rows


def slice_rows(t: pl.DataFrame, key: str) -> list[list[str]]:
    """Rows of a dev-against-bridge slice table (by class or by property bucket)."""
    return [
        [str(r[key]), str(r["dev_n"]), pct(r["dev_error"]) if r["dev_n"] else "n/a",
         ci(r["dev_ci_low"], r["dev_ci_high"], "%") if r["dev_n"] else "", str(r["bridge_n"]),
         pct(r["bridge_error"]) if r["bridge_n"] else "n/a"]
        for r in t.to_dicts()
    ]


def _arr(col: pl.Series) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in col.to_list()], float)


def _slice_table(t: pl.DataFrame, key: str, first: str, lvl: str) -> Table:
    header = [first, "dev images", "dev error", f"{lvl} interval (%)", "bridge images", "bridge error"]
    return Table(header, slice_rows(t, key), "lrrrrr")


# ---------------------------------------------------------------------------------------------
# section builders, in the order the report shows them


def title_section(data) -> list[Section]:
    d = data.decomposition
    return [Section("title", "shiftkit report", 1, [
        Text(f"predictions: `{data.predictions}`", "muted"),
        Text(f"Diagnosis: {diagnosis_sentence(d)}", "diagnosis"),
    ])]


def errors_section(data) -> list[Section]:
    from shiftkit.report import figures

    d = data.decomposition
    lvl = level_text(d.level)
    return [Section("errors", "Errors and gaps", 2, [
        Table(["split", "images", "clusters", "wrong", "error", f"{lvl} interval (%)"], error_rows(d), "lrrrrr",
              "Errors"),
        Table(["gap", "formula", "points", f"{lvl} interval", f"p ({CLAIM_METHOD})", ""], gap_rows(d), "llrrrl",
              "Gaps (points)", wide=("formula",)),
        Figure(lambda: figures.gaps_waterfall(d), "error decomposition waterfall"),
        Text(unit_sentence(d), "muted"),
    ])]


def curve_section(data) -> list[Section]:
    if data.curve is None:
        return []
    from shiftkit.report.curve import section

    return [section(data.curve)]


def mitigations_section(data) -> list[Section]:
    from shiftkit.report.mitigations import section

    made = None if data.curve is None else section(data.curve)
    return [] if made is None else [made]


def next_steps_section(data) -> list[Section]:
    return [Section("next", "What to do next", 2, [Steps(list(data.recommendations))])]


def compare_section(data) -> list[Section]:
    from shiftkit.report import figures

    if data.compare is None:
        return []
    lvl = level_text(data.decomposition.level)
    changes = data.compare
    return [Section("compare", f"Compared with `{data.compare_source}`", 2, [
        Text(mismatch_sentence(changes, lvl)),
        Table(["", "before", "after", "change", f"{lvl} interval", "verdict"], compare_rows(changes), "lrrrrl"),
        Figure(lambda: figures.compare_chart(changes, list(GAP_NAMES), [GAP_TITLES[n] for n in GAP_NAMES]),
               "change of each gap"),
        Text("Change in points = this run minus the compared run. Clusters present in both runs are "
             "resampled jointly (paired), the others independently.", "muted"),
    ])]


def by_class_section(data) -> list[Section]:
    from shiftkit.report import figures

    a = data.analysis
    lvl = level_text(data.decomposition.level)
    bc = a.by_class
    keep = [a.labels[i] for i in shown_classes(a)]
    caption = ""
    if bc.height > len(keep) and keep:
        caption = f"Figure: the {len(keep)} classes with most dev errors of {bc.height}."
        bc = bc.filter(pl.col("label").is_in(keep))
    blocks: list[Block] = []
    if bc.height:
        blocks.append(Figure(lambda: figures.per_class(
            bc["label"].to_list(), _arr(bc["dev_error"]), (_arr(bc["dev_ci_low"]), _arr(bc["dev_ci_high"])),
            _arr(bc["bridge_error"]), (_arr(bc["bridge_ci_low"]), _arr(bc["bridge_ci_high"]))),
            "error per class", caption))
    blocks.append(_slice_table(a.by_class, "label", "class", lvl))
    return [
        Section("analysis", "Error analysis: dev against bridge", 2),
        Section("by_class", "By class", 3, blocks),
    ]


def by_domain_section(data) -> list[Section]:
    lvl = level_text(data.decomposition.level)
    rows = [
        [r["split"], r["domain"], str(r["n"]), pct(r["error"]), ci(r["ci_low"], r["ci_high"], "%")]
        for r in data.analysis.by_domain.to_dicts()
    ]
    return [Section("by_domain", "By domain", 3, [
        Table(["split", "domain", "images", "error", f"{lvl} interval (%)"], rows, "llrrr"),
    ])]


def by_property_sections(data) -> list[Section]:
    from shiftkit.report import figures

    lvl = level_text(data.decomposition.level)
    out = []
    for prop, t in data.analysis.by_property.items():
        def draw(prop=prop, t=t) -> bytes:
            return figures.buckets(
                prop, t["range"].to_list(), _arr(t["dev_error"]), (_arr(t["dev_ci_low"]), _arr(t["dev_ci_high"])),
                _arr(t["bridge_error"]), (_arr(t["bridge_ci_low"]), _arr(t["bridge_ci_high"])))

        out.append(Section(f"by_{prop}", f"By {prop} (quantile buckets)", 3, [
            Figure(draw, f"error by {prop}"), _slice_table(t, "range", prop, lvl),
        ]))
    return out


def confusion_section(data) -> list[Section]:
    from shiftkit.report import figures

    a = data.analysis
    if not a.labels:
        return []
    idx = shown_classes(a)
    blocks: list[Block] = []
    if len(idx) < len(a.labels):
        blocks.append(Text(f"The {len(idx)} classes most involved in dev errors, of {len(a.labels)} "
                           "(all in analysis.json).", "muted"))
    names = [a.labels[i] for i in idx]
    rows = [[a.labels[i], *[str(int(a.confusion[i, j])) for j in idx]] for i in idx]
    blocks.append(Table(["true \\ pred", *names], rows, "l" + "r" * len(idx), media="text"))
    blocks.append(Figure(lambda: figures.confusion(names, a.confusion[np.ix_(idx, idx)]), "dev confusion matrix"))
    return [Section("confusion", "Dev confusion matrix (rows: true, columns: predicted)", 3, blocks)]


def gallery_section(data) -> list[Section]:
    if not data.gallery:
        return []
    return [Section("gallery", "Most confidently wrong dev images", 3, [Gallery(list(data.gallery))])]


def notes_section(data) -> list[Section]:
    if not data.notes:
        return []
    return [Section("notes", "Notes", 2, [Bullets(list(data.notes))])]


BUILDERS: tuple[Callable[[Any], list[Section]], ...] = (
    title_section,
    errors_section,
    groups_section,
    next_steps_section,
    curve_section,
    label_free_section,
    mitigations_section,
    selection_section,
    compare_section,
    by_class_section,
    by_domain_section,
    by_property_sections,
    confusion_section,
    gallery_section,
    notes_section,
)


def build_sections(data) -> list[Section]:
    """Every section of the report, in order."""
    return [s for build in BUILDERS for s in build(data)]
