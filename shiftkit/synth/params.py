"""The params.yaml section(s) of target-like synthesis: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    BOOL,
    COUNT,
    NONNEG,
    SEED,
    WORKERS,
    Interval,
    Options,
    ParamsSection,
    Text,
    frozen,
    param,
    section,
)

# --- synth ----------------------------------------------------------------------------------------


@section("synth")
@frozen
class SynthParams(ParamsSection):
    """Target-like synthesis: the recipe fit and the degraded copies of web images."""

    enabled: bool = param(True, BOOL)  # false: write an empty synth table so that later stages run unchanged
    seed: int = param(0, SEED)  # fit samples, per-image seeds and the choice of parents
    fraction: float = param(1.0, Interval(float, 0, 1, "right"))  # share of web train/bridge images degraded
    copies: int = param(1, COUNT)  # degraded copies per chosen image
    web_domain: str = param("web", Text("a domain name"))  # manifest domain whose images are degraded
    target_domain: str = param("target", Text("a domain name"))  # domain the recipe is fitted to (train only)
    fit_web: int = param(160, Interval(int, 6, None))  # web images sampled for the fit
    fit_target: int = param(160, Interval(int, 6, None))  # target train images sampled for the fit
    max_rounds: int = param(6, NONNEG)  # beam-search rounds (each may add or replace one step)
    beam: int = param(3, COUNT)  # recipes kept between rounds (each a different combination of steps)
    patience: int = param(1, NONNEG)  # rounds without gain the search tolerates before it stops
    refine: int = param(6, NONNEG)  # coordinate-search moves that nudge the chosen values after the search
    min_gain: float = param(0.03, Interval(float, 0, None))  # smallest score drop that justifies a step
    feature_size: int = param(8, Interval(int, 2, 64))  # side of the grey thumbnail in the fit's features
    fit_side: int = param(64, Interval(int, 0, None))  # larger images are fitted reduced to this short side; 0: full
    fit_model: str = param("", Text("a timm model name, or empty", empty=True))  # its pooled features join the fit's
    fit_model_size: int = param(64, Interval(int, 16, 1024))  # the fit_model's input side
    widen: float = param(0.15, Interval(float, 0, None))  # chosen values widen to +-this when that costs little
    high_order: bool = param(False, BOOL)  # also try Real-ESRGAN's randomised two-pass chain
    # share copies by p_target/p_web of the degraded parent; "none": evenly
    weighting: str = param("density_ratio", Options(("density_ratio", "none")))
    weight_clip: float = param(10.0, Interval(float, 1, None))  # cap of a parent's weight (x the median weight)
    weight_sample: int = param(2000, Interval(int, 12, None))  # web and target train images for the weighting
    recipe: str = param("", Text("a path of a recipe.json, or empty", empty=True))  # reuse it (skips the fit)
    # parent/copy pairs in preview.png (0: none); not speed_only: it changes a file synth writes
    preview: int = param(16, NONNEG)
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores
