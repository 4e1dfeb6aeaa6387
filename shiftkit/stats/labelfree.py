"""Label-free error estimates over a predictions table, audited on dev by cross-fitting.

**Estimators.** Each turns the model's confidences on a set without labels into an estimated error
rate; all but the naive reference learn one number on a labelled *calibration* set:

- ``atc_mc`` / ``atc_ne``: ATC (Garg et al., ICLR 2022). On the calibration set, the threshold ``t``
  on a score such that the share of images scoring below ``t`` equals the error rate; the estimate
  is the share of target images below ``t``. ``mc``: the max-confidence score; ``ne``: the negative
  entropy of the class probabilities (needs the predictions' ``entropy`` column).
- ``doc``: difference of confidences (Guillory et al., 2021): the calibration error plus the drop
  of the average confidence from the calibration set to the target.
- ``avg_conf``: one minus the average confidence, the naive reference (no calibration).

Each calibrated estimator comes in two variants, ``NAME@dev`` (labelled target images) and
``NAME@bridge`` (the training distribution, as in the papers).

**The audit.** The dev set is split in two by cluster (seeded); each half is estimated as if it had
no labels from a calibration on the other half, and the two estimates are pooled and compared
with the real dev error. Bridge-calibrated variants estimate dev from all of the bridge (no dev
label is used either way). The estimator the report relies on (``chosen``, see :func:`choose`) is the
method with the smallest audited error on dev (its cross-fitted audit plus its bridge -> dev audit),
calibrated on all of dev; test is never read.

**Intervals.** A cluster bootstrap (clusters from :func:`shiftkit.stats.bootstrap.cluster_ids`: near
copies and synthesised children go together) redraws the calibration and target clusters and
recomputes the estimate (at most ``MAX_REPLICATES`` times); the percentile interval is then widened,
in quadrature, by the binomial spread of a set's real error around its expected value (``z * sqrt(e
(1 - e) / clusters)``) and, on sets other than the audited one, by the estimator's audited absolute
error on dev (the bias it showed on this run's shift). The widening is what lets the interval hold
the set's real error, not only its expected value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError
from shiftkit.core.schema import UNLABELLED
from shiftkit.stats.bootstrap import SYNTH_DOMAIN

METHODS = ("atc_mc", "atc_ne", "doc", "avg_conf")
CALIBRATIONS = ("dev", "bridge")
TITLES = {
    "atc_mc": "ATC (max confidence)",
    "atc_ne": "ATC (negative entropy)",
    "doc": "DoC (difference of confidences)",
    "avg_conf": "average confidence",
}
_CHUNK = 100  # bootstrap replicates per block of weights (bounds memory on large sets)
# at most this many replicates per estimate: each costs a pass over every image of two sets, for each of
# up to 7 variants and every set, and the widened percentile interval needs no more
MAX_REPLICATES = 400


def is_unlabelled_split(name: str) -> bool:
    """``unlabelled`` or ``unlabelled:<name>``: a split of predictions without labels."""
    return name == UNLABELLED or name.startswith(UNLABELLED + ":")


def unlabelled_rows() -> pl.Expr:
    """True on the rows of a predictions table whose split is unlabelled (see :func:`is_unlabelled_split`)."""
    return (pl.col("split") == UNLABELLED) | pl.col("split").str.starts_with(UNLABELLED + ":")


def labelled(predictions: pl.DataFrame) -> pl.DataFrame:
    """The rows of the labelled splits: what the decomposition, the analysis and the curve read."""
    return predictions.filter(~unlabelled_rows())


def variants(has_entropy: bool = True) -> tuple[str, ...]:
    """Every estimator variant: ``NAME@CALIBRATION`` for the calibrated ones, then ``avg_conf``."""
    methods = [m for m in METHODS if m != "avg_conf" and (has_entropy or m != "atc_ne")]
    return tuple(f"{m}@{c}" for m in methods for c in CALIBRATIONS) + ("avg_conf",)


def title(name: str) -> str:
    """``atc_mc@dev`` -> ``ATC (max confidence), calibrated on dev``."""
    method, _, cal = name.partition("@")
    return TITLES[method] + (f", calibrated on {cal}" if cal else "")


@dataclass(frozen=True)
class Sample:
    """One set of predictions: scores, errors (None without labels) and cluster codes 0..m-1."""

    conf: np.ndarray
    negent: np.ndarray | None
    wrong: np.ndarray | None
    cluster: np.ndarray

    @property
    def n(self) -> int:
        return int(self.conf.size)

    @property
    def clusters(self) -> int:
        return int(self.cluster.max()) + 1 if self.cluster.size else 0

    def take(self, mask: np.ndarray) -> Sample:
        codes = np.unique(self.cluster[mask], return_inverse=True)[1]
        neg = None if self.negent is None else self.negent[mask]
        wrong = None if self.wrong is None else self.wrong[mask]
        return Sample(self.conf[mask], neg, wrong, codes.astype(np.int64))

    def error(self) -> float | None:
        return None if self.wrong is None else float(self.wrong.mean())


def sample(frame: pl.DataFrame, clusters: pl.DataFrame | None = None) -> Sample:
    """The :class:`Sample` of some rows of a predictions table (labels used when every row has one)."""
    df = frame
    if clusters is not None and clusters.height:
        df = df.join(clusters, on="image_id", how="left")
    else:
        df = df.with_columns(cluster=pl.lit(None, pl.String))
    df = df.with_columns(cluster=pl.coalesce("cluster", "image_id"))
    codes = df["cluster"].rank("dense").to_numpy().astype(np.int64) - 1
    neg = None
    if "entropy" in df.columns and df["entropy"].null_count() == 0:
        neg = -df["entropy"].to_numpy().astype(float)
    labelled = df["correct"].null_count() == 0 and df["label"].null_count() == 0
    wrong = (~df["correct"]).to_numpy().astype(float) if labelled else None
    return Sample(df["confidence"].to_numpy().astype(float), neg, wrong, codes)


# ---------------------------------------------------------------------------------------------
# the estimators, over weights (rows: bootstrap replicates; one row of ones: the point estimate)


def _share_below(scores: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Weighted share of ``scores`` strictly below each replicate's threshold ``t``."""
    order = np.argsort(scores, kind="stable")
    s, ws = scores[order], w[:, order]
    cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(ws, axis=1)], axis=1)
    pos = np.searchsorted(s, t, side="left")
    return cum[np.arange(len(w)), pos] / cum[:, -1]


def _atc_threshold(scores: np.ndarray, wrong: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per replicate, the score below which the weighted share of images equals the weighted error."""
    order = np.argsort(scores, kind="stable")
    s, ws = scores[order], w[:, order]
    total = ws.sum(axis=1)
    err = (w @ wrong) / total
    cum = np.cumsum(ws, axis=1) / total[:, None]
    # k: how many of the lowest scores it takes for their share to reach the error; the threshold
    # lies halfway between the k-th lowest score and the next (below every score when k = 0)
    k = np.where(err > 1e-12, (cum < err[:, None] - 1e-12).sum(axis=1) + 1, 0)
    s_ext = np.concatenate([[-np.inf], s, [np.inf]])
    lo, hi = s_ext[k], s_ext[np.minimum(k + 1, s.size + 1)]
    return np.where(np.isfinite(lo) & np.isfinite(hi), (lo + hi) / 2, np.where(np.isfinite(hi), hi, lo + 1e-12))


def _mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w @ x) / w.sum(axis=1)


def estimate(method: str, cal: Sample | None, tgt: Sample, wc: np.ndarray | None, wt: np.ndarray) -> np.ndarray:
    """Estimated error of ``tgt`` per row of weights (``wc`` for ``cal``, ``wt`` for ``tgt``).

    Raises:
        DataError: when the method needs a labelled calibration set or scores it lacks.
    """
    if method == "avg_conf":
        return 1.0 - _mean(tgt.conf, wt)
    if cal is None or cal.wrong is None or wc is None:
        raise DataError(f"The estimator {method!r} needs a labelled calibration set.")
    if method == "doc":
        return _mean(cal.wrong, wc) + _mean(cal.conf, wc) - _mean(tgt.conf, wt)
    if method in ("atc_mc", "atc_ne"):
        sc, st = (cal.conf, tgt.conf) if method == "atc_mc" else (cal.negent, tgt.negent)
        if sc is None or st is None:
            raise DataError(f"The estimator {method!r} needs the predictions' entropy column.")
        return _share_below(st, wt, _atc_threshold(sc, cal.wrong, wc))
    raise DataError(f"Unknown label-free estimator {method!r}; expected one of: {', '.join(METHODS)}.")


def _weights(s: Sample, rng: np.random.Generator, size: int) -> np.ndarray:
    """Cluster-bootstrap weights: each cluster drawn as often as a multinomial says, its images with it."""
    m = s.clusters
    # m clusters drawn with replacement per replicate, counted with one bincount (a multinomial over
    # m equal categories, without its O(m) cost per draw)
    picks = rng.integers(0, m, size=(size, m)) + (np.arange(size) * m)[:, None]
    draws = np.bincount(picks.ravel(), minlength=size * m).reshape(size, m).astype(float)
    return draws[:, s.cluster]


def folds(s: Sample, seed: int) -> np.ndarray:
    """A seeded split of the sample's clusters in two halves: True for the images of the first half."""
    m = s.clusters
    first = np.zeros(m, bool)
    first[np.random.default_rng([int(seed), 23]).permutation(m)[: m // 2]] = True
    return first[s.cluster]


def _crossfit(method: str, dev: Sample, half: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The pooled estimate of dev from its two halves, each calibrated on the other."""
    a, b = dev.take(half), dev.take(~half)
    wa, wb = w[:, half], w[:, ~half]
    ea = estimate(method, b, a, wb, wa)
    eb = estimate(method, a, b, wa, wb)
    na, nb = wa.sum(axis=1), wb.sum(axis=1)
    # a replicate that drew no cluster of one half has no estimate of it: the other half stands alone
    return (np.where(na > 0, ea * na, 0.0) + np.where(nb > 0, eb * nb, 0.0)) / (na + nb)


AUDIT_SPLITS = 8  # seeded two-way splits of dev whose audited errors are averaged


def _crossfit_miss(method: str, dev: Sample, seed: int) -> float:
    """The audited error: how far each half's estimate lies from that half's real error, weighted by
    its size, averaged over ``AUDIT_SPLITS`` seeded splits (the first is the one the estimate uses).
    The pooled estimate alone would flatter DoC (with equal halves its two errors cancel exactly);
    one split alone would let the luck of the split choose the estimator."""
    misses = []
    for r in range(AUDIT_SPLITS):
        half = folds(dev, seed if r == 0 else seed * 1000 + r)
        a, b = dev.take(half), dev.take(~half)
        ea = estimate(method, b, a, np.ones((1, b.n)), np.ones((1, a.n)))[0]
        eb = estimate(method, a, b, np.ones((1, a.n)), np.ones((1, b.n)))[0]
        misses.append((a.n * abs(ea - a.error()) + b.n * abs(eb - b.error())) / dev.n)
    return float(np.mean(misses))


@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of one set's error, with its widened interval and the real error."""

    estimate: float
    ci_low: float
    ci_high: float
    actual: float | None
    n: int
    audited: float | None = None  # cross-fitted sets: the halves' mean absolute error (see _crossfit_miss)

    def as_dict(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high, "actual": self.actual}

    @property
    def miss(self) -> float | None:
        """Absolute error of the estimate against the real error (None without labels); on a
        cross-fitted set, the mean over its halves of each half's absolute error."""
        if self.audited is not None:
            return self.audited
        return None if self.actual is None else abs(self.estimate - self.actual)


@dataclass(frozen=True)
class LabelFree:
    """Every variant's estimate of every set (``estimates[name][split]``) and the chosen variant."""

    chosen: str
    estimates: dict[str, dict[str, Estimate]]
    level: float
    replicates: int
    seed: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def audit(self, name: str) -> float:
        """The variant's audited absolute error on dev."""
        return self.estimates[name]["dev"].miss or 0.0

    def as_dict(self) -> dict:
        return {"chosen": self.chosen,
                "estimators": {n: {s: e.as_dict() for s, e in per.items()} for n, per in self.estimates.items()}}


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _interval(point: float, reps: np.ndarray, s: Sample, level: float, bias: float) -> tuple[float, float]:
    """The bootstrap percentile interval widened by the set's binomial spread and the audited bias."""
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps[np.isfinite(reps)], [alpha, 1.0 - alpha])
    z = NormalDist().inv_cdf(1.0 - alpha)
    e = min(max(point, 0.5 / max(s.n, 1)), 1 - 0.5 / max(s.n, 1))
    spread = z * np.sqrt(e * (1.0 - e) / max(s.clusters, 1))
    down = np.sqrt(max(point - lo, 0.0) ** 2 + spread**2 + bias**2)
    up = np.sqrt(max(hi - point, 0.0) ** 2 + spread**2 + bias**2)
    return _clip(point - down), _clip(point + up)


def _one(name: str, cal: Sample | None, tgt: Sample, crossfit: np.ndarray | None, replicates: int,
         seed: int) -> tuple[float, np.ndarray]:
    """Point estimate and bootstrap replicates of one variant on one set."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a replicate with no cluster of a set: NaN, dropped
        return _one_raw(name, cal, tgt, crossfit, replicates, seed)


def _one_raw(name: str, cal: Sample | None, tgt: Sample, crossfit: np.ndarray | None, replicates: int,
             seed: int) -> tuple[float, np.ndarray]:
    method = name.partition("@")[0]
    key = sum(map(ord, name))
    rng_c, rng_t = np.random.default_rng([seed, key, 1]), np.random.default_rng([seed, key, 2])
    if crossfit is not None:
        point = float(_crossfit(method, tgt, crossfit, np.ones((1, tgt.n)))[0])
        reps = [_crossfit(method, tgt, crossfit, _weights(tgt, rng_t, k)) for k in _chunks(replicates)]
        return point, np.concatenate(reps)
    ones_c = None if cal is None else np.ones((1, cal.n))
    point = float(estimate(method, cal, tgt, ones_c, np.ones((1, tgt.n)))[0])
    reps = []
    for k in _chunks(replicates):
        wc = None if cal is None else _weights(cal, rng_c, k)
        reps.append(estimate(method, cal, tgt, wc, _weights(tgt, rng_t, k)))
    return point, np.concatenate(reps)


def _chunks(total: int) -> list[int]:
    return [min(_CHUNK, total - i) for i in range(0, total, _CHUNK)]


def sets_of(predictions: pl.DataFrame, clusters: pl.DataFrame | None = None) -> dict[str, Sample]:
    """The samples the estimators read: bridge and dev (labelled, no synthesised children) and every
    unlabelled split. Test is never read.

    Raises:
        DataError: when dev is missing or a set has no confidence values.
    """
    df = predictions.filter(pl.col("domain") != SYNTH_DOMAIN) if "domain" in predictions.columns else predictions
    if "confidence" not in df.columns or (df.height and df["confidence"].null_count() == df.height):
        raise DataError("The predictions table has no confidence values; label-free estimates need them.")
    names = ["bridge", "dev"] + sorted({s for s in df["split"].unique().to_list() if is_unlabelled_split(s)})
    out = {}
    for s in names:
        rows = df.filter(pl.col("split") == s)
        if rows.height:
            out[s] = sample(rows, clusters)
    if "dev" not in out or out["dev"].wrong is None:
        raise DataError("The predictions table has no labelled dev split; label-free estimates are audited on dev.")
    return out


def label_free(
    sets: dict[str, Sample],
    *,
    replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> LabelFree:
    """Every variant's estimate of every set, the cross-fitted dev audit and the chosen variant.

    ``sets``: :func:`sets_of` (bridge, dev, unlabelled splits), plus any other unlabelled set (a
    drop). A set whose name is its variant's calibration set is cross-fitted; the other sets are
    estimated from a calibration on all of it. Variants whose calibration set is missing (no
    bridge) or that need the entropy (an older predictions table) are left out, with a note.

    Raises:
        DataError: when dev is missing or unlabelled.
    """
    dev = sets.get("dev")
    if dev is None or dev.wrong is None:
        raise DataError("Label-free estimates need a labelled dev set to audit on.")
    if dev.clusters < 4:
        raise DataError(f"The dev set has {dev.clusters} cluster(s); the cross-fitted audit needs at least 4.")
    for s, smp in sets.items():
        if smp.n == 0:
            raise DataError(f"The set {s!r} has no images to estimate.")
    has_entropy = all(s.negent is not None for s in sets.values())
    notes = []
    if not has_entropy:
        notes.append("The predictions have no entropy column (an older table): ATC with the negative-entropy "
                     "score is left out; re-run `shiftkit evaluate` to add it.")
    replicates = min(int(replicates), MAX_REPLICATES)
    names = [v for v in variants(has_entropy) if v.partition("@")[2] in ("", *sets)]
    if "bridge" not in sets:
        notes.append("No bridge predictions: the bridge-calibrated estimators are left out.")
    order = ["dev"] + [s for s in sets if s != "dev"]
    out: dict[str, dict[str, Estimate]] = {}
    for name in names:
        cal_name = name.partition("@")[2]
        per: dict[str, Estimate] = {}
        for s in order:
            tgt = sets[s]
            cross = folds(tgt, seed) if s == cal_name else None
            cal = sets[cal_name] if cal_name and cross is None else None
            point, reps = _one(name, cal, tgt, cross, replicates, seed)
            bias = 0.0 if (s == "dev" or cross is not None) else (per["dev"].miss or 0.0)
            lo, hi = _interval(point, reps, tgt, level, bias)
            audited = _crossfit_miss(name.partition("@")[0], tgt, seed) if cross is not None else None
            per[s] = Estimate(_clip(point), lo, hi, tgt.error(), tgt.n, audited)
        out[name] = per
    return LabelFree(choose(out, names), out, level, replicates, seed, tuple(notes))


def choose(out: dict[str, dict[str, Estimate]], names: list[str]) -> str:
    """The variant the report relies on: the method with the smallest audited error on dev, summed
    over its two audits, calibrated on all of dev.

    A method's dev-calibrated audit (cross-fitting) sees no shift between calibration and target,
    so on it alone every method looks alike and the luck of the split would choose; its
    bridge-calibrated audit (bridge -> dev) sees how the method carries a calibration across a
    real shift. The sum weighs both; ``avg_conf`` (no calibration) counts its one audit twice.
    Without a bridge, the cross-fitted audit alone decides.
    """
    def score(name: str) -> float:
        if name == "avg_conf":
            return 2 * (out[name]["dev"].miss or 0.0)
        method = name.partition("@")[0]
        return sum(out[v]["dev"].miss or 0.0 for v in (f"{method}@dev", f"{method}@bridge") if v in out)

    candidates = [n for n in names if n.endswith("@dev") or n == "avg_conf"]
    return min(candidates, key=lambda n: (score(n), names.index(n)))
