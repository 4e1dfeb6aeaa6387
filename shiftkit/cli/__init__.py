"""The command line: ``app.py`` holds the typer commands (one block per stage); ``run.py`` runs them
and the ``pipelines/*.py`` stage scripts (the exception -> exit code mapping, signals,
``stage_parser``, ``run_stage``, ``main``, ``run``). Imported lazily: ``shiftkit.cli.run`` does not
import the commands until :func:`main` runs them.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "main": "shiftkit.cli.run",
    "exit_code_for": "shiftkit.cli.run",
    "stage_parser": "shiftkit.cli.run",
    "run_stage": "shiftkit.cli.run",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
