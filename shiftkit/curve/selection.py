"""The selection simulation on the learning curve: which target images to label, priced in labels.

The target's labelled train images become a pool whose labels are hidden from the strategy (it
sees the current model's probabilities and pooled features only, :mod:`shiftkit.select`); the
labels of the chosen images are revealed, and the web-only model is fine-tuned on the web train
images plus every target image chosen so far (with ``curve.finetune_lr``, ``select_epochs``,
``head_epochs``; the web images keep it from forgetting the classes the chosen images lack).
``curve.rounds`` rounds of ``curve.round_size`` images per strategy; round r selects with round
r - 1's model (round 1 with the web-only model: round 0, :func:`start`). Every point's dev errors are
measured on the same dev images. Each round is its own folder, ``<strategy>/round-<r>``, made from
round r - 1's folder alone: DVC caches one entry per (strategy, round), so adding a strategy or a
round runs only the new entries.

Random runs ``curve.random_draws`` times in each of its entries: each draw chooses its own images
(its own seed) and fine-tunes with its own training seed (draw 1 keeps a single run's seeds and its
folder is the round's; later draws live in ``draw-<d>``, without their models). Their mean is the
reference curve and their spread the training noise: two fine-tunings on equally informative images
differ by several points of dev error, which resampling the dev images alone does not see.

How many labels a strategy saves is the worth machinery of :mod:`shiftkit.curve.worth` with
``random`` as the baseline: at each round, how many labels random needs (read off its curve,
linear in log(1 + n)) to reach the strategy's dev error, with a percentile interval from one
paired resampling of the dev clusters plus the training noise (:func:`savings`), claimed only when
the gain passes Holm's step-down over every (strategy, round) at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError
from shiftkit.curve import worth
from shiftkit.curve.arms import UNUSED
from shiftkit.curve.params import CurveParams
from shiftkit.training.params import TrainParams

REFERENCE = "random"
SELECTION_JSON = "selection.json"
CHOSEN = "chosen.parquet"  # image_id, round: the images labelled so far, in the order chosen
DEV = "dev.parquet"  # image_id, correct: the round's model on the dev images
DRAW_SEED = 1_000_003  # seed offset between random's draws (draw 1: the seeds of a single run)


def _rows(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], target: str,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(manifest, splits, the pool: target train rows with abspath), all sorted by image_id."""
    from shiftkit.training.loader import items

    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    rows = items(man, manifest, spl, ["train", "dev"])
    pool = rows.filter((pl.col("split") == "train") & (pl.col("domain") == target)).sort("image_id")
    if not pool.height:
        raise DataError(f"{splits} has no {target!r} train image to simulate a selection on.")
    return man, spl, rows


def dev_correct(model_dir: str | os.PathLike[str], dev: pl.DataFrame, workers: int = 0) -> pl.DataFrame:
    """image_id, correct of ``model_dir`` on the dev rows (items with abspath and label)."""
    from shiftkit.select.embed import embed

    e = embed(model_dir, dev["abspath"].to_list(), workers=workers, label="selection dev")
    pred = np.array(e.labels, dtype=object)[e.probs.argmax(axis=1)]
    return dev.select("image_id", pl.Series("correct", pred == dev["label"].to_numpy().astype(object)))


def _train_round(chosen: list[str], spl: pl.DataFrame, man: pl.DataFrame, out: Path, *,
                 manifest: str | os.PathLike[str], web_model: str | os.PathLike[str], tparams: TrainParams,
                 cparams: CurveParams, pixels: str | os.PathLike[str] | None = None) -> Path:
    """Fine-tune the web-only model on the web train images + the target images ``chosen``; returns the
    model folder."""
    from shiftkit.training.loader import Tables
    from shiftkit.training.train import train

    dom = man.select("image_id", "domain")
    keep = pl.col("image_id").is_in(chosen) | (pl.col("domain") != cparams.target_domain)
    table = spl.join(dom, on="image_id", how="left").with_columns(
        pl.when((pl.col("split") == "train") & ~keep).then(pl.lit(UNUSED)).otherwise(pl.col("split")).alias("split")
    ).select(spl.columns)
    model = io.ensure_dir(out / "model")
    splits_out = io.write_table(table, out / "splits.parquet", schema.SPLITS_TABLE)
    params = dataclasses.replace(tparams, pretrained=str(web_model), finetune_lr=cparams.finetune_lr,
                                 finetune_epochs=cparams.select_epochs, head_epochs=cparams.head_epochs)
    # no dvclive record: a round is not a pipeline training (the default would write ./dvclive)
    train(manifest, splits_out, model, params, tables=Tables(man, table, None, manifest, splits_out, None),
          pixels=pixels, live_dir=None)
    return model


def run_round(
    strategy: str, round_no: int, manifest: str | os.PathLike[str], splits: str | os.PathLike[str],
    web_model: str | os.PathLike[str], out_dir: str | os.PathLike[str], tparams: TrainParams, cparams: CurveParams,
    *, previous: str | os.PathLike[str], workers: int = 0, pixels: str | os.PathLike[str] | None = None,
) -> str:
    """Round ``round_no`` of ``strategy``: select ``curve.round_size`` more target train images with the
    previous round's model (``previous``: round ``round_no - 1``'s folder; round 0's, from :func:`start`,
    stands for the web-only model), reveal their labels, fine-tune the web-only model on all chosen so
    far, measure it on dev.

    ``pixels``: the curve's decoded-image store (:func:`shiftkit.curve.stage.write_pixels`).

    Writes ``out_dir``: chosen.parquet (image_id, round), model/, splits.parquet, dev.parquet.
    Returns a one-line summary.

    Raises:
        InputPathError: when ``previous`` is not a round's folder.
        DataError: when it is not round ``round_no - 1``.
    """
    from shiftkit.select.embed import embed
    from shiftkit.select.strategies import PoolView, choose

    draws = cparams.random_draws if strategy == REFERENCE else 1
    befores = [_chosen(previous, d, round_no) for d in range(1, draws + 1)]
    model_dir = Path(previous) / "model" if round_no > 1 else Path(web_model)
    man, spl, rows = _rows(manifest, splits, cparams.target_domain)
    pool = rows.filter((pl.col("split") == "train") & (pl.col("domain") == cparams.target_domain)).sort("image_id")
    dev_rows = rows.filter(pl.col("split") == "dev").sort("image_id")
    # the strategy sees paths, probabilities and features: never a label of the pool
    e = embed(model_dir, pool["abspath"].to_list(), workers=workers, label=f"{strategy} round {round_no}")
    out = Path(out_dir)
    accuracy = []
    with io.replace_dir(out) as tmp:
        for d, before in enumerate(befores, start=1):
            done = pool["image_id"].is_in(before["image_id"].implode()).to_numpy()
            rest = np.flatnonzero(~done)
            # draw 1 keeps the seeds of a single run; random's later draws have their own draw and training seed
            view = PoolView(e.probs[rest], e.feats[rest], e.labels,
                            seed=cparams.seed * 1000 + round_no + DRAW_SEED * (d - 1),
                            labelled=e.feats[done] if done.any() else np.empty((0, 0)))
            picked = choose(strategy, view, cparams.round_size)
            new = pool["image_id"].to_numpy()[rest[picked.index]].tolist()
            chosen = pl.concat([before, pl.DataFrame({"image_id": new, "round": [round_no] * len(new)},
                                                     schema={"image_id": pl.String, "round": pl.Int64})])
            where = io.ensure_dir(draw_dir(tmp, d))
            tp = tparams if d == 1 else dataclasses.replace(tparams, seed=tparams.seed + d - 1)
            model = _train_round(chosen["image_id"].to_list(), spl, man, where, manifest=manifest,
                                 web_model=web_model, tparams=tp, cparams=cparams, pixels=pixels)
            chosen.write_parquet(where / CHOSEN)
            dev = dev_correct(model, dev_rows, workers)
            dev.write_parquet(where / DEV)
            if d > 1:  # only draw 1's model chooses (random reads no model): the others are not kept
                shutil.rmtree(model)
                (where / "splits.parquet").unlink()
            accuracy.append(float(dev["correct"].mean()))
    acc = " ".join(f"{a:.3f}" for a in accuracy)
    many = f" ({draws} draws)" if draws > 1 else ""
    return (f"curve selection {strategy} round {round_no}: {chosen.height} target images chosen{many}; "
            f"dev accuracy {acc}")


def web_dev(web_model: str | os.PathLike[str], manifest: str | os.PathLike[str], splits: str | os.PathLike[str],
            out_dir: str | os.PathLike[str], cparams: CurveParams, workers: int = 0) -> str:
    """Every strategy's first point (no target label): the web-only model on the dev images."""
    _, _, rows = _rows(manifest, splits, cparams.target_domain)
    dev = dev_correct(web_model, rows.filter(pl.col("split") == "dev").sort("image_id"), workers)
    with io.replace_dir(out_dir) as tmp:
        dev.write_parquet(tmp / DEV)
    return f"curve selection: the web-only model's dev accuracy {float(dev['correct'].mean()):.3f}"


def draw_dir(round_folder: str | os.PathLike[str], draw: int) -> Path:
    """Where draw ``draw`` of a round lives: the round's folder itself for draw 1 (every strategy's only
    run), ``draw-<d>`` inside it for random's later draws."""
    return Path(round_folder) if draw == 1 else Path(round_folder) / f"draw-{draw}"


def _chosen(previous: str | os.PathLike[str], draw: int, round_no: int) -> pl.DataFrame:
    """The images draw ``draw`` chose up to round ``round_no - 1``, from the previous round's folder
    (round 1 starts from round 0's folder, which holds no draws: nothing chosen, for every draw)."""
    from shiftkit.core.errors import InputPathError

    folder = draw_dir(previous, draw if round_no > 1 else 1)
    path = folder / CHOSEN
    if not path.is_file():
        raise InputPathError(f"{path} does not exist: the previous round's folder (round-<r>) was expected"
                             + (", with as many random draws as curve.random_draws" if draw > 1 else "") + ".")
    before = pl.read_parquet(path)
    last = int(before["round"].max()) if before.height else 0
    if last != round_no - 1:
        raise DataError(f"{folder} holds round {last}'s choices; round {round_no} starts from round {round_no - 1}.")
    return before


def start(web_point: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> str:
    """Round 0 of a strategy: nothing chosen yet, the web-only model's dev results (``web_point``, from
    :func:`web_dev`) copied. Round 1 starts from it as every later round starts from the one before."""
    src = Path(web_point) / DEV
    if not src.is_file():
        from shiftkit.core.errors import InputPathError

        raise InputPathError(f"{src} does not exist; run the selection's web step first.")
    dev = pl.read_parquet(src)
    with io.replace_dir(out_dir) as tmp:
        pl.DataFrame({"image_id": [], "round": []}, schema={"image_id": pl.String, "round": pl.Int64}
                     ).write_parquet(tmp / CHOSEN)
        dev.write_parquet(tmp / DEV)
    return f"curve selection: round 0 (the web-only model, dev accuracy {float(dev['correct'].mean()):.3f})"


def round_dir(root: str | os.PathLike[str], strategy: str, round_no: int) -> Path:
    """``<root>/<strategy>/round-<round>`` (round 0: nothing chosen, the web-only model)."""
    return Path(root) / strategy / f"round-{round_no}"


# ---------------------------------------------------------------------------------------------
# labels saved against random


def _mean_correct(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """image_id, correct averaged over runs (a share in [0, 1]; one run: the frame itself)."""
    if len(frames) == 1:
        return frames[0]
    joined = frames[0].select("image_id", pl.col("correct").cast(pl.Float64).alias("c0"))
    for i, f in enumerate(frames[1:], start=1):
        joined = joined.join(f.select("image_id", pl.col("correct").cast(pl.Float64).alias(f"c{i}")),
                             on="image_id", how="inner")
    return joined.select("image_id", pl.mean_horizontal(pl.exclude("image_id")).alias("correct"))


def training_noise(runs: dict[tuple[str, int], list[pl.DataFrame]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) of one run's dev error between random's draws, pooled
    over its rounds: how much a fine-tuning on equally good images moves the dev error. (0, 0) when
    no round has two draws."""
    return worth.run_spread([frames for (s, n), frames in runs.items() if s == REFERENCE and n > 0])


def savings(dev: dict[tuple[str, int], list[pl.DataFrame] | pl.DataFrame], clusters: pl.DataFrame,
            cparams: CurveParams) -> dict[str, Any]:
    """The selection curve and each strategy's saving against random from every point's dev results.

    ``dev``: (strategy, labels) -> the runs' dev results (image_id, correct): random's draws, one run
    for any other strategy (a single frame counts as one run); labels 0 is the web-only model, the
    same frame for every strategy. ``clusters``: image_id -> cluster (see
    :func:`shiftkit.stats.bootstrap.cluster_ids`).

    Random's curve is the mean of its draws. The resampled dev errors hold two kinds of noise: the
    dev images' (one paired resampling of the clusters for every point) and the training's: each
    point's resampled errors get a Student-t draw scaled by the spread between random's draws (pooled
    over rounds, divided by the square root of the runs averaged), so that a strategy that is only
    as good as random, but fine-tuned luckily, is not credited with a saving.

    Raises:
        DataError: without random, or when points were measured on different dev images.
    """
    runs = {k: list(v) if isinstance(v, list) else [v] for k, v in dev.items()}
    strategies = sorted({s for s, _ in runs}, key=lambda s: (s != REFERENCE, s))
    if REFERENCE not in strategies:
        raise DataError("A selection curve needs the random strategy: every saving is measured against it.")
    ns = np.array(sorted({n for _, n in runs}), dtype=np.float64)
    names = [str(int(n)) for n in ns]
    m = worth.cluster_matrix({f"{s}@{int(n)}": _mean_correct(runs[(s, int(n))]) for s in strategies for n in ns},
                             clusters)
    point, boot = m.error_rates(), worth.resample_errors(m, cparams.replicates, cparams.seed)
    col = {r: i for i, r in enumerate(m.runs)}
    sd, df = training_noise(runs)
    if df:
        rng = np.random.default_rng([cparams.seed, 24])
        for s in strategies:
            for n in ns[ns > 0]:
                j = col[f"{s}@{int(n)}"]
                scale = sd / math.sqrt(len(runs[(s, int(n))]))
                boot[:, j] = np.clip(boot[:, j] + scale * rng.standard_t(df, size=boot.shape[0]), 0.0, 1.0)

    def run(s: str) -> tuple[np.ndarray, np.ndarray]:
        cols = [col[f"{s}@{n}"] for n in names]
        return point[cols], boot[:, cols]

    others = {s: run(s) for s in strategies if s != REFERENCE}
    # labels 0 is the web-only model, the same run for every strategy: not a comparison (nor in Holm's family)
    first = 1 if ns[0] == 0 else 0
    worths = worth.worth_all(names, ns, run(REFERENCE), others, cparams.level, first) if others else []
    points = [{"strategy": s, "labels": int(n), "dev_error": float(point[col[f"{s}@{int(n)}"]]),
               "dev_ci": list(worth.interval(boot[:, col[f"{s}@{int(n)}"]], cparams.level)),
               "runs": len(runs[(s, int(n))])}
              for s in strategies for n in ns]
    rows = [saving_row(w) for w in worths if w.n > 0]
    draws = max((len(v) for (s, n), v in runs.items() if s == REFERENCE and n > 0), default=1)
    return {"strategies": strategies, "labels": [int(n) for n in ns], "reference": REFERENCE,
            "level": cparams.level, "replicates": cparams.replicates, "dev_images": int(m.sizes.sum()),
            "clusters": len(m.sizes), "random_draws": draws, "training_sd": sd, "training_df": df,
            "points": points, "savings": rows, "sentence": sentence(rows)}


def saving_row(w: worth.Worth) -> dict[str, Any]:
    """One (strategy, labels) comparison with random, and its words."""
    claimed = w.status == "estimate" and not w.coarse
    ci = None if w.ci is None else [None if math.isinf(x) else float(x) for x in w.ci]
    row = {"strategy": w.arm, "labels": w.n, "status": w.status, "claimed": claimed, "random_labels": w.images,
           "ci": ci, "saved": (w.images - w.n) if claimed else None, "gain": w.gain, "gain_ci": list(w.gain_ci),
           "p_adjusted": w.p_adjusted, "reason": w.reason}
    if claimed:
        hi = "more" if ci[1] is None else f"{ci[1]:.0f}"
        row["text"] = (f"{w.arm} with {w.n} labels reaches the dev error random needs about {w.images:.0f} "
                       f"[{ci[0]:.0f}, {hi}] labels for: about {w.images - w.n:.0f} labels saved")
    elif w.status == "more_than":
        row["text"] = f"{w.arm} with {w.n} labels beats random at every budget measured (up to {w.largest})"
        row["claimed"] = True
    else:
        row["text"] = f"{w.arm} with {w.n} labels: no saving claimed ({w.reason})"
    return row


def sentence(rows: list[dict[str, Any]]) -> str:
    """The answer: the first claimed saving per strategy, else that none is claimed."""
    claimed = {}
    for r in rows:
        if r["claimed"] and r["strategy"] not in claimed:
            claimed[r["strategy"]] = r["text"]
    if not claimed:
        return "No selection strategy is shown to beat random on these dev images: label at random."
    return "; ".join(claimed.values()) + "."


# ---------------------------------------------------------------------------------------------
# the pipeline's steps: one strategy's rounds, and the summary the curve step merges into curve.json

WEB = "web"  # <selection dir>/web/dev.parquet: the web-only model on dev, every strategy's first point


def run_strategy(
    strategy: str, manifest: str | os.PathLike[str], splits: str | os.PathLike[str], web_model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str], tparams: TrainParams, cparams: CurveParams, *,
    pixels: str | os.PathLike[str] | None = None, workers: int = 0,
) -> str:
    """Round 0 and every round of ``strategy`` into ``out_dir/round-<r>``, one after the other, as the
    pipeline's entries run them (``out_dir``'s parent must hold the web step's folder, ``web``)."""
    from shiftkit.select.strategies import get_strategy

    get_strategy(strategy)
    out = Path(out_dir)
    start(out.parent / WEB, out / "round-0")
    line = ""
    for r in range(1, len(cparams.rounds) + 1):
        line = run_round(strategy, r, manifest, splits, web_model, out / f"round-{r}", tparams, cparams,
                         previous=out / f"round-{r - 1}", workers=workers, pixels=pixels)
    return line


def collect(selection_dir: str | os.PathLike[str], strategies: tuple[str, ...], rounds: int,
            draws: int = 1) -> dict[tuple[str, int], list[pl.DataFrame]]:
    """(strategy, labels) -> the dev results of rounds 1 .. ``rounds`` under ``selection_dir`` (plus labels
    0), one frame per run: ``draws`` for random, one for every other strategy.

    Raises:
        InputPathError: when the web-only point or a strategy's rounds (or random's draws) are missing.
    """
    from shiftkit.core.errors import InputPathError

    root = Path(selection_dir)
    if not (root / WEB / DEV).is_file():
        raise InputPathError(f"{root / WEB / DEV} does not exist; run the selection's web step first.")
    web = pl.read_parquet(root / WEB / DEV)
    out = {}
    for s in strategies:
        runs = draws if s == REFERENCE else 1
        out[(s, 0)] = [web] * runs
        # rounds 1 .. n only: a folder of a round since removed from curve.rounds is stale, never read
        for r in range(1, rounds + 1):
            frames = []
            for d in range(1, runs + 1):
                where = draw_dir(round_dir(root, s, r), d)
                if not (where / DEV).is_file():
                    raise InputPathError(f"{where / DEV} does not exist; run the selection's round {r} for {s!r} "
                                         f"first (with curve.random_draws = {draws}).")
                frames.append(pl.read_parquet(where / DEV))
            out[(s, pl.read_parquet(round_dir(root, s, r) / CHOSEN).height)] = frames
    return out


def summarize(selection_dir: str | os.PathLike[str], manifest: str | os.PathLike[str], cparams: CurveParams,
              synth: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The selection simulation for curve.json (None when ``curve.selection`` is empty)."""
    from shiftkit.stats.bootstrap import cluster_ids

    if not cparams.selection:
        return None
    man = io.read_table(manifest, schema.MANIFEST)
    syn = io.read_table(synth, schema.SYNTH) if synth else None
    return savings(collect(selection_dir, cparams.selection, len(cparams.rounds), cparams.random_draws),
                   cluster_ids(man, syn), cparams)
