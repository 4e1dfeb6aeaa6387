"""shiftkit: find out why an image classifier errs on its target distribution, and fix it.

The top-level package imports nothing heavy (no torch, timm or albumentations), so that the
command line and ``shiftkit check`` start fast. Stage functions live in their modules:
``shiftkit.ingest``, ``shiftkit.splits``, ``shiftkit.check``, ``shiftkit.synth``,
``shiftkit.shift``, ``shiftkit.train``, ``shiftkit.evaluate``, ``shiftkit.decompose`` and
``shiftkit.report``.
"""

from shiftkit.errors import (
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
