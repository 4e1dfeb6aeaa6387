"""report.md: plain GitHub-flavoured markdown that reads well in a terminal and a pull request."""

from __future__ import annotations

from shiftkit.analysis import shown_classes
from shiftkit.decompose import GAP_TITLES, GAPS, INCONCLUSIVE
from shiftkit.schema import SPLITS

_FORMULA = {
    "avoidable_bias": "train − human",
    "variance": "bridge − train",
    "data_mismatch": "dev − bridge",
    "dev_overfit": "test − dev",
}


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def gap_rows(d) -> list[list[str]]:
    """Rows of the gaps table (gap, formula, points, interval, mark), shared by md and html."""
    rows = []
    for name, _, _ in GAPS:
        g = d.gaps[name]
        mark = "◀ diagnosis" if name == d.diagnosis else ("clearly > 0" if g.significant else "")
        if g.value is None:
            mark = f"cannot be computed (no {', '.join(g.missing)})"
        rows.append([GAP_TITLES[name], _FORMULA[name], pts(g.value), ci(g.ci_low, g.ci_high), mark])
    return rows


def compare_rows(compare: dict) -> list[list[str]]:
    """Rows of the comparison table (errors in %, gaps in points), shared by md and html."""
    rows = []
    for key in (*SPLITS, *(g[0] for g in GAPS)):
        c = compare[key]
        title = f"{key} error" if key in SPLITS else GAP_TITLES[key]
        shown = pct if key in SPLITS else pts
        rows.append([title, shown(c.before), shown(c.after), pts(c.value), ci(c.ci_low, c.ci_high), c.verdict])
    return rows


def mismatch_sentence(compare: dict, level: str) -> str:
    """One sentence that answers "did the change shrink the data mismatch?" from a comparison."""
    c = compare["data_mismatch"]
    if c.value is None:
        return "The data-mismatch change cannot be computed: a run lacks its bridge or dev split."
    change = f"{pts(c.value)} points, {level} interval {ci(c.ci_low, c.ci_high)}"
    if c.verdict == "shrank":
        return f"**Data mismatch shrank** against the compared run ({change}): the change worked on the target."
    if c.verdict == "grew":
        return f"**Data mismatch grew** against the compared run ({change}): the change made the target relatively worse."
    return (
        f"**No clear change in data mismatch** against the compared run ({change}): the interval "
        "includes zero, so this run does not show that the change reduced it."
    )


def ci(lo: float | None, hi: float | None, unit: str = "pts") -> str:
    if lo is None or hi is None:
        return "n/a"
    if unit == "%":
        return f"[{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def diagnosis_sentence(d) -> str:
    """One sentence: what the run's main problem is, or why none can be named yet."""
    lvl = f"{int(round(d.level * 100))}%"
    if d.diagnosis == INCONCLUSIVE:
        r = d.resolve
        if r is None:
            return "**Inconclusive**: no gap could be computed."
        g = d.gaps[r.gap]
        more = (
            f" About {r.more_images:,} more {r.split} images (at the same error rates) would resolve it."
            if r.split
            else " Growing one split alone would not resolve it: the gap may be negligible."
        )
        return (
            f"**Inconclusive**: no gap's {lvl} interval excludes zero. The largest is "
            f"{GAP_TITLES[r.gap]}, {pts(g.value)} points {ci(g.ci_low, g.ci_high)}.{more}"
        )
    g = d.gaps[d.diagnosis]
    return (
        f"**{GAP_TITLES[d.diagnosis].capitalize()}**: the largest gap whose {lvl} interval excludes zero, "
        f"{pts(g.value)} points {ci(g.ci_low, g.ci_high)}."
    )


def render(data) -> str:
    d, a = data.decomposition, data.analysis
    lvl = f"{int(round(d.level * 100))}%"
    out = ["# shiftkit report", "", f"Diagnosis: {diagnosis_sentence(d)}", ""]
    out += ["## Errors and gaps", ""]
    rows = [["human", "—", "—", pct(d.human_error), "fixed input"]]
    for s in SPLITS:
        c = d.counts.get(s)
        if c is None:
            rows.append([s, "0", "0", "n/a", "no predictions"])
            continue
        lo, hi = d.error_ci[s]
        rows.append([s, f"{c.n:,}", f"{c.errors:,}", pct(c.error), ci(lo, hi, "%")])
    out += [table(["split", "images", "wrong", "error", f"{lvl} interval (%)"], rows), ""]
    out += [table(["gap", "formula", "points", f"{lvl} interval", ""], gap_rows(d), "llrrl"), ""]
    out.append(
        f"Intervals: bootstrap over images resampled within each split, {d.replicates:,} replicates, seed {d.seed}."
    )
    out.append("")
    out += ["## What to do next", ""]
    for i, r in enumerate(data.recommendations, 1):
        out.append(f"{i}. **{r.title}.** {r.detail}")
    out.append("")
    if data.compare is not None:
        out += [f"## Compared with `{data.compare_source}`", "", mismatch_sentence(data.compare, lvl), ""]
        rows = compare_rows(data.compare)
        out += [table(["", "before", "after", "change", f"{lvl} interval", "verdict"], rows, "lrrrrl"), ""]
        out.append(
            "Change in points = this run minus the compared run. Splits evaluated on the same images are "
            "resampled jointly (paired), the others independently."
        )
        out.append("")
    out += ["## Error analysis: dev against bridge", "", "### By class", ""]
    rows = [
        [r["label"], r["dev_n"], pct(r["dev_error"]) if r["dev_n"] else "n/a", ci(r["dev_ci_low"], r["dev_ci_high"], "%") if r["dev_n"] else "",
         r["bridge_n"], pct(r["bridge_error"]) if r["bridge_n"] else "n/a"]
        for r in a.by_class.to_dicts()
    ]
    out += [table(["class", "dev images", "dev error", f"{lvl} interval (%)", "bridge images", "bridge error"], rows), ""]
    out += ["### By domain", ""]
    rows = [[r["split"], r["domain"], r["n"], pct(r["error"]), ci(r["ci_low"], r["ci_high"], "%")] for r in a.by_domain.to_dicts()]
    out += [table(["split", "domain", "images", "error", f"{lvl} interval (%)"], rows, "llrrr"), ""]
    for prop, t in a.by_property.items():
        out += [f"### By {prop} (quantile buckets)", ""]
        rows = [
            [r["range"], r["dev_n"], pct(r["dev_error"]) if r["dev_n"] else "n/a",
             ci(r["dev_ci_low"], r["dev_ci_high"], "%") if r["dev_n"] else "", r["bridge_n"],
             pct(r["bridge_error"]) if r["bridge_n"] else "n/a"]
            for r in t.to_dicts()
        ]
        out += [table([prop, "dev images", "dev error", f"{lvl} interval (%)", "bridge images", "bridge error"], rows), ""]
    if a.labels:
        out += ["### Dev confusion matrix (rows: true, columns: predicted)", ""]
        idx = shown_classes(a)
        if len(idx) < len(a.labels):
            out += [f"The {len(idx)} classes most involved in dev errors, of {len(a.labels)} (all in analysis.json).", ""]
        rows = [[a.labels[i], *[int(a.confusion[i, j]) for j in idx]] for i in idx]
        out += [table(["true \\ pred", *[a.labels[j] for j in idx]], rows), ""]
    if data.gallery:
        out += ["### Most confidently wrong dev images", ""]
        rows = [
            [i, f"`{g['image_id'][:16]}`", g["label"], g["pred"], f"{g['confidence']:.3f}", g["file"] or ""]
            for i, g in enumerate(data.gallery, 1)
        ]
        out += [table(["#", "image", "true", "predicted", "confidence", "file"], rows, "rlllrl"), ""]
    if data.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in data.notes] + [""]
    return "\n".join(out)
