"""report.html: one self-contained file (inline CSS, figures as base64 PNG, no scripts).

Lays out the sections built once by :mod:`shiftkit.report.sections`; every text is escaped.
"""

from __future__ import annotations

import base64
import html as _h
import re

from shiftkit.core.text import safe_name
from shiftkit.report.blocks import Bullets, Figure, Gallery, Section, Steps, Table, Text

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.diag{font-size:17px;background:#fff6e5;border-left:4px solid #e0a020;padding:.6em 1em}
.fig{margin:.8em 0}.fig img{max-width:100%;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;padding:6px;width:120px;text-align:center;font-size:12px}
.card img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;background:#f8f8f8}
.noimg{width:96px;height:96px;display:inline-block;background:#eee;line-height:96px;color:#888}
ol li{margin:.3em 0}.muted{color:#777;font-size:13px}
"""


def _e(x) -> str:  # control characters of a name (a label, a file) shown escaped, newlines kept
    return _h.escape(safe_name(x).replace("\\x0a", "\n"), quote=True)


def inline(text: str) -> str:
    """Escape ``text`` and turn its ``**bold**`` and ```code``` markup into tags."""
    out = _e(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _png(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(t: Table) -> str:
    cls = ['"l"' if a == "l" else '""' for a in t.align]
    th = "".join(f"<th class={c}>{_e(h)}</th>" for c, h in zip(cls, t.header, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td class={c}>{_e(v)}</td>" for c, v in zip(cls, r, strict=True)) + "</tr>" for r in t.rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _card(g: dict) -> str:
    name = _e(g["image_id"][:12])
    pic = f'<img alt="{name}" src="{_png(g["thumb"])}">' if g["thumb"] else '<span class="noimg">no image</span>'
    return (
        f'<div class="card">{pic}<br>true <strong>{_e(g["label"])}</strong>, '
        f'predicted <strong>{_e(g["pred"])}</strong><br>confidence {g["confidence"]:.3f}<br>'
        f'<span class="muted">{name}</span></div>'
    )


def block(b) -> str | None:
    """One block as HTML, or None for what the HTML leaves to a figure."""
    if isinstance(b, Text):
        cls = {"muted": ' class="muted"', "diagnosis": ' class="diag"'}.get(b.style, "")
        return f"<p{cls}>{inline(b.text)}</p>"
    if isinstance(b, Table):
        return _table(b) if b.media == "all" else None
    if isinstance(b, Figure):
        cap = f'<p class="muted">{inline(b.caption)}</p>\n' if b.caption else ""
        return f'{cap}<div class="fig"><img alt="{_e(b.alt)}" src="{_png(b.draw())}"></div>'
    if isinstance(b, Steps):
        items = "".join(f"<li><strong>{_e(r.title)}.</strong> {_e(r.detail)}</li>" for r in b.items)
        return f"<ol>{items}</ol>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in b.items) + "</ul>"
    if isinstance(b, Gallery):
        return '<div class="gallery">' + "\n".join(_card(g) for g in b.cards) + "</div>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_sections(sections: list[Section]) -> str:
    """report.html of the report's sections: one self-contained page."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>shiftkit report</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for s in sections:
        out.append(f"<h{s.level}>{inline(s.title)}</h{s.level}>")
        out += [h for h in map(block, s.blocks) if h is not None]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
