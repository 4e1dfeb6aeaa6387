"""Figures of the report as PNG bytes (matplotlib's Agg backend, no display needed).

PNG metadata is stripped of matplotlib's version string so that the same data gives the same
bytes on every run.
"""

from __future__ import annotations

import io as _io
import warnings

import numpy as np

from shiftkit.stats.decompose import GAP_TITLES, GAPS, Decomposition

_META = {"Software": None}
_GAP_COLOURS = {
    "avoidable_bias": "#4c72b0", "variance": "#dd8452", "data_mismatch": "#c44e52", "dev_overfit": "#8172b3",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = _io.BytesIO()
    with warnings.catch_warnings():
        # a label in a script the font lacks (emoji, CJK) is drawn as boxes; matplotlib's warning
        # about each glyph would reach stderr, under -q too, once per figure
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buf, format="png", dpi=100, metadata=_META, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def gaps_waterfall(d: Decomposition) -> bytes:
    """Waterfall from human-level error to test error: each gap a floating bar with its interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    names = ["human"]
    ax.bar(0, d.human_error * 100, color="#999999", width=0.6)
    ax.text(0, d.human_error * 100, f"{d.human_error * 100:.1f}%", ha="center", va="bottom", fontsize=8)
    x = 1
    for name, lower, _upper in GAPS:
        g = d.gaps[name]
        names.append(GAP_TITLES[name].replace(" ", "\n"))
        if g.value is None:
            ax.text(x, 0, "n/a\n(no " + "/".join(g.missing) + ")", ha="center", va="bottom", fontsize=8)
            x += 1
            continue
        base = d.human_error if lower == "human" else d.errors[lower]
        ax.bar(x, g.value * 100, bottom=base * 100, color=_GAP_COLOURS[name], width=0.6)
        top = (base + g.value) * 100
        ax.errorbar(
            x, top, yerr=[[max(0.0, (g.value - g.ci_low) * 100)], [max(0.0, (g.ci_high - g.value) * 100)]],
            fmt="none", ecolor="black", capsize=5, lw=1.2,
        )
        ax.text(x + 0.33, top, f"{g.value * 100:+.1f}", ha="left", va="center", fontsize=8)
        x += 1
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("error (%)")
    ax.set_title(f"Error decomposition ({int(round(d.level * 100))}% bootstrap intervals)", fontsize=10)
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def per_class(labels: list[str], dev: np.ndarray, dev_ci: tuple[np.ndarray, np.ndarray],
              bridge: np.ndarray, bridge_ci: tuple[np.ndarray, np.ndarray]) -> bytes:
    """Dev and bridge error per class, with Wilson intervals."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * n + 2), 3.4))
    x = np.arange(n)
    w = 0.4
    sides = ((-w / 2, bridge, bridge_ci, "bridge", "#dd8452"), (w / 2, dev, dev_ci, "dev", "#c44e52"))
    for off, vals, ci, lab, col in sides:
        v = np.nan_to_num(vals) * 100
        lo = np.clip(v - np.nan_to_num(ci[0]) * 100, 0, None)
        hi = np.clip(np.nan_to_num(ci[1]) * 100 - v, 0, None)
        ax.bar(x + off, v, width=w, color=col, label=lab)
        ax.errorbar(x + off, v, yerr=[lo, hi], fmt="none", ecolor="black", capsize=2, lw=0.8)
    ax.set_xticks(x, labels, fontsize=8, rotation=0 if n <= 20 else 90)
    ax.set_xlabel("true class")
    ax.set_ylabel("error (%)")
    ax.set_title("Error per class: dev against bridge", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def confusion(labels: list[str], cm: np.ndarray) -> bytes:
    """The dev confusion matrix, counts written in the cells (row-normalised colour)."""
    plt = _plt()
    n = len(labels)
    size = max(3.5, 0.45 * n + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, fontsize=7, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Dev confusion matrix", fontsize=10)
    return _png(fig)


def buckets(prop: str, ranges: list[str], dev: np.ndarray, dev_ci, bridge: np.ndarray, bridge_ci) -> bytes:
    """Dev and bridge error per quantile bucket of one image property."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    x = np.arange(len(ranges))
    for vals, ci, lab, col, mk in ((bridge, bridge_ci, "bridge", "#dd8452", "s"), (dev, dev_ci, "dev", "#c44e52", "o")):
        v = np.asarray(vals, float) * 100
        ok = ~np.isnan(v)
        lo = np.clip(v - np.asarray(ci[0], float) * 100, 0, None)
        hi = np.clip(np.asarray(ci[1], float) * 100 - v, 0, None)
        ax.errorbar(x[ok], v[ok], yerr=[lo[ok], hi[ok]], fmt=mk + "-", color=col, label=lab, capsize=3, lw=1)
    ax.set_xticks(x, ranges, fontsize=7, rotation=20)
    ax.set_ylabel("error (%)")
    ax.set_title(f"Error by {prop} (quantile buckets)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def compare_chart(changes: dict, names: list[str], titles: list[str]) -> bytes:
    """Each gap's change from the compared run, with its interval (negative = shrank)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    y = np.arange(len(names))
    for i, n in enumerate(names):
        c = changes[n]
        if c.value is None:
            ax.text(0, i, "n/a", ha="center", va="center", fontsize=8)
            continue
        col = "#55a868" if c.verdict == "shrank" else "#c44e52" if c.verdict == "grew" else "#999999"
        err = [[max(0.0, (c.value - c.ci_low) * 100)], [max(0.0, (c.ci_high - c.value) * 100)]]
        ax.errorbar(c.value * 100, i, xerr=err, fmt="o", color=col, capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, titles, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("change (points): this run minus the compared run")
    ax.set_title("Change of each gap", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def thumbnail(pixels: np.ndarray, size: int = 96) -> bytes:
    """A PNG thumbnail, nearest-neighbour upscaled so that tiny images stay crisp."""
    from PIL import Image

    px = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    im = Image.fromarray(px)
    scale = size / max(im.size)
    new = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
    im = im.resize(new, Image.NEAREST if scale >= 1 else Image.LANCZOS)
    buf = _io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
