"""Error decomposition with cluster-bootstrap intervals and a diagnosis with controlled false claims.

Errors on train, bridge, dev and test, against a fixed human-level error, decompose into four
gaps: avoidable bias = train - human, variance = bridge - train, data mismatch = dev - bridge,
dev overfitting = test - dev.

**What is resampled: clusters.** An image, its near copies (the manifest's ``dup_group``) and
its synthesised children (the synth table's ``parent_id``) are one cluster: they are not
independent evidence (a copy of an image the model gets wrong is wrong too), so the bootstrap
draws whole clusters, with replacement, within each stratum of clusters that touch the same
splits. Resampling them image by image made the intervals too narrow: 66% to 78% coverage
instead of 95% in the simulations of ``tests/test_truth.py``.

**Why it stays fast.** Clusters with the same outcome pattern (images and errors per split) are
exchangeable, so drawing ``m`` clusters uniformly is the same as drawing how many fall in each
pattern: one multinomial over the (few) patterns per replicate. 1,000,000 predictions with 1,000
replicates cost a group-by and milliseconds of draws (``benchmarks/report.py``). For clusters of
one image this is exactly the binomial bootstrap of the error count.

**Pseudo-observations.** Each stratum gets one pseudo-cluster of one image per split, half
wrong and half right (the bootstrap analogue of the Jeffreys prior, Beta(1/2, 1/2)): a plain
percentile bootstrap collapses to a zero-width interval when a split has no errors and
under-covers when it has a handful. With it the 95% intervals held the true gap in 94% to 97%
of 1,000 simulated runs from 200 images per split and error rates from 1% to 30%
(``tests/test_decompose.py`` and ``tests/test_truth.py`` check it).

**The diagnosis is a claim and its false claims are controlled.** Each gap's claim "this gap is
above zero" gets a one-sided bootstrap p-value (the share of replicates at or below zero);
Holm's step-down over the gaps that can be computed keeps the chance of any false claim at most
``1 - level`` (5% by default). The diagnosis is the largest claimed gap, or "inconclusive". The
per-gap ``level`` intervals of the table are not adjusted: a gap whose interval excludes zero
can still be unclaimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from statistics import NormalDist

import numpy as np
import polars as pl

from shiftkit.core.errors import ConfigError, DataError
from shiftkit.core.schema import SPLITS

# name, lower split (or "human"), upper split: gap = error(upper) - error(lower)
GAPS: tuple[tuple[str, str, str], ...] = (
    ("avoidable_bias", "human", "train"),
    ("variance", "train", "bridge"),
    ("data_mismatch", "bridge", "dev"),
    ("dev_overfit", "dev", "test"),
)
GAP_NAMES = tuple(g[0] for g in GAPS)
GAP_TITLES = {
    "avoidable_bias": "avoidable bias",
    "variance": "variance",
    "data_mismatch": "data mismatch",
    "dev_overfit": "dev overfitting",
}
INCONCLUSIVE = "inconclusive"
SYNTH_DOMAIN = "synth"
CLAIM_METHOD = "Holm"
_POWER = 0.8  # chance that the suggested extra images let the largest gap be claimed
_PSEUDO = 0.5  # pseudo wrong images (and as many right ones) per split of each stratum


def check_human_error(value: float, where: str = "human_error") -> float:
    """Return ``value`` as a float if it is a valid human-level error in [0, 1).

    Raises:
        ConfigError: when it is not a number in [0, 1).
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"The {where!r} parameter of report must be a fraction in [0, 1). Got {value!r} instead."
        ) from exc
    if not (0.0 <= v < 1.0) or math.isnan(v):
        raise ConfigError(f"The {where!r} parameter of report must be a fraction in [0, 1). Got {value!r} instead.")
    return v


def check_level(level: float) -> float:
    """Raise unless the confidence level is in (0, 1).

    Raises:
        ConfigError: when it is not.
    """
    if not (0.0 < float(level) < 1.0):
        raise ConfigError(f"The 'level' parameter of report must be a fraction in (0, 1). Got {level!r} instead.")
    return float(level)


def check_replicates(replicates: int) -> int:
    """Raise unless the number of bootstrap replicates is an integer >= 100.

    Raises:
        ConfigError: when it is not.
    """
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 100:
        raise ConfigError(
            f"The 'replicates' parameter of report must be an integer >= 100. Got {replicates!r} instead."
        )
    return int(replicates)


@dataclass(frozen=True)
class SplitCount:
    """How many images a split has and how many of them the model got wrong."""

    n: int
    errors: int

    @property
    def error(self) -> float:
        return self.errors / self.n


def split_counts(predictions: pl.DataFrame, *, include_synth: bool = True) -> dict[str, SplitCount]:
    """Images and errors per split (only the splits present, in SPLITS order).

    ``include_synth=False`` leaves out the synthesised children (domain ``synth``) of train and
    bridge images; by default they count, because the model was trained on that distribution.

    Raises:
        DataError: when the table has no rows, or a split name outside SPLITS.
    """
    df = predictions
    if not include_synth and "domain" in df.columns:
        df = df.filter(pl.col("domain") != SYNTH_DOMAIN)
    if df.height == 0:
        raise DataError("The predictions table has no rows to report on.")
    agg = df.group_by("split").agg(pl.len().alias("n"), (~pl.col("correct")).sum().alias("errors"))
    unknown = sorted(set(agg["split"].to_list()) - set(SPLITS))
    if unknown:
        raise DataError(
            f"The predictions table has unknown split name(s) {', '.join(map(repr, unknown))}; "
            f"expected: {', '.join(SPLITS)}."
        )
    rows = {r["split"]: SplitCount(int(r["n"]), int(r["errors"])) for r in agg.iter_rows(named=True)}
    return {s: rows[s] for s in SPLITS if s in rows}


# ---------------------------------------------------------------------------------------------
# clusters: the unit of resampling


def cluster_ids(manifest: pl.DataFrame | None = None, synth: pl.DataFrame | None = None) -> pl.DataFrame:
    """``image_id -> cluster``: an image's near-copy group, and for a synthesised child its parent's.

    Images in neither table are their own cluster (see :func:`outcomes`).

    Raises:
        DataError: when the manifest lists an image id twice (byte-identical synthesised copies share
            one id and are kept once).
    """
    parts = []
    groups = None
    if manifest is not None and manifest.height:
        groups = manifest.select("image_id", cluster=pl.coalesce("dup_group", "image_id"))
    if synth is not None and synth.height:
        # byte-identical copies share an image_id (and, almost always, their parent): one row each,
        # the smallest parent id when two parents happened to give the same bytes
        kids = synth.select("image_id", "parent_id").sort("image_id", "parent_id")
        kids = kids.unique("image_id", keep="first", maintain_order=True)
        if groups is not None:
            kids = kids.join(groups.rename({"image_id": "parent_id"}), on="parent_id", how="left")
            kids = kids.select("image_id", cluster=pl.coalesce("cluster", "parent_id"))
            # a synthesised image listed in both tables follows its parent
            groups = groups.join(kids, on="image_id", how="anti")
        else:
            kids = kids.select("image_id", cluster=pl.col("parent_id"))
        parts.append(kids)
    if groups is not None:
        parts.append(groups)
    if not parts:
        return pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String})
    return pl.concat(parts)


def outcomes(
    predictions: pl.DataFrame,
    clusters: pl.DataFrame | None = None,
    *,
    include_synth: bool = True,
    prefix: str = "",
) -> pl.DataFrame:
    """One row per prediction: ``cluster``, ``column`` (``prefix`` + split) and ``wrong``.

    Raises:
        DataError: when ``clusters`` lists an image id twice.
    """
    df = predictions
    if not include_synth and "domain" in df.columns:
        df = df.filter(pl.col("domain") != SYNTH_DOMAIN)
    df = df.select("image_id", "split", "correct")
    if clusters is not None and clusters.height:
        try:
            df = df.join(clusters, on="image_id", how="left", validate="m:1")
        except pl.exceptions.ComputeError as exc:
            raise DataError("The manifest or synth table lists an image_id twice; expected one row per image.") from exc
    else:
        df = df.with_columns(cluster=pl.lit(None, pl.String))
    column = pl.col("split").replace({s: prefix + s for s in SPLITS}) if prefix else pl.col("split")
    return df.select(cluster=pl.coalesce("cluster", "image_id"), column=column, wrong=~pl.col("correct"))


@dataclass(frozen=True)
class Stratum:
    """Clusters that touch the same columns: their outcome patterns and how many clusters share each."""

    mask: int  # bit i set: the clusters touch column i
    n: np.ndarray  # (patterns, columns) images per column
    k: np.ndarray  # (patterns, columns) wrong images per column
    weight: np.ndarray  # (patterns,) clusters with this pattern


@dataclass(frozen=True)
class ClusterTable:
    """Per-cluster outcomes, compressed to patterns: what the bootstrap draws from."""

    columns: tuple[str, ...]
    strata: tuple[Stratum, ...]

    def counts(self) -> dict[str, SplitCount]:
        n = sum((st.weight @ st.n for st in self.strata), np.zeros(len(self.columns), np.int64))
        k = sum((st.weight @ st.k for st in self.strata), np.zeros(len(self.columns), np.int64))
        return {c: SplitCount(int(n[i]), int(k[i])) for i, c in enumerate(self.columns) if n[i] > 0}

    def clusters(self) -> dict[str, int]:
        """How many clusters touch each column."""
        out = dict.fromkeys(self.columns, 0)
        for st in self.strata:
            for i, c in enumerate(self.columns):
                if st.mask >> i & 1:
                    out[c] += int(st.weight.sum())
        return {c: v for c, v in out.items() if v}

    @classmethod
    def from_counts(cls, counts: dict[str, SplitCount]) -> ClusterTable:
        """Every image its own cluster (what a bare count of images and errors can tell)."""
        columns = tuple(counts)
        strata = []
        for i, c in enumerate(counts.values()):
            n = np.zeros((2, len(columns)), np.int64)
            n[:, i] = 1
            k = np.zeros_like(n)
            k[1, i] = 1
            strata.append(Stratum(1 << i, n, k, np.array([c.n - c.errors, c.errors], np.int64)))
        return cls(columns, tuple(strata))


def cluster_table(frame: pl.DataFrame, columns: Sequence[str]) -> ClusterTable:
    """Compress :func:`outcomes` rows (cluster, column, wrong) to strata of outcome patterns.

    Clusters become integer codes and each cluster's images and errors per column two bincounts,
    so that a million rows cost about as much as one group-by over the few distinct patterns.

    Raises:
        DataError: when a row's column is not one of ``columns``.
    """
    unknown = sorted(set(frame["column"].unique().to_list()) - set(columns))
    if unknown:
        raise DataError(
            f"Predictions in unknown split(s) {', '.join(map(repr, unknown))}; expected: {', '.join(columns)}."
        )
    width = len(columns)
    code = frame["cluster"].rank("dense").to_numpy().astype(np.int64) - 1  # clusters as 0..M-1
    col = frame["column"].replace_strict({c: i for i, c in enumerate(columns)}, return_dtype=pl.Int64).to_numpy()
    flat = code * width + col
    size = (int(code.max()) + 1) * width if code.size else 0
    n = np.bincount(flat, minlength=size).reshape(-1, width)
    k = np.bincount(flat, weights=frame["wrong"].to_numpy(), minlength=size).astype(np.int64).reshape(-1, width)
    pats, weight = _patterns(np.column_stack([n, k]))
    mask = ((pats[:, :width] > 0) * (1 << np.arange(width))).sum(axis=1)
    strata = [
        Stratum(int(m), pats[mask == m, :width], pats[mask == m, width:], weight[mask == m])
        for m in np.unique(mask)
    ]
    return ClusterTable(tuple(columns), tuple(strata))


def _patterns(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix (sorted) and how often each occurs."""
    base = int(rows.max(initial=0)) + 1
    if rows.shape[1] * math.log2(base) < 62:  # one int64 key per row: a 1-d unique is a fast sort
        key = np.zeros(len(rows), np.int64)
        for j in range(rows.shape[1]):
            key = key * base + rows[:, j]
        uniq, counts = np.unique(key, return_counts=True)
        out = np.zeros((len(uniq), rows.shape[1]), np.int64)
        for j in range(rows.shape[1] - 1, -1, -1):
            uniq, out[:, j] = np.divmod(uniq, base)
        return out, counts
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    return uniq.astype(np.int64), counts


def run_table(
    predictions: pl.DataFrame, clusters: pl.DataFrame | None = None, *, include_synth: bool = True
) -> ClusterTable:
    """The cluster table of one run, one column per split present (in SPLITS order).

    Raises:
        DataError: when the table has no rows, or a split name outside SPLITS.
    """
    counts = split_counts(predictions, include_synth=include_synth)
    return cluster_table(outcomes(predictions, clusters, include_synth=include_synth), list(counts))


def joint_table(
    other: pl.DataFrame, this: pl.DataFrame, clusters: pl.DataFrame | None = None, *, include_synth: bool = True
) -> ClusterTable:
    """Two runs in one table (columns ``a:<split>`` for ``other``, ``b:<split>`` for ``this``): a
    cluster present in both runs is drawn for both at once (paired), the rest independently."""
    ca = split_counts(other, include_synth=include_synth)
    cb = split_counts(this, include_synth=include_synth)
    frame = pl.concat([
        outcomes(other, clusters, include_synth=include_synth, prefix="a:"),
        outcomes(this, clusters, include_synth=include_synth, prefix="b:"),
    ])
    return cluster_table(frame, [f"a:{s}" for s in ca] + [f"b:{s}" for s in cb])


def _stream(seed: int, *key: int) -> np.random.Generator:
    # one stream per (purpose, stratum): adding or removing a stratum never moves another's draws
    return np.random.default_rng([int(seed), *key])


def _pseudo(st: Stratum, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stratum's pseudo-cluster: as many images per column as its average cluster, every
    wrong/right combination of its columns, total weight 2 * _PSEUDO (for clusters of one image:
    half a wrong and half a right image)."""
    cols = [i for i in range(width) if st.mask >> i & 1]
    size = (st.weight @ st.n) / st.weight.sum()
    combos = np.array(list(product((0, 1), repeat=len(cols))), float)
    n = np.zeros((len(combos), width))
    n[:, cols] = size[cols]
    k = np.zeros_like(n)
    k[:, cols] = combos * size[cols]
    return n, k, np.full(len(combos), 2 * _PSEUDO / len(combos))


def bootstrap(table: ClusterTable, replicates: int, seed: int, key: int = 0) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each column's error rate (float64 arrays of length ``replicates``).

    Each replicate draws, within each stratum, as many clusters as it holds, with replacement
    (as a multinomial over its outcome patterns and its pseudo-cluster; module docstring).
    """
    width = len(table.columns)
    n_tot = np.zeros((replicates, width))
    k_tot = np.zeros((replicates, width))
    for st in table.strata:
        pn, pk, pw = _pseudo(st, width)
        m = int(st.weight.sum())
        probs = np.concatenate([st.weight, pw]).astype(float)
        draws = _stream(seed, key, st.mask).multinomial(m, probs / probs.sum(), size=replicates).astype(float)
        n_tot += draws @ np.vstack([st.n, pn])
        k_tot += draws @ np.vstack([st.k, pk])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {c: k_tot[:, i] / n_tot[:, i] for i, c in enumerate(table.columns)}


# ---------------------------------------------------------------------------------------------
# one run


@dataclass(frozen=True)
class Gap:
    """One gap of the decomposition; ``value`` is None when a split it needs is missing.

    ``p_value`` is the one-sided bootstrap p-value of "the gap is above zero", ``p_adjusted``
    its Holm-adjusted value over the computed gaps, and ``claimed`` whether it is at most
    ``1 - level``.
    """

    name: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    missing: tuple[str, ...] = ()
    p_value: float | None = None
    p_adjusted: float | None = None
    claimed: bool = False

    @property
    def significant(self) -> bool:
        """The per-gap interval lies wholly above zero (not adjusted for the other gaps)."""
        return self.ci_low is not None and self.ci_low > 0

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class Resolve:
    """How many more images of one split would let the largest gap be claimed."""

    gap: str
    split: str | None  # the cheapest split to grow; None when no single split suffices
    more_images: int | None
    options: dict[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Decomposition:
    """Errors per split, the four gaps with intervals and claims, and the diagnosis."""

    human_error: float
    counts: dict[str, SplitCount]
    errors: dict[str, float | None]
    error_ci: dict[str, tuple[float, float] | None]
    gaps: dict[str, Gap]
    diagnosis: str
    resolve: Resolve | None
    level: float
    replicates: int
    seed: int
    clusters: dict[str, int] = field(default_factory=dict)  # clusters per split: the resampled unit
    table: ClusterTable | None = None
    design_effect: dict[str, float] = field(default_factory=dict)  # bootstrap / binomial variance

    @property
    def missing_splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s not in self.counts)

    @property
    def family_error(self) -> float:
        """The chance of any false claim that the diagnosis allows: ``1 - level``."""
        return 1.0 - self.level


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _gap_samples(boot: dict[str, np.ndarray], lower: str, upper: str, human: float) -> np.ndarray:
    lo = human if lower == "human" else boot[lower]
    return boot[upper] - lo


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (a claim with adjusted p <= alpha keeps the FWER <= alpha)."""
    order = sorted(p_values, key=lambda g: (p_values[g], GAP_NAMES.index(g) if g in GAP_NAMES else 0))
    m, running, out = len(order), 0.0, {}
    for i, g in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[g]))
        out[g] = running
    return out


def diagnose(gaps: dict[str, Gap]) -> str:
    """The largest claimed gap, or ``"inconclusive"``."""
    claimed = [g for g in gaps.values() if g.claimed]
    if not claimed:
        return INCONCLUSIVE
    # ties (rare) go to the earlier gap of the decomposition: fix bias before variance, etc.
    return max(claimed, key=lambda g: (g.value, -GAP_NAMES.index(g.name))).name


def resolve_estimate(
    gap: Gap, counts: dict[str, SplitCount], level: float, *, tests: int = 1, design: dict[str, float] | None = None
) -> Resolve:
    """How many more images of one of the gap's splits would let its claim pass.

    The usual sample-size formula of a one-sided test: the claim must pass at ``(1 - level) /
    tests`` (Bonferroni, the strictest step of Holm's) with 80% power; the gap's variance is the
    sum over its splits of design effect * p(1-p)/n; one split's n grows (its error rate and
    clustering assumed unchanged) until the gap is that many standard errors above zero. A split
    whose growth alone cannot get there gets None.
    """
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / max(1, tests)) + NormalDist().inv_cdf(_POWER)
    lower, upper = next((lo, up) for n, lo, up in GAPS if n == gap.name)
    splits = [s for s in (upper, lower) if s != "human"]
    target = (gap.value or 0.0) ** 2 / z**2
    design = design or {}

    def var(s: str) -> float:
        c = counts[s]
        p = (c.errors + _PSEUDO) / (c.n + 2 * _PSEUDO)
        return p * (1 - p) * design.get(s, 1.0)

    options: dict[str, int | None] = {}
    for s in splits:
        room = target - sum(var(o) / counts[o].n for o in splits if o != s)
        options[s] = None if room <= 0 else max(0, math.ceil(var(s) / room) - counts[s].n) + 1
    feasible = {s: m for s, m in options.items() if m is not None}
    if not feasible or (gap.value or 0.0) <= 0:
        return Resolve(gap.name, None, None, options)
    # prefer dev, then bridge (target-side labels are the ones worth collecting), on a tie
    pref = {"dev": 0, "bridge": 1, "test": 2, "train": 3}
    best = min(feasible, key=lambda s: (feasible[s], pref[s]))
    return Resolve(gap.name, best, feasible[best], options)


def _gaps(boot: dict[str, np.ndarray], errors: dict, human: float, level: float) -> dict[str, Gap]:
    gaps, p = {}, {}
    samples = {}
    for name, lower, upper in GAPS:
        missing = tuple(s for s in (lower, upper) if s != "human" and s not in boot)
        if missing:
            gaps[name] = Gap(name, None, None, None, missing)
            continue
        samples[name] = _gap_samples(boot, lower, upper, human)
        p[name] = float((1 + np.count_nonzero(samples[name] <= 0)) / (samples[name].size + 1))
    adjusted = holm(p)
    for name, lower, upper in GAPS:
        if name in samples:
            value = float(errors[upper] - (human if lower == "human" else errors[lower]))
            lo, hi = _interval(samples[name], level)
            claim = adjusted[name] <= 1.0 - level and value > 0
            gaps[name] = Gap(name, value, lo, hi, (), p[name], adjusted[name], claim)
    return {n: gaps[n] for n in GAP_NAMES}


def _design_effect(boot: dict[str, np.ndarray], counts: dict[str, SplitCount]) -> dict[str, float]:
    out = {}
    for s, c in counts.items():
        p = (c.errors + _PSEUDO) / (c.n + 2 * _PSEUDO)
        out[s] = max(1.0, float(np.var(boot[s])) / (p * (1 - p) / c.n))
    return out


def decompose(
    data: dict[str, SplitCount] | ClusterTable,
    human_error: float = 0.0,
    *,
    replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Decomposition:
    """The error decomposition of one run, with cluster-bootstrap intervals and Holm claims.

    ``data``: a :class:`ClusterTable` (:func:`run_table`), or bare counts per split (then every
    image is its own cluster). A gap whose splits are not all present gets ``value=None`` and
    lists the missing splits; the others are computed as usual.

    Raises:
        ConfigError: when the human error is outside [0, 1), the level outside (0, 1), or fewer
            than 100 replicates are asked for.
        DataError: when no split is present.
    """
    human = check_human_error(human_error)
    level = check_level(level)
    replicates = check_replicates(replicates)
    table = data if isinstance(data, ClusterTable) else ClusterTable.from_counts(data)
    counts = table.counts()
    if not counts:
        raise DataError("The predictions table has no split to report on; expected some of: " + ", ".join(SPLITS) + ".")
    boot = bootstrap(table, replicates, seed)
    boot = {s: boot[s] for s in counts}
    errors = {s: (counts[s].error if s in counts else None) for s in SPLITS}
    error_ci = {s: (_interval(boot[s], level) if s in boot else None) for s in SPLITS}
    gaps = _gaps(boot, errors, human, level)
    design = _design_effect(boot, counts)
    diagnosis = diagnose(gaps)
    resolve = None
    computed = [g for g in gaps.values() if g.value is not None]
    if diagnosis == INCONCLUSIVE and computed:
        largest = max(computed, key=lambda g: (g.value, -GAP_NAMES.index(g.name)))
        resolve = resolve_estimate(largest, counts, level, tests=len(computed), design=design)
    counts = {s: counts[s] for s in SPLITS if s in counts}
    return Decomposition(human, counts, errors, error_ci, gaps, diagnosis, resolve, level, replicates, seed,
                         table.clusters(), table, design)


# ---------------------------------------------------------------------------------------------
# comparing two runs


@dataclass(frozen=True)
class Change:
    """How one quantity changed from the other run (``before``) to this one (``after``)."""

    name: str
    before: float | None
    after: float | None
    value: float | None  # after - before
    ci_low: float | None
    ci_high: float | None

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not computable"
        if self.ci_high is not None and self.ci_high < 0:
            return "shrank"
        if self.ci_low is not None and self.ci_low > 0:
            return "grew"
        return "no clear change"

    def as_dict(self) -> dict[str, float | str | None]:
        return {
            "before": self.before,
            "after": self.after,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "verdict": self.verdict,
        }


def _side_by_side(other: ClusterTable, this: ClusterTable) -> ClusterTable:
    """Two runs with nothing known in common: each run's strata, on disjoint columns."""
    shift = len(other.columns)
    width = shift + len(this.columns)
    strata = []
    for st, off in [(st, 0) for st in other.strata] + [(st, shift) for st in this.strata]:
        n = np.zeros((len(st.weight), width), np.int64)
        k = np.zeros_like(n)
        src = st.n.shape[1]
        n[:, off:off + src], k[:, off:off + src] = st.n, st.k
        strata.append(Stratum(st.mask << off, n, k, st.weight))
    return ClusterTable(tuple(f"a:{c}" for c in other.columns) + tuple(f"b:{c}" for c in this.columns), tuple(strata))


def compare(this: Decomposition, other: Decomposition, joint: ClusterTable | None = None) -> dict[str, Change]:
    """Each error and gap of this run minus the other run's, with a bootstrap interval.

    ``joint`` (from :func:`joint_table`) lets clusters present in both runs be drawn for both at
    once, so that the runs' shared difficulty cancels in the difference; without it the runs are
    resampled independently. Uses this run's human error, level, seed and replicates.
    """
    if joint is None:
        joint = _side_by_side(other.table or ClusterTable.from_counts(other.counts),
                              this.table or ClusterTable.from_counts(this.counts))
    boot = bootstrap(joint, this.replicates, this.seed, key=1)
    bo = {c[2:]: v for c, v in boot.items() if c.startswith("a:")}
    bt = {c[2:]: v for c, v in boot.items() if c.startswith("b:")}
    h = this.human_error
    out: dict[str, Change] = {}
    for s in SPLITS:
        a, b = other.errors.get(s), this.errors.get(s)
        if s in bt and s in bo:
            lo, hi = _interval(bt[s] - bo[s], this.level)
            out[s] = Change(s, a, b, b - a, lo, hi)
        else:
            out[s] = Change(s, a, b, None, None, None)
    for name, lower, upper in GAPS:
        ok = all(x == "human" or (x in bt and x in bo) for x in (lower, upper))
        ga, gb = other.gaps[name].value, this.gaps[name].value
        if not ok or ga is None or gb is None:
            out[name] = Change(name, ga, gb, None, None, None)
            continue
        diff = _gap_samples(bt, lower, upper, h) - _gap_samples(bo, lower, upper, other.human_error)
        lo, hi = _interval(diff, this.level)
        out[name] = Change(name, ga, gb, gb - ga, lo, hi)
    return out
