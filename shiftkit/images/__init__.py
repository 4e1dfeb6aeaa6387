"""One image at a time: safe decoding and properties, object-store bytes, near-copy groups, features.

- ``decode.py``: the safe decoder (header bomb check first), the properties and the perceptual hash;
- ``storage.py``: bytes in object storage (fsspec URLs): list, read, write; no decoding.
- ``reading.py``: the bytes of one file or object, read with the size cap (``ingest.max_bytes``);
  ``read_objects`` reads a store's objects through ``storage`` with the header check and the cap.
- ``dedup.py``: near-copy groups from perceptual hashes and thumbnails.
- ``features.py``: the cheap features (thumbnail + properties) shared by ``shift`` and ``synth``.

Names are imported on first use (PEP 562): OpenCV loads only when an image is touched. The
function ``decode`` is ``shiftkit.images.decode.decode`` (its name is the module's here).
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "check_header": "shiftkit.images.reading",
    "content_extent": "shiftkit.images.decode",
    "decode_working": "shiftkit.images.decode",
    "Decoded": "shiftkit.images.decode",
    "EFFECTIVE_RES_ENERGY": "shiftkit.images.decode",
    "hamming": "shiftkit.images.decode",
    "Header": "shiftkit.images.decode",
    "inspect": "shiftkit.images.decode",
    "jpeg_quality": "shiftkit.images.decode",
    "load_pixels": "shiftkit.images.decode",
    "measure": "shiftkit.images.decode",
    "measure_batch": "shiftkit.images.decode",
    "measure_work": "shiftkit.images.decode",
    "noise_sigma": "shiftkit.images.decode",
    "phash": "shiftkit.images.decode",
    "PHASH_SIZE": "shiftkit.images.decode",
    "PROPERTY_COLUMNS": "shiftkit.images.decode",
    "quiet_pillow": "shiftkit.images.decode",
    "read_objects": "shiftkit.images.reading",
    "read_capped": "shiftkit.images.reading",
    "MAX_BYTES": "shiftkit.images.reading",
    "thumbnail": "shiftkit.images.decode",
    "to_grey": "shiftkit.images.decode",
    "WORK_SIZE": "shiftkit.images.decode",
    "working_grey": "shiftkit.images.decode",
    "working_image": "shiftkit.images.decode",
    "check_root": "shiftkit.images.storage",
    "filesystem": "shiftkit.images.storage",
    "HEAD_BYTES": "shiftkit.images.storage",
    "is_url": "shiftkit.images.storage",
    "join": "shiftkit.images.storage",
    "list_objects": "shiftkit.images.storage",
    "Listed": "shiftkit.images.storage",
    "read_bytes": "shiftkit.images.storage",
    "write_bytes": "shiftkit.images.storage",
    "BITS": "shiftkit.images.dedup",
    "BLOCK_PAIRS": "shiftkit.images.dedup",
    "DIRECT_BITS": "shiftkit.images.dedup",
    "group_ids": "shiftkit.images.dedup",
    "hamming_pairs": "shiftkit.images.dedup",
    "SKEW": "shiftkit.images.dedup",
    "THUMB_RMS": "shiftkit.images.dedup",
    "THUMB_SIZE": "shiftkit.images.dedup",
    "cheap_features": "shiftkit.images.features",
    "image_features": "shiftkit.images.features",
    "property_scale": "shiftkit.images.features",
    "PROPS": "shiftkit.images.features",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
