"""shiftkit.ingest: folders of images (and listings) -> the manifest and the quarantine.

``walk`` (finding the files, listings, URLs, link verdicts, domain names), ``stage`` (decode,
previous drops, tables, summary) and ``example`` (the embedded digits example and its data/).
Names load on first use (PEP 562): importing the package or its ``params`` costs nothing.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS = {
    "LISTING_COLUMNS": "shiftkit.ingest.walk",
    "read_listing": "shiftkit.ingest.walk",
    "MANIFEST_FILE": "shiftkit.ingest.stage",
    "QUARANTINE_FILE": "shiftkit.ingest.stage",
    "SUMMARY_FILE": "shiftkit.ingest.stage",
    "IngestResult": "shiftkit.ingest.stage",
    "ingest": "shiftkit.ingest.stage",
    "print_summary": "shiftkit.ingest.stage",
    "summary_line": "shiftkit.ingest.stage",
    "EXAMPLES": "shiftkit.ingest.example",
    "load_digits_images": "shiftkit.ingest.example",
    "mnist_subset": "shiftkit.ingest.example",
    "write_example": "shiftkit.ingest.example",
    "ExampleParams": "shiftkit.ingest.params",
    "IngestParams": "shiftkit.ingest.params",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
