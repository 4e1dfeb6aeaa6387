"""Terminal output of the library: one hook that the command line installs.

Library functions print through :data:`console` and draw bars with :func:`make_progress`. By
default that console is quiet, so a program that imports shiftkit sees nothing on its
terminal; the ``shiftkit`` command and the ``pipelines/`` stage scripts call
:func:`enable_output` (or wrap work in :func:`output_to`) to show messages and progress on
stderr. A library caller can capture the output the same way::

    from io import StringIO
    from rich.console import Console
    buf = StringIO()
    with output_to(Console(file=buf)):
        shiftkit.ingest.stage.ingest(...)
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator
from typing import Any

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

_QUIET = Console(quiet=True)
_current: contextvars.ContextVar[Console] = contextvars.ContextVar("shiftkit_console", default=_QUIET)


def stderr_console() -> Console:
    """The command line's console: stderr, so that stdout stays clean for json or pipes."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def current() -> Console:
    """The console library output goes to now (quiet unless a caller installed one)."""
    return _current.get()


def enable_output(target: Console | None = None) -> Console:
    """Send library output to ``target`` (default: stderr) from now on, in this context."""
    con = target if target is not None else stderr_console()
    _current.set(con)
    return con


@contextlib.contextmanager
def output_to(target: Console) -> Iterator[Console]:
    """Send library output to ``target`` inside the ``with`` block only."""
    token = _current.set(target)
    try:
        yield target
    finally:
        _current.reset(token)


_kept: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("shiftkit_kept", default=None)


def kept_notes() -> list[str]:
    """What a stage finished and kept so far in the current run (empty outside :func:`recording_kept`)."""
    notes = _kept.get()
    return notes if notes is not None else []


@contextlib.contextmanager
def recording_kept() -> Iterator[list[str]]:
    """Collect :func:`note_kept` notes inside the block (the command line's runner opens one per
    command, so that an interrupt can say what it left); outside it notes are not kept."""
    token = _kept.set([])
    try:
        yield kept_notes()
    finally:
        _kept.reset(token)


def note_kept(note: str) -> None:
    """Record that a complete output was kept (``"epoch 3 in models/ (resume with --resume)"``),
    so that an interrupt says what it left instead of "nothing was written"."""
    notes = _kept.get()
    if notes is not None and note not in notes:
        notes.append(note)


class _ConsoleProxy:
    """Forwards every call to the console installed now, so modules can import it once."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_current.get(), name)


console: Any = _ConsoleProxy()


def progress_enabled() -> bool:
    """Bars are drawn when output is on and stderr is a terminal (SHIFTKIT_PROGRESS=1/0 forces)."""
    if _current.get().quiet:
        return False
    env = os.environ.get("SHIFTKIT_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def make_progress(*, rate_unit: str = "img") -> Progress:
    """A rich progress bar with count, rate, elapsed and remaining time, on the current console."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_current.get(),
        disable=not progress_enabled(),
        transient=False,
        refresh_per_second=4,
    )


def rate_text(done: int, seconds: float, unit: str = "img") -> str:
    return f"{done / seconds:,.0f} {unit}/s" if seconds > 0 else ""
