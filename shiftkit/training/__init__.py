"""shiftkit.training."""
