"""What the commands share: the --params and --engine options, loading params, choosing the engine.

Imported by :mod:`shiftkit.cli.app` and by the command modules it registers on its last lines
(:mod:`shiftkit.cli.gate`, ...), which never import ``cli.app`` (no import cycle).
"""

from __future__ import annotations

from pathlib import Path

import typer

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", help="params.yaml to read settings from (defaults if absent)."
)


ENGINE_OPTION = typer.Option(
    None, "--engine", metavar="local|ray",
    help="Where the per-image work runs: local processes or a Ray cluster (overrides engine.name in params; "
    "the cluster is engine.address, else RAY_ADDRESS, else a local Ray instance).",
)


def use_engine(p, name: str | None) -> None:
    """Make the params' engine (or ``--engine``) the one ``shiftkit.runtime.imap.imap`` uses."""
    from shiftkit.runtime import engine

    engine.activate(p.engine, name=name)


def load_params(path: Path):
    """Load params.yaml for a command (imported lazily so that config errors exit 2)."""
    from shiftkit.params import load_params as _load

    return _load(path)
