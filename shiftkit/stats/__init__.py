"""Statistics over predictions and feature rows.

- ``bootstrap.py``: cluster tables of predictions and the cluster bootstrap of error rates.
- ``decompose.py``: the error decomposition into gaps, Holm's claims, the diagnosis, run comparison.
- ``twosample.py``: two-sample tests of feature rows (domain classifier, MMD, KS), shared by shift and synth.

Names are imported on first use (PEP 562). The functions ``bootstrap`` and ``decompose`` are
``shiftkit.stats.bootstrap.bootstrap`` and ``shiftkit.stats.decompose.decompose`` (their names are
the modules' here).
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "cluster_ids": "shiftkit.stats.bootstrap",
    "cluster_table": "shiftkit.stats.bootstrap",
    "ClusterTable": "shiftkit.stats.bootstrap",
    "joint_table": "shiftkit.stats.bootstrap",
    "outcomes": "shiftkit.stats.bootstrap",
    "PSEUDO": "shiftkit.stats.bootstrap",
    "run_table": "shiftkit.stats.bootstrap",
    "split_counts": "shiftkit.stats.bootstrap",
    "SplitCount": "shiftkit.stats.bootstrap",
    "Stratum": "shiftkit.stats.bootstrap",
    "SYNTH_DOMAIN": "shiftkit.stats.bootstrap",
    "Change": "shiftkit.stats.decompose",
    "check_human_error": "shiftkit.stats.decompose",
    "check_level": "shiftkit.stats.decompose",
    "check_replicates": "shiftkit.stats.decompose",
    "CLAIM_METHOD": "shiftkit.stats.decompose",
    "compare": "shiftkit.stats.decompose",
    "Decomposition": "shiftkit.stats.decompose",
    "diagnose": "shiftkit.stats.decompose",
    "Gap": "shiftkit.stats.decompose",
    "GAP_NAMES": "shiftkit.stats.decompose",
    "GAP_TITLES": "shiftkit.stats.decompose",
    "GAPS": "shiftkit.stats.decompose",
    "holm": "shiftkit.stats.decompose",
    "INCONCLUSIVE": "shiftkit.stats.decompose",
    "Resolve": "shiftkit.stats.decompose",
    "resolve_estimate": "shiftkit.stats.decompose",
    "domain_scores": "shiftkit.stats.twosample",
    "mmd_test": "shiftkit.stats.twosample",
    "property_distance": "shiftkit.stats.twosample",
    "property_tests": "shiftkit.stats.twosample",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
