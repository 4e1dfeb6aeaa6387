"""shiftkit.stats."""
