"""Density-ratio weighting of synthesis parents: more copies of the web images that, degraded,
look like the target; fewer of those that still do not.

A recipe moves every web image the same way, but web images are not all equally far from the
target: some show the object the way the target does, others never will, whatever the blur or
the framing. The classical correction for this (covariate shift: importance weighting by the
density ratio p_target(x) / p_web(x)) estimates the ratio with a probabilistic classifier that
tells degraded web images from target images, on the same cheap features as the fit: with
P(target | x) from a logistic regression fitted on n_web web and n_target target rows,

    w(x) = P(target | x) / P(web | x) * n_web / n_target.

Weights are capped at ``clip`` times their median (so a handful of parents cannot take every
copy: the share of parents that still get copies is reported as the effective sample size)
and the copies are shared out by systematic resampling, which gives each parent the integer
nearest its expected number of copies. The fit keeps the weighting only when it lowers the
domain classifier's AUC on target images that neither the recipe nor the weights have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftkit.core.errors import ConfigError, DataError

WEIGHTING_VERSION = 1


@dataclass(frozen=True)
class Weighting:
    """A fitted density-ratio model over cheap features (standardised logistic regression)."""

    feature_size: int
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    log_prior: float  # log(n_web / n_target) of the rows it was fitted on
    clip: float

    def log_ratio(self, feats: np.ndarray) -> np.ndarray:
        """log p_target(x) / p_web(x), up to a constant, for rows of features."""
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != len(self.coef):
            raise DataError(
                f"The parent weighting expects {len(self.coef)} features per image "
                f"(thumbnail {self.feature_size}x{self.feature_size} and properties). "
                f"Got an array of shape {feats.shape} instead."
            )
        z = _standardise(feats, np.asarray(self.mean), np.asarray(self.scale))
        return z @ np.asarray(self.coef) + self.intercept + self.log_prior

    def weights(self, feats: np.ndarray) -> np.ndarray:
        """Capped density-ratio weights with mean 1 (a weight of 2: twice the average copies)."""
        return cap(self.log_ratio(feats), self.clip)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": WEIGHTING_VERSION,
            "kind": "density_ratio",
            "feature_size": self.feature_size,
            "clip": self.clip,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "log_prior": self.log_prior,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "weighting") -> Weighting:
        """Rebuild a saved weighting.

        Raises:
            ConfigError: when a field is missing or the vectors disagree in length.
        """
        keys = ("feature_size", "clip", "mean", "scale", "coef", "intercept", "log_prior")
        if not isinstance(data, dict) or any(k not in data for k in keys):
            raise ConfigError(
                f"The {source} must be a mapping with {', '.join(keys)}. Got {str(data)[:80]!r} instead."
            )
        try:
            w = cls(
                feature_size=int(data["feature_size"]), mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]), coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]), log_prior=float(data["log_prior"]), clip=float(data["clip"]),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The {source} holds a value that is not a number: {exc}.") from exc
        if not len(w.mean) == len(w.scale) == len(w.coef) or w.clip < 1:
            raise ConfigError(
                f"The {source} must have mean, scale and coef of one length and clip >= 1. "
                f"Got lengths {len(w.mean)}, {len(w.scale)}, {len(w.coef)} and clip {w.clip} instead."
            )
        return w


# standardised features are clipped to +-Z_CLIP: a pixel that is nearly always dark in the fitted
# sample would otherwise give a parent where it is bright a weight of e^hundreds
Z_CLIP = 5.0


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip((x - mean) / scale, -Z_CLIP, Z_CLIP)


def cap(log_w: np.ndarray, clip: float) -> np.ndarray:
    """Weights from log-weights, capped at ``clip`` x their median, rescaled to mean 1."""
    log_w = np.asarray(log_w, dtype=np.float64)
    if log_w.size == 0:
        return log_w
    log_w = np.minimum(log_w, np.median(log_w) + math.log(clip))
    w = np.exp(log_w - log_w.max())  # no overflow; the scale cancels below
    return w / w.mean()


# inverse regularisation strengths tried by cross-validation: weak ones when the sets differ,
# strong ones (nearly even weights) when they do not
C_GRID = (1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0)


def fit_weighting(web_feats: np.ndarray, target_feats: np.ndarray, *, feature_size: int, clip: float,
                  seed: int = 0) -> Weighting:
    """Fit the density-ratio model: degraded web rows (class 0) against target rows (class 1).

    The regularisation is chosen by 3-fold cross-validated log-loss, so that two samples of one
    distribution get nearly even weights instead of weights that fit their noise.

    Raises:
        DataError: when either set has fewer than 2 rows.
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    if len(web_feats) < 2 or len(target_feats) < 2:
        raise DataError(
            f"Weighting parents needs at least 2 web and 2 target images. "
            f"Got {len(web_feats)} web and {len(target_feats)} target images instead."
        )
    x = np.vstack([web_feats, target_feats]).astype(np.float64)
    y = np.r_[np.zeros(len(web_feats)), np.ones(len(target_feats))]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature carries no information (StandardScaler's rule)
    z = _standardise(x, mean, scale)
    folds = min(3, len(web_feats), len(target_feats))
    if folds >= 2:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        clf = LogisticRegressionCV(Cs=list(C_GRID), cv=cv, scoring="neg_log_loss", max_iter=1000,
                                   l1_ratios=(0.0,), use_legacy_attributes=False).fit(z, y)
    else:
        clf = LogisticRegression(C=0.1, max_iter=1000).fit(z, y)
    return Weighting(
        feature_size=feature_size, mean=tuple(mean.tolist()), scale=tuple(scale.tolist()),
        coef=tuple(clf.coef_[0].tolist()), intercept=float(clf.intercept_[0]),
        log_prior=math.log(len(web_feats) / len(target_feats)), clip=float(clip),
    )


def allocate(weights: np.ndarray, total: int, seed: int) -> np.ndarray:
    """Copies per parent, summing to ``total``, by systematic resampling of ``weights``.

    Each parent gets the floor or the ceiling of ``total * w_i / sum(w)`` copies; one uniform
    offset drawn from ``seed`` decides which. The same weights and seed give the same copies.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.size == 0:
        return np.zeros(w.size, dtype=np.int64)
    edges = np.cumsum(w) / w.sum() * total
    edges[-1] = total  # rounding must not drop the last position
    u = float(np.random.default_rng([seed, 0x5EED]).random())
    positions = u + np.arange(total)
    ends = np.searchsorted(positions, edges, side="left")
    return np.diff(np.r_[0, ends]).astype(np.int64)


def effective_share(weights: np.ndarray) -> float:
    """Kish's effective sample size of the weights as a share of their number (1: uniform)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.any(w > 0):
        return 0.0
    return float(w.sum() ** 2 / (w**2).sum() / w.size)


def expand(counts: np.ndarray) -> np.ndarray:
    """Row indices repeated by their counts (the resampled set)."""
    return np.repeat(np.arange(len(counts)), counts)
