"""The arms of the learning curve: one registered :class:`Arm` each, declared here at its definition.

An arm is one way of training a model at each budget of labelled target images. Everything the
rest of the curve needs to know about an arm is on its entry:

- ``uses_synth``: it trains (and is evaluated) with the synth table's copies.
- ``from_web``: it starts from the web-only model (``--start``) instead of ImageNet weights.
- ``web_at_zero``: at budget 0 it is the web-only model itself, copied rather than trained again.
- ``trains_on``: the splits it trains on, from the budget's table (:func:`budget_table`: as drawn;
  :func:`target_only`: the target's train images alone).
- ``train_overrides``: train parameters replaced by curve parameters (train field -> curve field).
- ``adapt``: the adaptation its training adds (``dann``, ``coral``, ``selftrain``, ``weighted``:
  :mod:`shiftkit.training.adapt`), reading the target images without labels (the budget's other
  target train images and the ``unlabelled`` split, or ``--unlabelled``); "" for none.
- ``verb`` and ``colour``: how the curve's sentence names it and its line in the figure (the
  colour travels to the report in ``curve.json``).

Adding an arm is one ``register_arm(Arm(...))`` below (plus its comment beside ``curve.arms`` in
params.yaml); ``curve.arms`` accepts the names registered here. This module stays light: polars is
imported inside the split rules, torch never.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shiftkit.core.errors import RegistryError

if TYPE_CHECKING:
    import polars as pl

UNUSED = "unused"  # the split of train rows left out of a training (a budget's, an arm's): never read
BASELINE = "baseline"  # the arm every other arm's worth is read against

# (splits of the budget, manifest, target domain) -> the splits the arm trains on
SplitRule = Callable[["pl.DataFrame", "pl.DataFrame", str], "pl.DataFrame"]


def budget_table(splits: pl.DataFrame, manifest: pl.DataFrame, target_domain: str) -> pl.DataFrame:
    """The budget's table as drawn: every domain's train images + the budget's target images."""
    return splits


def target_only(splits: pl.DataFrame, manifest: pl.DataFrame, target_domain: str) -> pl.DataFrame:
    """The budget's table with every train image of another domain set to ``unused``."""
    import polars as pl

    dom = manifest.select("image_id", "domain")
    out = splits.join(dom, on="image_id", how="left", suffix="_m")
    col = "domain_m" if "domain_m" in out.columns else "domain"
    drop = (pl.col("split") == "train") & (pl.col(col) != target_domain)
    out = out.with_columns(pl.when(drop).then(pl.lit(UNUSED)).otherwise(pl.col("split")).alias("split"))
    return out.select(splits.columns)


@dataclass(frozen=True)
class Arm:
    """One arm of the learning curve (see the module docstring for each field)."""

    name: str
    verb: str  # the curve's sentence: "<verb> with 300 labelled target images reaches ..."
    colour: str  # its line and band in the curve's figure
    uses_synth: bool = False
    from_web: bool = False
    web_at_zero: bool = False
    trains_on: SplitRule = budget_table
    train_overrides: Mapping[str, str] = field(default_factory=dict)  # train field -> curve field
    adapt: str = ""  # the adaptation of shiftkit.training.adapt its training adds ("" none)


ARMS: dict[str, Arm] = {}


def register_arm(arm: Arm) -> Arm:
    """Add ``arm`` to :data:`ARMS`; returns it.

    Raises:
        RegistryError: when an arm of that name is registered already.
    """
    if arm.name in ARMS:
        raise RegistryError(f"The arm {arm.name!r} is registered twice; arms: {', '.join(ARMS)}.")
    ARMS[arm.name] = arm
    return arm


def unregister_arm(name: str) -> Arm:
    """Remove the arm ``name`` from :data:`ARMS`; returns it.

    Raises:
        RegistryError: when no arm of that name is registered.
    """
    return ARMS.pop(get_arm(name).name)


def get_arm(name: str) -> Arm:
    """The registered arm ``name``.

    Raises:
        RegistryError: on an unknown arm, listing the registered ones (and, for a combination
            that is not one, why).
    """
    if name not in ARMS:
        why = ""
        if "+" in name:
            why = (" Only synthesis combines with one adaptation (synth+dann, synth+coral, synth+selftrain, "
                   "synth+weighted): two adaptations would each pull the features their own way and "
                   "finetune starts from the web-only model without the web images the others align.")
        raise RegistryError(f"Unknown arm {name!r}; arms: {', '.join(ARMS)}.{why}")
    return ARMS[name]


def arm_splits(splits: pl.DataFrame, manifest: pl.DataFrame, arm: str, target_domain: str) -> pl.DataFrame:
    """The splits ``arm`` trains on, from its budget's table (the arm's ``trains_on``).

    Raises:
        RegistryError: on an unknown arm.
    """
    return get_arm(arm).trains_on(splits, manifest, target_domain)


def arm_names() -> tuple[str, ...]:
    """The registered arms' names, in registration order (the vocabulary of ``curve.arms``)."""
    return tuple(ARMS)


# ---------------------------------------------------------------------------------------------
# the arms

# web + k target images; at budget 0 the web-only model itself
register_arm(Arm(BASELINE, verb="The baseline", colour="#4c72b0", web_at_zero=True))
# web + the synthesised copies + k target images
register_arm(Arm("synth", verb="Synthesis", colour="#c44e52", uses_synth=True))
# the web-only model fine-tuned on the k target images alone
register_arm(Arm(
    "finetune", verb="Fine-tuning the web-only model", colour="#55a868", from_web=True, web_at_zero=True,
    trains_on=target_only,
    train_overrides={"finetune_lr": "finetune_lr", "finetune_epochs": "finetune_epochs", "head_epochs": "head_epochs"},
))

# the mitigations (shiftkit/training/adapt.py): web + k target images, plus the target images
# without labels (the budget's other target train images, the 'unlabelled' split)
ADAPT_ARMS = {
    # name: (verb, colour alone, colour with synthesis)
    "dann": ("Domain-adversarial training (DANN)", "#8172b3", "#4b3d8f"),
    "coral": ("Deep CORAL", "#ccb974", "#8c7a2f"),
    "selftrain": ("Self-training on unlabelled target images", "#64b5cd", "#2f7f99"),
    "weighted": ("Importance weighting of the web images", "#da8bc3", "#a04f8a"),
}
for _name, (_verb, _colour, _) in ADAPT_ARMS.items():
    register_arm(Arm(_name, verb=_verb, colour=_colour, adapt=_name))
for _name, (_verb, _, _colour) in ADAPT_ARMS.items():  # each on top of the synthesised copies
    register_arm(Arm(f"synth+{_name}", verb=f"Synthesis plus {_verb}", colour=_colour, uses_synth=True, adapt=_name))
