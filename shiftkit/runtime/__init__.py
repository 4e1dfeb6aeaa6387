"""Where per-image work runs: the one seam ``imap`` and the registered engines (``local``, ``ray``).

Light: nothing here imports Ray (the ``ray`` engine imports it when it is asked for). Importing
the package registers the built-in engines, so ``ENGINES`` and ``engine.name``'s options are complete.

The seam is ``from shiftkit.runtime.imap import imap``: the function is not re-exported here, where its
name would hide the module ``shiftkit.runtime.imap`` (and break ``import shiftkit.runtime.imap as m``).
"""

from __future__ import annotations

from shiftkit.runtime import local as _local  # noqa: F401  (registers the local engine)
from shiftkit.runtime import ray as _ray  # noqa: F401  (registers the ray engine)
from shiftkit.runtime.engine import (
    ENGINES,
    Engine,
    activate,
    current,
    engine_names,
    make,
    register_engine,
    unregister_engine,
    use,
)
from shiftkit.runtime.imap import WorkerError, process_map, reap_children, resolve_workers, stop_all
from shiftkit.runtime.local import LocalEngine
from shiftkit.runtime.ray import RayEngine, connect

__all__ = [
    "ENGINES", "Engine", "LocalEngine", "RayEngine", "WorkerError", "activate", "connect", "current",
    "engine_names", "make", "process_map", "reap_children", "register_engine", "resolve_workers",
    "stop_all", "unregister_engine", "use",
]
