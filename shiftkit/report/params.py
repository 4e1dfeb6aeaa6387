"""The params.yaml section(s) of ``shiftkit report``: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any

from shiftkit.core.config import (
    BOOL,
    COUNT,
    NONNEG,
    SEED,
    Each,
    Interval,
    Options,
    ParamsSection,
    frozen,
    param,
    section,
)

# --- report ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Distinct(Each):
    """A list whose every item meets ``item``, each at most once (``[blur, blur]`` would analyse blur twice)."""

    def accepts(self, value: Any) -> bool:
        return super().accepts(value) and len(set(value)) == len(value)

    def describe(self) -> str:
        return super().describe() + ", each at most once"


REPORT_PROPERTIES = ("blur", "brightness", "contrast", "effective_res", "noise", "extent", "width", "height")


@section("report")
@frozen
class ReportParams(ParamsSection):
    """The error decomposition, error analysis and rendering of ``shiftkit report``."""

    human_error: float = param(0.0, Interval(float, 0, 1, "left"))  # human-level (Bayes proxy) error, no interval
    replicates: int = param(1000, Interval(int, 100, None))  # bootstrap replicates per split
    level: float = param(0.95, Interval(float, 0, 1, "neither"))  # confidence level of every interval
    seed: int = param(0, SEED)  # seed of the bootstrap streams
    include_synth: bool = param(True, BOOL)  # count synthesised children (domain "synth") in train / bridge
    gallery: int = param(16, NONNEG)  # most confidently wrong dev images shown (0: no gallery)
    buckets: int = param(4, Interval(int, 1, 20))  # quantile buckets per image property in the error analysis
    # manifest columns whose buckets are analysed
    properties: tuple[str, ...] = param(("blur", "effective_res", "brightness"), Distinct(Options(REPORT_PROPERTIES)))
    min_count: int = param(5, COUNT)  # slices with fewer dev images are listed but never named in recommendations
    # points: a gap is diagnosed only when shown above this (one-sided, under Holm); README "min_gap"
    min_gap: float = param(1.0, Interval(float, 0, 100, "left"))
