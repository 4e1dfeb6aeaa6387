"""Which unlabelled images to label next (``shiftkit select``; the curve's selection simulation uses it).

- ``strategies.py``: the ``@strategy`` registry and random, margin, entropy, coreset, clue (numpy).
- ``embed.py``: one forward pass of a trained model giving probabilities and pooled features.
- ``pool.py``: the pool (unlabelled + unused target train images; or a folder or listing).
- ``stage.py``: the selection folder: selection.csv, selection.png (contact sheet), selection.json.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "PoolView": "shiftkit.select.strategies",
    "Picked": "shiftkit.select.strategies",
    "strategy": "shiftkit.select.strategies",
    "choose": "shiftkit.select.strategies",
    "get_strategy": "shiftkit.select.strategies",
    "strategy_names": "shiftkit.select.strategies",
    "STRATEGIES": "shiftkit.select.strategies",
    "embed": "shiftkit.select.embed",
    "embed_model": "shiftkit.select.embed",
    "from_tables": "shiftkit.select.pool",
    "from_images": "shiftkit.select.pool",
    "select": "shiftkit.select.stage",
    "SelectParams": "shiftkit.select.params",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
