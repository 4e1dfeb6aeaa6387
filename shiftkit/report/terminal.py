"""The report's summary as rich tables on the terminal (stderr, like all shiftkit output).

Shows the tables of the "errors" section, the diagnosis and the first recommendations, then one
line naming every other section of report.md, from the sections built once by
:mod:`shiftkit.report.sections` (a new section shows here without a change to this file).
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table as RichTable

from shiftkit.core.console import console
from shiftkit.report.blocks import DIAGNOSIS_MARK, Section, Steps, Table, Text


def _style(cell: str) -> str:
    if cell == DIAGNOSIS_MARK:
        return f"[bold red]{cell}[/bold red]"
    if cell.startswith("cannot be computed") or cell == "no predictions":
        return f"[yellow]{escape(cell)}[/yellow]"
    return escape(cell)


def _table(t: Table) -> RichTable:
    out = RichTable(title=t.title or None, title_justify="left")
    keep = [i for i, col in enumerate(t.header) if col not in t.wide]
    for i in keep:
        # names stay on one line (a narrow terminal wraps the other cells)
        out.add_column(t.header[i], justify="left" if t.align[i] == "l" else "right", no_wrap=i == 0)
    for row in t.rows:
        out.add_row(*(_style(str(row[i])) for i in keep))
    return out


# the sections the summary above the list shows in full
_SHOWN = ("title", "errors", "next")


def show(report_sections: list[Section], top: int = 3) -> None:
    """The report's summary on the console: the error tables, the diagnosis, the first ``top``
    recommendations and the titles of the other sections."""
    sections = {s.key: s for s in report_sections}
    for b in sections["errors"].blocks:
        if isinstance(b, Table):
            console.print(_table(b))
    diag = next(b for b in sections["title"].blocks if isinstance(b, Text) and b.style == "diagnosis")
    console.print(escape(diag.text.replace("**", "")))
    steps = next(b for b in sections["next"].blocks if isinstance(b, Steps))
    for i, r in enumerate(steps.items[:top], 1):
        console.print(f"  {i}. [bold]{escape(r.title)}[/bold]")
    others = [s.title for s in report_sections if s.key not in _SHOWN and s.level <= 2]
    if others:
        console.print(escape("Also in the report: " + "; ".join(t.replace("**", "") for t in others) + "."))
