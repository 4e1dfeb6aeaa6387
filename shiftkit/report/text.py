"""Numbers as the report writes them: percentages, signed points and intervals (one of each, used by
every section, writer and recommendation)."""

from __future__ import annotations


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pts(x: float | None, suffix: str = "") -> str:
    """Signed points (``+1.2``); ``suffix`` follows a number (``" points"``), never ``n/a``."""
    return "n/a" if x is None else f"{100 * x:+.1f}{suffix}"


def ci(lo: float | None, hi: float | None, unit: str = "pts", suffix: str = "") -> str:
    """An interval in percent (``unit="%"``) or signed points; ``suffix`` follows it, never ``n/a``."""
    if lo is None or hi is None:
        return "n/a"
    if unit == "%":
        return f"[{100 * lo:.1f}, {100 * hi:.1f}]{suffix}"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]{suffix}"


def level_text(level: float) -> str:
    return f"{int(round(level * 100))}%"
