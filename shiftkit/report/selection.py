"""The report's "Which images to label" section: the curve's selection simulation (issue 24), from its
JSON alone (``data/curve/selection/summary/selection.json``, merged into curve.json under
``selection`` by the curve step; built by :func:`shiftkit.curve.selection.savings`). This module knows
no strategy by name and imports nothing of select or curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftkit.report.text import ci, pct, pts

SELECTION_PNG = "selection_curve.png"
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def figure(data: dict[str, Any]) -> bytes:
    """Dev error against labels chosen, one line (and interval band) per strategy; log(1 + n) axis."""
    from shiftkit.report.figures import _plt, _png

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.set_xscale("function", functions=(np.log1p, np.expm1))
    for k, s in enumerate(data["strategies"]):
        pts_ = sorted((p["labels"], p["dev_error"], *p["dev_ci"]) for p in data["points"] if p["strategy"] == s)
        cols = enumerate(zip(*pts_, strict=True))
        n, e, lo, hi = (np.array(c, dtype=float) * (1 if i == 0 else 100) for i, c in cols)
        colour = COLOURS[k % len(COLOURS)]
        ax.plot(n, e, marker="o", color=colour, label=s, lw=2.5 if s == data["reference"] else 1.5)
        ax.fill_between(n, lo, hi, color=colour, alpha=0.15, lw=0)
    ax.set_xticks(data["labels"], [str(x) for x in data["labels"]])
    ax.set_xlabel("target images labelled, chosen by the strategy (axis: log(1 + n))")
    ax.set_ylabel("dev error (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def point_rows(data: dict[str, Any]) -> list[list[str]]:
    return [[p["strategy"], str(p["labels"]), f"{pct(p['dev_error'])} {ci(*p['dev_ci'], unit='%')}"]
            for p in data["points"] if p["labels"] > 0 or p["strategy"] == data["reference"]]


def saving_rows(data: dict[str, Any]) -> list[list[str]]:
    return [[r["strategy"], str(r["labels"]), f"{pts(r['gain'])} {ci(*r['gain_ci'])}",
             "yes" if r["claimed"] else "no", r["text"]] for r in data["savings"]]


def intro(data: dict[str, Any]) -> str:
    per_round = data["labels"][1] if len(data["labels"]) > 1 else 0
    draws, sd = data.get("random_draws", 1), data.get("training_sd", 0.0)
    if data.get("training_df"):
        noise = (f"Random ran {draws} times (each its own draw and training seed): its curve is their mean, and "
                 f"their spread, {sd * 100:.1f} points of dev error for one fine-tuning, is the training noise "
                 "added to every interval and claim (a strategy must beat random by more than a lucky "
                 "fine-tuning would). ")
    else:
        noise = ("Random ran once, so the training noise was not measured: the intervals hold the dev images' "
                 "noise only, and a lucky fine-tuning can pass for a saving. ")
    return (
        f"Each strategy chose the target's train images to label, {per_round} per round, seeing only the "
        "current model's probabilities and pooled features (the labels were revealed "
        "for the chosen images only); the web-only model was fine-tuned on the web images plus the images chosen "
        f"so far, and every point is measured on the same {data['dev_images']} dev images. {noise}A saving is the "
        f"labels random needs to reach the strategy's dev error minus the strategy's own, claimed only when the gain "
        f"over random passes Holm's step-down over every (strategy, round), one-sided at "
        f"{(1 - data['level']) / 2 * 100:.1f}%; intervals {data['level'] * 100:.0f}% from {data['replicates']} "
        f"resamples of {data['clusters']} dev clusters."
    )


def section(data: dict[str, Any]):
    """The selection simulation as a report section: the sentence, the savings, the points, the figure."""
    from shiftkit.report.blocks import Figure, Section, Table, Text

    blocks = [Text(intro(data), "muted"), Text(f"**{data['sentence']}**")]
    if data["savings"]:
        blocks.append(Table(["strategy", "labels", "gain over random", "claimed", "labels saved"],
                            saving_rows(data), "lrrll", title="Labels saved against random"))
    blocks.append(Table(["strategy", "labels", "dev error"], point_rows(data), "lrr", title="Selection curve"))
    blocks.append(Figure(lambda: figure(data), "dev error against labels chosen by each strategy",
                         file=SELECTION_PNG))
    return Section("selection", "Which target images to label: selection against random", 2, blocks)


def selection_section(report) -> list:
    """The report builder: the section when the curve carries a selection simulation."""
    sel = (report.curve or {}).get("selection") if report.curve is not None else None
    if not sel or not sel.get("strategies"):
        return []
    return [section(sel)]
