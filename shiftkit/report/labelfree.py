"""The report's section "Target images without labels": label-free error estimates and their dev audit.

Numbers come from :mod:`shiftkit.stats.labelfree` (computed once in ``report/stage.py``); this
module only lays them out. Every estimator variant is shown on dev as the cross-fitted audit
("estimated 12.4% [10.1, 14.9], actual 11.8%"), and on each unlabelled split as an estimate; the
chosen variant (smallest audited error on this run) gives the headline, and the estimated data
mismatch of each unlabelled split against the bridge.
"""

from __future__ import annotations

from shiftkit.report.blocks import Section, Table, Text
from shiftkit.report.text import ci, level_text, pct, pts
from shiftkit.stats.labelfree import is_unlabelled_split, title


def _cell(e) -> str:
    return f"{pct(e.estimate)} {ci(e.ci_low, e.ci_high, '%')}"


def mismatch(lf, split: str, bridge_error: float | None) -> tuple[float, float, float] | None:
    """The estimated data mismatch of ``split`` against the bridge (chosen estimator's error minus the
    bridge's real error) and its interval (the estimate's interval shifted by the bridge error)."""
    e = lf.estimates[lf.chosen].get(split)
    if e is None or bridge_error is None:
        return None
    return e.estimate - bridge_error, e.ci_low - bridge_error, e.ci_high - bridge_error


def _headline(lf, split: str, bridge_error: float | None) -> str:
    e = lf.estimates[lf.chosen][split]
    text = (f"**`{split}`** ({e.n:,} images): estimated error **{pct(e.estimate)}** "
            f"{level_text(lf.level)} interval {ci(e.ci_low, e.ci_high, '%')}, by {title(lf.chosen)}")
    m = mismatch(lf, split, bridge_error)
    if m is not None:
        text += (f"; estimated data mismatch against the bridge {pts(m[0])} points "
                 f"{ci(m[1], m[2])}")
    return text + "."


def rows(lf) -> list[list[str]]:
    """One row per estimator variant: the dev audit (estimate, actual, miss) and each unlabelled split."""
    unl = [s for s in next(iter(lf.estimates.values())) if is_unlabelled_split(s)]
    out = []
    for name, per in lf.estimates.items():
        d = per["dev"]
        mark = " ◀ chosen" if name == lf.chosen else ""
        out.append([f"{title(name)}{mark}", _cell(d), pct(d.actual), f"{100 * (d.miss or 0.0):.1f}",
                    *[_cell(per[s]) for s in unl]])
    return out


def label_free_section(data) -> list[Section]:
    """The section, or nothing when the report has no label-free estimates (no labelled dev)."""
    lf = getattr(data, "label_free", None)
    if lf is None:
        return []
    lvl = level_text(lf.level)
    per = lf.estimates[lf.chosen]
    unl = [s for s in per if is_unlabelled_split(s)]
    bridge = data.decomposition.errors.get("bridge")
    d = per["dev"]
    blocks = [Text(f"The estimate relied on is **{title(lf.chosen)}**: the smallest audited error on dev "
                   f"(audited error {100 * (d.miss or 0.0):.1f} points; estimated {pct(d.estimate)} "
                   f"{ci(d.ci_low, d.ci_high, '%')}, actual {pct(d.actual)}). Test is never read.")]
    if unl:
        blocks += [Text(_headline(lf, s, bridge)) for s in unl]
    else:
        blocks.append(Text("No unlabelled images were predicted: `shiftkit evaluate` predicts the `unlabelled` "
                           "pool of the splits, or a folder with `--images DIR --add-to predictions.parquet`.",
                           "muted"))
    header = ["estimator", f"dev: estimated [{lvl}]", "dev: actual", "audited error (pts)",
              *[f"{s}: estimated [{lvl}]" for s in unl]]
    blocks.append(Table(header, rows(lf), "l" + "r" * (len(header) - 1), "Label-free estimates"))
    blocks.append(Text(
        f"Audit: dev is split in two by cluster (seed {lf.seed}); each half is estimated as if unlabelled "
        "from a calibration on the other and the two pooled (the dev estimate shown); the audited error is "
        "the halves' absolute misses, averaged over 8 seeded splits. Bridge-calibrated estimators estimate "
        "dev from the whole bridge. The method relied on has the smallest sum of its two audits. Intervals: "
        f"a cluster bootstrap of the calibration and target sets ({lf.replicates:,} replicates), widened by "
        "the binomial spread of a set's real error and, on unlabelled sets, by the estimator's audited error. "
        "An estimate can be trusted when the shift keeps the classes and their shares and the model is not "
        "confidently wrong; see the README.", "muted"))
    blocks += [Text(n, "muted") for n in lf.notes]
    return [Section("label_free", "Target images without labels", 2, blocks)]
