"""The fit's domain classifier, without scikit-learn's per-call overhead.

The recipe fit scores hundreds of candidate recipes, each with a cross-validated logistic regression
on a few hundred rows (``shiftkit.stats.twosample.domain_scores``). At that size scikit-learn's
parameter validation, pipeline and ``cross_val_predict`` machinery cost several times the
arithmetic (about 0.1 s a call measured on 2 busy cores, against ~0.01 s here). This module solves
the SAME problem, so its answers agree with ``domain_scores`` to the solver's tolerance: the same
stratified shuffled folds (scikit-learn's ``StratifiedKFold``), standardisation on each training
fold (a constant column scaled by 1, as ``StandardScaler`` does), L2-penalised logistic
regression with an unpenalised intercept (``C`` x summed log-loss + |w|^2 / 2, scikit-learn's
objective) minimised by L-BFGS with its gradient, then the AUC and the separability
(1 - log-loss / ln 2) of the out-of-fold probabilities.
"""

from __future__ import annotations

import math

import numpy as np


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Weights and intercept (last) of the L2-penalised logistic regression of ``y`` (0/1) on ``x``."""
    from scipy.optimize import minimize
    from scipy.special import expit

    s = 2.0 * y - 1.0

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        m = -s * (x @ w + b)
        g = -s * expit(m) * c
        value = c * float(np.logaddexp(0.0, m).sum()) + 0.5 * float(w @ w)
        return value, np.r_[x.T @ g + w, g.sum()]

    res = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": 1e-4})
    return res.x


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from scipy.stats import rankdata

    pos = labels == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def domain_scores(x: np.ndarray, y: np.ndarray, *, folds: int = 3, seed: int = 0, c: float = 0.1) -> dict[str, float]:
    """``auc`` and ``separability`` of a cross-validated logistic regression telling ``x`` rows from
    ``y`` rows (the same as ``shiftkit.stats.twosample.domain_scores``; callers check the sizes)."""
    from scipy.special import expit
    from sklearn.model_selection import StratifiedKFold

    feats = np.vstack([x, y]).astype(np.float64)
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    proba = np.empty(len(labels))
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(feats, labels):
        xt = feats[train]
        mean = xt.mean(axis=0)
        std = xt.std(axis=0)
        std[std < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        wb = _fit_logistic((xt - mean) / std, labels[train], c)
        proba[test] = expit(((feats[test] - mean) / std) @ wb[:-1] + wb[-1])
    p = np.clip(proba, np.finfo(np.float64).eps, 1 - np.finfo(np.float64).eps)
    ll = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return {"auc": _auc(labels, proba), "separability": 1.0 - ll / math.log(2.0)}
