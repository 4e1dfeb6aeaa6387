"""Error decomposition with cluster-bootstrap intervals and a diagnosis with controlled false claims.

Errors on train, bridge, dev and test, against a fixed human-level error, decompose into four
gaps: avoidable bias = train - human, variance = bridge - train, data mismatch = dev - bridge,
dev overfitting = test - dev.

The intervals come from a cluster bootstrap (``shiftkit/stats/bootstrap.py``: what is resampled,
why it stays fast, and the pseudo-observations that keep intervals honest on few errors).

**The diagnosis is a claim and its false claims are controlled.** Each gap's claim "this gap is
above zero" gets a one-sided bootstrap p-value (the share of replicates at or below zero);
Holm's step-down over the gaps that can be computed keeps the chance of any false claim at most
``1 - level`` (5% by default). With a practical threshold ``min_gap`` (``report.min_gap``) the claim
is "this gap is above ``min_gap``" (the p-value counts the replicates at or below it), so a gap too
small to act on is never the diagnosis, however certain. The diagnosis is the largest claimed gap,
or "inconclusive". The
per-gap ``level`` intervals of the table are not adjusted: a gap whose interval excludes zero
can still be unclaimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from shiftkit.core.errors import ConfigError, DataError
from shiftkit.core.schema import SPLITS
from shiftkit.stats.bootstrap import PSEUDO as _PSEUDO
from shiftkit.stats.bootstrap import ClusterTable, SplitCount, Stratum, bootstrap

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
CLAIM_METHOD = "Holm"
_POWER = 0.8  # chance that the suggested extra images let the largest gap be claimed


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
    min_gap: float = 0.0  # a gap is claimed only when shown above this (error-rate units)

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
    gap: Gap, counts: dict[str, SplitCount], level: float, *, tests: int = 1, design: dict[str, float] | None = None,
    min_gap: float = 0.0,
) -> Resolve:
    """How many more images of one of the gap's splits would let its claim pass.

    The usual sample-size formula of a one-sided test: the claim must pass at ``(1 - level) /
    tests`` (Bonferroni, the strictest step of Holm's) with 80% power; the gap's variance is the
    sum over its splits of design effect * p(1-p)/n; one split's n grows (its error rate and
    clustering assumed unchanged) until the gap is that many standard errors above ``min_gap``. A
    split whose growth alone cannot get there gets None (always, for a gap at or below ``min_gap``).
    """
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / max(1, tests)) + NormalDist().inv_cdf(_POWER)
    lower, upper = next((lo, up) for n, lo, up in GAPS if n == gap.name)
    splits = [s for s in (upper, lower) if s != "human"]
    target = max(0.0, (gap.value or 0.0) - min_gap) ** 2 / z**2
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
    if not feasible or (gap.value or 0.0) <= min_gap:
        return Resolve(gap.name, None, None, options)
    # prefer dev, then bridge (target-side labels are the ones worth collecting), on a tie
    pref = {"dev": 0, "bridge": 1, "test": 2, "train": 3}
    best = min(feasible, key=lambda s: (feasible[s], pref[s]))
    return Resolve(gap.name, best, feasible[best], options)


def _gaps(boot: dict[str, np.ndarray], errors: dict, human: float, level: float, min_gap: float = 0.0
          ) -> dict[str, Gap]:
    gaps, p = {}, {}
    samples = {}
    for name, lower, upper in GAPS:
        missing = tuple(s for s in (lower, upper) if s != "human" and s not in boot)
        if missing:
            gaps[name] = Gap(name, None, None, None, missing)
            continue
        samples[name] = _gap_samples(boot, lower, upper, human)
        p[name] = float((1 + np.count_nonzero(samples[name] <= min_gap)) / (samples[name].size + 1))
    adjusted = holm(p)
    for name, lower, upper in GAPS:
        if name in samples:
            value = float(errors[upper] - (human if lower == "human" else errors[lower]))
            lo, hi = _interval(samples[name], level)
            claim = adjusted[name] <= 1.0 - level and value > min_gap
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
    min_gap: float = 0.0,
) -> Decomposition:
    """The error decomposition of one run, with cluster-bootstrap intervals and Holm claims.

    ``min_gap``: a gap is claimed only when the one-sided test shows it above this (error-rate
    units, 0: above zero), under the same Holm control.

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
    if not 0.0 <= float(min_gap) < 1.0:
        raise ConfigError(f"The 'min_gap' parameter of report must be in [0, 100) points. Got {100 * min_gap!r}.")
    gaps = _gaps(boot, errors, human, level, float(min_gap))
    design = _design_effect(boot, counts)
    diagnosis = diagnose(gaps)
    resolve = None
    computed = [g for g in gaps.values() if g.value is not None]
    if diagnosis == INCONCLUSIVE and computed:
        largest = max(computed, key=lambda g: (g.value, -GAP_NAMES.index(g.name)))
        resolve = resolve_estimate(largest, counts, level, tests=len(computed), design=design, min_gap=min_gap)
    counts = {s: counts[s] for s in SPLITS if s in counts}
    return Decomposition(human, counts, errors, error_ci, gaps, diagnosis, resolve, level, replicates, seed,
                         table.clusters(), table, design, float(min_gap))


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
