"""shiftkit.splits."""
