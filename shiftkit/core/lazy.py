"""Lazy re-exports for a package's ``__init__`` (PEP 562), so that importing a package, or its light
``params`` module, never loads the heavy modules (torch, timm, polars) behind its public names.

A package lists ``_EXPORTS = {"name": "shiftkit.pkg.module", ...}`` and ends its ``__init__`` with::

    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

A name is looked up in its module at each access (never cached in the package), so a test that
patches the module's attribute is seen through the package too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, serving ``exports`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *exports})

    return __getattr__, __dir__


def albumentations_without_torch() -> Any:
    """``import albumentations``, without its optional torch glue when torch is not loaded yet.

    albumentations' ``__init__`` imports ``albumentations.pytorch`` (and so torch, 1,500 modules)
    whenever torch is installed; synthesis never uses it. In a synth worker that import was most of
    the start-up (2.5 s against 5.9 s under load; seconds more from a cold disk, where its gigabyte
    of libraries competes with the main process for the disk while it handles a Ctrl-C). Where
    torch is already loaded (training) nothing changes.
    """
    import sys

    if "albumentations" in sys.modules or "torch" in sys.modules:
        return importlib.import_module("albumentations")
    sys.modules["albumentations.pytorch"] = None  # type: ignore[assignment]  # its import fails: skipped
    try:
        return importlib.import_module("albumentations")
    finally:
        if "albumentations.pytorch" in sys.modules and sys.modules["albumentations.pytorch"] is None:
            del sys.modules["albumentations.pytorch"]
