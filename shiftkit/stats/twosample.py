"""Two-sample statistics of feature rows: are two image sets told apart, and by how much?

Shared by ``shift`` (the report of two sets), ``synth`` (the recipe fit and the weighting's
held-out check) and any stage that compares sets: a cross-validated domain classifier
(``domain_scores``), the maximum mean discrepancy with a permutation p-value (``mmd_test``), and
per-property Kolmogorov-Smirnov / Wasserstein tests (``property_tests``, ``property_distance``).
scipy and scikit-learn are imported inside the functions (the command line starts fast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shiftkit.core.errors import DataError


def property_distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
    """Sum over properties of the 1-D Wasserstein distance between standardised samples."""
    from scipy.stats import wasserstein_distance

    return float(sum(wasserstein_distance(a[:, j] / scale[j], b[:, j] / scale[j]) for j in range(a.shape[1])))


def domain_scores(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0, c: float = 0.1) -> dict[str, float]:
    """How well a cross-validated logistic regression tells rows of ``x`` from rows of ``y``.

    ``auc``: ROC AUC of the out-of-fold probabilities (0.5: the sets cannot be told apart, 1.0:
    they always can). ``separability``: 1 - log-loss / ln 2 of the same probabilities, which keeps
    falling as two separable sets come closer, where the AUC sits at 1.

    Raises:
        DataError: when a set has fewer rows than ``folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if min(len(x), len(y)) < folds:
        raise DataError(
            f"A cross-validated domain classifier needs at least {folds} images per set. "
            f"Got {len(x)} and {len(y)} instead."
        )
    feats = np.vstack([x, y])
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, feats, labels, cv=cv, method="predict_proba")[:, 1]
    return {
        "auc": float(roc_auc_score(labels, proba)),
        "separability": float(1.0 - log_loss(labels, proba) / math.log(2.0)),
    }


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 500, seed: int = 0) -> dict[str, float]:
    """Squared MMD (biased estimate) with an RBF kernel and its permutation p-value.

    Features are standardised on the pooled sample; the bandwidth is the median pairwise
    distance (median heuristic). The p-value is (k + 1) / (n + 1), where k of n permutations of
    the set labels gave an MMD at least as large as the observed one.

    Raises:
        DataError: when a set is empty.
    """
    if len(x) == 0 or len(y) == 0:
        raise DataError(f"MMD needs two non-empty sets. Got {len(x)} and {len(y)} images instead.")
    z = np.vstack([x, y]).astype(np.float64)
    z = (z - z.mean(axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    iu = np.triu_indices(len(z), k=1)
    med = float(np.median(d2[iu])) if iu[0].size else 1.0
    gamma = 1.0 / max(med, 1e-12)
    k = np.exp(-gamma * d2)
    n, m = len(x), len(y)

    def stat(w: np.ndarray) -> np.ndarray:  # w: (r, n + m) signed weights +1/n, -1/m
        return np.einsum("ri,ij,rj->r", w, k, w)

    base = np.r_[np.full(n, 1.0 / n), np.full(m, -1.0 / m)]
    observed = float(stat(base[None, :])[0])
    rng = np.random.default_rng(seed)
    perms = (
        np.stack([base[rng.permutation(n + m)] for _ in range(permutations)]) if permutations else np.zeros((0, n + m))
    )
    null = stat(perms) if permutations else np.zeros(0)
    exceed = int(np.sum(null >= observed - 1e-12))
    return {
        "mmd2": observed,
        "p_value": (exceed + 1) / (permutations + 1),
        "permutations": permutations,
        "bandwidth": math.sqrt(med),
    }


def property_tests(
    a: np.ndarray, b: np.ndarray, scale: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per property (column ``j`` of ``a`` and ``b`` is ``names[j]``): KS statistic and p-value,
    Wasserstein distance raw and standardised, means."""
    from scipy.stats import ks_2samp, wasserstein_distance

    out = {}
    for j, name in enumerate(names):
        ks = ks_2samp(a[:, j], b[:, j])
        w = float(wasserstein_distance(a[:, j], b[:, j]))
        out[name] = {
            "ks": float(ks.statistic),
            "ks_p": float(ks.pvalue),
            "wasserstein": w,
            "wasserstein_std": w / float(scale[j]),
            "mean_a": float(a[:, j].mean()),
            "mean_b": float(b[:, j].mean()),
        }
    return out
