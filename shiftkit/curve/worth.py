"""What an arm is worth in labelled target images: the statistics of the learning curve.

* **dev errors resampled by cluster** (:func:`cluster_matrix`, :func:`resample_errors`): every
  point's dev errors summed per cluster (near copies, a parent with its synthesised children), and
  one paired resampling of the clusters for every point.
* **the worth-N estimator** (:func:`worth`): at budget k, how many labelled target images the
  baseline would need to reach an arm's dev error, read off the baseline's curve by linear
  interpolation in ``log(1 + n)``, with a percentile interval from the resamples; its claims made
  together over every (arm, budget) with Holm's step-down (:func:`worth_all`).

Budget 0 on a log axis: every position is ``log(1 + n)``, so budget 0 sits at 0 and, for the
budgets of interest (n >= 100), the axis is log n to within 1%.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError

# ---------------------------------------------------------------------------------------------
# dev errors resampled by cluster


@dataclass(frozen=True)
class ClusterMatrix:
    """Dev errors of several runs on the same dev images, summed per cluster."""

    runs: tuple[str, ...]
    sizes: np.ndarray  # (clusters,) images per cluster
    errors: np.ndarray  # (clusters, runs) wrong predictions per cluster and run

    def error_rates(self) -> np.ndarray:
        """(runs,) dev error of each run on all dev images."""
        return self.errors.sum(axis=0) / self.sizes.sum()


def cluster_matrix(dev: Mapping[str, pl.DataFrame], clusters: pl.DataFrame) -> ClusterMatrix:
    """Per-cluster error counts of each run's dev predictions (image_id, correct: a bool, or a share in
    [0, 1] for the mean of several runs).

    ``clusters`` maps image_id to cluster (the manifest's ``dup_group``); an image it lacks is its
    own cluster.

    Raises:
        DataError: when the runs were not evaluated on the same dev images, or have none.
    """
    names = tuple(dev)
    if not names:
        raise DataError("No runs to compare: the curve needs at least one run's dev predictions.")
    first = dev[names[0]]
    ids = first.select("image_id").unique().sort("image_id")
    if ids.height == 0:
        raise DataError(f"The run {names[0]!r} has no dev predictions.")
    for name in names[1:]:
        other = dev[name].select("image_id").unique().sort("image_id")
        if not other.equals(ids):
            raise DataError(
                f"The runs {names[0]!r} and {name!r} were evaluated on different dev images "
                f"({ids.height} and {other.height}); every point of a curve must use the same dev set."
            )
    groups = ids.join(clusters.select("image_id", pl.col("cluster").cast(pl.String)), on="image_id", how="left")
    groups = groups.with_columns(pl.coalesce("cluster", "image_id").alias("cluster"))
    wrong = []
    for name in names:
        w = groups.join(dev[name].select("image_id", "correct"), on="image_id", how="left")
        wrong_ = (1.0 - pl.col("correct").cast(pl.Float64)).sum().alias("wrong")
        per = w.group_by("cluster").agg(wrong_, pl.len().alias("n")).sort("cluster")
        wrong.append(per["wrong"].to_numpy().astype(np.float64))
    sizes = per["n"].to_numpy().astype(np.float64)
    return ClusterMatrix(names, sizes, np.stack(wrong, axis=1))


def resample_errors(m: ClusterMatrix, replicates: int, seed: int) -> np.ndarray:
    """(replicates, runs) dev errors over clusters drawn with replacement, the same draw for all runs."""
    rng = np.random.default_rng(seed)
    c = len(m.sizes)
    weights = rng.multinomial(c, np.full(c, 1.0 / c), size=replicates).astype(np.float64)
    return (weights @ m.errors) / (weights @ m.sizes)[:, None]


def interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of ``samples`` (infinite values allowed: they stand for 'beyond the curve')."""
    a = (1.0 - level) / 2.0
    lo = float(np.quantile(samples, a, method="inverted_cdf"))
    hi = float(np.quantile(samples, 1.0 - a, method="inverted_cdf"))
    return lo, hi


# ---------------------------------------------------------------------------------------------
# what an arm is worth in labelled target images


def position(n: float | np.ndarray) -> float | np.ndarray:
    """Where ``n`` labelled images sit on the curve's log axis: log(1 + n) (budget 0 at 0)."""
    return np.log1p(n)


# A step of the baseline's curve wider than this in log(1 + n) (a factor 4) is too coarse to read a
# figure off: a straight line across it can miss the real curve by a factor of several (measured on
# the example: 527 labelled images read across 0 -> 854, 152 with budgets 100 and 300 added).
WIDE_STEP = math.log(4.0)


def crossing(ns: np.ndarray, errors: np.ndarray, target: float, start: int = 0) -> int | None:
    """The first budget index after ``start`` where the baseline reaches ``target`` (None: never, or
    already at ``start``): the figure is read on the step that ends there."""
    if errors[start] <= target:
        return None
    return next((j for j in range(start + 1, len(ns)) if errors[j] <= target), None)


def reach(ns: np.ndarray, errors: np.ndarray, target: float, start: int = 0) -> float:
    """Labelled images the baseline needs to reach dev error ``target``, from its point ``start`` on.

    ``ns`` (ascending) and ``errors`` are the baseline's curve; between two points the error is
    linear in log(1 + n). Returns ``ns[start]`` when the baseline is already there, ``inf`` when it
    stays above ``target`` up to its largest budget.
    """
    if errors[start] <= target:
        return float(ns[start])
    x = position(np.asarray(ns, dtype=np.float64))
    for j in range(start + 1, len(ns)):
        if errors[j] <= target:
            t = (errors[j - 1] - target) / (errors[j - 1] - errors[j])
            return float(np.expm1(x[j - 1] + t * (x[j] - x[j - 1])))
    return math.inf


@dataclass(frozen=True)
class Worth:
    """At one budget: how many labelled target images the baseline needs to match an arm."""

    arm: str
    budget: str
    n: int  # labelled target images the arm trained with
    status: str  # "estimate", "more_than" (beyond the largest budget) or "not_estimable"
    images: float | None  # the point estimate (None unless status is "estimate")
    ci: tuple[float, float] | None  # percentile interval; an infinite end means "more than largest"
    gain: float  # baseline dev error minus the arm's, at this budget
    gain_ci: tuple[float, float]
    largest: int  # labelled images of the baseline's largest budget
    reason: str
    p_value: float = 1.0  # one-sided bootstrap p of "the arm gains nothing here"
    p_adjusted: float = 1.0  # Holm-adjusted over every (arm, budget) compared in one curve
    step: tuple[int, int] | None = None  # the two baseline budgets the figure is read between
    coarse: bool = False  # that step is wider than WIDE_STEP: only the step is claimed, not a figure

    def text(self) -> str:
        """The figure in words: 'about 265 [120, 510]', 'more than 854', 'not estimable'."""
        if self.status == "not_estimable":
            return "not estimable"
        if self.status == "more_than":
            return f"more than {self.largest}"
        if self.coarse and self.step is not None:
            return f"between {self.step[0]} and {self.step[1]} (a straight line between them says {self.images:.0f})"
        lo, hi = self.ci
        hi_text = f"more than {self.largest}" if math.isinf(hi) else f"{hi:.0f}"
        return f"about {self.images:.0f} [{lo:.0f}, {hi_text}]"


def gain_p_value(gains: np.ndarray) -> float:
    """One-sided bootstrap p-value of "the arm gains nothing": the share of resamples without a gain."""
    return float((1 + np.count_nonzero(gains <= 0)) / (gains.size + 1))


def worth(arm: str, budget: str, index: int, ns: np.ndarray, point: np.ndarray, boot: np.ndarray,
          level: float = 0.95, *, p_adjusted: float | None = None, tests: int = 1) -> Worth:
    """The worth of ``arm`` at the baseline's budget ``index``.

    ``point`` holds two rows, the baseline's dev errors at every budget of ``ns`` and the arm's
    (only its column ``index`` is read); ``boot`` the same two rows per replicate (replicates, 2,
    budgets), all from one paired resampling of the dev clusters. The figure is estimable only when
    the arm's gain over the baseline at this budget is claimed: its p-value (``p_adjusted`` when
    this is one of ``tests`` comparisons, see :func:`worth_all`) at most ``(1 - level) / 2``, the
    one-sided share of a ``level`` interval. Otherwise the curves cross (the arm is worse) or the
    gain may be noise, and no number is claimed.
    """
    base, own = point[0], float(point[1, index])
    gain = float(base[index] - own)
    gains = boot[:, 0, index] - boot[:, 1, index]
    gain_ci = interval(gains, level)
    largest = int(ns[-1])
    p = gain_p_value(gains)
    adjusted = p if p_adjusted is None else p_adjusted
    common = dict(arm=arm, budget=budget, n=int(ns[index]), gain=gain, gain_ci=gain_ci, largest=largest,
                  p_value=p, p_adjusted=adjusted)
    if gain <= 0 or adjusted > (1.0 - level) / 2:
        if gain < 0:
            why = "the arm is worse than the baseline here (the curves cross)"
        elif p <= (1.0 - level) / 2:
            why = (f"the arm's gain over the baseline is not clear once {tests} comparisons are made at once "
                   f"(Holm-adjusted p {adjusted:.3f})")
        else:
            why = "the arm's gain over the baseline has an interval that reaches zero (the intervals overlap)"
        return Worth(status="not_estimable", images=None, ci=None, reason=why, **common)
    images = reach(ns, base, own, index)
    samples = np.array([reach(ns, b[0], b[1, index], index) for b in boot])
    ci = interval(samples, level)
    if math.isinf(images):
        return Worth(status="more_than", images=None, ci=ci, reason="the baseline stays above the arm's error "
                     "up to its largest budget", **common)
    j = crossing(ns, base, own, index)
    step = None if j is None else (int(ns[j - 1]), int(ns[j]))
    coarse = j is not None and float(position(ns[j]) - position(ns[j - 1])) > WIDE_STEP
    reason = "read off the baseline's curve"
    if coarse:
        reason = (f"read across the baseline's step from {step[0]} to {step[1]} labelled images, too wide for a "
                  "figure: add budgets between them")
    return Worth(status="estimate", images=images, ci=ci, reason=reason, step=step, coarse=coarse, **common)


def worth_all(
    names: Sequence[str], ns: np.ndarray, baseline: tuple[np.ndarray, np.ndarray],
    arms: Mapping[str, tuple[np.ndarray, np.ndarray]], level: float = 0.95, first: int = 0,
) -> list[Worth]:
    """Every arm's worth at every budget (from index ``first`` on: earlier budgets are not compared, e.g.
    a point every arm shares), its claims made together.

    ``baseline`` and each of ``arms`` are (dev errors per budget, (replicates, budgets) resampled
    errors), all from one paired resampling. A curve compares arms x budgets at once; Holm's
    step-down over all of them keeps the chance of claiming any gain that is not there at most
    ``(1 - level) / 2``, however many budgets and arms a team adds.
    """
    from shiftkit.stats.decompose import holm

    base_point, base_boot = baseline
    p = {f"{a}@{n}": gain_p_value(base_boot[:, i] - bt[:, i])
         for a, (_, bt) in arms.items() for i, n in enumerate(names) if i >= first}
    adjusted = holm(p)
    out = []
    for a, (pt, bt) in arms.items():
        point, boot = np.stack([base_point, pt]), np.stack([base_boot, bt], axis=1)
        out += [worth(a, n, i, ns, point, boot, level, p_adjusted=adjusted[f"{a}@{n}"], tests=len(p))
                for i, n in enumerate(names) if i >= first]
    return out


def run_spread(groups: Sequence[Sequence[pl.DataFrame]]) -> tuple[float, int]:
    """(standard deviation, degrees of freedom) of one run's dev error between repeated runs of the same
    point, pooled over ``groups`` (each: the runs' dev results, columns image_id and correct); groups
    of fewer than two runs add nothing; (0, 0) when none has two. The training noise of the curve
    (the baseline's draws) and of the selection simulation (random's draws)."""
    ss, df = 0.0, 0
    for frames in groups:
        if len(frames) < 2:
            continue
        e = np.array([1.0 - float(f["correct"].cast(pl.Float64).mean()) for f in frames])
        ss, df = ss + float(((e - e.mean()) ** 2).sum()), df + len(e) - 1
    return (math.sqrt(ss / df), df) if df else (0.0, 0)
