import io as _io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from shiftkit.core.errors import ImageDecodeError
from shiftkit.core.reasons import QUARANTINE_REASONS, QuarantineReason
from shiftkit.images import decode as images
from tests import helpers


def _png(arr, **kw) -> bytes:
    b = _io.BytesIO()
    Image.fromarray(arr).save(b, "PNG", **kw)
    return b.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9), ids=lambda o: f"exif{o}")
def test_exif_orientation_matches_pillow(orientation):
    arr = np.random.default_rng(orientation).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = _io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=95)
    got = images.decode(buf.getvalue())
    ref = np.asarray(ImageOps.exif_transpose(Image.open(_io.BytesIO(buf.getvalue()))).convert("RGB"))
    assert got.pixels.shape == ref.shape
    assert np.array_equal(got.pixels, ref)


def test_bomb_is_refused_from_the_header():
    # a real 1x1 PNG whose IHDR is rewritten to claim 30000 x 30000 pixels
    data = bytearray(_png(np.zeros((1, 1), np.uint8)))
    data[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR chunk valid
    with pytest.raises(ImageDecodeError) as err:
        images.decode(bytes(data), max_pixels=10_000_000)
    assert err.value.reason == "decompression_bomb"


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty"), (b"<html><body>404</body></html>", "not_an_image"), (bytes(range(256)) * 4, "not_an_image")],
    ids=["empty", "html", "random"],
)
def test_bad_bytes_get_a_reason(data, reason):
    with pytest.raises(ImageDecodeError) as err:
        images.decode(data)
    assert err.value.reason == reason


def test_truncated_png():
    x, _ = helpers.mnist(1)
    data = _png(x[0])
    with pytest.raises(ImageDecodeError) as err:
        images.decode(data[: len(data) // 2])
    assert err.value.reason == "truncated"


def test_too_small():
    with pytest.raises(ImageDecodeError) as err:
        images.decode(_png(np.zeros((4, 9), np.uint8)), min_size=8)
    assert err.value.reason == "too_small"


def test_modes_normalise_to_grey_or_rgb():
    grey16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    d = images.decode(_png(grey16))
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == (8, 8)
    assert d.pixels.max() == round(63000 * 255 / 65535)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited on the background
    d = images.decode(_png(rgba), background=255)
    assert d.pixels.shape == (8, 8, 3) and (d.pixels == 255).all()
    cmyk = Image.new("CMYK", (9, 9), (0, 0, 0, 0))
    buf = _io.BytesIO()
    cmyk.save(buf, "JPEG")
    d = images.decode(buf.getvalue())
    assert d.mode == "CMYK" and d.pixels.shape == (9, 9, 3)
    assert d.jpeg_quality is not None and 60 <= d.jpeg_quality <= 90  # Pillow's default is 75


def test_properties_separate_the_two_domains():
    web, _ = helpers.mnist(200)
    tgt, _ = helpers.digits(200)
    w = [images.measure(a) for a in web]
    t = [images.measure(a) for a in tgt]
    med = lambda rows, k: float(np.median([r[k] for r in rows]))  # noqa: E731
    assert med(t, "effective_res") < med(w, "effective_res")  # 8x8 digits have less detail
    assert med(t, "extent") > med(w, "extent")  # load_digits fill their frame, MNIST pads
    assert med(t, "blur") < med(w, "blur")


def test_phash_matches_imagehash_closely():
    imagehash = pytest.importorskip("imagehash")
    x, _ = helpers.mnist(50)
    dists = [
        images.hamming(images.phash(images.working_image(a)), int(str(imagehash.phash(Image.fromarray(a))), 16))
        for a in x
    ]
    assert np.median(dists) <= 2


def _orientation_exif(value):
    exif = Image.new("L", (1, 1)).getexif()
    exif[0x0112] = value
    return exif


def _variants():
    x, _ = helpers.mnist(3, offset=2000)
    rgb = np.dstack([x[0], x[1], x[2]])
    tinted = np.dstack([x[0], (x[0] * 0.9).astype(np.uint8), (x[0] * 0.7).astype(np.uint8)])  # mild chroma
    rgba = np.dstack([rgb, np.where(x[1] > 0, 255, 60).astype(np.uint8)])
    big = Image.fromarray(np.kron(tinted, np.ones((9, 9, 1), np.uint8))).filter(ImageFilter.GaussianBlur(3))

    def jpeg(im, **kw):
        buf = _io.BytesIO()
        im.save(buf, "JPEG", **kw)
        return buf.getvalue()

    pal = _io.BytesIO()
    Image.fromarray(x[0]).convert("P").save(pal, "PNG", transparency=0)
    return {
        "png-grey": (_png(x[0]), False),
        "png-rgb": (_png(rgb), False),
        "png-rgb-interlaced": (_png(rgb, compress_level=1), False),
        "png-rgba": (_png(rgba), False),
        "png-16bit": (_png(x[0].astype(np.uint16) * 257), False),
        "png-palette-transparent": (pal.getvalue(), False),
        "jpeg-cmyk": (jpeg(Image.fromarray(rgb).convert("CMYK")), False),
        "jpeg-small": (jpeg(Image.fromarray(rgb), quality=92), False),
        # a JPEG of 128 px or more: libjpeg's grey (Y) output of a reduced DCT-domain decode,
        # close to, not equal to, a full RGB decode converted to grey
        "jpeg-252-reduced": (jpeg(big, quality=92), True),
        "jpeg-reduced-exif-rotated": (jpeg(big.crop((0, 0, 252, 140)), quality=92, exif=_orientation_exif(6)), True),
    }


_CLOSE = {"blur": 0.1, "brightness": 0.01, "contrast": 0.02, "noise": 0.1, "effective_res": 0.1, "extent": 0.15}


@pytest.mark.parametrize("name", list(_variants()), ids=str)
def test_inspect_fast_paths_match_decode_then_measure(name):
    data, approximate = _variants()[name]
    head, props = images.inspect(data)
    full = images.decode(data)
    ref = images.measure(full.pixels)
    assert (head.width, head.height, head.format, head.mode) == (full.width, full.height, full.format, full.mode)
    assert head.jpeg_quality == full.jpeg_quality
    assert images.hamming(props["phash"], ref["phash"]) <= (4 if approximate else 0)
    for key in images.PROPERTY_COLUMNS:
        assert props[key] == pytest.approx(ref[key], rel=_CLOSE[key] if approximate else 1e-6, abs=1e-9), key


@pytest.mark.parametrize(
    "damage, reason",
    [("truncate", "truncated"), ("flip-idat-byte", None), ("flip-ihdr-byte", "not_an_image")],
    ids=["truncated", "corrupt-idat", "corrupt-ihdr"],
)
def test_damaged_pngs_are_refused_by_the_fast_path_too(damage, reason):
    x, _ = helpers.mnist(1, offset=3000)
    data = bytearray(_png(np.dstack([x[0]] * 3)))
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip-idat-byte":
        data[data.find(b"IDAT") + 10] ^= 0xFF
    else:
        data[18] ^= 0x01  # width, under a now wrong CRC
    with pytest.raises(ImageDecodeError) as err:
        images.inspect(bytes(data))
    assert err.value.reason in ((reason,) if reason else ("truncated", "unsupported"))


def test_blur_is_the_variance_of_the_mirrored_laplacian():
    import cv2

    x, _ = helpers.mnist(20, offset=4000)
    t, _ = helpers.digits(20)
    for a in [*x, *t, np.full((64, 64), 9, np.uint8)]:
        w = images.working_image(a)
        ref = cv2.Laplacian(w, cv2.CV_32F, borderType=cv2.BORDER_REFLECT).astype(np.float64).var()
        assert images.measure(a)["blur"] == pytest.approx(ref, rel=1e-5, abs=1e-12)


def test_decode_errors_carry_a_member_of_the_one_quarantine_vocabulary():
    with pytest.raises(ImageDecodeError) as info:
        images.decode(b"")
    assert info.value.reason is QuarantineReason.EMPTY
    with pytest.raises(TypeError, match="QuarantineReason"):
        ImageDecodeError("emtpy", "a typo is not a reason")


def test_the_reason_enum_knows_corrupt_and_byte_decided_reasons():
    corrupt = {r.value for r in QuarantineReason if r.corrupt}
    from_bytes = {r.value for r in QuarantineReason if r.from_bytes}
    assert {"empty", "truncated", "unreadable"} <= corrupt
    assert "too_small" in from_bytes and "too_small" not in corrupt  # a policy, decided by decoding
    assert not {"duplicate", "conflicting_label", "outside_root"} & (corrupt | from_bytes)
    assert QUARANTINE_REASONS == tuple(r.value for r in QuarantineReason)
