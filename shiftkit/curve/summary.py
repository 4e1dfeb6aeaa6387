"""The curve's own folder (the ``curve`` stage's outputs): ``curve.json``, ``curve.md``,
``curve.png`` and ``plot.json`` for ``dvc plots``, rendered from the dict
:func:`shiftkit.curve.stage.build_curve` builds with the report's curve section
(:mod:`shiftkit.report.curve`), which the report shows too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shiftkit.core import files as io
from shiftkit.report.curve import CURVE_JSON, CURVE_PNG, figure, section

CURVE_MD = "curve.md"
PLOT_JSON = "plot.json"


def plot_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``dvc plots`` data: one row per budget, a column per arm (dev error in %)."""
    out = []
    for n in data["images"]:
        row: dict[str, Any] = {"images": n}
        for p in data["points"]:
            if p["images"] == n:
                row[p["arm"]] = round(p["dev_error"] * 100, 2)
        out.append(row)
    return out


def write_curve(data: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write curve.json, curve.md, curve.png and plot.json into ``out_dir`` (replaced as one set)."""
    from shiftkit.report.markdown import render_sections

    with io.replace_dir(out_dir, owned=(CURVE_JSON, CURVE_MD, CURVE_PNG, PLOT_JSON)) as tmp:
        io.write_json(tmp / CURVE_JSON, data)
        io.write_text(tmp / CURVE_MD, render_sections([section(data)]))
        io.write_bytes(tmp / CURVE_PNG, figure(data))
        io.write_json(tmp / PLOT_JSON, plot_rows(data))
    return Path(out_dir)


def curve_summary(data: dict[str, Any]) -> str:
    """The curve step's one-line summary: the curve's sentence."""
    return f"curve: {data['sentence']}"
