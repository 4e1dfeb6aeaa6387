"""metrics.json (design section 4), analysis.json and the plot data that ``dvc plots`` draws."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core.schema import SPLITS
from shiftkit.stats.decompose import GAP_NAMES, GAP_TITLES

_DIGITS = 6  # rates rounded so that the files read well and float noise never changes the bytes


def _r(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), _DIGITS)


def _frame(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()} for row in df.to_dicts()]


def metrics(data) -> dict[str, Any]:
    """The report's metrics: ``errors``, ``gaps``, ``diagnosis``, ``counts`` (+ ``compare``)."""
    d = data.decomposition
    out: dict[str, Any] = {
        "errors": {"human": _r(d.human_error), **{s: _r(d.errors[s]) for s in SPLITS}},
        "gaps": {n: {k: _r(v) for k, v in d.gaps[n].as_dict().items()} for n in GAP_NAMES},
        "diagnosis": d.diagnosis,
        "counts": {s: (d.counts[s].n if s in d.counts else 0) for s in SPLITS},
    }
    if getattr(data, "groups", None) is not None:
        out["groups"] = data.groups
    if data.curve is not None:
        from shiftkit.report.curve import metrics as curve_metrics

        out["curve"] = curve_metrics(data.curve)
    if getattr(data, "label_free", None) is not None:  # fractions in [0, 1]; actual null without labels
        lf = data.label_free.as_dict()
        out["label_free"] = {"chosen": lf["chosen"], "estimators": {
            n: {s: {k: _r(v) for k, v in e.items()} for s, e in per.items()} for n, per in lf["estimators"].items()}}
    if data.compare is not None:
        out["compare"] = {
            k: {kk: (_r(vv) if not isinstance(vv, str) else vv) for kk, vv in c.as_dict().items()}
            for k, c in data.compare.items()
        }
    return out


# Up to this many classes analysis.json holds the dense confusion matrix; above it only its
# nonzero cells ([true index, predicted index, count], bounded by the dev set): 10,000 classes
# would otherwise write a 10,000 x 10,000 matrix (136 MB of json).
MAX_DENSE_CONFUSION = 100


def _confusion(labels: list[str], cm: np.ndarray) -> dict[str, Any]:
    if len(labels) <= MAX_DENSE_CONFUSION:
        return {"labels": labels, "matrix": cm.tolist()}
    i, j = np.nonzero(cm)
    cells = [[int(a), int(b), int(cm[a, b])] for a, b in zip(i, j, strict=True)]
    return {"labels": labels, "matrix": None, "nonzero": cells,
            "note": f"{len(labels)} classes: only the nonzero cells (true, predicted, count) of the matrix"}


def analysis(data) -> dict[str, Any]:
    """Everything behind the report that is not a DVC metric: intervals, slices, next steps."""
    d, a = data.decomposition, data.analysis
    r = d.resolve
    return {
        "predictions": data.predictions,
        "compare_source": data.compare_source,
        "params": {
            "human_error": d.human_error,
            "replicates": d.replicates,
            "level": d.level,
            "seed": d.seed,
            "include_synth": data.params.include_synth,
        },
        "error_ci": {s: (None if ci is None else [_r(ci[0]), _r(ci[1])]) for s, ci in d.error_ci.items()},
        "split_errors": {s: d.counts[s].errors for s in d.counts},
        "missing": {n: list(g.missing) for n, g in d.gaps.items() if g.missing},
        "claims": {
            "method": "Holm step-down over the computed gaps, one-sided bootstrap p-values",
            "family_error": _r(d.family_error),
            "gaps": {n: {"p_value": _r(g.p_value), "p_adjusted": _r(g.p_adjusted), "claimed": g.claimed}
                     for n, g in d.gaps.items()},
        },
        "clusters": d.clusters,
        "design_effect": {s: _r(v) for s, v in d.design_effect.items()},
        "resolve": None
        if r is None
        else {"gap": r.gap, "split": r.split, "more_images": r.more_images, "options": r.options},
        "by_class": _frame(a.by_class),
        "by_domain": _frame(a.by_domain),
        "by_property": {p: _frame(t.drop("bucket")) for p, t in a.by_property.items()},
        "confusion": _confusion(a.labels, a.confusion),
        "confident_errors": [
            {k: (_r(v) if isinstance(v, float) else v) for k, v in g.items() if k != "thumb"} for g in data.gallery
        ],
        "synth": {
            "on": a.synth.on,
            "images": a.synth.images,
            "predicted": a.synth.predicted,
            "error": _r(a.synth.error),
            "parent_error": _r(a.synth.parent_error),
            "recipes": a.synth.recipes,
        },
        "recommendations": [{"title": x.title, "detail": x.detail} for x in data.recommendations],
        "notes": data.notes,
    }


def write_plots(data, folder: Path) -> dict[str, Path]:
    """gaps.json, per_class.json (dev and bridge error per class) and confusion.csv (dev)."""
    d, a = data.decomposition, data.analysis
    gaps = [
        {
            "gap": GAP_TITLES[n],
            "value": _r(d.gaps[n].value * 100) if d.gaps[n].value is not None else None,
            "ci_low": _r(d.gaps[n].ci_low * 100) if d.gaps[n].ci_low is not None else None,
            "ci_high": _r(d.gaps[n].ci_high * 100) if d.gaps[n].ci_high is not None else None,
        }
        for n in GAP_NAMES
    ]
    per_class = [
        {"label": r["label"], "dev_error": _r(r["dev_error"]), "bridge_error": _r(r["bridge_error"]),
         "dev_n": r["dev_n"], "bridge_n": r["bridge_n"]}
        for r in a.by_class.to_dicts()
    ]
    labels = a.labels
    rows = [(labels[i], labels[j], int(a.confusion[i, j])) for i, j in zip(*np.nonzero(a.confusion), strict=True)]
    # one row per dev prediction is what dvc's confusion template counts; expanded from the
    # matrix so that the file's size is bounded by the dev set, in a stable order
    csv_lines = ["actual,predicted"]
    for t, p, c in rows:
        csv_lines.extend([f"{_csv(t)},{_csv(p)}"] * c)
    return {
        "plot_gaps": io.write_json(folder / "gaps.json", gaps),
        "plot_per_class": io.write_json(folder / "per_class.json", per_class),
        "plot_confusion": io.write_text(folder / "confusion.csv", "\n".join(csv_lines) + "\n"),
    }


def _csv(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s
