"""shiftkit.curve: learning curves over the labelled-target budget.

arms (the ``Arm`` registry), budgets (the budget tables), worth (the statistics: cluster resampling,
worth-N, Holm), stage (train/evaluate a point, build the curve), summary (the curve's folder),
params (the ``curve`` section). Names are imported on first use (PEP 562): the stage imports
training and the report, which the CLI must not pay for at start.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "ARMS": "shiftkit.curve.arms",
    "Arm": "shiftkit.curve.arms",
    "arm_names": "shiftkit.curve.arms",
    "arm_splits": "shiftkit.curve.arms",
    "get_arm": "shiftkit.curve.arms",
    "register_arm": "shiftkit.curve.arms",
    "unregister_arm": "shiftkit.curve.arms",
    "Budget": "shiftkit.curve.budgets",
    "budget_file": "shiftkit.curve.budgets",
    "parse_budget": "shiftkit.curve.budgets",
    "write_budgets": "shiftkit.curve.budgets",
    "Worth": "shiftkit.curve.worth",
    "worth_all": "shiftkit.curve.worth",
    "build_curve": "shiftkit.curve.stage",
    "evaluate_arm": "shiftkit.curve.stage",
    "train_arm": "shiftkit.curve.stage",
    "write_pixels": "shiftkit.curve.stage",
    "write_curve": "shiftkit.curve.summary",
    "CurveParams": "shiftkit.curve.params",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
