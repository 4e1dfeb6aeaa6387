"""shiftkit.images."""
