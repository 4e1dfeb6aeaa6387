"""shiftkit.check: the gate a new data drop passes (``rules``: the registered rules; ``stage``: the run).

Names load on first use (PEP 562), so importing the package (or its ``params``) costs nothing.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "CheckContext": "shiftkit.check.rules",
    "Finding": "shiftkit.check.rules",
    "Rule": "shiftkit.check.rules",
    "SEVERITIES": "shiftkit.check.rules",
    "cohens_d": "shiftkit.check.rules",
    "drift_table": "shiftkit.check.rules",
    "get_rule": "shiftkit.check.rules",
    "needs_reference": "shiftkit.check.rules",
    "rule": "shiftkit.check.rules",
    "rule_names": "shiftkit.check.rules",
    "CheckReport": "shiftkit.check.stage",
    "apply_rules": "shiftkit.check.stage",
    "drop_domains": "shiftkit.check.stage",
    "run_check": "shiftkit.check.stage",
    "run_latest_drop_check": "shiftkit.check.stage",
    "summary_line": "shiftkit.check.stage",
    "CheckParams": "shiftkit.check.params",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
