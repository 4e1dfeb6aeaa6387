"""The report's building blocks: sections of paragraphs, tables, figures, steps, bullets and
galleries. The builders (:mod:`shiftkit.report.sections`) make them; the writers (markdown, HTML,
terminal) lay them out and import nothing else of the report.

Inline text may carry ``**bold**`` and ```code``` markup: markdown keeps it, HTML turns it
into ``<strong>`` and ``<code>``, the terminal drops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shiftkit.report.analysis import Recommendation

DIAGNOSIS_MARK = "◀ diagnosis"



@dataclass(frozen=True)
class Text:
    """A paragraph; ``style`` is "" (plain), "muted" (a side remark) or "diagnosis" (the headline)."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Table:
    """A table of strings; ``align`` holds one "l" or "r" per column; ``title`` names it on the terminal.

    ``media="text"`` keeps it out of the HTML (where a figure shows the same numbers); the
    terminal leaves out the columns named in ``wide`` (explanations that a narrow screen can spare).
    """

    header: list[str]
    rows: list[list[str]]
    align: str
    title: str = ""
    media: str = "all"
    wide: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A figure, drawn only by the writers that embed images (``draw`` returns PNG bytes)."""

    draw: Callable[[], bytes]
    alt: str
    caption: str = ""
    file: str = ""  # when set, the markdown shows the figure from this file beside report.md


@dataclass(frozen=True)
class Steps:
    """The ranked recommendations: an ordered list of title and detail."""

    items: list[Recommendation]


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Gallery:
    """Images with their true and predicted label and confidence (``thumb``: PNG bytes or None)."""

    cards: list[dict[str, Any]]


Block = Text | Table | Figure | Steps | Bullets | Gallery


@dataclass
class Section:
    """A heading (``level`` 1 to 3) and its blocks; ``key`` names it for writers and tests."""

    key: str
    title: str
    level: int = 2
    blocks: list[Block] = field(default_factory=list)
