"""params.yaml section of ``shiftkit check``, the gate of a data drop: defaults as in params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    BOOL,
    COUNT,
    Interval,
    ParamsSection,
    frozen,
    param,
    section,
)

# --- check ----------------------------------------------------------------------------------------


@section("check")
@frozen
class CheckParams(ParamsSection):
    """Thresholds of ``shiftkit check``, the gate for a new data drop."""

    max_corrupt: float = param(0.01, Interval(float, 0, 1))  # share of a drop's files quarantined before it blocks
    class_share: float = param(0.05, Interval(float, 0, 1, "right"))  # a label's share moving more: warning
    drift_ks: float = param(0.2, Interval(float, 0, 1, "right"))  # KS statistic above which a property drifts ...
    drift_effect: float = param(0.5, Interval(float, 0, None, "neither"))  # ... and |Cohen's d| (both must hold)
    drift_min_images: int = param(20, COUNT)  # fewer images on either side: no drift test
    tiny_size: int = param(16, COUNT)  # an image whose smaller side is below this is tiny (warning)
    allow_new_labels: bool = param(False, BOOL)  # a label the reference lacks is an error unless true
    # check --model: block when the drop's estimated error exceeds dev's by more than this many points
    max_error_rise: float = param(5.0, Interval(float, 0, 100))
    window: int = param(8, Interval(int, 1, 100))  # check --model --latest: the last drops estimated and shown
