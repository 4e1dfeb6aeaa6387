"""The learning-curve steps of the pipeline after the budgets: decode the pixels once, train and
evaluate one (arm, budget), then build the curve from every point (``pipelines/learning_curve.py``
calls these; the budgets are :mod:`shiftkit.curve.budgets`, the figures :mod:`shiftkit.curve.summary`).

Training and evaluation are :func:`shiftkit.training.train.train` and :func:`shiftkit.training.evaluate.evaluate`
unchanged: a point is only a different splits table (the budget's, as the arm's ``trains_on`` reads
it), with or without the synth table, or other starting weights (:mod:`shiftkit.curve.arms`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError, InputPathError
from shiftkit.curve import worth
from shiftkit.curve.arms import BASELINE, get_arm
from shiftkit.curve.budgets import BUDGETS_JSON, Budget, budget_name, check_budgets, target_train
from shiftkit.curve.params import CurveParams
from shiftkit.report.params import ReportParams
from shiftkit.training.params import EvaluateParams, TrainParams

SPLITS_NAME = "splits.parquet"  # the exact splits an arm trained on, kept beside its model
ARM_NAME = "arm.json"  # how a point trained (seconds, unlabelled images, selection), beside its model and predictions


def adapt_spec(arm: str, manifest: pl.DataFrame, manifest_path: str | os.PathLike[str], splits: pl.DataFrame,
               cparams: CurveParams, unlabelled: str | os.PathLike[str] | None = None):
    """The :class:`~shiftkit.training.adapt.AdaptSpec` of ``arm`` (None for an arm without
    adaptation): its fixed knobs from ``curve``, its pool of target images without labels from the
    budget's table ``splits`` (the target's train images, in or out of the budget, and the
    ``unlabelled`` split) plus the images of ``unlabelled`` (a folder or a listing), minus any
    dev, test or bridge image."""
    from shiftkit.training.adapt import AdaptSpec, folder_rows, pool_rows

    a = get_arm(arm)
    if not a.adapt:
        return None
    pool = pool_rows(manifest, manifest_path, splits, cparams.target_domain)
    if unlabelled is not None:
        extra, dropped = folder_rows(unlabelled, splits)
        if dropped:
            from shiftkit.core.console import console

            console.print(f"[yellow]{arm}: {dropped} image(s) of {unlabelled} are dev, test or bridge images "
                          f"(same bytes); left out of the unlabelled pool.[/]")
        pool = pl.concat([pool, extra]).unique("image_id", keep="first").sort("image_id")
    weight = {"dann": cparams.dann_weight, "coral": cparams.coral_weight}.get(a.adapt, cparams.selftrain_weight)
    return AdaptSpec(a.adapt, pool, target_domain=cparams.target_domain, weight=weight,
                     threshold=cparams.selftrain_threshold, clip=cparams.weight_clip, seed=cparams.seed,
                     warmup=cparams.dann_warmup,
                     selection="fixed in params.yaml (curve.*), not tuned on any target label")


def write_pixels(
    manifest: str | os.PathLike[str], splits: str | os.PathLike[str], out_dir: str | os.PathLike[str],
    params: TrainParams, *, synth: str | os.PathLike[str] | None = None, copies_only: bool = False,
) -> str:
    """Decode every image any point trains on once, at ``train.img_size`` and ``train.channels``,
    into the store every point's training reads (:mod:`shiftkit.training.pixels`); with ``copies_only``,
    ``synth``'s copies alone (the store beside the manifest's). Returns a one-line summary."""
    from shiftkit.training.pixels import write_store

    meta = write_store(manifest, splits, out_dir, params.img_size, params.channels, synth=synth,
                       max_mb=params.cache_mb, workers=params.workers,
                       skip="" if params.cache else "train.cache is false", copies_only=copies_only)
    if meta["skipped"]:
        return f"curve pixels: none stored ({meta['skipped']}); each training decodes its own; wrote {out_dir}/"
    return (f"curve pixels: {meta['images']:,} images decoded once at {params.img_size} px for every point; "
            f"wrote {out_dir}/")


def _copy_model(src: Path, out: Path) -> None:
    if not src.is_dir():
        raise InputPathError(f"Model folder {src} does not exist; run the web-only training first.")
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name != SPLITS_NAME:
            with io.atomic_path(out / f.name) as tmp:
                shutil.copyfile(f, tmp)


def _log_copied(start: Path, live_dir: str | os.PathLike[str]) -> None:
    """The dvclive record of a point that is the web-only model: its final dev accuracy, no epochs."""
    from shiftkit.training.checkpoint import open_live

    info = io.read_json(start / "model.json")
    live = open_live(live_dir, False, 0)
    live.log_metric("dev/accuracy", float(info.get("dev_accuracy", float("nan"))), plot=False)
    live.log_param("copied_from", str(start))
    live.end()


def train_arm(
    arm: str, budget: Budget, manifest: str | os.PathLike[str], splits: str | os.PathLike[str],
    out_dir: str | os.PathLike[str], params: TrainParams, cparams: CurveParams, *,
    synth: str | os.PathLike[str] | None = None, start: str | os.PathLike[str] | None = None,
    live_dir: str | os.PathLike[str] | None = None, pixels=None,
    unlabelled: str | os.PathLike[str] | None = None, draws: int = 1,
) -> str:
    """Train ``arm`` at ``budget`` into ``out_dir`` (model files + the splits it trained on).

    ``draws``: for the baseline, how many trainings in all (``curve.baseline_draws``): draws 2... train
    again on the same images with ``train.seed + d - 1`` and keep only their predictions
    (``draw-<d>/predictions.parquet``, :func:`train_draws`): their spread is the curve's training noise.

    ``unlabelled``: a folder or listing of target images without labels, added to the pool of an
    arm that adapts (:func:`adapt_spec`).

    ``splits``: the budget's table (:func:`shiftkit.curve.budgets.budget_file`), read as the arm's
    ``trains_on`` says.

    ``pixels``: the curve's decoded-image store (:func:`write_pixels`), shared by every point, or a list
    of them (the manifest's images, the synthesised copies).

    ``start`` is the web-only model: an arm ``from_web`` starts from it, and an arm ``web_at_zero``
    without any target image at this budget (``baseline`` and ``finetune`` at 0) is that model,
    copied rather than trained again. Returns a one-line summary.

    Raises:
        DataError, InputPathError: on missing inputs or an empty split (see shiftkit.training.train.train).
    """
    from shiftkit.training.loader import Tables
    from shiftkit.training.train import train

    a = get_arm(arm)
    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    k = target_train(spl, man, cparams.target_domain).height
    if a.uses_synth and not synth:
        raise InputPathError(f"The {arm} arm needs the synth table (--synth data/synth/synth.parquet).")
    out = io.ensure_dir(out_dir)
    if a.web_at_zero and k == 0 and start:
        # the web-only model, with the splits it was trained on
        io.write_table(spl, out / SPLITS_NAME, schema.SPLITS_TABLE)
        _copy_model(Path(start), out)
        if live_dir is not None:
            _log_copied(Path(start), live_dir)
        extra = train_draws(arm, draws, manifest, out, params, pixels=pixels)
        return f"curve {arm}@{budget_name(budget)}: no target images to train on; the web-only model {start}{extra}"
    spec = adapt_spec(arm, man, manifest, spl, cparams, unlabelled)
    spl = a.trains_on(spl, man, cparams.target_domain)
    io.write_table(spl, out / SPLITS_NAME, schema.SPLITS_TABLE)
    changes = {t: getattr(cparams, c) for t, c in a.train_overrides.items()}
    if a.from_web:
        if not start:
            raise InputPathError(f"The {arm} arm needs the web-only model to start from (--start).")
        changes = {"pretrained": str(start), **changes}
    if changes:
        params = dataclasses.replace(params, **changes)
    syn_path = synth if a.uses_synth else None
    syn = io.read_table(syn_path, schema.SYNTH) if syn_path is not None else None
    tables = Tables(man, spl, syn, manifest, out / SPLITS_NAME, syn_path)  # read once here, passed down
    r = train(manifest, out / SPLITS_NAME, out, params, synth=syn_path, live_dir=live_dir, pixels=pixels,
              tables=tables, adapt=spec)
    io.write_json(out / ARM_NAME, {"arm": arm, "seconds": r.seconds, "unlabelled": spec.pool.height if spec else 0,
                                   "selection": spec.selection if spec else ""})
    extra = train_draws(arm, draws, manifest, out, params, synth=syn_path, pixels=pixels)
    return (f"curve {arm}@{budget_name(budget)}: {k} target images; dev accuracy {r.dev_accuracy:.3f} "
            f"after {r.epochs} epochs in {r.seconds:.0f} s{extra}")


DRAW = "draw-{}"  # a further training of the baseline, beside the point's model (predictions only)


def train_draws(arm: str, draws: int, manifest: str | os.PathLike[str], out: Path, params: TrainParams, *,
                synth: str | os.PathLike[str] | None = None, pixels=None) -> str:
    """Draws 2..``draws`` of the baseline: each trains on the point's splits (``out``'s) with
    ``train.seed + d - 1``, is evaluated, and keeps only ``out/draw-<d>/predictions.parquet`` (its model
    is deleted: the point's own model is draw 1). Any other arm, or ``draws`` 1: nothing. Returns
    the summary's addition ("" for none)."""
    import tempfile

    from shiftkit.training.evaluate import evaluate
    from shiftkit.training.train import train

    if arm != BASELINE or draws <= 1:
        return ""
    accs = []
    for d in range(2, draws + 1):
        with tempfile.TemporaryDirectory(prefix=".draw-", dir=out) as tmp:
            t = Path(tmp)
            shutil.copyfile(out / SPLITS_NAME, t / SPLITS_NAME)
            train(manifest, t / SPLITS_NAME, t, dataclasses.replace(params, seed=params.seed + d - 1),
                  synth=synth, pixels=pixels, live_dir=None)  # no dvclive record: the point has its own
            r = evaluate(manifest, t / SPLITS_NAME, t, out / DRAW.format(d) / "predictions.parquet",
                         EvaluateParams(train_sample=1, batch_size=256, device=params.device), synth=synth)
            accs.append(next((v for k_, v in sorted(r.accuracy.items()) if k_.startswith("dev/")), float("nan")))
    return f"; {draws - 1} more training(s) for the training noise, dev accuracy " + ", ".join(f"{a:.3f}" for a in accs)


def evaluate_arm(
    arm: str, manifest: str | os.PathLike[str], model_dir: str | os.PathLike[str], out_path: str | os.PathLike[str],
    params: EvaluateParams, *, synth: str | os.PathLike[str] | None = None,
) -> str:
    """Predictions of one point, on the splits its model trained on (kept in the model folder)."""
    from shiftkit.training.evaluate import evaluate

    r = evaluate(manifest, Path(model_dir) / SPLITS_NAME, model_dir, out_path, params,
                 synth=synth if get_arm(arm).uses_synth else None)
    info = Path(model_dir) / ARM_NAME
    if info.is_file():  # how it trained travels with its predictions to the curve
        io.write_json(Path(out_path).parent / ARM_NAME, io.read_json(info))
    for draw in sorted(Path(model_dir).glob(DRAW.format("*") + "/predictions.parquet")):  # the baseline's draws
        with io.atomic_path(Path(out_path).parent / draw.parent.name / draw.name) as tmp:
            shutil.copyfile(draw, tmp)
    return f"curve evaluate {arm}: dev accuracy {r.accuracy.get('dev/' + 'target', float('nan')):.3f}; wrote {out_path}"


# ---------------------------------------------------------------------------------------------
# the curve: every point's dev error and gaps, and each arm's worth in labelled images


def point_path(predictions_dir: str | os.PathLike[str], arm: str, budget: Budget) -> Path:
    """Where the point (arm, budget) keeps its predictions: ``<dir>/synth-300/predictions.parquet``."""
    return Path(predictions_dir) / f"{arm}-{budget_name(budget)}" / "predictions.parquet"


def _point(arm: str, name: str, n: int, err: float, ci: tuple[float, float], preds: pl.DataFrame,
           clusters: pl.DataFrame, rparams: ReportParams) -> dict[str, Any]:
    from shiftkit.stats.bootstrap import run_table
    from shiftkit.stats.decompose import decompose

    # the gaps resample clusters (near copies, a parent with its synthesised children), as the report does
    d = decompose(run_table(preds, clusters, include_synth=rparams.include_synth), rparams.human_error,
                  replicates=rparams.replicates, level=rparams.level, seed=rparams.seed, min_gap=rparams.min_gap / 100)
    gaps = {g: {"value": v.value, "ci": [v.ci_low, v.ci_high]} for g, v in d.gaps.items()}
    return {"arm": arm, "budget": name, "images": n, "dev_error": err, "dev_ci": list(ci),
            "errors": dict(d.errors), "gaps": gaps, "diagnosis": d.diagnosis}


def _trained(predictions_dir: str | os.PathLike[str], arm: str, budget: Budget) -> dict[str, Any]:
    """How the point trained (``arm.json`` beside its predictions): seconds, unlabelled images, selection."""
    p = point_path(predictions_dir, arm, budget).parent / ARM_NAME
    info = io.read_json(p) if p.is_file() else {}
    return {"seconds": info.get("seconds"), "unlabelled": int(info.get("unlabelled", 0)),
            "selection": info.get("selection", "")}


def build_curve(
    predictions_dir: str | os.PathLike[str], budgets_dir: str | os.PathLike[str], manifest: str | os.PathLike[str],
    cparams: CurveParams, rparams: ReportParams | None = None, *, synth: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Read every point's predictions and build the curve: points, worth figures and the sentence.

    ``synth``: the synth table, so that a synthesised child is resampled with its parent.

    Raises:
        InputPathError: when a point's predictions are missing.
        DataError: when points were evaluated on different dev images.
    """
    from shiftkit.training.evaluate import read_predictions

    rparams = rparams or ReportParams()
    counts = io.read_json(Path(budgets_dir) / BUDGETS_JSON)["images"]
    budgets = check_budgets(cparams.budgets)
    names = [budget_name(b) for b in budgets]
    missing = [n for n in names if n not in counts]
    if missing:
        raise DataError(
            f"{Path(budgets_dir) / BUDGETS_JSON} lacks the budget(s) {', '.join(missing)}; re-run the budgets step."
        )
    ns = np.array([counts[n] for n in names], dtype=np.float64)
    from shiftkit.stats.labelfree import labelled

    # the unlabelled pool's predictions (the report's label-free estimates) take no part in the curve
    preds = {(a, n): labelled(read_predictions(point_path(predictions_dir, a, b)))
             for a in cparams.arms for b, n in zip(budgets, names, strict=True)}
    dev = {f"{a}@{n}": p.filter((pl.col("split") == "dev") & (pl.col("source") == "manifest"))
           for (a, n), p in preds.items()}
    from shiftkit.stats.bootstrap import cluster_ids

    man_df = io.read_table(manifest, schema.MANIFEST)
    syn_df = io.read_table(synth, schema.SYNTH) if synth else None
    clusters = cluster_ids(man_df, syn_df)
    m = worth.cluster_matrix(dev, clusters)
    point = m.error_rates()
    boot = worth.resample_errors(m, cparams.replicates, cparams.seed)
    col = {r: i for i, r in enumerate(m.runs)}
    draws = {n: [dev[f"{BASELINE}@{n}"], *baseline_draws(predictions_dir, b)]
             for b, n in zip(budgets, names, strict=True) if BASELINE in cparams.arms}
    sd, df = training_noise(draws)
    add_training_noise(boot, sd, df, cparams.seed)
    points = []
    for (a, n), p in preds.items():
        j = col[f"{a}@{n}"]
        ci = worth.interval(boot[:, j], cparams.level)
        points.append({**_point(a, n, counts[n], float(point[j]), ci, p, clusters, rparams),
                       **_trained(predictions_dir, a, budgets[names.index(n)])})
    worths = []
    if BASELINE in cparams.arms:
        def run(arm: str) -> tuple[np.ndarray, np.ndarray]:
            cols = [col[f"{arm}@{n}"] for n in names]
            return point[cols], boot[:, cols]

        others = {a: run(a) for a in cparams.arms if a != BASELINE}
        worths = worth.worth_all(names, ns, run(BASELINE), others, cparams.level)
    return {"budgets": names, "images": [int(x) for x in ns], "arms": list(cparams.arms), "axis": "log(1 + n)",
            "clusters": len(m.sizes), "dev_images": int(m.sizes.sum()), "level": cparams.level,
            "replicates": cparams.replicates, "points": points, "training_sd": sd, "training_df": df,
            "baseline_draws": max((len(v) for v in draws.values()), default=1),
            "colours": {a: get_arm(a).colour for a in cparams.arms},
            "worth": [_worth_dict(w) for w in worths], "sentence": sentence(points, worths)}


def baseline_draws(predictions_dir: str | os.PathLike[str], budget: Budget) -> list[pl.DataFrame]:
    """The dev results of the baseline's further trainings at ``budget`` (draw 2, 3, ...), as
    :func:`evaluate_arm` copied them beside the point's predictions; [] when there are none."""
    from shiftkit.stats.labelfree import labelled
    from shiftkit.training.evaluate import read_predictions

    folder = point_path(predictions_dir, BASELINE, budget).parent
    found = sorted(folder.glob(DRAW.format("*") + "/predictions.parquet"),
                   key=lambda p: int(p.parent.name.removeprefix(DRAW.format(""))))
    return [labelled(read_predictions(p)).filter((pl.col("split") == "dev") & (pl.col("source") == "manifest"))
            for p in found]


def training_noise(draws: dict[str, list[pl.DataFrame]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) of one training's dev error, pooled over budgets from
    the baseline's draws at each (its dev results, draw 1 first): how far two trainings on the same
    images with other seeds land apart. (0, 0) when no budget has two draws.

    Raises:
        DataError: when a draw was evaluated on other dev images than the point's."""
    for n, frames in draws.items():
        ids = set(frames[0]["image_id"].to_list()) if frames else set()
        if any(set(f["image_id"].to_list()) != ids for f in frames[1:]):
            raise DataError(f"The baseline's draws at budget {n} were evaluated on other dev images than the "
                            "point itself; re-run its training entry.")
    return worth.run_spread(list(draws.values()))


def add_training_noise(boot: np.ndarray, sd: float, df: int, seed: int) -> None:
    """Every point is one training: each column of resampled dev errors gets its own Student-t draw
    (``df``) scaled by the training noise ``sd``, in place, so that a gain between two points holds
    both trainings' luck (its variance gains 2 sd^2). Nothing when the noise was not measured."""
    if not df or sd <= 0:
        return
    rng = np.random.default_rng([seed, 22])
    noise = sd * rng.standard_t(df, size=boot.shape)
    np.clip(boot + noise, 0.0, 1.0, out=boot)


def _worth_dict(w: worth.Worth) -> dict[str, Any]:
    d = dataclasses.asdict(w)
    if d["ci"] is not None:
        d["ci"] = [None if np.isinf(x) else x for x in d["ci"]]  # JSON has no infinity: null = beyond
    d["text"] = w.text()
    return d


def sentence(points: list[dict[str, Any]], worths: list[worth.Worth]) -> str:
    """The answer in one sentence (at the smallest budget where an arm is clearly worth something,
    else why not), plus what labelling up to the next budget buys the baseline."""
    err = {(p["arm"], p["budget"]): p["dev_error"] for p in points}
    parts = []
    for w in worths:
        if w.status == "not_estimable":
            continue
        verb = get_arm(w.arm).verb
        need = f"{w.text()} labelled target images to match it"
        if w.coarse and w.step is not None:
            need = (f"between {w.step[0]} and {w.step[1]} labelled target images to match it (a straight line "
                    f"between those budgets says about {w.images:.0f}; add budgets between them, dvc exp run -S "
                    "'curve.budgets=[...]', to turn that range into a figure)")
        parts.append(
            f"{verb} with {w.n} labelled target images reaches {err[(w.arm, w.budget)] * 100:.1f}% dev error "
            f"(baseline {err[(BASELINE, w.budget)] * 100:.1f}%): the baseline would need {need}"
        )
        break
    if not parts:
        shown = sorted({w.arm for w in worths})
        if not shown:
            return "No arm to compare with the baseline."
        parts.append(f"No clear gain over the baseline at any budget for {', '.join(shown)} "
                     "(every worth figure is not estimable)")
    base = sorted((p["images"], p["dev_error"]) for p in points if p["arm"] == BASELINE)
    if len(base) >= 2:
        (n0, e0), (n1, e1) = base[0], base[1]
        parts.append(f"labelling {n1 - n0} more target images cuts the baseline's dev error by "
                     f"{(e0 - e1) * 100:.1f} points ({e0 * 100:.1f}% -> {e1 * 100:.1f}%)")
    return "; ".join(parts) + "."
