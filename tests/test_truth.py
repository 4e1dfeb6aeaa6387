"""The truth harness: cases whose answer is known by construction, run through the report.

Two parts:

1. Simulations where the truth is a parameter: clusters (an image, its near copies and its
   synthesised children) share one outcome, as copies of an image do under one model. The 95%
   intervals must hold the true gap in 93% to 97% of the runs; the image-level bootstrap the
   report used before (every image independent) is measured beside it and must under-cover.
2. Real predictions of a small trained model (scikit-learn's logistic regression on 14x14
   pixels; not the timm pipeline, to keep this file within minutes on two cores) on MNIST halves,
   load_digits and transformed copies of them: no shift with and without synthesis, a
   resolution-only shift that synthesis fixes, and a shift that synthesis cannot fix.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.report.params import ReportParams
from shiftkit.stats import bootstrap as bs
from shiftkit.stats import decompose as dc
from tests import helpers

SPLITS = ("train", "bridge", "dev", "test")
HUMAN = 0.01


# ---------------------------------------------------------------------------------------------
# 1. coverage with copies and groups


def simulated_run(rng: np.random.Generator, rates: tuple[float, ...], clusters: int = 300):
    """Predictions, a dup-group table and a synth table for one simulated run.

    Every split holds ``clusters`` near-copy groups of 1 to 4 images; each train and bridge image
    has 0 to 2 synthesised children. A group and its children share one outcome, wrong with the
    split's error rate, so that the expected image error of a split is exactly its rate.
    """
    frames, groups, kids = [], [], []
    start = 0
    for s, rate in zip(SPLITS, rates, strict=True):
        size = np.minimum(1 + rng.poisson(0.8, clusters), 4)
        wrong = rng.random(clusters) < rate
        group = np.repeat(np.arange(start, start + clusters), size)  # a group is named by a number
        image = np.arange(start + clusters, start + clusters + group.size)
        start += clusters + group.size
        web = s in ("train", "bridge")
        frames.append(pl.DataFrame({"id": image, "split": np.full(image.size, s),
                                    "domain": np.full(image.size, "web" if web else "target"),
                                    "correct": ~wrong[group - group[0]]}))
        groups.append(pl.DataFrame({"id": image, "group": group}))
        if web:
            per = rng.integers(0, 3, image.size)
            parent = np.repeat(image, per)
            child = np.arange(start, start + parent.size)
            start += parent.size
            frames.append(pl.DataFrame({"id": child, "split": np.full(child.size, s),
                                        "domain": np.full(child.size, "synth"),
                                        "correct": ~wrong[np.repeat(group, per) - group[0]]}))
            kids.append(pl.DataFrame({"id": child, "parent": parent}))
    preds = pl.concat(frames).with_columns(image_id=pl.col("id").cast(pl.String)).drop("id")
    manifest = pl.concat(groups).select(image_id=pl.col("id").cast(pl.String),
                                        dup_group=pl.col("group").cast(pl.String))
    synth = pl.concat(kids).select(image_id=pl.col("id").cast(pl.String), parent_id=pl.col("parent").cast(pl.String))
    return preds, manifest, synth


def coverage(rates: tuple[float, ...], sims: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Share of ``sims`` simulated runs whose 95% interval holds each true gap: clusters, images."""
    truth = {
        "avoidable_bias": rates[0] - HUMAN,
        "variance": rates[1] - rates[0],
        "data_mismatch": rates[2] - rates[1],
        "dev_overfit": rates[3] - rates[2],
    }
    rng = np.random.default_rng(seed)
    hits = {"clusters": dict.fromkeys(truth, 0), "images": dict.fromkeys(truth, 0)}
    for i in range(sims):
        preds, manifest, synth = simulated_run(rng, rates)
        by_cluster = dc.decompose(bs.run_table(preds, bs.cluster_ids(manifest, synth)), HUMAN, seed=i)
        by_image = dc.decompose(bs.split_counts(preds), HUMAN, seed=i)
        for unit, d in (("clusters", by_cluster), ("images", by_image)):
            for g, t in truth.items():
                hits[unit][g] += d.gaps[g].ci_low <= t <= d.gaps[g].ci_high
    return ({g: h / sims for g, h in hits["clusters"].items()}, {g: h / sims for g, h in hits["images"].items()})


@pytest.mark.parametrize("rates", [(0.05, 0.10, 0.14, 0.15), (0.06, 0.06, 0.06, 0.06)], ids=["gaps", "no-gaps"])
def test_cluster_intervals_cover_the_true_gap_and_image_intervals_do_not(rates):
    """1,000 simulated runs per setting (about 250 groups, 500 images and, on the web side, 500
    children per split)."""
    by_cluster, by_image = coverage(rates, sims=1000, seed=2024)
    print("coverage", rates, "clusters", by_cluster, "images", by_image)
    for g, c in by_cluster.items():
        assert 0.93 <= c <= 0.97, (g, c)
    # resampling images one by one treats copies as independent evidence: far too narrow
    for g in ("avoidable_bias", "variance", "data_mismatch"):
        assert by_image[g] < 0.90, (g, by_image[g])


def test_false_claims_stay_rare_when_no_gap_is_real():
    """All four gaps are zero (human error equal to every split's error): over 400 simulated runs
    the diagnosis names a gap in at most 5% of them (plus two standard errors of 400 runs)."""
    rng = np.random.default_rng(7)
    claims = 0
    sims = 400
    for i in range(sims):
        preds, manifest, synth = simulated_run(rng, (0.08,) * 4, clusters=150)
        d = dc.decompose(bs.run_table(preds, bs.cluster_ids(manifest, synth)), 0.08, seed=i)
        claims += d.diagnosis != dc.INCONCLUSIVE
    assert claims / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims), claims


# ---------------------------------------------------------------------------------------------
# 2. real predictions of a small trained model


def _features(x: np.ndarray) -> np.ndarray:
    """14x14 pixels in [0, 1]: 28x28 MNIST by 2x2 means, other sizes resized by Pillow."""
    from PIL import Image

    if x.shape[1:] == (28, 28):
        small = x.reshape(len(x), 14, 2, 14, 2).mean(axis=(2, 4))
    else:
        small = np.stack([np.asarray(Image.fromarray(i).resize((14, 14), Image.BILINEAR), float) for i in x])
    return small.reshape(len(x), -1) / 255.0


def low_resolution(x: np.ndarray, size: int = 7) -> np.ndarray:
    """Down to ``size`` px and back up to 28: what a low-resolution camera gives."""
    from PIL import Image

    def one(i):
        return np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR).resize((28, 28), Image.BILINEAR))

    return np.stack([one(i) for i in x]).astype(np.uint8)


def near_copies(x: np.ndarray, rng: np.random.Generator, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images that get a near copy (shifted one pixel) and the copies."""
    idx = np.flatnonzero(rng.random(len(x)) < share)
    return idx, np.roll(x[idx], 1, axis=2)


def _manifest(ids: list[str], groups: list[str], domains: list[str], labels: list[str]) -> pl.DataFrame:
    n = len(ids)
    nothing = pl.Series([None] * n, dtype=pl.Float64)
    return schema.conform(pl.DataFrame({
        "image_id": ids, "path": [f"{i}.png" for i in ids], "root": ["none"] * n, "domain": domains,
        "label": labels, "width": [28] * n, "height": [28] * n, "format": ["PNG"] * n, "mode": ["L"] * n,
        "phash": pl.Series([0] * n, dtype=pl.UInt64), "blur": nothing, "brightness": nothing, "contrast": nothing,
        "effective_res": nothing, "noise": nothing, "extent": nothing, "jpeg_quality": nothing,
        "drop": [1] * n, "dup_group": groups,
    }), schema.MANIFEST)


def truth_run(tmp, web, target, *, synth=None, seed: int = 0, name: str = "run"):
    """Train a logistic regression on the web train split (+ synthesised children), predict every
    split, and write predictions, manifest and synth tables as the pipeline would.

    ``web`` and ``target``: (images, labels); ``synth``: a function from web images to their
    synthesised copies (one child per web image of train and bridge), or None.
    """
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    items = []  # (image_id, group, split, domain, label, pixels)
    for dom, (x, y), first in (("web", web, "train"), ("target", target, "dev")):
        other = "bridge" if dom == "web" else "test"
        split = np.where(rng.random(len(x)) < (0.75 if dom == "web" else 0.5), first, other)
        idx, copies = near_copies(x, rng)
        for i in range(len(x)):
            items.append((f"{dom}{i}", f"{dom}{i}", split[i], dom, y[i], x[i]))
        for i, c in zip(idx, copies, strict=True):
            items.append((f"{dom}{i}c", f"{dom}{i}", split[i], dom, y[i], c))
    kids = []
    if synth is not None:
        web_items = [it for it in items if it[3] == "web"]
        made = synth(np.stack([it[5] for it in web_items]))
        kids = [(f"{it[0]}s", it[0], it[2], "synth", it[4], m) for it, m in zip(web_items, made, strict=True)]
    train = [it for it in items + kids if it[2] == "train"]
    model = LogisticRegression(max_iter=200, C=0.5)
    model.fit(_features(np.stack([it[5] for it in train])), np.array([it[4] for it in train]))
    everything = items + kids
    proba = model.predict_proba(_features(np.stack([it[5] for it in everything])))
    pred = model.classes_[proba.argmax(axis=1)]
    label = np.array([it[4] for it in everything])
    preds = schema.conform(pl.DataFrame({
        "image_id": [it[0] for it in everything], "split": [it[2] for it in everything],
        "domain": [it[3] for it in everything], "label": label.astype(str), "pred": pred.astype(str),
        "confidence": proba.max(axis=1), "correct": pred == label,
    }), schema.PREDICTIONS)
    out = {"predictions": tmp / f"{name}-predictions.parquet", "manifest": tmp / f"{name}-manifest.parquet"}
    io.write_table(preds, out["predictions"], schema.PREDICTIONS)
    io.write_table(_manifest([it[0] for it in items], [it[1] for it in items], [it[3] for it in items],
                             [str(it[4]) for it in items]), out["manifest"], schema.MANIFEST)
    if kids:
        out["synth"] = tmp / f"{name}-synth.parquet"
        io.write_table(pl.DataFrame({
            "image_id": [k[0] for k in kids], "parent_id": [k[1] for k in kids], "split": [k[2] for k in kids],
            "path": [f"{k[0]}.png" for k in kids], "recipe": ["{}"] * len(kids),
        }), out["synth"], schema.SYNTH)
    return out


def report(run: dict, compare_to=None):
    from shiftkit.report.stage import build_report

    return build_report(run["predictions"], manifest=run["manifest"], synth=run.get("synth"),
                        compare_to=compare_to, params=ReportParams(gallery=0))


def _pool(n: int, offset: int = 0):
    return helpers.mnist(n, offset)


def identity_copies(x: np.ndarray) -> np.ndarray:
    """What an empty recipe would write: the web image itself."""
    return x.copy()


@pytest.mark.parametrize("synth", [None, identity_copies], ids=["synthesis-off", "synthesis-on"])
@pytest.mark.parametrize("seed", [0, 1])
def test_no_shift_is_never_a_data_mismatch(tmp_path, synth, seed):
    """Web and target drawn at random from one pool of MNIST digits: the true data mismatch is
    zero, so the diagnosis must not be data mismatch and its interval must hold zero."""
    x, y = _pool(3600, offset=3600 * seed)
    order = np.random.default_rng(seed).permutation(len(x))
    web, target = order[:2400], order[2400:]
    run = truth_run(tmp_path, (x[web], y[web]), (x[target], y[target]), synth=synth, seed=seed)
    d = report(run).decomposition
    g = d.gaps["data_mismatch"]
    print("no shift", seed, synth is not None, d.diagnosis, g)
    assert d.diagnosis != "data_mismatch"
    assert g.ci_low <= 0 <= g.ci_high


def test_resolution_shift_is_a_mismatch_that_synthesis_shrinks(tmp_path):
    """Target: the same kind of digits seen at 7 px. Without synthesis the report must say data
    mismatch; synthesis that degrades the web images the same way must shrink it."""
    x, y = _pool(3600, offset=7200)
    web, target = slice(0, 2400), slice(2400, 3600)
    low = low_resolution(x[target])
    before = truth_run(tmp_path, (x[web], y[web]), (low, y[target]), name="before")
    after = truth_run(tmp_path, (x[web], y[web]), (low, y[target]), synth=low_resolution, name="after")
    d_before = report(before).decomposition
    data = report(after, compare_to=before["predictions"])
    print("resolution", d_before.gaps["data_mismatch"], data.decomposition.gaps["data_mismatch"])
    assert d_before.diagnosis == "data_mismatch"
    assert data.compare["data_mismatch"].verdict == "shrank"


def test_a_shift_synthesis_cannot_fix_stays_a_mismatch(tmp_path):
    """Target: scikit-learn's 8x8 digits (another writer, another scanner); synthesis blurs the web
    images, which does not make them look like those: data mismatch with and without it."""
    from PIL import Image, ImageFilter

    def blur(x):
        return np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(1.0))) for i in x])

    x, y = _pool(2400, offset=0)
    tx, ty = helpers.digits(1200)
    tx = np.stack([np.asarray(Image.fromarray(i).resize((28, 28), Image.BILINEAR)) for i in tx])
    for synth in (None, blur):
        d = report(truth_run(tmp_path, (x, y), (tx, ty), synth=synth, name=str(synth is not None))).decomposition
        print("unfixable", synth is not None, d.diagnosis, d.gaps["data_mismatch"])
        assert d.diagnosis == "data_mismatch"
