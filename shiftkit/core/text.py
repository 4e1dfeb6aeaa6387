"""How a name from outside (a file or folder name, a label, a domain) is shown: one helper per
medium, all built on ``safe_name``, so that a file named with ANSI escapes or a newline can
neither recolour or clear the terminal nor write its own line into check.md, report.md or an
error message. JSON needs none of this (its encoder escapes control characters).

- ``safe_name``: control characters (C0, DEL, C1, line and paragraph separators, bidirectional
  overrides) as ``\\xNN`` / ``\\uNNNN``; everything else as it is.
- ``md_text`` / ``md_code``: for markdown prose (markup characters backslash-escaped) and for a
  code span (a backtick cannot close it).
- ``rich_text``: for rich's console (its ``[markup]`` escaped too).

HTML escapes with ``html.escape(safe_name(x))``.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _escape(match: re.Match[str]) -> str:
    o = ord(match.group())
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def safe_name(name: object) -> str:
    """``name`` as text with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``)."""
    return _CONTROL.sub(_escape, str(name))


def md_text(text: object) -> str:
    """``text`` for markdown prose or a table cell: control characters and markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", safe_name(text))


def md_code(name: object) -> str:
    """``name`` as a markdown code span (a backtick inside shown as ``\\x60``)."""
    return "`" + safe_name(name).replace("`", "\\x60") + "`"


def rich_text(text: object) -> str:
    """``text`` for rich's console: control characters and rich's ``[markup]`` escaped."""
    from rich.markup import escape

    return escape(safe_name(text))
