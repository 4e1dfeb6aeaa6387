"""report.html: one self-contained file (inline CSS, figures as base64 PNG, no scripts)."""

from __future__ import annotations

import base64
import html as _h

import numpy as np
import polars as pl

from shiftkit.analysis import shown_classes
from shiftkit.decompose import GAP_NAMES, GAP_TITLES
from shiftkit.report import figures
from shiftkit.report.markdown import ci, compare_rows, diagnosis_sentence, gap_rows, mismatch_sentence, pct
from shiftkit.schema import SPLITS

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.diag{font-size:17px;background:#fff6e5;border-left:4px solid #e0a020;padding:.6em 1em}
.fig{margin:.8em 0}.fig img{max-width:100%;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;padding:6px;width:120px;text-align:center;font-size:12px}
.card img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;background:#f8f8f8}
.noimg{width:96px;height:96px;display:inline-block;background:#eee;line-height:96px;color:#888}
ol li{margin:.3em 0}.muted{color:#777;font-size:13px}
"""


def _e(x) -> str:
    return _h.escape(str(x), quote=True)


def _img(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<div class="fig"><img alt="{_e(alt)}" src="data:image/png;base64,{b64}"></div>'


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_e(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _bold(md: str) -> str:
    # the diagnosis sentence carries **bold** markdown; render it as <strong>
    parts = _e(md).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _arr(col) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in col.to_list()], float)


def render(data) -> str:
    d, a = data.decomposition, data.analysis
    lvl = f"{int(round(d.level * 100))}%"
    s: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>shiftkit report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>shiftkit report</h1>",
        f'<p class="muted">predictions: {_e(data.predictions)}</p>',
        f'<p class="diag">{_bold(diagnosis_sentence(d))}</p>',
        "<h2>Errors and gaps</h2>",
    ]
    rows = [["human", "—", "—", pct(d.human_error), "fixed input"]]
    for sp in SPLITS:
        c = d.counts.get(sp)
        if c is None:
            rows.append([sp, 0, 0, "n/a", "no predictions"])
        else:
            rows.append([sp, f"{c.n:,}", f"{c.errors:,}", pct(c.error), ci(*d.error_ci[sp], "%")])
    s.append(_table(["split", "images", "wrong", "error", f"{lvl} interval (%)"], rows))
    s.append(_table(["gap", "formula", "points", f"{lvl} interval", ""], gap_rows(d), left=2))
    s.append(_img(figures.gaps_waterfall(d), "error decomposition waterfall"))
    s.append(
        f'<p class="muted">Bootstrap over images resampled within each split: {d.replicates:,} replicates, '
        f"seed {d.seed}.</p>"
    )
    s.append("<h2>What to do next</h2><ol>")
    s += [f"<li><strong>{_e(r.title)}.</strong> {_e(r.detail)}</li>" for r in data.recommendations]
    s.append("</ol>")
    if data.compare is not None:
        s.append(f"<h2>Compared with {_e(data.compare_source)}</h2>")
        sentence = _e(mismatch_sentence(data.compare, lvl))
        s.append("<p>" + sentence.replace("**", "<strong>", 1).replace("**", "</strong>", 1) + "</p>")
        s.append(_table(["", "before", "after", "change", f"{lvl} interval", "verdict"], compare_rows(data.compare)))
        s.append(_img(figures.compare_chart(data.compare, list(GAP_NAMES), [GAP_TITLES[n] for n in GAP_NAMES]),
                      "change of each gap"))
    s.append("<h2>Error analysis: dev against bridge</h2><h3>By class</h3>")
    bc = a.by_class
    keep = [a.labels[i] for i in shown_classes(a)]
    if bc.height > len(keep) and keep:
        s.append(f'<p class="muted">Figure: the {len(keep)} classes with most dev errors of {bc.height}.</p>')
        bc_fig = bc.filter(pl.col("label").is_in(keep))
    else:
        bc_fig = bc
    if bc_fig.height:
        s.append(_img(figures.per_class(
            bc_fig["label"].to_list(), _arr(bc_fig["dev_error"]), (_arr(bc_fig["dev_ci_low"]), _arr(bc_fig["dev_ci_high"])),
            _arr(bc_fig["bridge_error"]), (_arr(bc_fig["bridge_ci_low"]), _arr(bc_fig["bridge_ci_high"]))),
            "error per class"))
    rows = [
        [r["label"], r["dev_n"], pct(r["dev_error"]) if r["dev_n"] else "n/a",
         ci(r["dev_ci_low"], r["dev_ci_high"], "%") if r["dev_n"] else "", r["bridge_n"],
         pct(r["bridge_error"]) if r["bridge_n"] else "n/a"]
        for r in bc.to_dicts()
    ]
    s.append(_table(["class", "dev images", "dev error", f"{lvl} interval (%)", "bridge images", "bridge error"], rows))
    s.append("<h3>By domain</h3>")
    rows = [[r["split"], r["domain"], r["n"], pct(r["error"]), ci(r["ci_low"], r["ci_high"], "%")] for r in a.by_domain.to_dicts()]
    s.append(_table(["split", "domain", "images", "error", f"{lvl} interval (%)"], rows, left=2))
    for prop, t in a.by_property.items():
        s.append(f"<h3>By {_e(prop)} (quantile buckets)</h3>")
        s.append(_img(figures.buckets(
            prop, t["range"].to_list(), _arr(t["dev_error"]), (_arr(t["dev_ci_low"]), _arr(t["dev_ci_high"])),
            _arr(t["bridge_error"]), (_arr(t["bridge_ci_low"]), _arr(t["bridge_ci_high"]))), f"error by {prop}"))
        rows = [
            [r["range"], r["dev_n"], pct(r["dev_error"]) if r["dev_n"] else "n/a", r["bridge_n"],
             pct(r["bridge_error"]) if r["bridge_n"] else "n/a"]
            for r in t.to_dicts()
        ]
        s.append(_table([prop, "dev images", "dev error", "bridge images", "bridge error"], rows))
    if a.labels:
        s.append("<h3>Dev confusion matrix</h3>")
        idx = shown_classes(a)
        if len(idx) < len(a.labels):
            s.append(f'<p class="muted">The {len(idx)} classes most involved in dev errors, of {len(a.labels)}.</p>')
        s.append(_img(figures.confusion([a.labels[i] for i in idx], a.confusion[np.ix_(idx, idx)]), "dev confusion matrix"))
    if data.gallery:
        s.append("<h3>Most confidently wrong dev images</h3><div class=\"gallery\">")
        for g in data.gallery:
            pic = (
                f'<img alt="{_e(g["image_id"][:12])}" src="data:image/png;base64,{base64.b64encode(g["thumb"]).decode("ascii")}">'
                if g["thumb"]
                else '<span class="noimg">no image</span>'
            )
            s.append(
                f'<div class="card">{pic}<br>true <strong>{_e(g["label"])}</strong>, '
                f'predicted <strong>{_e(g["pred"])}</strong><br>confidence {g["confidence"]:.3f}<br>'
                f'<span class="muted">{_e(g["image_id"][:12])}</span></div>'
            )
        s.append("</div>")
    if data.notes:
        s.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in data.notes) + "</ul>")
    s.append("</body></html>")
    return "\n".join(s) + "\n"
