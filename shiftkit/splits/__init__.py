"""shiftkit.splits: train / bridge / dev / test from a manifest.

``strategies`` (the registered split strategies), ``groups`` (stable hashing, the group index),
``assign`` (the draw), ``composition`` (class shares, leakage check, summary, markdown) and
``stage`` (read, write, ``run_split``). Names load on first use (PEP 562): importing the package
or its ``params`` costs no numpy or polars.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "STRATEGIES": "shiftkit.splits.strategies",
    "Strategy": "shiftkit.splits.strategies",
    "strategy": "shiftkit.splits.strategies",
    "strategy_names": "shiftkit.splits.strategies",
    "CODE": "shiftkit.splits.groups",
    "HELD_OUT": "shiftkit.splits.groups",
    "group_keys": "shiftkit.splits.groups",
    "membership_hash": "shiftkit.splits.groups",
    "RARE": "shiftkit.splits.assignment",
    "SplitWarning": "shiftkit.splits.assignment",
    "allocate": "shiftkit.splits.assignment",
    "assign": "shiftkit.splits.assignment",
    "requested_size": "shiftkit.splits.assignment",
    "SHARE_LEVEL": "shiftkit.splits.composition",
    "SplitResult": "shiftkit.splits.composition",
    "check_leakage": "shiftkit.splits.composition",
    "class_shares": "shiftkit.splits.composition",
    "composition_markdown": "shiftkit.splits.composition",
    "share_warnings": "shiftkit.splits.composition",
    "summarize_codes": "shiftkit.splits.composition",
    "COMPOSITION_JSON": "shiftkit.splits.stage",
    "COMPOSITION_MD": "shiftkit.splits.stage",
    "SPLITS_FILE": "shiftkit.splits.stage",
    "read_manifest_columns": "shiftkit.splits.stage",
    "read_previous": "shiftkit.splits.stage",
    "run_split": "shiftkit.splits.stage",
    "write_splits": "shiftkit.splits.stage",
    "SplitParams": "shiftkit.splits.params",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
