"""The learning curve's section of the report: a table, a figure and the sentence, rendered from the
curve's data alone (``curve.json``, built by :func:`shiftkit.curve.stage.build_curve`; each arm's
colour travels in it, so this module knows no arm by name and imports nothing of the curve).

The report stage shows this section (:func:`section`) in report.md and report.html, writes the
figure beside them and the figures in metrics.json; the curve stage writes the same section into
its own folder (:mod:`shiftkit.curve.summary`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from shiftkit.core import files as io
from shiftkit.report.text import ci, pct, pts
from shiftkit.stats.decompose import GAP_NAMES

CURVE_JSON = "curve.json"
CURVE_PNG = "curve.png"
OTHER_COLOUR = "#8172b3"  # an arm curve.json gives no colour
_SHORT = {"avoidable_bias": "bias", "variance": "variance", "data_mismatch": "mismatch", "dev_overfit": "dev overfit"}


def figure(data: dict[str, Any]) -> bytes:
    """Dev error against labelled target images: log(1 + n) axis, one line per arm, interval bands."""
    from shiftkit.report.figures import _plt, _png

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.set_xscale("function", functions=(np.log1p, np.expm1))
    for arm in data["arms"]:
        rows = sorted((p["images"], p["dev_error"], *p["dev_ci"]) for p in data["points"] if p["arm"] == arm)
        cols = zip(*rows, strict=True)
        n, e, lo, hi = (np.array(c, dtype=float) * (1 if i == 0 else 100) for i, c in enumerate(cols))
        colour = data.get("colours", {}).get(arm, OTHER_COLOUR)
        ax.plot(n, e, marker="o", color=colour, label=arm)
        ax.fill_between(n, lo, hi, color=colour, alpha=0.18, lw=0)
    ax.set_xticks(data["images"], [str(x) for x in data["images"]])
    ax.set_xlabel("labelled target training images (axis: log(1 + n))")
    ax.set_ylabel("dev error (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def rows(data: dict[str, Any]) -> list[list[str]]:
    """One row per arm and budget: images, dev error with interval, the four gaps, the diagnosis."""
    out = []
    for p in data["points"]:
        gaps = [f"{pts(p['gaps'][n]['value'])} {ci(*p['gaps'][n]['ci'])}" for n in _gap_names(data)]
        out.append([p["arm"], str(p["images"]), f"{pct(p['dev_error'])} {ci(*p['dev_ci'], unit='%')}", *gaps,
                    p["diagnosis"]])
    return out


def _gap_names(data: dict[str, Any]) -> list[str]:
    """The gaps in the decomposition's order (a JSON round trip may have sorted the keys)."""
    have = data["points"][0]["gaps"] if data["points"] else GAP_NAMES
    return [g for g in GAP_NAMES if g in have]


def header(data: dict[str, Any]) -> list[str]:
    return ["arm", "labelled target images", "dev error", *[_SHORT.get(g, g) for g in _gap_names(data)], "diagnosis"]


def worth_rows(data: dict[str, Any]) -> list[list[str]]:
    return [[w["arm"], str(w["n"]), f"{pts(w['gain'])} {ci(*w['gain_ci'])}", w["text"]] for w in data["worth"]]


def noise(data: dict[str, Any]) -> str:
    """The intro's clause on the training noise the intervals hold (curve.baseline_draws), or that they do not."""
    if data.get("training_df"):
        return (f", plus the training noise: {data.get('baseline_draws', 2)} trainings of the baseline at each budget "
                f"with their own seeds land {data['training_sd'] * 100:.1f} points apart (standard deviation, "
                f"{data['training_df']} degrees of freedom), a Student-t draw of that size added to each point")
    return ("; the training noise (two trainings with other seeds) is not in them: curve.baseline_draws >= 2 "
            "measures it")


def intro(data: dict[str, Any]) -> str:
    pct_level = f"{data['level'] * 100:.0f}%"
    return (
        f"The same model trained with a growing number of labelled target images (nested, stratified "
        f"subsets of the target's train split); every point is measured on the same {data['dev_images']} dev "
        f"images. Intervals: {pct_level}, from {data['replicates']} resamples of {data['clusters']} dev clusters "
        "(near copies together), the same resamples for every point" + noise(data)
        + ". \"Worth\": how many labelled target images the baseline would need to reach the arm's dev error, "
        "read off the baseline's curve (linear in "
        "log(1 + n), so budget 0 sits at 0); not estimable where no gain of the arm at that budget is claimed: "
        "its interval reaches zero, or it does not pass Holm's step-down over every (arm, budget) compared, "
        f"one-sided at {(1 - data['level']) / 2 * 100:.1f}%. Where the baseline's curve reaches the arm's error "
        "only across a step wider than a factor 4 in 1 + n (0 to 854, say), the worth is the step, not a figure: "
        "add budgets inside it."
    )


WORTH_HEADER = ["arm", "labelled target images", "gain over the baseline", "worth (baseline images)"]


def section(data: dict[str, Any]):
    """The curve as a report section: the sentence, the table of points, the worth table, the figure."""
    from shiftkit.report.blocks import Figure, Section, Table, Text

    head = header(data)
    blocks = [Text(intro(data), "muted"), Text(f"**{data['sentence']}**"),
              Table(head, rows(data), "llr" + "r" * (len(head) - 3), title="Learning curve")]
    if data["worth"]:
        blocks.append(Table(WORTH_HEADER, worth_rows(data), "lrrr", title="Worth in labelled target images"))
    blocks.append(Figure(lambda: figure(data), "dev error against labelled target images", file=CURVE_PNG))
    return Section("curve", "Learning curve: labelled target images", 2, blocks)


def metrics(data: dict[str, Any]) -> dict[str, Any]:
    """The curve's figures for metrics.json: dev error per arm and budget, and each worth figure."""
    dev = {f"{p['arm']}@{p['budget']}": {"dev_error": p["dev_error"], "dev_ci": p["dev_ci"]} for p in data["points"]}
    worth = {f"{w['arm']}@{w['budget']}": {"status": w["status"], "images": w["images"], "ci": w["ci"],
                                           "text": w["text"]} for w in data["worth"]}
    return {"points": dev, "worth": worth, "sentence": data["sentence"]}


def read_curve(path: str | os.PathLike[str]) -> dict[str, Any]:
    """curve.json, or the folder holding it."""
    p = Path(path)
    return io.read_json(p / CURVE_JSON if p.is_dir() else p)


def recommendation(data: dict[str, Any]):
    """The curve's answer as the report's first next step: label more, or synthesise."""
    from shiftkit.report.analysis import Recommendation

    worth = [w for w in data["worth"] if w["status"] != "not_estimable"]
    title = ("Label or synthesise: what the learning curve says" if worth
             else "The learning curve shows no arm worth labels")
    return Recommendation(title, data["sentence"])
