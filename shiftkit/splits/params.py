"""The params.yaml section(s) of ``shiftkit split``: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    COUNT,
    SEED,
    Interval,
    ParamsSection,
    Registered,
    Text,
    frozen,
    param,
    section,
)
from shiftkit.core.errors import ConfigError
from shiftkit.splits.strategies import strategy_names

# --- split ----------------------------------------------------------------------------------------
# a split size: a fraction of the images it is drawn from, or a count of images
SPLIT_SIZE = (Interval(float, 0, 1, "neither"), Interval(int, 1, None, noun="a count"))


@section("split")
@frozen
class SplitParams(ParamsSection):
    """How ``shiftkit split`` builds train / bridge / dev / test."""

    strategy: str = param("target", Registered(strategy_names))  # shuffle: naive mix
    target_domain: str = param("target", Text("a domain name"))  # the domain dev and test come from
    seed: int = param(0, SEED)  # with the group, decides membership; changing it reshuffles everything
    dev: int | float = param(0.25, *SPLIT_SIZE)  # fraction of the target (shuffle: of all images) or a count
    test: int | float = param(0.25, *SPLIT_SIZE)  # as dev
    bridge: int | float = param(0.05, *SPLIT_SIZE)  # fraction of the training pool or a count; never trained on
    min_per_label: int = param(3, COUNT)  # labels with fewer images where dev/test are drawn are pooled

    def check_together(self) -> None:
        if isinstance(self.dev, float) and isinstance(self.test, float) and self.dev + self.test >= 1:
            raise ConfigError(
                f"The 'split.dev' and 'split.test' fractions must sum to less than 1 so that some of "
                f"the target is left to train on. Got {self.dev} + {self.test} instead."
            )

    def settings(self) -> dict:
        """What decides membership: when any of it changes, previous splits are not honoured."""
        keys = ("strategy", "target_domain", "seed", "dev", "test", "bridge", "min_per_label")
        return {k: getattr(self, k) for k in keys}
