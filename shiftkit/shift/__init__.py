"""shiftkit.shift."""
