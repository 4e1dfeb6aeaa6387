"""Why a file is in the quarantine: the one vocabulary of ingest, check, the decoder and the errors.

Imports nothing from shiftkit, so that ``core.errors`` (``ImageDecodeError`` validates its reason
here) and ``core.schema`` can both use it without importing each other.
"""

from __future__ import annotations

from enum import Enum


class QuarantineReason(str, Enum):
    """Why a file is in the quarantine: the one vocabulary of ingest, check and the decoder.

    Each member knows whether it means a broken file (``corrupt``: check counts those against
    ``check.max_corrupt``) and whether it follows from the file's bytes alone (``from_bytes``:
    ingest reuses such a verdict for known bytes instead of decoding them again). A new reason
    is one member here and, when it is corrupt or decided from the bytes, one entry in
    ``_CORRUPT`` / ``_FROM_BYTES`` below.
    """

    EMPTY = "empty"  # zero bytes
    TRUNCATED = "truncated"  # the image data ends early
    NOT_AN_IMAGE = "not_an_image"  # HTML, text, random bytes
    UNSUPPORTED = "unsupported"  # an image Pillow recognises but cannot decode into pixels we can use
    DECOMPRESSION_BOMB = "decompression_bomb"  # more pixels than params allow, detected from the header
    TOO_LARGE = "too_large"  # more bytes than ingest.max_bytes (never read into memory)
    TOO_SMALL = "too_small"  # smaller than the minimum size in params
    OUTSIDE_ROOT = "outside_root"  # a symlink or listing path that resolves outside the data root
    STRAY_FILE = "stray_file"  # a file at the wrong depth of an ImageFolder (not DOMAIN/LABEL/FILE)
    UNREADABLE = "unreadable"  # the file cannot be opened (permissions, vanished, a broken link)
    DUPLICATE = "duplicate"  # the same bytes as a kept file; detail names the kept file
    CONFLICTING_LABEL = "conflicting_label"  # the same bytes under two different labels: every copy
    NAME_NOT_UTF8 = "name_not_utf8"  # a file or folder name that is not valid UTF-8 (path shown escaped)

    @property
    def corrupt(self) -> bool:
        """A broken file (not a policy decision such as too_small or a duplicate)."""
        return self in _CORRUPT

    @property
    def from_bytes(self) -> bool:
        """Decided by decoding the bytes alone, before any comparison with other files."""
        return self in _FROM_BYTES


_CORRUPT = frozenset(
    {
        QuarantineReason.EMPTY,
        QuarantineReason.TRUNCATED,
        QuarantineReason.NOT_AN_IMAGE,
        QuarantineReason.UNSUPPORTED,
        QuarantineReason.DECOMPRESSION_BOMB,
        QuarantineReason.TOO_LARGE,
        QuarantineReason.UNREADABLE,
    }
)
_FROM_BYTES = frozenset(
    {
        QuarantineReason.EMPTY,
        QuarantineReason.TRUNCATED,
        QuarantineReason.NOT_AN_IMAGE,
        QuarantineReason.UNSUPPORTED,
        QuarantineReason.DECOMPRESSION_BOMB,
        QuarantineReason.TOO_SMALL,
    }
)
# every reason's name, in the enum's order (the order of summary.json's by_reason)
QUARANTINE_REASONS = tuple(r.value for r in QuarantineReason)
