"""shiftkit.curve."""
