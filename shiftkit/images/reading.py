"""The bytes of one image, read with a size cap: a local file (refused by its size before any
read) or an object in a store (``storage``). Ingest, the loaders of train and evaluate, synth and
check all read through here, so a file bigger than memory is refused the same way everywhere.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from shiftkit.core.errors import ImageDecodeError
from shiftkit.core.reasons import QuarantineReason as Reason
from shiftkit.images import storage

# The default of ``ingest.max_bytes`` (512 MiB): an uncompressed RGB image of the default pixel
# limit (89,478,485 pixels, 268 MB) fits with room to spare. The loaders decode with it too.
MAX_BYTES = 536_870_912


def too_large(size: int, max_bytes: int, where: str = "the file") -> ImageDecodeError:
    """The too_large verdict of a file or object of ``size`` bytes."""
    return ImageDecodeError(
        Reason.TOO_LARGE, f"{where} holds {size:,} bytes, limit {max_bytes:,} (ingest.max_bytes); it was not read"
    )


def read_capped(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a local file, or ``ImageDecodeError(too_large)`` when it holds more than ``max_bytes``.

    The size comes from ``fstat`` before any read (a 1 TB sparse file costs nothing); a file that
    grows while it is read is cut at ``max_bytes + 1`` and refused too.

    Raises:
        OSError: the file cannot be opened or read.
        ImageDecodeError: too_large.
    """
    with open(path, "rb", buffering=0) as fh:  # one read, sized by fstat, no buffer layer
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise too_large(size, max_bytes)
        if size > 0:
            data = fh.readall()
        else:  # a pipe or a special file reports no size: read at most the cap
            data = fh.read(max_bytes + 1) or b""
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes, "the file (grown while read)")
    return data


def read_source(source: str | Path | bytes, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of ``source``: a URL (through ``storage``), a local path, or the bytes themselves.

    Raises:
        ImageDecodeError: unreadable (naming the file) or too_large.
    """
    if isinstance(source, str) and "://" in source:  # an object in a store (shiftkit/images/storage.py)
        try:
            return storage.read_bytes(source, max_bytes)
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a store's client raises its own classes
            raise ImageDecodeError(Reason.UNREADABLE, f"{source}: {str(exc)[:200]}") from exc
    if isinstance(source, (str, Path)):
        try:
            return read_capped(source, max_bytes)
        except OSError as exc:
            # name the file: a stage reading a manifest's images shows this line as it is
            raise ImageDecodeError(Reason.UNREADABLE, f"cannot read {source}: {exc.strerror or exc}") from exc
    return source


def check_header(head: bytes, max_pixels: int) -> None:
    """Raise decompression_bomb when the header in ``head`` (a file's first bytes) claims too many pixels."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our limit, not Pillow's (as decode.quiet_pillow)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w, h = Image.open(io.BytesIO(head)).size
    except Exception:  # noqa: BLE001 - header not within the first bytes: the full decode checks it
        return
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if w * h > max_pixels:
        raise ImageDecodeError(
            Reason.DECOMPRESSION_BOMB,
            f"header claims {w}x{h} = {w * h} pixels, limit {max_pixels} (read from its first {len(head)} bytes only)",
        )


def read_objects(url: str, rels: Sequence[str], max_pixels: int, max_bytes: int = MAX_BYTES) -> list[bytes | Exception]:
    """``storage.read_objects`` with the header bomb check and the size cap: a bomb or an object
    over ``max_bytes`` is an ``ImageDecodeError`` in place of its bytes."""
    return storage.read_objects(url, rels, functools.partial(check_header, max_pixels=max_pixels), max_bytes)
