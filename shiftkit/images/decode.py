"""Safe decoding of one image and the properties shiftkit measures on it.

``decode`` never trusts a file: it reads the header first (so a decompression bomb is refused
before its pixels are allocated), applies EXIF orientation, keeps the first frame of an
animation, and normalises every mode to 8-bit grey ("L") or RGB. Whatever cannot be used raises
``ImageDecodeError`` with a ``reasons.QuarantineReason``.

``measure`` computes the properties of the manifest (blur, brightness, contrast, effective
resolution, noise, extent) on a fixed working size, so that they compare across image sizes,
and ``phash`` the 64-bit DCT perceptual hash. All of them are cheap (tens of microseconds).
"""

from __future__ import annotations

import functools
import io
import math
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from shiftkit.core.errors import ImageDecodeError
from shiftkit.core.reasons import QuarantineReason as Reason
from shiftkit.images.reading import MAX_BYTES, read_source

WORK_SIZE = 64  # side of the square grey image the properties are measured on
PHASH_SIZE = 32  # side of the thumbnail the perceptual hash's DCT is taken of
EFFECTIVE_RES_ENERGY = 0.98  # share of the AC energy an effective resolution must keep

ImageFile.LOAD_TRUNCATED_IMAGES = False
cv2.setNumThreads(1)  # one image per process: threads would only fight the worker pool
# A broken file is the quarantine's business: OpenCV's decoder warnings would only be noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# EXIF orientation -> the numpy operations that undo it (applied in order)
_ORIENT_SWAPS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Decoded:
    """A decoded image: pixels as uint8 (H, W) grey or (H, W, 3) RGB, and what was stored."""

    pixels: np.ndarray
    format: str
    mode: str  # as stored, before normalisation
    jpeg_quality: float | None
    frames: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def _orientation(im: Image.Image) -> int:
    if "exif" not in im.info and im.format not in ("TIFF", "MPO"):
        return 1
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientations as in the TIFF spec: 2 mirror, 3 rotate 180, 4 flip, 5 transpose,
    # 6 rotate 270 (i.e. 90 clockwise), 7 transverse, 8 rotate 90 counter-clockwise.
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1, :]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return np.swapaxes(arr[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def jpeg_quality(im: Image.Image) -> float | None:
    """Estimate the IJG quality (1..100) of a JPEG from its luminance quantisation table."""
    tables = getattr(im, "quantization", None)
    if not tables:
        return None
    table = tables.get(0)
    if table is None or len(table) != 64:
        return None
    q = np.asarray(table, dtype=np.float64)
    # libjpeg's standard luminance table, in the same (zigzag) order as Pillow returns
    std = np.asarray(_STD_LUMA_ZIGZAG, dtype=np.float64)
    scale = float(np.mean(q * 100.0 / std))
    if scale <= 0:
        return 100.0
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(min(100.0, max(1.0, round(quality, 1))))


_STD_LUMA_ZIGZAG = (
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40,
    26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
    56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
    95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
)  # fmt: skip


def _to_uint8(im: Image.Image, background: int) -> np.ndarray:
    """Normalise any decoded Pillow image to uint8 grey (H, W) or RGB (H, W, 3)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        arr = arr.astype(np.float64) if arr.dtype != np.uint16 else arr
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        return np.clip(np.rint(np.asarray(arr, dtype=np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
        mode = "LA"
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "RGBA", "RGBa"):
        arr = np.asarray(im.convert("LA" if mode.startswith("L") else "RGBA"), dtype=np.float32)
        alpha = arr[..., -1:] / 255.0
        colour = arr[..., :-1]
        out = colour * alpha + float(background) * (1.0 - alpha)
        out = np.rint(out).astype(np.uint8)
        return out[..., 0] if out.shape[-1] == 1 else out
    if mode == "L":
        return np.asarray(im)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


@dataclass(frozen=True)
class Header:
    """What the header of an image says, after EXIF orientation (width and height swapped)."""

    width: int
    height: int
    format: str
    mode: str  # as stored, before normalisation
    jpeg_quality: float | None


def _open(data: bytes, max_pixels: int, min_size: int) -> tuple[Image.Image, int]:
    """Open ``data`` and check its header: (the lazily loaded image, its EXIF orientation)."""
    if not data:
        raise ImageDecodeError(Reason.EMPTY, "the file has zero bytes")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(Reason.NOT_AN_IMAGE, "Pillow does not recognise the bytes") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageDecodeError(_inflate_reason(exc, Reason.NOT_AN_IMAGE), str(exc)[:200]) from exc
    _check_size(*im.size, max_pixels, min_size)
    return im, _orientation(im)


def _check_size(w: int, h: int, max_pixels: int, min_size: int) -> None:
    if w <= 0 or h <= 0:
        raise ImageDecodeError(Reason.NOT_AN_IMAGE, f"header claims {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageDecodeError(Reason.DECOMPRESSION_BOMB, f"header claims {w}x{h} = {w * h} pixels, limit {max_pixels}")
    if min(w, h) < min_size:
        raise ImageDecodeError(Reason.TOO_SMALL, f"{w}x{h} pixels, minimum side {min_size}")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_PNG_TO_PILLOW = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"iCCP"}
_PNG_PLAIN_MODES = {(8, 0): "L", (8, 2): "RGB"}  # (bit depth, colour type) -> Pillow's mode
_PNG_FLAGS = {
    "L": cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION,
    "RGB": cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
}


def _plain_png(data: bytes) -> Header | None:
    """The header of the commonest PNG (complete, 8-bit grey or RGB, no transparency, no EXIF),
    read straight from its IHDR chunk; None for anything else, which Pillow then opens."""
    if len(data) < 45 or not data.startswith(_PNG_SIGNATURE) or data[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    if zlib.crc32(data[12:29]) != int.from_bytes(data[29:33], "big") or not data.endswith(_PNG_END):
        return None
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    mode = _PNG_PLAIN_MODES.get((depth, colour))
    if mode is None:
        return None
    # every chunk: transparency or EXIF (as Pillow sees them when it opens a file), and text or
    # ICC chunks anywhere (Pillow refuses one that inflates past its limit, libpng skips it),
    # send the file down Pillow's path, so that ingest accepts exactly what the loaders decode
    pos, end, seen_idat = 33, len(data), False
    while pos + 8 <= end:
        kind = data[pos + 4 : pos + 8]
        seen_idat = seen_idat or kind == b"IDAT"
        if kind in _PNG_TO_PILLOW or (kind == b"tRNS" and not seen_idat):
            return None
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return Header(width=w, height=h, format="PNG", mode=mode, jpeg_quality=None) if seen_idat else None


def _load(im: Image.Image) -> None:
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(Reason.DECOMPRESSION_BOMB, str(exc)[:200]) from exc
    except (OSError, EOFError) as exc:
        msg = str(exc)
        truncated = "truncated" in msg or "broken" in msg or isinstance(exc, EOFError)
        raise ImageDecodeError(Reason.TRUNCATED if truncated else Reason.UNSUPPORTED, msg[:200]) from exc
    except (SyntaxError, ValueError, TypeError, MemoryError, struct.error) as exc:
        reason = _inflate_reason(exc, Reason.UNSUPPORTED)
        raise ImageDecodeError(reason, f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def _inflate_reason(exc: BaseException, otherwise: Reason) -> Reason:  # PNG text/ICC past Pillow's limit: a bomb
    return Reason.DECOMPRESSION_BOMB if "Decompressed data too large" in str(exc) else otherwise


def _header(im: Image.Image, stored_mode: str, orientation: int) -> Header:
    w, h = im.size
    if orientation in _ORIENT_SWAPS:
        w, h = h, w
    fmt = im.format or "UNKNOWN"
    quality = jpeg_quality(im) if fmt in ("JPEG", "MPO") else None
    return Header(width=w, height=h, format=fmt, mode=stored_mode, jpeg_quality=quality)


class _PillowGuard:
    """Our own pixel limit replaces Pillow's global one, and its warnings stay quiet, per call."""

    def __enter__(self) -> None:
        self.saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self.warnings.__exit__(*exc)
        Image.MAX_IMAGE_PIXELS = self.saved


def decode(
    source: str | Path | bytes,
    *,
    max_pixels: int = 89_478_485,
    min_size: int = 1,
    background: int = 255,
    max_bytes: int = MAX_BYTES,
) -> Decoded:
    """Decode one image file (a path or its bytes) safely, at full size.

    Raises:
        ImageDecodeError: reason ``empty``, ``not_an_image``, ``decompression_bomb``, ``too_large``,
            ``too_small``, ``truncated``, ``unsupported`` or ``unreadable``; for a path, the detail names it.
    """
    try:
        return _decode(read_source(source, max_bytes), max_pixels, min_size, background)
    except ImageDecodeError as exc:
        if isinstance(source, bytes) or str(source) in exc.detail:
            raise
        raise ImageDecodeError(exc.reason, f"{source}: {exc.detail}") from exc


def _decode(data: bytes, max_pixels: int, min_size: int, background: int) -> Decoded:
    with _PillowGuard():
        im, orientation = _open(data, max_pixels, min_size)
        stored_mode = im.mode
        frames = int(getattr(im, "n_frames", 1) or 1)
        head = _header(im, stored_mode, orientation)
        _load(im)
        try:
            pixels = _to_uint8(im, background)
        except (OSError, ValueError, TypeError) as exc:
            raise ImageDecodeError(Reason.UNSUPPORTED, f"mode {stored_mode}: {str(exc)[:200]}") from exc
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if orientation != 1:
        pixels = np.ascontiguousarray(_apply_orientation(pixels, orientation))
    return Decoded(pixels=pixels, format=head.format, mode=stored_mode, jpeg_quality=head.jpeg_quality, frames=frames)


def decode_working(
    data: bytes, *, max_pixels: int = 89_478_485, min_size: int = 1, background: int = 255
) -> tuple[Header, np.ndarray]:
    """The header facts and the uint8 grey working image (``WORK_SIZE`` square) of one image.

    What ingest needs, as cheaply as possible: width and height come from the header and the
    properties only from the grey working image. So a JPEG is decoded by libjpeg straight to
    grey and scaled down in the DCT domain (``draft``) to the smallest size that still covers
    the working size, which is faster than a full decode; other formats decode in full, to grey
    when the mode allows. Every byte of the file is still decoded, so truncated data is caught
    as in ``decode``. Call it inside ``quiet_pillow()`` (once for many images).

    Raises:
        ImageDecodeError: as ``decode``.
    """
    head = _plain_png(data)
    if head is not None:
        _check_size(head.width, head.height, max_pixels, min_size)
        # libpng through OpenCV decodes straight to grey, skipping Pillow's parse and its copy
        # out of the image core; on any libpng error it returns None and Pillow decodes below,
        # to name the reason
        # to grey: libpng itself for grey files; for colour ones cvtColor, whose rounding
        # every other path (decode, to_grey) shares, where libpng's own conversion would not
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), _PNG_FLAGS[head.mode])
        if grey is not None and grey.shape[:2] == (head.height, head.width):
            if grey.ndim == 3:
                grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY)
            return head, working_grey(grey)
    im, orientation = _open(data, max_pixels, min_size)
    stored_mode = im.mode
    head = _header(im, stored_mode, orientation)
    if head.format == "JPEG" and stored_mode in ("RGB", "L") and min(im.size) >= 2 * WORK_SIZE:
        # only where libjpeg can actually scale down: then its grey (Y) output is the cheap
        # part too; a small JPEG decodes as in ``decode``, to the same numbers
        im.draft("L", (WORK_SIZE, WORK_SIZE))
    grey = _grey_from_pillow(im, stored_mode, "transparency" not in im.info, background)
    if orientation != 1:
        grey = _apply_orientation(grey, orientation)
    return head, working_grey(grey)


def _grey_from_pillow(im: Image.Image, stored_mode: str, plain: bool, background: int) -> np.ndarray:
    _load(im)
    try:
        if im.mode == "L" and plain:
            grey = np.asarray(im)
        elif im.mode == "RGB" and plain:
            grey = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY)
        else:
            grey = to_grey(_to_uint8(im, background))
    except (OSError, ValueError, TypeError) as exc:
        raise ImageDecodeError(Reason.UNSUPPORTED, f"mode {stored_mode}: {str(exc)[:200]}") from exc
    return grey[..., 0] if grey.ndim == 3 else grey


def quiet_pillow() -> _PillowGuard:
    """Context in which Pillow's own pixel limit and warnings are off (our checks replace them)."""
    return _PillowGuard()


def inspect(
    source: str | Path | bytes,
    *,
    max_pixels: int = 89_478_485,
    min_size: int = 1,
    background: int = 255,
    max_bytes: int = MAX_BYTES,
) -> tuple[Header, dict[str, float | int]]:
    """The header facts and the properties (``measure``) of one image (see ``decode_working``).

    Raises:
        ImageDecodeError: as ``decode``.
    """
    data = read_source(source, max_bytes)
    with _PillowGuard():
        head, work = decode_working(data, max_pixels=max_pixels, min_size=min_size, background=background)
    return head, measure_batch(work[None])[0]


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """uint8 grey (H, W) from grey or RGB pixels."""
    if pixels.ndim == 2:
        return pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)


def working_grey(pixels: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """The square uint8 grey image the properties are measured on (see ``working_image``)."""
    grey = to_grey(pixels)
    h, w = grey.shape
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_LINEAR
        grey = cv2.resize(np.ascontiguousarray(grey), (size, size), interpolation=interp)
    return grey


def working_image(pixels: np.ndarray, size: int = WORK_SIZE) -> np.ndarray:
    """The square float32 grey image in [0, 1] that the properties are measured on."""
    return np.multiply(working_grey(pixels, size), _INV255, dtype=np.float32)


_INV255 = np.float32(1.0 / 255.0)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (``cv2.dct(x) == D @ x @ D.T``)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


_DCT_WORK = _dct_matrix(WORK_SIZE).astype(np.float32)
_DCT_WORK_T = np.ascontiguousarray(_DCT_WORK.T)
# The phash's 8x8 low band straight from a working image: the 8 lowest rows of the 32-point
# DCT times the 2x2 block mean that INTER_AREA takes to halve 64 px to 32.
_HALVE = np.kron(np.eye(PHASH_SIZE), np.full((1, 2), 0.5)) if WORK_SIZE == 2 * PHASH_SIZE else None
_PHASH_LOW = (
    np.ascontiguousarray((_dct_matrix(PHASH_SIZE)[:8] @ _HALVE).astype(np.float32)) if _HALVE is not None else None
)
_PHASH_LOW_T = np.ascontiguousarray(_PHASH_LOW.T) if _PHASH_LOW is not None else None


def noise_sigma(work: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (sigma, in [0, 1] grey units) of a working image."""
    h, w = work.shape
    resp = cv2.filter2D(work, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_ISOLATED)[1:-1, 1:-1]
    return float(cv2.norm(resp, cv2.NORM_L1) * math.sqrt(math.pi / 2.0) / (6.0 * (w - 2) * (h - 2)))


def _median(values: np.ndarray) -> float:
    """np.median of a small 1-d array, without its overhead (a sort of a few hundred values)."""
    s = np.sort(values)
    n = s.size
    mid = n // 2
    return float(s[mid]) if n % 2 else (float(s[mid - 1]) + float(s[mid])) * 0.5


@functools.lru_cache(maxsize=8)
def _border_index(h: int, w: int) -> np.ndarray:
    """Flat indices of the border pixels: top row, bottom row, then left and right columns."""
    rows = np.arange(1, h - 1) * w
    return np.concatenate([np.arange(w), np.arange((h - 1) * w, h * w), rows, rows + (w - 1)])


def content_extent(work: np.ndarray) -> float:
    """Fraction of the frame filled by the bounding box of whatever differs from the border.

    The background level is the median of the border pixels; content is any pixel more than a
    quarter of the image's grey range away from it. A uniform image has extent 0.
    """
    lo, hi, _, _ = cv2.minMaxLoc(work)
    if hi - lo < 1e-3:
        return 0.0
    h, w = work.shape
    border = work.ravel()[_border_index(h, w)]
    bg = _median(border)
    dist = cv2.absdiff(work, bg)  # a Python float is a cv2 scalar: no full-size temporary
    mask = np.greater(dist, 0.25 * (hi - lo)).view(np.uint8)
    _, _, w, h = cv2.boundingRect(mask)  # (0, 0, 0, 0) when nothing differs
    return float(w * h) / float(work.size)


def phash(work: np.ndarray) -> int:
    """64-bit DCT perceptual hash (imagehash's algorithm: 32x32 DCT, 8x8 low band vs median).

    Bits are in row-major order, the first one most significant, so the integer equals
    ``int(str(imagehash.phash(img)), 16)`` up to the thumbnail's resampling filter.
    """
    if _PHASH_LOW is not None and work.shape == (WORK_SIZE, WORK_SIZE):
        return int(_phash_batch(work[None])[0])
    thumb = cv2.resize(work, (PHASH_SIZE, PHASH_SIZE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(thumb)[:8, :8]
    bits = (low > _median(low.ravel())).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _phash_batch(works: np.ndarray) -> np.ndarray:
    """``phash`` of N float32 working images (N, WORK_SIZE, WORK_SIZE), as uint64.

    One stacked product for all (numpy runs the same 2-d product per image, so one image
    alone gets the same bits) and one sort: six calls for N images instead of six per image.
    """
    low = (_PHASH_LOW @ works @ _PHASH_LOW_T).reshape(works.shape[0], 64)
    s = np.sort(low, axis=1)
    median = (s[:, 31].astype(np.float64) + s[:, 32]) * 0.5
    return np.packbits(low > median[:, None], axis=1).view(">u8").ravel().astype(np.uint64)


def thumbnail(work: np.ndarray, size: int = 8) -> bytes:
    """The ``size`` x ``size`` uint8 grey thumbnail (block means) of a uint8 working image, as bytes.

    The second measure that confirms a near copy found by the phash (``dedup.group_ids``).
    """
    return cv2.resize(np.ascontiguousarray(work), (size, size), interpolation=cv2.INTER_AREA).tobytes()


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (a ^ b).bit_count()


def measure(pixels: np.ndarray) -> dict[str, float | int]:
    """The manifest's properties of one decoded image (see ``schema.MANIFEST``)."""
    return measure_work(working_image(pixels))


def measure_batch(works: np.ndarray) -> list[dict[str, float | int]]:
    """``measure_work`` of N uint8 or float working images, (N, WORK_SIZE, WORK_SIZE)."""
    floats = works if works.dtype == np.float32 else np.multiply(works, _INV255, dtype=np.float32)
    hashes = _phash_batch(floats).tolist() if floats.shape[1:] == (WORK_SIZE, WORK_SIZE) else [None] * len(floats)
    return [measure_work(w, h) for w, h in zip(floats, hashes, strict=False)]


def measure_work(work: np.ndarray, _phash: int | None = None) -> dict[str, float | int]:
    """``measure`` of an image already reduced to its float working image (``working_image``).

    At 64x64 pixels the cost is the number of calls, not the arithmetic, so one DCT serves four
    properties: the DC term is n times the mean; by Parseval the AC energy is n^2 times the
    variance; the energy per frequency level gives the effective resolution; and since the
    DCT diagonalises the 3x3 Laplacian under a mirrored border, the Laplacian's variance is
    the energy weighted by its squared eigenvalues (equal to
    ``cv2.Laplacian(work, cv2.CV_32F, borderType=cv2.BORDER_REFLECT).var()``). The phash's low
    band comes from one small matrix product (``_PHASH_LOW``). Batched numpy over many images
    was measured slower: its megabyte temporaries are mapped and unmapped on every call.
    """
    n = work.shape[0]
    coeffs = _DCT_WORK @ work @ _DCT_WORK_T if work.shape == (WORK_SIZE, WORK_SIZE) else cv2.dct(work)
    energy = cv2.multiply(coeffs, coeffs)
    energy[0, 0] = 0.0  # AC only: no cancellation against a large DC term in float32 sums
    # the AC energy with max(u, v) < k is the integral image at (k, k): no per-level sums
    cum = np.diagonal(cv2.integral(energy, sdepth=cv2.CV_32F))[1:]
    ac = max(float(cum[-1]), 0.0)
    eff = float(np.searchsorted(cum, EFFECTIVE_RES_ENERGY * ac) + 1) if ac > 1e-12 else 1.0
    weights = _LAPLACIAN_EIGEN2 if n == WORK_SIZE else _laplacian_eigen2(n)
    return {
        "phash": phash(work) if _phash is None else _phash,
        "blur": float(np.vdot(weights, energy)) / (n * n),
        "brightness": float(coeffs[0, 0]) / n,
        "contrast": math.sqrt(ac) / n,
        "effective_res": eff,
        "noise": noise_sigma(work),
        "extent": content_extent(work),
    }


def _laplacian_eigen2(n: int) -> np.ndarray:
    lam = 2.0 * np.cos(np.pi * np.arange(n) / n) - 2.0
    return np.square(lam[:, None] + lam[None, :]).astype(np.float32)


_LAPLACIAN_EIGEN2 = _laplacian_eigen2(WORK_SIZE)


PROPERTY_COLUMNS = ("blur", "brightness", "contrast", "effective_res", "noise", "extent")


def load_pixels(path: str | Path, *, channels: int = 3, background: int = 255) -> np.ndarray:
    """Decode an image that ingest already accepted, as uint8 (H, W, channels) with 1 or 3 channels.

    Raises:
        ImageDecodeError: when the file cannot be decoded any more.
    """
    px = decode(path, background=background).pixels
    if channels == 1:
        return to_grey(px)[..., None]
    if px.ndim == 2:
        return np.repeat(px[..., None], 3, axis=2)
    return px
