"""A messy web-scraped folder built from real MNIST digits, with the expected fate of each file.

``messy_folder(root)`` writes ``root/web`` and ``root/target`` (ImageFolder layout) plus a
folder outside them, and returns {(domain, path): expected} where expected is "manifest" or a
quarantine reason.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests import helpers


def png_bytes(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kw)
    return buf.getvalue()


def jpeg_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def bomb_png(side: int = 30000) -> bytes:
    """A real 1x1 PNG whose IHDR claims side x side pixels (CRC fixed, so the header is valid)."""
    data = bytearray(png_bytes(np.zeros((1, 1), np.uint8)))
    data[16:24] = side.to_bytes(4, "big") + side.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def _put(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def messy_folder(root: Path) -> dict[tuple[str, str], str]:
    x, y = helpers.mnist(60, offset=100)
    web = root / "web"
    expected: dict[tuple[str, str], str] = {}

    def add(domain: str, rel: str, data: bytes, fate: str) -> None:
        _put(root / domain, rel, data)
        expected[(domain, rel)] = fate

    # 30 plain digits
    for i in range(30):
        add("web", f"{y[i]}/d{i:02d}.png", png_bytes(x[i]), "manifest")
    # unusual but valid
    rgb = np.repeat(x[30][..., None], 3, axis=2)
    add("web", f"{y[30]}/cmyk.jpg", jpeg_bytes(Image.fromarray(rgb).convert("CMYK"), quality=95), "manifest")
    photo = Image.fromarray(
        np.repeat(np.kron(x[31][:, :16], np.ones((1, 3), np.uint8))[..., None], 3, axis=2)
    )  # 28 x 48
    exif = photo.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise on display
    add("web", f"{y[31]}/rotated.jpg", jpeg_bytes(photo, exif=exif, quality=95), "manifest")
    add("web", f"{y[32]}/deep16.png", png_bytes(x[32].astype(np.uint16) * 257), "manifest")
    frames = [Image.fromarray(x[33]), Image.fromarray(x[34])]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    add("web", f"{y[33]}/animated.gif", buf.getvalue(), "manifest")
    rgba = np.dstack([rgb, np.where(x[35] > 0, 255, 0).astype(np.uint8)])
    rgba[..., :3] = np.repeat(x[35][..., None], 3, axis=2)
    add("web", f"{y[35]}/alpha.png", png_bytes(rgba), "manifest")
    pal = Image.fromarray(x[36]).convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    add("web", f"{y[36]}/palette.png", buf.getvalue(), "manifest")
    # a near copy: the same digit re-encoded as a JPEG (other bytes, nearly the same phash)
    add("web", f"{y[0]}/d00_recoded.jpg", jpeg_bytes(Image.fromarray(x[0]), quality=95), "manifest")
    # broken files
    good = png_bytes(x[40])
    add("web", f"{y[40]}/broken_download.png", good[: len(good) // 2], "truncated")
    jpg = jpeg_bytes(Image.fromarray(rgb), quality=90)
    add("web", f"{y[30]}/broken_download.jpg", jpg[: len(jpg) * 2 // 3], "truncated")
    add("web", "1/empty.jpg", b"", "empty")
    add("web", "2/page.jpg", b"<!DOCTYPE html><html><head><title>404 Not Found</title></head></html>\n", "not_an_image")
    add("web", "2/noise.png", np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(), "not_an_image")
    add("web", "3/bomb.png", bomb_png(), "decompression_bomb")
    add("web", "3/tiny.png", png_bytes(np.full((4, 4), 128, np.uint8)), "too_small")
    # the same picture under several names, classes and domains
    add("web", f"{y[1]}/d01_copy.png", png_bytes(x[1]), "duplicate")
    add("web", f"{y[2]}/d02_2.png", png_bytes(x[2]), "duplicate")
    conflict = png_bytes(x[41])
    add("web", f"{y[41]}/conflict.png", conflict, "conflicting_label")
    add("web", f"{(int(y[41]) + 1) % 10}/conflict.png", conflict, "conflicting_label")
    # the same bytes in web and target: the target's copy is kept (target images are the scarce ones)
    add("target", f"{y[3]}/from_web.png", png_bytes(x[3]), "manifest")
    expected[("web", f"{y[3]}/d03.png")] = "duplicate"
    # stray files
    add("web", "README.txt", b"scraped 2024-01-01\n", "stray_file")
    add("web", f"{y[4]}/sub/deeper.png", png_bytes(x[42]), "stray_file")
    # links
    outside = root / "elsewhere"
    outside.mkdir(exist_ok=True)
    (outside / "secret.png").write_bytes(png_bytes(x[43]))
    os.symlink(outside / "secret.png", web / "5" / "link_out.png")
    expected[("web", "5/link_out.png")] = "outside_root"
    os.symlink(web / "5" / "missing.png", web / "5" / "dangling.png")
    expected[("web", "5/dangling.png")] = "unreadable"
    os.symlink(web / f"{y[5]}" / "d05.png", web / f"{y[5]}" / "link_in.png")
    expected[("web", f"{y[5]}/link_in.png")] = "duplicate"  # a link to a kept file: same bytes
    os.symlink(web / "3", web / "link_to_folder")
    expected[("web", "link_to_folder")] = "stray_file"  # links to folders are not followed
    # target: real 8x8 load_digits
    tx, ty = helpers.digits(20)
    for i in range(20):
        add("target", f"{ty[i]}/t{i:02d}.png", png_bytes(tx[i]), "manifest")
    return expected


def count_files(root: Path) -> int:
    """Regular files and links under root (what ingest must account for)."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        n += len(filenames)
        n += sum(1 for d in dirnames if os.path.islink(os.path.join(dirpath, d)))
    return n
