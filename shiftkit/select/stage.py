"""``shiftkit select``: rank the pool with a model and a strategy, write what to label next.

Outputs (one folder, swapped in whole): ``selection.csv`` (``image_id,path,score,strategy,why``,
in the order chosen: a labelling tool's import list) and ``selection.png`` (a contact sheet of the
chosen images, numbered in that order), plus ``selection.json`` (what was run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core.errors import ConfigError
from shiftkit.select.strategies import PoolView, choose, get_strategy

SELECTION_CSV = "selection.csv"
SELECTION_PNG = "selection.png"
SELECTION_JSON = "selection.json"
SHEET_MAX = 100  # images on the contact sheet (the first chosen)


@dataclass(frozen=True)
class SelectResult:
    chosen: int
    pool: int
    strategy: str
    out: Path
    seconds: float


def contact_sheet(paths: list[str], captions: list[str], cell: int = 96) -> bytes:
    """A PNG grid of the images (each decoded safely, fitted into ``cell`` px), captioned."""
    from PIL import Image, ImageDraw

    from shiftkit.images.decode import decode

    n = max(len(paths), 1)
    cols = min(10, n)
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (p, text) in enumerate(zip(paths, captions, strict=True)):
        px = decode(p).pixels
        im = Image.fromarray(px.squeeze() if px.ndim == 3 and px.shape[2] == 1 else px).convert("RGB")
        im.thumbnail((cell - 4, cell - 4))
        x, y = (k % cols) * cell, (k // cols) * (cell + 14)
        sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        draw.text((x + 3, y + cell), text[: cell // 6], fill="black")
    import io as bytes_io

    buf = bytes_io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def select(
    pool: pl.DataFrame, model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, strategy: str,
    budget: int, seed: int = 0, batch_size: int = 256, workers: int = 0,
) -> SelectResult:
    """Choose ``budget`` images of ``pool`` (:mod:`shiftkit.select.pool`) with ``strategy`` and the
    model of ``model_dir``; write the selection folder ``out_dir``.

    Raises:
        ConfigError: on a budget below 1.
        RegistryError: on an unknown strategy (before the model is read).
        ModelError: when ``model_dir`` is not a trained model.
    """
    import time

    from shiftkit.select.embed import embed

    if budget < 1:
        raise ConfigError(f"The --budget option must be at least 1; got {budget}.")
    get_strategy(strategy)
    t0 = time.perf_counter()
    emb = embed(model_dir, pool["abspath"].to_list(), batch_size=batch_size, workers=workers)
    picked = choose(strategy, PoolView(emb.probs, emb.feats, emb.labels, seed=seed), budget)
    rows = pool[picked.index.tolist()]
    table = pl.DataFrame({"image_id": rows["image_id"], "path": rows["path"], "score": picked.score.astype(np.float64),
                          "strategy": [strategy] * len(picked.index), "why": picked.why})
    shown = min(rows.height, SHEET_MAX)
    sheet = contact_sheet(rows["abspath"].to_list()[:shown], [f"{k + 1}" for k in range(shown)])
    out = Path(out_dir)
    with io.replace_dir(out, owned=("selection.*",)) as tmp:
        table.write_csv(tmp / SELECTION_CSV)
        (tmp / SELECTION_PNG).write_bytes(sheet)
        io.write_json(tmp / SELECTION_JSON, {"strategy": strategy, "budget": budget, "seed": seed,
                                             "pool": pool.height, "chosen": table.height, "model": str(model_dir)})
    return SelectResult(table.height, pool.height, strategy, out, time.perf_counter() - t0)


def summary_line(r: SelectResult) -> str:
    return (f"select {r.strategy}: chose {r.chosen:,} of {r.pool:,} pool images in {r.seconds:.1f} s; "
            f"wrote {r.out / SELECTION_CSV} and {r.out / SELECTION_PNG}")
