"""``python -m shiftkit`` runs the command line."""

from shiftkit.cli import run

run()
