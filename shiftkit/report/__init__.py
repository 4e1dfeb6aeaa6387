"""The report of one run: its numbers, its sections and the files that show them.

- ``analysis.py``: error analysis (per class, domain, property; synth effect) and the
  recommendations.
- ``text.py``: numbers as the report writes them (``pct``, ``pts``, ``ci``, ``level_text``).
- ``blocks.py``: the building blocks (``Section``, ``Text``, ``Table``, ``Figure``, ...).
- ``sections.py``: the builders (``BUILDERS``): the report's data -> its sections, built ONCE
  per report by ``stage.py`` and handed to every writer.
- ``markdown.py``, ``html.py``, ``terminal.py``: the writers (they import blocks, never builders);
  ``jsonout.py``: metrics.json, analysis.json and plot data; ``figures.py``: the PNG figures.
- ``curve.py``: the learning curve's section, figure and recommendation in the report.
- ``stage.py``: the report stage (``build_report``, ``write_report``, ``run_report``, ``summary_line``).
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "ReportData": "shiftkit.report.stage",
    "build_report": "shiftkit.report.stage",
    "write_report": "shiftkit.report.stage",
    "run_report": "shiftkit.report.stage",
    "summary_line": "shiftkit.report.stage",
    "build_sections": "shiftkit.report.sections",
    "BUILDERS": "shiftkit.report.sections",
    "Section": "shiftkit.report.blocks",
    "Text": "shiftkit.report.blocks",
    "Table": "shiftkit.report.blocks",
    "Figure": "shiftkit.report.blocks",
    "Steps": "shiftkit.report.blocks",
    "Bullets": "shiftkit.report.blocks",
    "Gallery": "shiftkit.report.blocks",
    "pct": "shiftkit.report.text",
    "pts": "shiftkit.report.text",
    "ci": "shiftkit.report.text",
    "level_text": "shiftkit.report.text",
    "Analysis": "shiftkit.report.analysis",
    "Recommendation": "shiftkit.report.analysis",
    "analyse": "shiftkit.report.analysis",
    "recommend": "shiftkit.report.analysis",
    "ReportParams": "shiftkit.report.params",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
