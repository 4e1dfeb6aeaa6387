"""Which unlabelled images to label next: the selection strategies, one registered function each.

A strategy sees the pool through a :class:`PoolView` (the model's class probabilities and pooled
backbone features of every pool image, the features of the images already labelled, the class
names and a seed) and returns a :class:`Picked`: the chosen rows in the order chosen, a score each
and one line saying why. It never sees a pool image's label.

Adding a strategy is one decorated function below::

    @strategy("least_confident")
    def least_confident(view: PoolView, budget: int) -> Picked:
        ...

``shiftkit select --strategy`` and ``curve.selection`` accept the names registered here. This module
imports numpy only (scikit-learn's KMeans inside :func:`clue`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shiftkit.core.errors import RegistryError


@dataclass(frozen=True)
class PoolView:
    """What a strategy may read: nothing of the pool's labels."""

    probs: np.ndarray  # (N, classes) softmax of the current model
    feats: np.ndarray  # (N, D) pooled backbone features of the same forward pass
    labels: Sequence[str]  # class names, in the order of ``probs``' columns
    seed: int = 0
    labelled: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (M, D) features already labelled


@dataclass(frozen=True)
class Picked:
    """Chosen pool rows, in the order chosen, with a score and a reason each."""

    index: np.ndarray  # (budget,) int64 rows of the pool
    score: np.ndarray  # (budget,) float64; higher = wanted more (for random: the draw's rank)
    why: list[str]


Strategy = Callable[[PoolView, int], Picked]
STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Register the decorated function as the selection strategy ``name``.

    Raises:
        RegistryError: when a strategy of that name is registered already.
    """

    def register(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise RegistryError(
                f"The selection strategy {name!r} is registered twice; strategies: {', '.join(STRATEGIES)}."
            )
        STRATEGIES[name] = fn
        return fn

    return register


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``.

    Raises:
        RegistryError: on an unknown name, listing the registered ones.
    """
    if name not in STRATEGIES:
        raise RegistryError(f"Unknown selection strategy {name!r}; strategies: {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]


def strategy_names() -> tuple[str, ...]:
    """The registered strategies' names (the vocabulary of ``--strategy`` and ``curve.selection``)."""
    return tuple(STRATEGIES)


def choose(name: str, view: PoolView, budget: int) -> Picked:
    """Run strategy ``name`` for ``budget`` images (all of the pool when it is smaller)."""
    budget = min(int(budget), view.probs.shape[0])
    if budget <= 0:
        return Picked(np.empty(0, dtype=np.int64), np.empty(0), [])
    picked = get_strategy(name)(view, budget)
    if len(set(picked.index.tolist())) != budget:
        raise RegistryError(
            f"The selection strategy {name!r} returned {len(picked.index)} rows, not {budget} distinct ones."
        )
    return picked


# ---------------------------------------------------------------------------------------------
# scores


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (small: the model hesitates between two classes)."""
    if probs.shape[1] < 2:
        return np.ones(probs.shape[0])
    top = np.partition(probs, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def entropies(probs: np.ndarray) -> np.ndarray:
    """Entropy of each row, divided by log(classes): 0 (sure) to 1 (uniform)."""
    p = np.clip(probs, 1e-12, 1.0)
    h = -(p * np.log(p)).sum(axis=1)
    return h / np.log(max(probs.shape[1], 2))


def _top(score: np.ndarray, budget: int) -> np.ndarray:
    # highest first; ties broken by row (stable), so the choice is deterministic
    return np.argsort(-score, kind="stable")[:budget].astype(np.int64)


def _pair(view: PoolView, i: int) -> str:
    a, b = np.argsort(-view.probs[i])[:2]
    return f"{view.labels[a]} {view.probs[i, a]:.2f} vs {view.labels[b]} {view.probs[i, b]:.2f}"


# ---------------------------------------------------------------------------------------------
# the strategies


@strategy("random")
def random(view: PoolView, budget: int) -> Picked:
    """Uniformly at random (seeded): the reference every other strategy must beat."""
    rng = np.random.default_rng(view.seed)
    index = rng.permutation(view.probs.shape[0])[:budget].astype(np.int64)
    score = np.arange(budget, 0, -1, dtype=np.float64) / budget
    return Picked(index, score, [f"drawn at random (seed {view.seed})"] * budget)


@strategy("margin")
def margin(view: PoolView, budget: int) -> Picked:
    """Smallest top-2 margin first (the model hesitates most between two classes)."""
    m = margins(view.probs)
    index = _top(-m, budget)
    return Picked(index, 1.0 - m[index], [f"margin {m[i]:.3f}: {_pair(view, i)}" for i in index])


@strategy("entropy")
def entropy(view: PoolView, budget: int) -> Picked:
    """Highest predictive entropy first."""
    h = entropies(view.probs)
    index = _top(h, budget)
    return Picked(index, h[index], [f"entropy {h[i]:.3f} of 1: {_pair(view, i)}" for i in index])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@strategy("coreset")
def coreset(view: PoolView, budget: int) -> Picked:
    """k-center greedy (Sener and Savarese, ICLR 2018) on unit-length pooled features: each pick is
    the pool image farthest from every image chosen or labelled so far."""
    f = _unit(view.feats)
    sq = (f * f).sum(axis=1)
    if view.labelled.size:
        lab = _unit(view.labelled)
        nearest = np.full(f.shape[0], np.inf, dtype=np.float32)
        for s in range(0, lab.shape[0], 1024):  # (N, 1024) blocks keep memory flat
            c = lab[s:s + 1024]
            d = sq[:, None] - 2.0 * f @ c.T + (c * c).sum(axis=1)[None, :]
            nearest = np.minimum(nearest, d.min(axis=1))
        first = None
    else:
        # no labelled image yet: start at a seeded random image, as the greedy method does
        first = int(np.random.default_rng(view.seed).integers(f.shape[0]))
        nearest = np.full(f.shape[0], np.inf, dtype=np.float32)
    index, score = [], []
    for _ in range(budget):
        i = first if first is not None and not index else int(np.argmax(nearest))
        index.append(i)
        score.append(float(np.sqrt(max(nearest[i], 0.0))) if np.isfinite(nearest[i]) else 0.0)
        d = sq - 2.0 * f @ f[i] + sq[i]
        nearest = np.minimum(nearest, d)
        nearest[i] = -1.0  # never again
    why = ["seeded first centre (nothing labelled yet)" if first is not None and k == 0
           else f"distance {s:.3f} to the nearest chosen or labelled image" for k, s in enumerate(score)]
    return Picked(np.array(index, dtype=np.int64), np.array(score), why)


CLUE_DIMS = 64  # clue clusters the pooled features' leading principal components


@strategy("clue")
def clue(view: PoolView, budget: int) -> Picked:
    """CLUE (Prabhu et al., ICCV 2021): k-means with k = budget on unit-length pooled features (their
    first ``CLUE_DIMS`` principal components), each image weighted by its predictive entropy; the pool
    image nearest each centre is chosen."""
    from sklearn.cluster import KMeans

    f = _unit(view.feats)
    if f.shape[1] > CLUE_DIMS and f.shape[0] > CLUE_DIMS:
        # k-means costs pool x budget x dims per iteration: on the leading principal components it
        # costs a fraction (512 -> 64 dims for a resnet10t) and the cluster structure is kept
        from sklearn.decomposition import PCA

        f = PCA(CLUE_DIMS, svd_solver="randomized", random_state=view.seed).fit_transform(f).astype(np.float32)
    h = entropies(view.probs)
    w = np.maximum(h, 1e-6)  # a sure image still counts a little (and KMeans needs a positive total)
    km = KMeans(n_clusters=budget, n_init=1, max_iter=50, random_state=view.seed).fit(f, sample_weight=w)
    d = km.transform(f)  # (N, budget) distance to every centre
    taken = np.zeros(f.shape[0], dtype=bool)
    index, why = [], []
    # the heaviest clusters first, so the order says what matters most
    mass = np.bincount(km.labels_, weights=w, minlength=budget)
    for c in np.argsort(-mass, kind="stable"):
        order = np.argsort(d[:, c], kind="stable")
        i = int(next(j for j in order if not taken[j]))
        taken[i] = True
        index.append(i)
        why.append(f"nearest cluster {len(index)} of {budget} (uncertainty-weighted k-means; "
                   f"cluster weight {mass[c]:.2f}, entropy {h[i]:.3f})")
    index = np.array(index, dtype=np.int64)
    return Picked(index, h[index], why)
