"""Split strategies: which groups dev and test may be drawn from, registered at their definition.

- ``target`` (the default, the recipe): dev and test come only from the target domain; the rest of
  the target and every other domain form the training pool; the bridge is carved from that pool,
  stratified by (domain, label), so it has the training mixture of domains and is never trained on.
- ``shuffle``: the naive mix of everything, kept to show why it is wrong; its summary states how
  many dev and test images come from the target.

A new strategy is one function here, decorated with ``@strategy(name, target_only=...)``: it gets
the manifest coded by groups (``shiftkit.splits.assignment._Coded``: ``target_only``, ``n``, ``domain``,
...) and the ``split`` params, and returns a boolean mask of the groups eligible for dev/test and
a phrase naming where they come from. ``split.strategy`` in params.yaml accepts exactly the names
registered here (``shiftkit/splits/params.py`` asks :func:`strategy_names`). This module imports
nothing heavy: the params section imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shiftkit.core.errors import RegistryError

if TYPE_CHECKING:
    import numpy as np

# (coded groups, SplitParams) -> (eligible groups, where they come from)
Pool = Callable[[Any, Any], "tuple[np.ndarray, str]"]


@dataclass(frozen=True)
class Strategy:
    """Which groups dev and test are drawn from, and whether dev and test must be target-only
    (then an image of another domain in a dev/test group becomes a ``held_out_copy``)."""

    pool: Pool
    target_only: bool


STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str, *, target_only: bool) -> Callable[[Pool], Pool]:
    """Register ``pool`` as the split strategy ``name`` (``target_only``: dev/test hold only the target).

    Raises:
        RegistryError: when ``name`` is already registered.
    """

    def deco(pool: Pool) -> Pool:
        if name in STRATEGIES:
            raise RegistryError(
                f"Split strategy {name!r} is registered twice; registered strategies: {', '.join(STRATEGIES)}."
            )
        STRATEGIES[name] = Strategy(pool, target_only=target_only)
        return pool

    return deco


def strategy_names() -> tuple[str, ...]:
    """The registered strategy names, in the order of their definition."""
    return tuple(STRATEGIES)


@strategy("target", target_only=True)
def target_pool(c: Any, params: Any) -> tuple[np.ndarray, str]:
    """The recipe: dev and test only from groups that hold nothing but target images."""
    return c.target_only, f"the target domain {params.target_domain!r}"


@strategy("shuffle", target_only=False)
def shuffle_pool(c: Any, params: Any) -> tuple[np.ndarray, str]:
    """The naive mix, kept to show why it is wrong: dev and test from every group."""
    import numpy as np

    return np.ones_like(c.target_only), "the manifest"
