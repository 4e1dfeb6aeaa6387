"""The params.yaml section(s) of the learning curve: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any

from shiftkit.core.config import (
    _INT64,
    SEED,
    Each,
    Interval,
    ParamsSection,
    Registered,
    Text,
    _is_int,
    frozen,
    param,
    section,
    show,
)
from shiftkit.core.errors import ConfigError
from shiftkit.curve.arms import arm_names
from shiftkit.select.strategies import strategy_names

# --- curve ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BudgetValue:
    """A budget of labelled target images: an integer >= 0, or 'all' (every one)."""

    def accepts(self, value: Any) -> bool:
        return value == "all" or (_is_int(value) and 0 <= value < _INT64)

    def describe(self) -> str:
        return "an integer >= 0 or 'all'"


@dataclasses.dataclass(frozen=True)
class RoundChain:
    """curve.rounds: ``{round: r, after: r - 1}`` for r = 1, 2, ... in order. DVC's matrix makes one
    entry per (strategy, round) from it, each depending on round ``after``'s folder: its
    interpolation has no arithmetic, so the previous round's number is spelled out."""

    max_items: int = 32

    def accepts(self, value: Any) -> bool:
        return isinstance(value, tuple) and 1 <= len(value) <= self.max_items and all(
            isinstance(v, dict) and set(v) == {"round", "after"} and all(_is_int(x) for x in v.values())
            and v["round"] == i + 1 and v["after"] == i for i, v in enumerate(value))

    def describe(self) -> str:
        return (f"a list of {{round: r, after: r - 1}} for r = 1, 2, ... in order (1 to {self.max_items} "
                f"entries; after 0 is the web-only model)")


def round_chain(n: int) -> tuple[dict, ...]:
    """curve.rounds for ``n`` rounds."""
    return tuple({"round": r, "after": r - 1} for r in range(1, n + 1))


ROUNDS = round_chain(4)


@section("curve")
@frozen
class CurveParams(ParamsSection):
    """Learning curves over the labelled-target budget (``pipelines/learning_curve.py``, shiftkit/curve/worth.py)."""

    # which arms train at every budget
    arms: tuple[str, ...] = param(("baseline", "synth"), Each(Registered(arm_names)))
    # labelled target train images per point (nested, stratified); all: every one
    budgets: tuple[int | str, ...] = param((0, "all"), Each(BudgetValue(), max_items=32))
    seed: int = param(0, SEED)  # which target train images each budget keeps; the curve's resampling
    target_domain: str = param("target", Text("a domain name"))  # the domain whose train images are budgeted
    finetune_lr: float = param(1e-4, Interval(float, 0, None, "neither"))  # finetune arm: learning rate
    finetune_epochs: int = param(8, Interval(int, 1, None))  # finetune arm: epochs on the budget's target images
    head_epochs: int = param(1, Interval(int, 0, None))  # finetune arm: frozen-backbone epochs first (0: none)
    # the mitigation arms (shiftkit/training/adapt.py): fixed, never tuned on target labels
    dann_weight: float = param(1.0, Interval(float, 0, None, "neither"))  # dann: domain-loss weight
    dann_warmup: float = param(0.0, Interval(float, 0, 1, "left"))  # dann: share of training before reversal
    coral_weight: float = param(1.0, Interval(float, 0, None, "neither"))  # coral: alignment-loss weight
    selftrain_weight: float = param(1.0, Interval(float, 0, None, "neither"))  # selftrain: pseudo-label loss weight
    selftrain_threshold: float = param(0.95, Interval(float, 0, 1, "neither"))  # selftrain: pseudo-label confidence
    weight_clip: float = param(10.0, Interval(float, 1, None))  # weighted: cap, times the median weight
    # trainings of the baseline at each budget, each with its own train.seed (train.seed + d - 1): their
    # spread is the training noise added to every point's interval (1: not measured; the report says so)
    baseline_draws: int = param(1, Interval(int, 1, 20))
    replicates: int = param(1000, Interval(int, 100, None))  # resamples of dev clusters for the intervals
    level: float = param(0.95, Interval(float, 0, 1, "neither"))  # confidence level of the intervals
    # selection strategies simulated on the curve (shiftkit/curve/selection.py); random is the reference
    selection: tuple[str, ...] = param((), Each(Registered(strategy_names), max_items=8))
    round_size: int = param(50, Interval(int, 1, None))  # selection: target images labelled per round
    # selection: epochs of each round's fine-tuning on the web images + the chosen ones (after head_epochs)
    select_epochs: int = param(2, Interval(int, 1, None))
    # selection: the rounds per strategy, each after the previous (RoundChain; one DVC entry each)
    rounds: tuple[dict, ...] = param(ROUNDS, RoundChain())
    # selection: independent runs of random (own draws, own training seed): their mean is the reference
    # and their spread the training noise every claim must clear (>= 2 to measure it)
    random_draws: int = param(3, Interval(int, 2, 20))

    def check_together(self) -> None:
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError(
                f"The 'curve.arms' parameter must list distinct arms, at least one. "
                f"Got {show(list(self.arms))} instead."
            )
        if self.selection and ("random" not in self.selection or len(set(self.selection)) != len(self.selection)):
            raise ConfigError(
                f"The 'curve.selection' parameter must list distinct strategies including random (the reference "
                f"every saving is measured against). Got {show(list(self.selection))} instead."
            )
        if not self.budgets or len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(
                f"The 'curve.budgets' parameter must list distinct budgets, at least one. "
                f"Got {show(list(self.budgets))} instead."
            )
