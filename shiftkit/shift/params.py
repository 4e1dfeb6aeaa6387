"""The params.yaml section(s) of ``shiftkit shift``: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    COUNT,
    NONNEG,
    SEED,
    WORKERS,
    Interval,
    ParamsSection,
    Text,
    frozen,
    param,
    section,
)

# --- shift ----------------------------------------------------------------------------------------


@section("shift")
@frozen
class ShiftParams(ParamsSection):
    """``shiftkit shift``: how far apart two image sets are."""

    max_images: int = param(500, NONNEG)  # images sampled per set (0: all)
    folds: int = param(5, Interval(int, 2, None))  # cross-validation folds of the domain classifier
    permutations: int = param(500, NONNEG)  # permutations of the MMD test
    alpha: float = param(0.05, Interval(float, 0, 1, "neither"))  # level at which the MMD test rejects
    feature_size: int = param(16, Interval(int, 2, 64))  # side of the grey thumbnail in the cheap features
    model: str = param("", Text("a timm model name, or empty", empty=True))  # its pooled output as features
    model_size: int = param(64, COUNT)  # input side for the timm model
    seed: int = param(0, SEED)
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores
