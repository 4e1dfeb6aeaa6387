"""The fit on the pipeline's tables: which images it samples, and the parent weighting's held-out check.

The recipe is fitted to target TRAIN images only (dev and test never inform the synthesis) and
to web images of the training pool (train and bridge, the splits that get synthesised children).
The target's ``unlabelled`` pool (``shiftkit ingest --unlabelled``) joins its train images: the fit
and the parent weighting never need labels.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftkit.synth.fit import FitResult, FitSettings, Say, fit_recipe
from shiftkit.synth.recipe import Recipe, child_seed

if TYPE_CHECKING:
    import polars as pl

    from shiftkit.synth.params import SynthParams
    from shiftkit.synth.weighting import Weighting

SYNTH_SPLITS = ("train", "bridge")  # children never reach dev or test
FIT_TARGET_SPLITS = ("train", "unlabelled")  # the target images the fit may look at (schema.UNLABELLED)
PathLike = str | os.PathLike[str]


def sample_rows(df: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` rows of ``df``, a seeded sample kept in table order."""
    if df.height <= n:
        return df
    idx = np.sort(np.random.default_rng(seed).choice(df.height, size=n, replace=False))
    return df[idx.tolist()]


def fit_from_tables(manifest_df: pl.DataFrame, splits_df: pl.DataFrame, manifest_path: PathLike,
                    params: SynthParams, *, workers: int = 0, say: Say | None = None) -> FitResult:
    """Fit a recipe on target TRAIN images (never dev or test) and web images of the training pool.

    The parent weighting is fitted and checked too (``params.weighting``), also for an empty
    recipe (fit.json then records whether re-weighting alone would bring the web images closer;
    the stage writes no copies of an empty recipe either way).

    Raises:
        DataError: when either domain has too few images in the training pool.
    """
    import polars as pl

    from shiftkit.core import files as io
    from shiftkit.core.errors import DataError
    from shiftkit.synth.workers import decode_many

    df = manifest_df.join(splits_df.select("image_id", "split"), on="image_id", how="inner").sort("image_id")
    tgt = df.filter((pl.col("domain") == params.target_domain) & pl.col("split").is_in(list(FIT_TARGET_SPLITS)))
    web = df.filter((pl.col("domain") == params.web_domain) & pl.col("split").is_in(list(SYNTH_SPLITS)))
    for name, part, dom in (("target", tgt, params.target_domain), ("web", web, params.web_domain)):
        if part.height < 6:
            raise DataError(
                f"Fitting a recipe needs at least 6 {name} images (domain {dom!r}, split "
                f"{'train/unlabelled' if name == 'target' else 'train/bridge'}). Got {part.height} instead."
            )
    tgt_fit = sample_rows(tgt, params.fit_target, params.seed)
    web_fit = sample_rows(web, params.fit_web, params.seed + 1)
    tdec = decode_many(io.image_paths(tgt_fit, manifest_path), workers)
    wdec = decode_many(io.image_paths(web_fit, manifest_path), workers)
    result = fit_recipe([d.pixels for d in wdec], [d.pixels for d in tdec], FitSettings.from_params(params, workers),
                        target_jpeg=[d.jpeg_quality for d in tdec], on_round=say)
    pool = tgt_fit.filter(pl.col("split") == "unlabelled")["image_id"]
    result.unlabelled_ids = tuple(pool.to_list())
    if params.weighting != "none":
        seen = (set(tgt_fit["image_id"]), set(web_fit["image_id"]))
        result.weighting, result.weighting_check = check_weighting(
            result.recipe, tgt, web, seen, manifest_path, params, workers=workers, say=say or (lambda _m: None),
        )
    return result


def _held_out_split(tgt: pl.DataFrame, web: pl.DataFrame, seen: tuple[set[str], set[str]],
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (target held out, target fit, web held out, web fit): half of the images the
    recipe fit did not sample are held out, in each domain."""
    rng = np.random.default_rng([seed, 0xB1A5])
    unseen = np.flatnonzero(~np.isin(tgt["image_id"].to_numpy(), list(seen[0])))
    held = np.sort(rng.permutation(unseen)[: len(unseen) // 2])
    fit_t = np.setdiff1d(np.arange(tgt.height), held)
    w_unseen = np.flatnonzero(~np.isin(web["image_id"].to_numpy(), list(seen[1])))
    w_held = np.sort(rng.permutation(w_unseen)[: len(w_unseen) // 2])
    fit_w = np.setdiff1d(np.arange(web.height), w_held)
    return held, fit_t, w_held, fit_w


def check_weighting(recipe: Recipe, tgt: pl.DataFrame, web: pl.DataFrame, seen: tuple[set[str], set[str]],
                    manifest_path: PathLike, params: SynthParams, *, workers: int,
                    say: Say) -> tuple[Weighting | None, dict[str, Any]]:
    """Fit the parent weighting and check it on target train images the fit has not seen.

    The target train images (at most ``weight_sample``) are split in two: half of those the
    recipe fit did not sample (``seen``: target ids, web ids) are held out; the weights are
    fitted on the rest against half of a web sample, and resample the other half. The check
    compares the cross-validated domain AUC against the held-out target images of: the plain
    web half, its degraded copies, and its degraded copies resampled by the weights (the same
    number of rows). The weighting is kept when it lowers that AUC by at least ``min_gain``; the
    kept model is then refitted on every sampled image.

    Returns:
        (weighting or None, the check as a json-able dict).
    """
    from shiftkit.core import files as io
    from shiftkit.synth import weighting as wt
    from shiftkit.synth.workers import moved_features

    fs = params.feature_size
    tgt = sample_rows(tgt, params.weight_sample, params.seed + 2)
    web = sample_rows(web, params.weight_sample, params.seed + 3)
    held, fit_t, w_held, fit_w = _held_out_split(tgt, web, seen, params.seed)
    folds = 3
    info: dict[str, Any] = {"used": False, "clip": params.weight_clip, "feature_size": fs,
                            "sizes": {"target_fit": int(fit_t.size), "target_held_out": int(held.size),
                                      "web_fit": int(fit_w.size), "web_held_out": int(w_held.size)}}
    if min(held.size, w_held.size, fit_t.size) < 2 * folds:
        info["reason"] = (f"too few target train images to check the weighting on images the fit has not "
                          f"seen ({held.size} held out; needs {2 * folds})")
        say(f"parent weighting: not used: {info['reason']}")
        return None, info
    tpaths = io.image_paths(tgt, manifest_path)
    wpaths = io.image_paths(web, manifest_path)
    seeds = [child_seed(params.seed, i, 0) for i in web["image_id"]]
    t_feats = moved_features(Recipe(), tpaths, [0] * len(tpaths), fs, workers)
    w_moved = moved_features(recipe, wpaths, seeds, fs, workers)
    w_plain = moved_features(Recipe(), [wpaths[i] for i in w_held], [0] * w_held.size, fs, workers)
    model = wt.fit_weighting(w_moved[fit_w], t_feats[fit_t], feature_size=fs, clip=params.weight_clip,
                             seed=params.seed)
    weights = model.weights(w_moved[w_held])
    picked = wt.expand(wt.allocate(weights, int(w_held.size), params.seed))
    measure = _held_out_measure(t_feats[held], fs, folds, params.seed)
    info["held_out"] = {"plain": measure(w_plain), "recipe": measure(w_moved[w_held]),
                        "weighted": measure(w_moved[w_held][picked])}
    info["effective_share"] = round(wt.effective_share(weights), 4)
    info["distinct_share"] = round(float(np.unique(picked).size / w_held.size), 4)
    gain = info["held_out"]["recipe"]["auc"] - info["held_out"]["weighted"]["auc"]
    info["used"] = bool(gain >= params.min_gain)
    h = info["held_out"]
    say(f"parent weighting, on {held.size} held-out target train images: AUC plain {h['plain']['auc']:.3f}, "
        f"recipe {h['recipe']['auc']:.3f}, recipe + weighting {h['weighted']['auc']:.3f} (effective sample "
        f"{info['effective_share']:.0%} of parents): {'kept' if info['used'] else 'not kept (gain < min_gain)'}")
    if not info["used"]:
        return None, info
    final = wt.fit_weighting(w_moved, t_feats, feature_size=fs, clip=params.weight_clip, seed=params.seed)
    info["model"] = final.to_dict()
    return final, info


def _held_out_measure(target_held: np.ndarray, fs: int, folds: int, seed: int):
    """A function scoring feature rows against the held-out target rows: domain AUC, property distance."""
    from shiftkit.images.features import property_scale
    from shiftkit.stats.twosample import domain_scores, property_distance

    scale = property_scale(target_held[:, fs * fs:])

    def measure(x: np.ndarray) -> dict[str, float]:
        dom = domain_scores(x, target_held, folds=folds, seed=seed)
        dist = property_distance(x[:, fs * fs:], target_held[:, fs * fs:], scale)
        return {"auc": round(dom["auc"], 4), "property_distance": round(dist, 4)}

    return measure
