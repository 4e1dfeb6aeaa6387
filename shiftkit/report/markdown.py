"""report.md: plain GitHub-flavoured markdown that reads well in a terminal and a pull request.

Lays out the sections built once by :mod:`shiftkit.report.sections`; figures are left to the HTML, except those
written beside report.md (a figure block that names its file).
"""

from __future__ import annotations

from shiftkit.core.text import safe_name
from shiftkit.report.blocks import Bullets, Figure, Gallery, Section, Steps, Table, Text


def _cell(s) -> str:  # a name's control characters shown escaped (core/text.py), a pipe escaped
    return safe_name(str(s).replace("\n", " ")).replace("|", "\\|")


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _gallery(cards: list[dict]) -> str:
    rows = [
        [i, f"`{g['image_id'][:16]}`", g["label"], g["pred"], f"{g['confidence']:.3f}", g["file"] or ""]
        for i, g in enumerate(cards, 1)
    ]
    return table(["#", "image", "true", "predicted", "confidence", "file"], rows, "rlllrl")


def block(b) -> str | None:
    """One block as markdown, or None for what markdown does not show (figures)."""
    if isinstance(b, Text):
        return b.text
    if isinstance(b, Table):
        return table(b.header, b.rows, b.align)
    if isinstance(b, Steps):
        return "\n".join(f"{i}. **{r.title}.** {r.detail}" for i, r in enumerate(b.items, 1))
    if isinstance(b, Bullets):
        return "\n".join(f"- {n}" for n in b.items)
    if isinstance(b, Gallery):
        return _gallery(b.cards)
    if isinstance(b, Figure):
        return f"![{b.alt}]({b.file})" if b.file else None
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_sections(sections: list[Section]) -> str:
    """report.md of the report's sections."""
    out: list[str] = []
    for s in sections:
        out += ["#" * s.level + " " + s.title, ""]
        for b in s.blocks:
            text = block(b)
            if text is not None:
                out += [text, ""]
    return "\n".join(out)
