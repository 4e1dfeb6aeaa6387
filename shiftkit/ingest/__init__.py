"""shiftkit.ingest."""
