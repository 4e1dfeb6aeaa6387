"""Images in object storage: a domain root may be an fsspec URL (``s3://bucket/prefix``, ``gs://...``,
``file://...``) instead of a local folder.

Credentials and endpoints come from each store's own environment variables and config files
(for S3: ``AWS_ACCESS_KEY_ID`` / ``AWS_PROFILE``, ``~/.aws/config``, ``AWS_ENDPOINT_URL`` for an
S3-compatible server), never from params.yaml. The driver only lists keys; worker processes
read the bytes themselves (:func:`read_objects`; bytes only, no decoding here), a whole batch of objects concurrently.

Safety rules of the local folders hold here too:

- no key outside the given prefix: a key whose path below the prefix is not a plain
  ``LABEL/FILE`` (``..``, ``.`` or empty segments) is quarantined as ``outside_root``, never read;
- the decompression-bomb check (``decode.read_objects``, which reads through this module) sees
  the first :data:`HEAD_BYTES` of an object from a ranged read, and an object whose header claims
  too many pixels is quarantined without reading the rest (smaller objects come whole in that
  first read);
- every object under the prefix is listed, so each ends in the manifest or the quarantine.

s3fs (``pip install -e '.[s3]'``) or the store's fsspec package is needed only when a URL is given.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shiftkit.core.errors import ConfigError, ImageDecodeError, InputPathError
from shiftkit.core.reasons import QuarantineReason

# First bytes read of every object: the header of a PNG, GIF, WebP or BMP sits in its first
# few dozen bytes, and a JPEG's frame header follows its EXIF and ICC segments (64 KiB at most each).
HEAD_BYTES = 1 << 16
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: Any) -> bool:
    """True for ``scheme://...`` (an fsspec URL), False for a local path."""
    return isinstance(location, str) and bool(_URL.match(location))


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (bucket/prefix, no trailing slash).

    Raises:
        ConfigError: when the URL's protocol has no installed fsspec implementation.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        hint = " (pip install -e '.[s3]')" if url.startswith("s3") else ""
        raise ConfigError(f"Cannot open {url}: {str(exc).splitlines()[0][:200]}{hint}") from exc
    return fs, path.rstrip("/")


def check_root(url: str, what: str) -> str:
    """``url`` without a trailing slash, after checking that something is stored under it.

    Raises:
        InputPathError: when nothing is listed under the URL or the store cannot be reached.
    """
    fs, path = filesystem(url)
    try:
        found = fs.isdir(path)
    except (OSError, ValueError) as exc:  # botocore's errors derive from neither: see _store_error
        raise InputPathError(f"{what}, {url}, cannot be listed: {str(exc).splitlines()[0][:200]}") from exc
    except Exception as exc:  # noqa: BLE001 - a store's client raises its own classes
        raise _store_error(what, url, exc) from exc
    if not found:
        raise InputPathError(f"{what}, {url}, holds no objects (expected {url}/LABEL/FILE).")
    return url.rstrip("/")


def _store_error(what: str, url: str, exc: BaseException) -> InputPathError:
    return InputPathError(f"{what}, {url}, cannot be listed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


@dataclass(frozen=True, slots=True)
class Listed:
    """One object under a root URL: its key below the root, and why it cannot be used (or None)."""

    rel: str
    reason: str | None = None
    detail: str | None = None


def list_objects(url: str, what: str) -> list[Listed]:
    """Every object under ``url`` (recursively), sorted by key, each checked against the layout.

    ``LABEL/FILE`` keys are usable; deeper or shallower keys are ``stray_file``; keys that would
    resolve elsewhere once normalised (``..``, ``.``, empty segments) are ``outside_root``.
    """
    fs, path = filesystem(url)
    try:
        keys = sorted(fs.find(path, withdirs=False))
    except Exception as exc:  # noqa: BLE001 - a store's client raises its own classes
        raise _store_error(what, url, exc) from exc
    out = []
    prefix = path + "/"
    for key in keys:
        if not key.startswith(prefix):  # a store that answers with keys beside the prefix
            out.append(Listed(key, QuarantineReason.OUTSIDE_ROOT, f"the key {key} is not below {path}"))
            continue
        rel = key[len(prefix):]
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(rel) != rel:
            where = posixpath.normpath(key)
            detail = f"the key resolves to {where}, not {prefix}LABEL/FILE"
            out.append(Listed(rel, QuarantineReason.OUTSIDE_ROOT, detail))
        elif len(parts) != 2:
            where = "directly under the prefix" if len(parts) == 1 else f"{len(parts) - 2} level(s) too deep"
            out.append(Listed(rel, QuarantineReason.STRAY_FILE, f"expected DOMAIN/LABEL/FILE; this object is {where}"))
        else:
            out.append(Listed(rel))
    return out


def read_objects(
    url: str, rels: Sequence[str], check_head: Callable[[bytes], None] | None = None, max_bytes: int | None = None
) -> list[bytes | Exception]:
    """The bytes of each object ``url/rel`` (in order), or the exception that stopped its read.

    One ranged read of the first :data:`HEAD_BYTES` of every object, concurrently where the
    store allows it; objects larger than that are passed to ``check_head`` (the decoder's header
    check: an ``ImageDecodeError`` it raises takes the place of their bytes), and only then read
    on, at most to ``max_bytes + 1`` bytes: an object longer than ``max_bytes`` is an
    ``ImageDecodeError`` (too_large) in place of its bytes, never held in memory whole.
    """
    fs, path = filesystem(url)
    keys = [f"{path}/{rel}" for rel in rels]
    heads = fs.cat_ranges(keys, [0] * len(keys), [HEAD_BYTES] * len(keys), on_error="return")
    out: list[bytes | Exception] = []
    rest_of: list[int] = []
    for i, head in enumerate(heads):
        if isinstance(head, Exception):  # S3 refuses a range of an empty object: read it whole to know
            try:
                head = fs.cat_file(keys[i])
            except Exception as exc:  # noqa: BLE001 - the object's own error is what the quarantine names
                head = exc
        if isinstance(head, bytes) and len(head) >= HEAD_BYTES:
            try:
                if check_head is not None:
                    check_head(head)
            except ImageDecodeError as exc:
                head = exc
            else:
                rest_of.append(i)
        out.append(head)
    if rest_of:
        stop = None if max_bytes is None else max_bytes + 1
        tails = fs.cat_ranges([keys[i] for i in rest_of], [HEAD_BYTES] * len(rest_of), [stop] * len(rest_of),
                              on_error="return")
        for i, tail in zip(rest_of, tails, strict=True):
            out[i] = out[i] + tail if isinstance(tail, bytes) else tail
    if max_bytes is not None:
        for i, data in enumerate(out):
            if isinstance(data, bytes) and len(data) > max_bytes:
                out[i] = _too_large(keys[i], max_bytes)
    return out


def _too_large(key: str, max_bytes: int) -> ImageDecodeError:
    return ImageDecodeError(
        QuarantineReason.TOO_LARGE, f"the object {key} holds more than {max_bytes:,} bytes (ingest.max_bytes); not read"
    )


def read_bytes(url: str, max_bytes: int | None = None) -> bytes:
    """The whole object at ``url`` (for decoding one image outside ingest), read to at most
    ``max_bytes + 1`` bytes: a longer object raises ``ImageDecodeError`` (too_large)."""
    fs, path = filesystem(url)
    if max_bytes is None:
        return fs.cat_file(path)
    data = fs.cat_file(path, start=0, end=max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(path, max_bytes)
    return data


def join(root: str, rel: str) -> str:
    """``root/rel`` for a URL root."""
    return f"{root.rstrip('/')}/{rel}"


def write_bytes(url: str, data: bytes) -> None:
    """Write one object (a store's put is atomic: readers see the old object or the new one)."""
    fs, path = filesystem(url)
    fs.pipe_file(path, data)
