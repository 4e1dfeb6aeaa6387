"""Terminal output shared by the stages: one stderr console and progress bars."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Progress and summaries go to stderr so that stdout stays clean for json or piped output.
console = Console(stderr=True, highlight=False, soft_wrap=True)


def progress_enabled() -> bool:
    """Bars are drawn on a terminal, and hidden under pytest/CI unless SHIFTKIT_PROGRESS=1."""
    env = os.environ.get("SHIFTKIT_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def make_progress(*, rate_unit: str = "img") -> Progress:
    """A rich progress bar with count, rate, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress_enabled(),
        transient=False,
        refresh_per_second=4,
    )


def rate_text(done: int, seconds: float, unit: str = "img") -> str:
    return f"{done / seconds:,.0f} {unit}/s" if seconds > 0 else ""
