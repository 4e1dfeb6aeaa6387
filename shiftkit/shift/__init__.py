"""The shift stage: how far apart two image sets are (``stage.py``), and its params section.

Names are imported on first use (PEP 562); the features and the statistics it reports come from
``shiftkit.images.features`` and ``shiftkit.stats.twosample``.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "compare": "shiftkit.shift.stage",
    "folder_set": "shiftkit.shift.stage",
    "IMAGE_SUFFIXES": "shiftkit.shift.stage",
    "ImageSet": "shiftkit.shift.stage",
    "manifest_set": "shiftkit.shift.stage",
    "render_table": "shiftkit.shift.stage",
    "set_features": "shiftkit.shift.stage",
    "ShiftParams": "shiftkit.shift.params",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
