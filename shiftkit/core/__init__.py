"""shiftkit.core."""
