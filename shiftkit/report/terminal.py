"""The report's summary as rich tables on the terminal (stderr, like all shiftkit output).

Shows the tables of the "errors" section, the diagnosis and the first recommendations, from the
sections of :mod:`shiftkit.report.sections`.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table as RichTable

from shiftkit.core.console import console
from shiftkit.report.sections import DIAGNOSIS_MARK, Steps, Table, Text, build_sections


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


def show(data, top: int = 3) -> None:
    sections = {s.key: s for s in build_sections(data)}
    for b in sections["errors"].blocks:
        if isinstance(b, Table):
            console.print(_table(b))
    diag = next(b for b in sections["title"].blocks if isinstance(b, Text) and b.style == "diagnosis")
    console.print(escape(diag.text.replace("**", "")))
    steps = next(b for b in sections["next"].blocks if isinstance(b, Steps))
    for i, r in enumerate(steps.items[:top], 1):
        console.print(f"  {i}. [bold]{escape(r.title)}[/bold]")
