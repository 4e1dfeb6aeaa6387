"""The recipe fit: choose degradation steps and values that make web images look like the target.

``fit_recipe`` chooses steps and values so that degraded web images become hard to tell from
target images (a cross-validated domain classifier on cheap features, plus the distance between
property distributions): a beam search over the grid of single steps that every degradation
declares (``shiftkit/synth/degradations.py``; some moves are pairs that only pay together:
binarise, then reduce) with successive halving, a coordinate search that nudges the chosen
values, then pruning of steps that do not pay. Its settings travel as one :class:`FitSettings`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftkit.synth.degradations import _grey
from shiftkit.synth.recipe import Recipe, describe, make_step, recipe_file_dict
from shiftkit.synth.registry import ColourStats, GridContext, Move, Step, canonical_order, declared, get, warm

if TYPE_CHECKING:
    from shiftkit.synth.params import SynthParams
    from shiftkit.synth.weighting import Weighting

Measures = dict[str, float]  # auc, separability, property_distance, score
Scored = tuple[Recipe, Measures]
Say = Callable[[str], None]
# the one move that is not a registered degradation: Real-ESRGAN's two-pass chain (high_order_recipe)
HIGH_ORDER = Step("high_order", 1.0, {})


@dataclass(frozen=True)
class FitSettings:
    """Every setting of the fit (the synth section of params.yaml maps onto it: ``from_params``)."""

    seed: int = 0  # sample seeds of the degraded copies and the classifier's folds
    max_steps: int = 6  # beam-search rounds (each may add or replace one step)
    min_gain: float = 0.03  # smallest score drop that justifies a step
    feature_size: int = 8  # side of the grey thumbnail in the classifier's features
    dist_weight: float = 1.0  # weight of the property distance in the score
    folds: int = 3  # cross-validation folds of the domain classifier
    keep: float = 0.25  # share of a round's trials scored again on the whole sample
    widen: float = 0.15  # chosen values widen to +-this (relative) when that costs little
    high_order: bool = False  # also try Real-ESRGAN's randomised two-pass chain
    workers: int = 1  # processes scoring trials; 0 = all cores
    beam: int = 3  # recipes kept between rounds
    patience: int = 1  # rounds without gain tolerated before the search stops
    refine: int = 6  # coordinate-search moves after the search
    fit_side: int = 64  # larger images are fitted reduced to this short side (working.py); 0: full size
    model: str = ""  # a timm model name: its pooled features join the classifier's (slow: every trial)
    model_size: int = 64  # the model's input side

    @classmethod
    def from_params(cls, params: SynthParams, workers: int) -> FitSettings:
        """The fit settings of a synth params section (``workers`` given apart: a runtime choice)."""
        return cls(seed=params.seed, max_steps=params.max_rounds, min_gain=params.min_gain,
                   feature_size=params.feature_size, widen=params.widen, high_order=params.high_order,
                   workers=workers, beam=params.beam, patience=params.patience, refine=params.refine,
                   fit_side=params.fit_side, model=params.fit_model, model_size=params.fit_model_size)


@dataclass
class FitResult:
    """The fitted recipe and the search log (before/after measures, candidates tried)."""

    recipe: Recipe
    before: Measures
    after: Measures
    log: list[dict[str, Any]]
    sizes: dict[str, int]
    seconds: float
    weighting: Weighting | None = None  # set when the fit keeps parent weighting
    weighting_check: dict[str, Any] | None = None  # its held-out check (also when not kept)
    unlabelled_ids: tuple[str, ...] = ()  # the fit's target sample drawn from the unlabelled pool
    factor: float = 1.0  # the working size's reduction (working.py); measures are taken at it

    def to_dict(self) -> dict[str, Any]:
        out = {
            "recipe": recipe_file_dict(self.recipe, self.weighting),
            "before": self.before,
            "after": self.after,
            "rounds": self.log,
            "sample_sizes": self.sizes,
            "seconds": round(self.seconds, 2),
        }
        if self.weighting_check is not None:
            out["weighting"] = self.weighting_check
        if self.unlabelled_ids:
            out["unlabelled_target_ids"] = list(self.unlabelled_ids)
        if self.factor < 1.0:
            out["working_factor"] = round(self.factor, 4)
        return out


# --- the grid --------------------------------------------------------------------------------


def grid_context(web: Sequence[np.ndarray], target: Sequence[np.ndarray],
                 target_jpeg: Sequence[float | None]) -> GridContext:
    """What the degradations' grids may depend on, measured on the fit's samples."""
    return GridContext(
        web_side=float(np.median([min(p.shape[:2]) for p in web])),
        target_side=float(np.median([min(p.shape[:2]) for p in target])),
        target_levels=len(np.unique(np.concatenate([_grey(p).ravel() for p in target]))),
        target_jpeg=tuple(float(q) for q in target_jpeg if q is not None),
        colour=colour_stats(web, target),
    )


def _image_colour(p: np.ndarray) -> tuple[float, float, float, float, float]:
    """(R, G, B means, HSV saturation, grey mean) of one RGB image, in [0, 1], on a 32-pixel reduction."""
    import cv2

    small = cv2.resize(np.ascontiguousarray(p[..., :3]), (32, 32), interpolation=cv2.INTER_AREA)
    f = small.astype(np.float32) / 255.0
    r, g, b = (float(v) for v in f.reshape(-1, 3).mean(axis=0))
    sat = float(cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 1].mean())
    return r, g, b, sat, 0.299 * r + 0.587 * g + 0.114 * b


def colour_stats(web: Sequence[np.ndarray], target: Sequence[np.ndarray]) -> ColourStats | None:
    """Median colour statistics of both samples, or None when either holds only grey images."""
    from shiftkit.images.features import is_grey

    sets = []
    for images in (web, target):
        rows = [_image_colour(p) for p in images if not is_grey(p)]
        if not rows:
            return None
        sets.append(np.median(np.array(rows), axis=0))
    w, t = sets
    return ColourStats(tuple(w[:3]), tuple(t[:3]), float(w[3]), float(t[3]), float(w[4]), float(t[4]))


def candidates(ctx: GridContext, high_order: bool = False) -> list[Step | tuple[Step, ...]]:
    """The moves the search tries: every registered degradation's grid, in declaration order."""
    cands: list[Step | tuple[Step, ...]] = []
    for deg in declared():
        cands.extend(_as_move(deg.name, m) for m in deg.moves(ctx))
    if high_order:
        cands.append(HIGH_ORDER)
    return cands


def _as_move(name: str, move: Move) -> Step | tuple[Step, ...]:
    if isinstance(move, Mapping):
        return make_step(name, **move)
    return move


def _is_high_order(move: Step | tuple[Step, ...]) -> bool:
    return isinstance(move, Step) and move.name == HIGH_ORDER.name


def _with_step(recipe: Recipe, step: Step | tuple[Step, ...]) -> Recipe:
    """``recipe`` with ``step`` in its kind's slot (one step per kind), in canonical order.

    A tuple of steps is one move: each goes into its own slot.
    """
    if isinstance(step, tuple):
        for s in step:
            recipe = _with_step(recipe, s)
        return recipe
    if _is_high_order(step):
        from shiftkit.synth.recipe import high_order_recipe

        return Recipe(recipe.steps + high_order_recipe().steps)
    kind = get(step.name).kind
    steps = [s for s in recipe.steps if get(s.name).kind != kind] + [step]
    order = {n: i for i, n in enumerate(canonical_order())}
    steps.sort(key=lambda s: order.get(s.name, len(order)))
    return Recipe(tuple(steps))


# --- the score -------------------------------------------------------------------------------


class _Objective:
    """Scores a recipe on fixed samples: lower is closer to the target."""

    def __init__(self, web: Sequence[np.ndarray], target: Sequence[np.ndarray], *, feature_size: int, seed: int,
                 dist_weight: float, folds: int, model: str = "", model_size: int = 64) -> None:
        from shiftkit.images import features
        from shiftkit.synth.working import PrefixCache

        self.web = list(web)
        self.cache = PrefixCache(self.web, seed)  # primed by the search before each batch of trials
        self.seed = seed
        self.folds = folds
        self.feature_size = feature_size
        self.dist_weight = dist_weight
        self.target_pix, self.target_props = features.cheap_features(target, feature_size)
        self.target_colour = features.colour_matrix(target)  # zero on grey images: no effect there
        self.model, self.model_size = model, model_size
        if model:  # a backbone's pooled features, as ``shift --model``: what the cheap features may miss
            self.target_colour = np.hstack([self.target_colour, self._backbone(target)])
        self.scale = features.property_scale(self.target_props)

    def _backbone(self, images: Sequence[np.ndarray]) -> np.ndarray:
        from shiftkit.images.features import backbone_matrix

        return backbone_matrix(images, self.model, size=self.model_size, seed=self.seed)

    def measure(self, recipe: Recipe, n: int | None = None) -> Measures:
        from shiftkit.images import features
        from shiftkit.stats import twosample
        from shiftkit.synth import classifier

        moved = self.cache.moved(recipe, n)
        pix, props = features.cheap_features(moved, self.feature_size)
        nt = len(self.target_pix) if n is None else min(len(self.target_pix), max(n, 2 * self.folds))
        col = features.colour_matrix(moved)
        x = np.hstack([pix, props, np.hstack([col, self._backbone(moved)]) if self.model else col])
        y = np.hstack([self.target_pix[:nt], self.target_props[:nt], self.target_colour[:nt]])
        dom = classifier.domain_scores(x, y, folds=self.folds, seed=self.seed)  # twosample's, faster
        dist = twosample.property_distance(props, self.target_props[:nt], self.scale)
        score = max(dom["separability"], 0.0) + self.dist_weight * dist / props.shape[1]
        return {
            "auc": round(dom["auc"], 4),
            "separability": round(dom["separability"], 4),
            "property_distance": round(dist, 4),
            "score": round(score, 4),
        }


# --- the search ------------------------------------------------------------------------------


def fit_recipe(
    web: Sequence[np.ndarray],
    target: Sequence[np.ndarray],
    settings: FitSettings | None = None,
    *,
    target_jpeg: Sequence[float | None] | None = None,
    on_round: Say | None = None,
    **changes: Any,
) -> FitResult:
    """Choose a recipe that makes ``web`` images hard to tell from ``target`` images.

    ``settings`` (default ``FitSettings()``) with ``changes`` (its field names, e.g. ``seed=1``)
    applied. Beam search over recipes: each round extends each of the ``beam`` best recipes so
    far with every candidate step (added, or replacing the step of the same kind), scores the
    extensions on a quarter of the web sample, the best ``keep`` share again on the whole sample
    (successive halving), and goes on while the best score drops by at least ``min_gain``.
    A coordinate search then nudges the chosen values (up to ``refine`` moves); up to twice, one
    more round extends the refined recipe and is refined in turn when it gains ``min_gain``
    (a step can pay only once the others' values are right); steps whose removal costs less
    than ``min_gain`` are pruned. The score is the separability (1 - log-loss / ln 2) of a
    cross-validated domain classifier, which keeps falling where its AUC sits at 1, plus
    ``dist_weight`` x the mean 1-D Wasserstein distance of standardised properties. Finally each
    chosen value is widened to a range of +-``widen`` (relative) when that costs less than half
    of ``min_gain``, so that copies vary.

    Raises:
        DataError: when either sample is empty or too small to cross-validate.
    """
    from threadpoolctl import threadpool_limits

    settings = dataclasses.replace(settings or FitSettings(), **changes)
    t0 = time.perf_counter()
    warm()
    # BLAS threads inside many tiny logistic regressions cost more than they give, and would
    # fight the worker processes for the cores
    with threadpool_limits(1):
        result = _fit(web, target, target_jpeg or [], settings, on_round or (lambda _m: None))
    result.seconds = time.perf_counter() - t0
    return result


def _fit(web: Sequence[np.ndarray], target: Sequence[np.ndarray], target_jpeg: Sequence[float | None],
         settings: FitSettings, say: Say) -> FitResult:
    from shiftkit.core.errors import DataError

    folds = settings.folds
    if len(web) < 2 * folds or len(target) < 2 * folds:
        raise DataError(
            f"Fitting a recipe needs at least {2 * folds} web and {2 * folds} target images. "
            f"Got {len(web)} web and {len(target)} target images instead."
        )
    from shiftkit.synth import working

    factor = working.working_factor(web, target, settings.fit_side)
    if factor < 1.0:
        web, target = working.reduce(web, factor), working.reduce(target, factor)
        say(f"fitting on images reduced by {factor:.3f} (short side {settings.fit_side} px; pixel-unit values "
            "scaled back to full size)")
    obj = _Objective(web, target, feature_size=settings.feature_size, seed=settings.seed,
                     dist_weight=settings.dist_weight, folds=folds, model=settings.model,
                     model_size=settings.model_size)
    before = obj.measure(Recipe())
    say(f"before: AUC {before['auc']:.3f}, property distance {before['property_distance']:.3f}")
    search = _Search(obj, candidates(grid_context(web, target, target_jpeg), settings.high_order), settings,
                     small=max(4 * folds, len(web) // 4), say=say)
    best_recipe, best = search.beam(before)
    best_recipe, best = search.refine(best_recipe, best)
    best_recipe, best = search.extend(best_recipe, best)
    best_recipe, best = search.prune(best_recipe, best)
    best_recipe, best = _widen(obj, best_recipe, best, settings.widen, settings.min_gain / 2.0)
    say(f"after: AUC {best['auc']:.3f}, property distance {best['property_distance']:.3f}")
    sizes = {"web": len(web), "target": len(target), "rung1": search.small}
    return FitResult(working.to_full_size(best_recipe, factor), before, best, search.log, sizes, 0.0, factor=factor)


@dataclass
class _Search:
    """One fit's search: the objective, the moves, the settings and the log the steps append to."""

    obj: _Objective
    cands: list[Step | tuple[Step, ...]]
    settings: FitSettings
    small: int  # web images of the first halving rung
    say: Say
    log: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def beam(self, before: Measures) -> Scored:
        """Rounds of the beam search from the identity recipe; the best recipe that gained."""
        s = self.settings
        identity = Recipe()
        frontier: list[Scored] = [(identity, before)]  # the best few recipes so far, full-sample measures
        best_recipe, best = identity, before
        seen = {identity.to_json()}
        stale = 0
        for rnd in range(s.max_steps):
            tr = time.perf_counter()
            self.obj.cache.prime([r for r, _m in frontier])
            trials = self._new_trials(frontier, seen)
            if not trials:
                break
            scored = _halving(self.obj, trials, self.small, s.keep, s.workers)
            pool = sorted(frontier + scored, key=lambda rm: rm[1]["score"])
            frontier = _distinct_best(pool, s.beam)
            round_best, round_m = pool[0]
            gain = best["score"] - round_m["score"]
            seconds = time.perf_counter() - tr
            self.log.append(_round_entry(rnd + 1, len(trials), pool, gain, gain >= s.min_gain, seconds))
            if gain < s.min_gain:
                stale += 1
                self.say(f"round {rnd + 1}: best {round_best.names} score {round_m['score']:.3f} vs "
                         f"{best['score']:.3f}: not enough gain ({stale}/{s.patience + 1})")
                if stale > s.patience:
                    break
                continue
            stale = 0
            best_recipe, best = round_best, round_m
            self.say(f"round {rnd + 1}: {best_recipe.names} AUC {best['auc']:.3f}, "
                     f"distance {best['property_distance']:.3f}")
        return best_recipe, best

    def _new_trials(self, frontier: list[Scored], seen: set[str]) -> list[Recipe]:
        trials: list[Recipe] = []
        for base, _m in frontier:
            for c in self.cands:
                if _is_high_order(c) and "jpeg" in base.names:
                    continue
                t = _with_step(base, c)
                if t.to_json() not in seen:
                    seen.add(t.to_json())
                    trials.append(t)
        return trials

    def refine(self, recipe: Recipe, current: Measures) -> Scored:
        """Coordinate search: nudge one value at a time while the score keeps dropping."""
        for r in range(self.settings.refine):
            self.obj.cache.prime([recipe])
            trials = _neighbours(recipe)
            if not trials:
                break
            cand, m = min(_score_all(self.obj, trials, self.settings.workers), key=lambda rm: rm[1]["score"])
            if m["score"] >= current["score"] - 0.005:
                break
            recipe, current = cand, m
            self.log.append({"refine": r + 1, "recipe": recipe.to_dict(), "measures": m})
            self.say(f"refine {r + 1}: {describe(recipe)}: score {m['score']:.3f}")
        return recipe, current

    def extend(self, best_recipe: Recipe, best: Measures) -> Scored:
        """Refined values can make a step pay that did not at the grid's values (grey levels once
        the binarising level is right): up to twice, one more round from the refined recipe,
        refined again when it gains."""
        s = self.settings
        for _ in range(2 if s.max_steps else 0):
            self.obj.cache.prime([best_recipe])
            trials = [_with_step(best_recipe, c) for c in self.cands
                      if not (_is_high_order(c) and "jpeg" in best_recipe.names)]
            trials = [t for t in trials if t != best_recipe]
            trials = list({t.to_json(): t for t in trials}.values())
            if not trials:
                break
            cand, m = min(_halving(self.obj, trials, self.small, s.keep, s.workers), key=lambda rm: rm[1]["score"])
            if best["score"] - m["score"] < s.min_gain:
                break
            self.log.append({"extend": cand.to_dict(), "measures": m})
            self.say(f"extend: {cand.names} AUC {m['auc']:.3f}, distance {m['property_distance']:.3f}")
            best_recipe, best = self.refine(cand, m)
        return best_recipe, best

    def prune(self, recipe: Recipe, current: Measures) -> Scored:
        """Drop steps whose removal costs less than ``min_gain``: the simplest recipe that fits."""
        min_gain = self.settings.min_gain
        changed = True
        while changed and recipe.steps:
            changed = False
            for s in recipe.steps:
                smaller = Recipe(tuple(x for x in recipe.steps if x is not s))
                m = self.obj.measure(smaller)
                if m["score"] < current["score"] + min_gain:
                    self.log.append({"pruned": s.name, "measures": m})
                    self.say(f"prune: {s.name} adds less than {min_gain:g}; dropped")
                    recipe, current, changed = smaller, m, True
                    break
        return recipe, current


def _distinct_best(pool: list[Scored], beam: int) -> list[Scored]:
    """The ``beam`` best of a sorted pool, one per combination of steps (near-copies explore nothing new)."""
    by_names: dict[tuple[str, ...], Scored] = {}
    for r, m in pool:
        by_names.setdefault(tuple(r.names), (r, m))
    return list(by_names.values())[:beam]


def _round_entry(rnd: int, tried: int, pool: list[Scored], gain: float, accepted: bool,
                 seconds: float) -> dict[str, Any]:
    """The log entry of one beam round (fit.json's ``rounds``)."""
    round_best, round_m = pool[0]
    return {
        "round": rnd, "tried": tried, "best": round_best.to_dict(), "best_measures": round_m,
        "gain": round(gain, 4), "accepted": accepted, "seconds": round(seconds, 2),
        "top": [{"recipe": r.names, "steps": [s.to_dict() for s in r.steps], **m} for r, m in pool[:6]],
    }


def _neighbours(recipe: Recipe) -> list[Recipe]:
    """Recipes that move one point-valued parameter of one step a notch up or down."""
    out = []
    for i, s in enumerate(recipe.steps):
        spec = get(s.name).params
        for k, (lo, hi) in sorted(s.ranges.items()):
            ps = spec[k]
            if lo != hi or (ps.integer and ps.high - ps.low <= 1):
                continue
            step = 0.05 * (ps.high - ps.low)
            proposals = {lo * 0.7, lo * 1.4} if abs(lo) > 2 * step else {lo - step, lo + step}
            for v in sorted(proposals):
                v = min(ps.high, max(ps.low, float(round(v)) if ps.integer else round(v, 4)))
                if v == lo:
                    continue
                steps = list(recipe.steps)
                steps[i] = Step(s.name, s.p, {**s.ranges, k: (v, v)})
                out.append(Recipe(tuple(steps)))
    return out


# --- scoring in worker processes -------------------------------------------------------------

def _worker_init() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


_FIT_STATE: tuple[_Objective, list[Recipe]] | None = None


def _score_trial(item: tuple[int, int | None]) -> Measures:
    # runs in a forked worker that inherited _FIT_STATE: only the trial's index travels
    i, n = item
    obj, trials = _FIT_STATE  # type: ignore[misc]
    return obj.measure(trials[i], n)


def _score_all(obj: _Objective, trials: list[Recipe], workers: int) -> list[Scored]:
    from shiftkit.runtime.imap import imap

    global _FIT_STATE
    _FIT_STATE = (obj, trials)
    try:
        res = list(imap(_score_trial, [(i, None) for i in range(len(trials))], workers=workers, chunksize=1,
                        initializer=_worker_init))
    finally:
        _FIT_STATE = None
    return list(zip(trials, res, strict=True))


def _halving(obj: _Objective, trials: list[Recipe], small: int, keep: float, workers: int) -> list[Scored]:
    """Score every trial on ``small`` images, the best ``keep`` share again on the whole sample."""
    from shiftkit.runtime.imap import imap

    global _FIT_STATE
    _FIT_STATE = (obj, trials)
    try:
        rung1 = list(imap(_score_trial, [(i, small) for i in range(len(trials))], workers=workers,
                          chunksize=1, initializer=_worker_init))
        order = sorted(range(len(trials)), key=lambda i: (rung1[i]["score"], i))
        top = order[: max(2, math.ceil(keep * len(trials)))]
        rung2 = list(imap(_score_trial, [(i, None) for i in top], workers=workers, chunksize=1,
                          initializer=_worker_init))
    finally:
        _FIT_STATE = None
    return [(trials[i], m) for i, m in zip(top, rung2, strict=True)]


def _widen(obj: _Objective, recipe: Recipe, current: Measures, widen: float, slack: float) -> Scored:
    if widen <= 0 or not recipe.steps:
        return recipe, current
    steps = []
    for s in recipe.steps:
        spec = get(s.name).params
        ranges = {}
        for k, (lo, hi) in s.ranges.items():
            if lo != hi or spec[k].integer and abs(lo) < 4:
                ranges[k] = (lo, hi)
                continue
            a, b = lo - abs(lo) * widen, hi + abs(hi) * widen
            a, b = max(spec[k].low, a), min(spec[k].high, b)
            ranges[k] = (float(round(a)), float(round(b))) if spec[k].integer else (round(a, 4), round(b, 4))
        steps.append(Step(s.name, s.p, ranges))
    wide = Recipe(tuple(steps))
    if wide == recipe:
        return recipe, current
    m = obj.measure(wide)
    if m["score"] <= current["score"] + slack:
        return wide, m
    return recipe, current
