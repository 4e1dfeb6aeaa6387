"""shiftkit.check."""
