"""shiftkit.runtime."""
