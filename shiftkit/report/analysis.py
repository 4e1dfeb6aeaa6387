"""Error analysis of the dev set against the bridge set, and what to do next.

Slices (class, domain, property bucket) carry counts and Wilson score intervals: slices are
small, and Wilson's interval stays inside [0, 1] and keeps its coverage at a handful of images,
where a normal interval does not. Recommendations are drawn from the slices and the
decomposition of the same run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import polars as pl

from shiftkit.report.text import ci, pct, pts
from shiftkit.stats.bootstrap import SYNTH_DOMAIN
from shiftkit.stats.decompose import GAP_TITLES, INCONCLUSIVE, Change, Decomposition

ANALYSED = ("dev", "bridge")
MAX_SHOWN = 25  # classes beyond this are cut from figures and markdown tables (the json keeps all)


def wilson(errors: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``errors / n`` (vectorised; n = 0 gives (0, 1))."""
    k = np.asarray(errors, float)
    n = np.asarray(n, float)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.maximum(n, 1), 0.0)
        denom = 1 + z**2 / np.maximum(n, 1)
        centre = (p + z**2 / (2 * np.maximum(n, 1))) / denom
        half = z * np.sqrt(p * (1 - p) / np.maximum(n, 1) + z**2 / (4 * np.maximum(n, 1) ** 2)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    return lo, hi


def _with_rates(df: pl.DataFrame, level: float) -> pl.DataFrame:
    lo, hi = wilson(df["errors"].to_numpy(), df["n"].to_numpy(), level)
    return df.with_columns(
        error=(pl.col("errors") / pl.col("n")).cast(pl.Float64),
        ci_low=pl.Series(lo, dtype=pl.Float64),
        ci_high=pl.Series(hi, dtype=pl.Float64),
    )


def error_by(df: pl.DataFrame, by: list[str], level: float = 0.95) -> pl.DataFrame:
    """Images, errors, error rate and Wilson interval per group of ``by`` (sorted by ``by``)."""
    agg = (
        df.group_by(by)
        .agg(n=pl.len().cast(pl.Int64), errors=(~pl.col("correct")).sum().cast(pl.Int64))
        .sort(by)
    )
    return _with_rates(agg, level)


def side_by_side(df: pl.DataFrame, key: str, level: float) -> pl.DataFrame:
    """Error per ``key`` on dev and on bridge, one row per key value, dev columns first."""
    parts = []
    for s in ANALYSED:
        e = error_by(df.filter(pl.col("split") == s), [key], level)
        parts.append(e.rename({c: f"{s}_{c}" for c in e.columns if c != key}))
    keys = pl.concat([p.select(key) for p in parts]).unique().sort(key)
    out = keys
    for p in parts:
        out = out.join(p, on=key, how="left")
    return out.with_columns(
        [pl.col(f"{s}_{c}").fill_null(0) for s in ANALYSED for c in ("n", "errors")]
    ).sort(key)


def property_buckets(
    preds: pl.DataFrame, manifest: pl.DataFrame | None, prop: str, buckets: int, level: float
) -> pl.DataFrame:
    """Dev and bridge error per quantile bucket of one image property.

    Bucket edges are quantiles over dev and bridge images together, so the same images of a
    given blur (say) fall in the same bucket on both sides. Images without the property (for
    example synthesised children, absent from the manifest) are left out.
    """
    if manifest is None:  # ``preds`` already carries the property column
        j = preds.with_columns(value=pl.col(prop).cast(pl.Float64))
    else:
        j = preds.join(manifest.select("image_id", value=pl.col(prop).cast(pl.Float64)), on="image_id", how="inner")
    j = j.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
    if j.height == 0:
        return pl.DataFrame()
    values = j["value"].to_numpy()
    edges = np.unique(np.quantile(values, np.linspace(0, 1, buckets + 1)))
    if edges.size < 2:
        edges = np.array([values.min(), values.max()])
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    j = j.with_columns(bucket=pl.Series(idx, dtype=pl.Int64))
    out = side_by_side(j, "bucket", level)
    lows, highs = edges[out["bucket"].to_numpy()], edges[out["bucket"].to_numpy() + 1]
    return out.with_columns(
        low=pl.Series(lows, dtype=pl.Float64),
        high=pl.Series(highs, dtype=pl.Float64),
        range=pl.Series([f"{a:.3g} to {b:.3g}" for a, b in zip(lows, highs, strict=True)], dtype=pl.String),
    )


@dataclass(frozen=True)
class SynthEffect:
    """What the synthesised children tell: are they on, how many, how hard compared to parents."""

    on: bool
    images: int = 0  # rows in the synth table
    predicted: int = 0  # synthesised images with a prediction
    error: float | None = None  # error on synthesised train/bridge images
    parent_error: float | None = None  # error on their parents
    recipes: dict[str, int] = field(default_factory=dict)  # degradation name -> images using it


def synth_effect(preds: pl.DataFrame, synth: pl.DataFrame | None) -> SynthEffect:
    """Summarise synthesis from the synth table and the predictions on synthesised images."""
    syn_preds = preds.filter(pl.col("domain") == SYNTH_DOMAIN)
    if (synth is None or synth.height == 0) and syn_preds.height == 0:
        return SynthEffect(False)
    images = synth.height if synth is not None else 0
    recipes: dict[str, int] = {}
    if synth is not None:
        for text in synth["recipe"].to_list():
            try:
                obj = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                continue
            names = obj if isinstance(obj, list) else obj.get("steps", obj) if isinstance(obj, dict) else []
            for step in names if isinstance(names, list) else names.keys():
                name = step.get("name") if isinstance(step, dict) else step
                if isinstance(name, str):
                    recipes[name] = recipes.get(name, 0) + 1
    err = float((~syn_preds["correct"]).mean()) if syn_preds.height else None
    parent_err = None
    if synth is not None and syn_preds.height:
        parents = synth.join(syn_preds.select("image_id"), on="image_id", how="semi")["parent_id"]
        pp = preds.filter(pl.col("image_id").is_in(parents.implode()) & (pl.col("domain") != SYNTH_DOMAIN))
        if pp.height:
            parent_err = float((~pp["correct"]).mean())
    return SynthEffect(True, images, syn_preds.height, err, parent_err, dict(sorted(recipes.items())))


@dataclass(frozen=True)
class Analysis:
    """Error analysis of dev against bridge."""

    by_class: pl.DataFrame
    by_domain: pl.DataFrame
    by_property: dict[str, pl.DataFrame]
    labels: list[str]
    confusion: np.ndarray  # dev: rows true label, columns predicted label (order of ``labels``)
    confident_errors: pl.DataFrame
    synth: SynthEffect
    notes: list[str]


def analyse(
    preds: pl.DataFrame,
    *,
    manifest: pl.DataFrame | None = None,
    synth: pl.DataFrame | None = None,
    properties: tuple[str, ...] = ("blur", "effective_res", "brightness"),
    buckets: int = 4,
    gallery: int = 16,
    level: float = 0.95,
) -> Analysis:
    """Error analysis of dev against bridge: by class, domain and property bucket, the dev
    confusion matrix, and the ``gallery`` most confidently wrong dev images."""
    from sklearn.metrics import confusion_matrix

    notes: list[str] = []
    dv = preds.filter(pl.col("split").is_in(ANALYSED))
    if preds.filter(pl.col("split") == "dev").height == 0:
        notes.append("No dev predictions: the error analysis has nothing to analyse on dev.")
    by_class = side_by_side(dv, "label", level)
    by_domain = error_by(dv, ["split", "domain"], level)
    by_property: dict[str, pl.DataFrame] = {}
    if manifest is None:
        notes.append("No manifest given: errors by blur, resolution and brightness are not analysed.")
    else:
        present = [p for p in properties if p in manifest.columns]
        notes += [f"The manifest has no {p!r} column: not analysed." for p in properties if p not in present]
        # one join for all properties: the manifest can be far larger than dev + bridge
        joined = dv.join(manifest.select("image_id", *present), on="image_id", how="inner")
        for prop in present:
            t = property_buckets(joined, None, prop, buckets, level)
            if t.height == 0:
                notes.append(f"No dev or bridge image of the predictions is in the manifest: {prop} not analysed.")
                continue
            by_property[prop] = t
    dev = preds.filter(pl.col("split") == "dev")
    labels = pl.concat([dev["label"], dev["pred"]]).unique().sort().to_list()
    cm = np.zeros((0, 0), np.int64)
    if dev.height:
        # integer codes: sklearn sorts object arrays of strings slowly (1.2 s for 150k dev images)
        enum = pl.Enum(labels)
        true = dev["label"].cast(enum).to_physical().to_numpy()
        pred = dev["pred"].cast(enum).to_physical().to_numpy()
        cm = confusion_matrix(true, pred, labels=np.arange(len(labels)))
    wrong = dev.filter(~pl.col("correct")).sort(["confidence", "image_id"], descending=[True, False]).head(gallery)
    return Analysis(by_class, by_domain, by_property, labels, cm, wrong, synth_effect(preds, synth), notes)


def shown_classes(a: Analysis, limit: int = MAX_SHOWN) -> list[int]:
    """Indices into ``a.labels`` worth drawing: all when few, else those with most dev errors."""
    n = len(a.labels)
    if n <= limit:
        return list(range(n))
    cm = a.confusion.copy()
    np.fill_diagonal(cm, 0)
    weight = cm.sum(axis=0) + cm.sum(axis=1)  # wrong as true class or as predicted class
    keep = np.argsort(-weight, kind="stable")[:limit]
    return sorted(int(i) for i in keep)


# ---------------------------------------------------------------------------------------------
# recommendations


@dataclass(frozen=True)
class Recommendation:
    title: str
    detail: str


def _worst_classes(a: Analysis, min_count: int, top: int = 3) -> list[dict]:
    t = a.by_class.filter((pl.col("dev_n") >= min_count) & (pl.col("dev_errors") > 0))
    if t.height == 0:
        return []
    total = max(1, int(t["dev_errors"].sum()))
    t = t.with_columns(share=pl.col("dev_errors") / total).sort(["dev_errors", "label"], descending=[True, False])
    return t.head(top).to_dicts()


def _worst_bucket(a: Analysis, prop: str, min_count: int) -> dict | None:
    t = a.by_property.get(prop)
    if t is None or t.height < 2:
        return None
    t = t.filter(pl.col("dev_n") >= min_count)
    if t.height < 2:
        return None
    row = t.sort(["dev_error", "bucket"], descending=[True, False]).row(0, named=True)
    overall = t["dev_errors"].sum() / max(1, t["dev_n"].sum())
    return {**row, "overall": overall, "share": row["dev_errors"] / max(1, t["dev_errors"].sum())}


def _top_confusions(a: Analysis, top: int = 3) -> list[tuple[str, str, int]]:
    if a.confusion.size == 0:
        return []
    cm = a.confusion.copy()
    np.fill_diagonal(cm, 0)
    order = np.argsort(-cm, axis=None, kind="stable")[:top]
    cols = cm.shape[1]
    return [(a.labels[i // cols], a.labels[i % cols], int(cm.flat[i])) for i in order if cm.flat[i] > 0]


_PROPERTY_WORDS = {
    "blur": "sharpness (variance of the Laplacian; low = blurry)",
    "effective_res": "effective resolution (px)",
    "brightness": "brightness",
    "contrast": "contrast",
    "noise": "noise",
    "extent": "content extent (framing)",
    "width": "width (px)",
    "height": "height (px)",
}


def _inconclusive_rule(
    d: Decomposition, a: Analysis, compare: dict[str, Change] | None, min_count: int
) -> list[Recommendation]:
    g, r = d.gaps, d.resolve
    if r is not None and r.split is not None:
        return [Recommendation(
            f"Label about {r.more_images:,} more {r.split} images before acting",
            f"No gap is claimed above {100 * d.min_gap:.1f} points (report.min_gap) at a "
            f"{round(100 * (1 - d.level))}% family-wise error. The largest "
            f"gap, {GAP_TITLES[r.gap]} ({pts(g[r.gap].value, ' points')}), could be claimed with about "
            f"{r.more_images:,} more {r.split} images at the same error rates and clustering.",
        )]
    if r is not None:
        return [Recommendation(
            "No gap stands out",
            f"The largest gap, {GAP_TITLES[r.gap]} ({pts(g[r.gap].value, ' points')}), is too small to "
            "resolve by growing any one of its splits: it is likely negligible. Compute the "
            "missing gaps (see the notes) or grow all splits together.",
        )]
    return [Recommendation("Evaluate on more splits", "No gap could be computed.")]


def _class_and_confusion_recs(a: Analysis, min_count: int) -> list[Recommendation]:
    recs = []
    worst = _worst_classes(a, min_count)
    if worst:
        parts = ", ".join(
            f"'{w['label']}' ({w['dev_errors']} of {w['dev_n']} dev images wrong, {pct(w['dev_error'])}, "
            f"{pct(w['share'])} of dev errors; bridge {pct(w['bridge_error'])})"
            for w in worst
        )
        recs.append(Recommendation(
            "Collect or synthesise target-like images of the classes that carry the dev errors", f"Classes: {parts}."
        ))
    conf = _top_confusions(a)
    if conf:
        recs.append(Recommendation(
            "Look at the most frequent dev confusions",
            "; ".join(f"'{t}' taken for '{p}' {c} times" for t, p, c in conf)
            + ". The gallery shows the most confidently wrong dev images.",
        ))
    return recs


def _property_recs(a: Analysis, min_count: int) -> list[Recommendation]:
    recs = []
    for prop in a.by_property:
        b = _worst_bucket(a, prop, min_count)
        if b is None or b["dev_error"] <= b["overall"] * 1.2:
            continue
        recs.append(Recommendation(
            f"Target the {_PROPERTY_WORDS.get(prop, prop)} range {b['range']}",
            f"Dev error {pct(b['dev_error'])} there ({b['dev_errors']} of {b['dev_n']}; "
            f"{pct(b['share'])} of the dev errors with this property) against "
            f"{pct(b['overall'])} over all dev images; bridge images in that range: "
            f"{b['bridge_n']} (error {pct(b['bridge_error']) if b['bridge_n'] else 'n/a'}). "
            "Fit the synthesis recipe so that web images reach this range.",
        ))
    return recs


def _synthesis_rec(a: Analysis, compare: dict[str, Change] | None) -> Recommendation:
    s = a.synth
    if not s.on:
        return Recommendation(
            "Turn on artificial data synthesis (shiftkit synth)",
            "No synthesised images are in this run: transform web images (blur, downscale, "
            "JPEG, noise, framing) fitted to the target, retrain, and report again with "
            "--compare on this run.",
        )
    detail = (
        f"Synthesis is on: {s.images:,} synthesised images, {s.predicted:,} predicted; error on them "
        f"{pct(s.error)} against {pct(s.parent_error)} on their web parents."
    )
    if s.recipes:
        detail += " Degradations: " + ", ".join(f"{k} ({v})" for k, v in s.recipes.items()) + "."
    c = (compare or {}).get("data_mismatch")
    if c is not None and c.value is not None:
        detail += (
            f" Against the compared run the data mismatch changed by {pts(c.value, ' points')} "
            f"{ci(c.ci_low, c.ci_high, suffix=' points')}: {c.verdict}."
        )
    if s.error is not None and s.parent_error is not None and s.error <= s.parent_error:
        detail += " The synthesised images are no harder than their parents: the recipe is likely too weak."
    return Recommendation("Strengthen or refit the synthesis recipe", detail)


def _mismatch_rule(
    d: Decomposition, a: Analysis, compare: dict[str, Change] | None, min_count: int
) -> list[Recommendation]:
    return [
        *_class_and_confusion_recs(a, min_count),
        *_property_recs(a, min_count),
        _synthesis_rec(a, compare),
        Recommendation(
            "Add some labelled target images to train",
            "Even a few hundred target images in train (never from dev or test) narrow the mismatch "
            "directly; keep dev and test from the target only.",
        ),
    ]


def _variance_rule(
    d: Decomposition, a: Analysis, compare: dict[str, Change] | None, min_count: int
) -> list[Recommendation]:
    v = d.gaps["variance"]
    return [
        Recommendation(
            "Regularise",
            f"Bridge error exceeds train error by {pts(v.value, ' points')} "
            f"{ci(v.ci_low, v.ci_high, suffix=' points')}: "
            "raise weight decay or dropout, use early stopping on the bridge error, or freeze more of the backbone.",
        ),
        Recommendation("Augment more strongly", "Stronger augmentation (crops, flips, colour, blur) in train params."),
        Recommendation(
            "Get more training data",
            f"Train has {d.counts['train'].n:,} evaluated images; more web images or synthesised copies help.",
        ),
        Recommendation("Try a smaller model", "Fewer parameters overfit less when data is short."),
    ]


def _bias_rule(
    d: Decomposition, a: Analysis, compare: dict[str, Change] | None, min_count: int
) -> list[Recommendation]:
    b = d.gaps["avoidable_bias"]
    return [
        Recommendation(
            "Train a bigger model",
            f"Train error is {pts(b.value, ' points')} above human-level ({pct(d.human_error)}): a larger timm "
            "backbone, or unfreezing more stages in fine-tuning.",
        ),
        Recommendation("Train longer", "More epochs, or a higher learning rate for the new head."),
        Recommendation("Reduce regularisation", "Lower weight decay, dropout and augmentation strength."),
    ]


def _overfit_rule(
    d: Decomposition, a: Analysis, compare: dict[str, Change] | None, min_count: int
) -> list[Recommendation]:
    o = d.gaps["dev_overfit"]
    return [
        Recommendation(
            "Use a bigger dev set",
            f"Test error exceeds dev error by {pts(o.value, ' points')}: choices tuned on {d.counts['dev'].n:,} dev "
            "images do not carry over; move target images into dev.",
        ),
        Recommendation("Tune less against dev", "Fewer hyperparameter trials, or a fresh dev set."),
    ]


Rule = Callable[[Decomposition, Analysis, "dict[str, Change] | None", int], list[Recommendation]]

# the diagnosis -> the rule that writes its next steps (a new diagnosis is one function and one entry)
RULES: dict[str, Rule] = {
    INCONCLUSIVE: _inconclusive_rule,
    "avoidable_bias": _bias_rule,
    "variance": _variance_rule,
    "data_mismatch": _mismatch_rule,
    "dev_overfit": _overfit_rule,
}


def _follow_ups(d: Decomposition) -> list[Recommendation]:
    """After the diagnosis's own steps: the next gap also above zero, and how to measure missing gaps."""
    recs = []
    others = [x for x in d.gaps.values() if x.claimed and x.name != d.diagnosis]
    if others and d.diagnosis != INCONCLUSIVE:
        nxt = max(others, key=lambda x: x.value)
        recs.append(Recommendation(
            f"Then: {GAP_TITLES[nxt.name]}",
            f"{GAP_TITLES[nxt.name].capitalize()} is also claimed above zero ({pts(nxt.value, ' points')}, "
            f"{ci(nxt.ci_low, nxt.ci_high, suffix=' points')}).",
        ))
    for x in d.gaps.values():
        if x.value is None:
            recs.append(Recommendation(
                f"Evaluate the {' and '.join(x.missing)} split to measure {GAP_TITLES[x.name]}",
                f"{GAP_TITLES[x.name]} cannot be computed: no predictions on {', '.join(x.missing)}.",
            ))
    return recs


def _name_candidates(rec: Recommendation, model: str | None, img_size: int) -> Recommendation:
    """"Train a bigger model" with the next larger timm CNNs than ``model`` by multiply-adds (the
    candidate table of :mod:`shiftkit.training.arch`, scaled to ``img_size``)."""
    from shiftkit.training.arch import bigger_models

    if rec.title != "Train a bigger model" or not (nxt := bigger_models(model, img_size)):
        return rec
    names = ", ".join(f"{n} ({p / 1e6:.1f} M parameters, {m / 1e9:.2f} G multiply-adds)" for n, p, m in nxt)
    than = f"than {model} " if model else ""
    return Recommendation(rec.title, f"{rec.detail} Next larger {than}at {img_size} px: {names}; "
                          f"`shiftkit models {' '.join(n for n, _, _ in nxt)} --img-size {img_size}` "
                          "checks them layer by layer and measures their speed here.")


def recommend(
    d: Decomposition,
    a: Analysis,
    *,
    compare: dict[str, Change] | None = None,
    min_count: int = 5,
    model: str | None = None,
    img_size: int = 224,
) -> list[Recommendation]:
    """Concrete next steps, ranked, for the diagnosis of ``d`` (its rule in :data:`RULES`), backed
    by the run's evidence, then the follow-ups every diagnosis shares. ``model``: the run's timm
    model (train.model), after which a bigger model's candidates are named."""
    recs = [*RULES[d.diagnosis](d, a, compare, min_count), *_follow_ups(d)]
    return [_name_candidates(r, model, img_size) for r in recs]
