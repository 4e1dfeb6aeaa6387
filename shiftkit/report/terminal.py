"""The report's summary as rich tables on the terminal (stderr, like all shiftkit output)."""

from __future__ import annotations

from rich.table import Table

from shiftkit.console import console
from shiftkit.decompose import GAP_TITLES, GAPS
from shiftkit.report.markdown import _FORMULA, ci, diagnosis_sentence, pct, pts
from shiftkit.schema import SPLITS


def show(data, top: int = 3) -> None:
    d = data.decomposition
    lvl = f"{int(round(d.level * 100))}%"
    t = Table(title="Errors", title_justify="left")
    for col, j in (("split", "left"), ("images", "right"), ("wrong", "right"), ("error", "right"), (f"{lvl} interval (%)", "right")):
        t.add_column(col, justify=j)
    t.add_row("human", "—", "—", pct(d.human_error), "fixed")
    for s in SPLITS:
        c = d.counts.get(s)
        if c is None:
            t.add_row(s, "0", "0", "n/a", "[dim]no predictions[/dim]")
        else:
            t.add_row(s, f"{c.n:,}", f"{c.errors:,}", pct(c.error), ci(*d.error_ci[s], "%"))
    console.print(t)
    g_t = Table(title="Gaps (points)", title_justify="left")
    for col, j in (("gap", "left"), ("formula", "left"), ("points", "right"), (f"{lvl} interval", "right"), ("", "left")):
        g_t.add_column(col, justify=j)
    for name, _, _ in GAPS:
        g = d.gaps[name]
        mark = "[bold red]◀ diagnosis[/bold red]" if name == d.diagnosis else ("clearly > 0" if g.significant else "")
        if g.value is None:
            mark = f"[yellow]no {', '.join(g.missing)}[/yellow]"
        g_t.add_row(GAP_TITLES[name], _FORMULA[name], pts(g.value), ci(g.ci_low, g.ci_high), mark)
    console.print(g_t)
    console.print(diagnosis_sentence(d).replace("**", ""))
    for i, r in enumerate(data.recommendations[:top], 1):
        console.print(f"  {i}. [bold]{r.title}[/bold]")
