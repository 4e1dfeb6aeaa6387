"""shiftkit.cli."""
