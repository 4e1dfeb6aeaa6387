"""A selection scenario on real digits with a known answer, for tests/test_select.py and
benchmarks/selection_truth.py.

web: MNIST digits (28 px) in which the classes ``rare`` are nearly absent (``n_rare`` images each);
target: other MNIST digits, every class about equally often, split into a train pool, dev and
test. The web-only model is then unsure about (and wrong on) the rare classes, so the informative
pool images are known: those of the rare classes. With ``copies=True`` the target train pool is
instead near copies of one image (every pool image equally informative: no strategy can beat random).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from tests import helpers
from tests.train_helpers import manifest_rows

RARE = (5, 8)


def build_scenario(base: Path, *, n_web: int = 400, n_rare: int = 2, n_pool: int = 500, n_dev: int = 400,
                   n_test: int = 20, copies: bool = False, seed: int = 0) -> tuple[Path, Path]:
    """Manifest and splits of the scenario (see the module docstring); returns their paths."""
    wx, wy = helpers.mnist(n_web * 3)
    keep, seen = [], dict.fromkeys(range(10), 0)
    for i, y in enumerate(wy):
        cap = n_rare if int(y) in RARE else n_web // 10
        if seen[int(y)] < cap:
            keep.append(i)
            seen[int(y)] += 1
    tx, ty = helpers.mnist(n_pool + n_dev + n_test, offset=n_web * 3)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ty))
    dev_test = order[: n_dev + n_test]
    pool = order[n_dev + n_test: n_dev + n_test + n_pool]
    if copies:
        src = tx[pool[0]].astype(np.int16)
        noise = rng.integers(-2, 3, size=(n_pool, *src.shape))
        px, py = np.clip(src[None] + noise, 0, 255).astype(np.uint8), np.full(n_pool, ty[pool[0]])
    else:
        px, py = tx[pool], ty[pool]
    web = helpers.write_folder(base / "raw" / "web", wx[keep], wy[keep], prefix="mnist")
    tpool = helpers.write_folder(base / "raw" / "target", px, py, prefix="pool")
    tdev = helpers.write_folder(base / "raw" / "target", tx[dev_test], ty[dev_test], prefix="dev")
    table_dir = base / "manifest"
    table_dir.mkdir(parents=True, exist_ok=True)
    man = pl.concat([manifest_rows(base / "raw" / "web", "web", table_dir, web),
                     manifest_rows(base / "raw" / "target", "target", table_dir, tpool + tdev)])
    split = ["train"] * (len(web) + len(tpool)) + ["dev"] * n_dev + ["test"] * n_test
    split[0] = "bridge"  # evaluate needs every split; the bridge is carved from the web images
    spl = pl.DataFrame({"image_id": man["image_id"], "split": split, "group": man["dup_group"]})
    spl = spl.unique("image_id", keep="first", maintain_order=True)
    man = man.unique("image_id", keep="first", maintain_order=True)
    return (io.write_table(man, table_dir / "manifest.parquet", schema.MANIFEST),
            io.write_table(spl, base / "splits" / "splits.parquet", schema.SPLITS_TABLE))


def web_only(splits: Path, manifest: Path, target: str = "target") -> Path:
    """The budget-0 table beside ``splits``: the target's train images set to ``unused`` (what the
    web-only model trains on)."""
    man = io.read_table(manifest, schema.MANIFEST).select("image_id", "domain")
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    j = spl.join(man, on="image_id", how="left")
    out = j.with_columns(pl.when((pl.col("split") == "train") & (pl.col("domain") == target))
                         .then(pl.lit("unused")).otherwise(pl.col("split")).alias("split")).select(spl.columns)
    return io.write_table(out, splits.parent / "web.parquet", schema.SPLITS_TABLE)


def simulate(base: Path, strategies: tuple[str, ...], *, copies: bool = False, seed: int = 0,
             round_size: int = 30, rounds: int = 2, web: Path | None = None) -> dict:
    """The curve's selection simulation on the scenario, end to end with the real training: the
    web-only model, every strategy's rounds, and the savings against random (curve.selection's output).

    ``web``: a web-only model already trained on the same web images (the scenario's web images do not
    depend on ``copies``), instead of training it again."""
    from shiftkit.curve import selection
    from shiftkit.curve.params import CurveParams, round_chain
    from shiftkit.curve.stage import write_pixels
    from shiftkit.training.params import TrainParams
    from shiftkit.training.train import train

    m, s = build_scenario(base, copies=copies, n_web=300, n_pool=300, n_dev=300, seed=seed)
    tp = TrainParams(img_size=16, batch_size=32, finetune_epochs=15, head_epochs=0, pretrained=False,
                     augment=False, workers=1, eval_batches=1, seed=seed)
    write_pixels(m, s, base / "pixels", tp)
    if web is None:
        web = base / "web"
        train(m, web_only(s, m), web, tp, pixels=base / "pixels", live_dir=None)
    cp = CurveParams(selection=strategies, round_size=round_size, rounds=round_chain(rounds), select_epochs=6,
                     head_epochs=0, finetune_lr=1e-3, seed=seed)
    sel = base / "selection"
    selection.web_dev(web, m, s, sel / selection.WEB, cp)
    for name in strategies:
        selection.run_strategy(name, m, s, web, sel / name, tp, cp, pixels=base / "pixels")
    return selection.summarize(sel, m, cp)


def stage_key(stage, params: dict) -> tuple:
    """What decides whether DVC re-runs a stage: its command, deps, outs and its params' values."""
    values = []
    for dep in stage.deps:
        for key in sorted(getattr(dep, "params", None) or []):
            section, _, field = key.partition(".")
            values.append((key, repr(params[section][field])))
    return (stage.cmd, sorted(d.def_path for d in stage.deps), sorted(o.def_path for o in stage.outs),
            sorted(values))
