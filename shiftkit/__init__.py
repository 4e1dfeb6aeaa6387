"""shiftkit: find out why an image classifier errs on its target distribution, and fix it.

The top-level package imports nothing heavy (no torch, timm or albumentations), so that the
command line and ``shiftkit check`` start fast. Stage functions live in their modules:
``shiftkit.ingest.stage``, ``shiftkit.splits.stage``, ``shiftkit.check.stage``, ``shiftkit.synth``,
``shiftkit.shift.stage``, ``shiftkit.training.train``, ``shiftkit.training.evaluate``, ``shiftkit.stats.decompose`` and
``shiftkit.report.stage``.
"""

import os

# albumentations (used by synth and the worker-process loader) looks up its latest version on the
# network at import, and offline it warns about that in every worker process; its documented switch
# turns the check off. Set here, before any shiftkit module can import albumentations.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from shiftkit.core.errors import (  # noqa: E402
    CheckFailed,
    ConfigError,
    DataError,
    ImageDecodeError,
    InputPathError,
    ModelError,
    RegistryError,
    SchemaError,
    ShiftkitError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "CheckFailed",
    "ConfigError",
    "DataError",
    "ImageDecodeError",
    "InputPathError",
    "ModelError",
    "RegistryError",
    "SchemaError",
    "ShiftkitError",
]
