"""Near-duplicate grouping time over 25k / 50k / 100k real phashes, and its growth per doubling.

``--catch`` measures instead what the groups hold, through the real ingest: every image of a set
(2,000 MNIST digits; the 1,797 load_digits) and a copy of it enlarged 2x and re-encoded as JPEG
are ingested together; the share of copies grouped with their original, the largest group and
the number of groups of several images are printed for the phash alone (connected components
at the radius, as before thumbnails) and for pairs confirmed by the thumbnails (``dedup``).

The hashes are shiftkit phashes of the 60,000 MNIST training digits plus those of their
transposes (real pictures, with the crowded buckets of real phashes). Grouping all-pairs would
grow 4x per doubling; multi-index hashing should stay well below that.

``--confirm`` measures the pixel confirmation of near copies that ``shiftkit check`` applies
(``dedup.closeness`` / ``is_copy``): the share of real copies (re-encoded, resized, lightly
blurred, recompressed) it keeps, and the share of distinct images within the phash radius it
calls copies (MNIST, load_digits, and printed digits drawn over the coarse layout of blurry
upsampled load_digits, the case of issue 25). Measured on 2026-12-03 (shipped MNIST subset, 300
images per row): copies caught, MNIST 28x28: 100% (JPEG q50, 2x + JPEG, half size, blur sigma
0.5, brightness), 99.7% (JPEG 80 -> 70 -> 60), 89.7% (blur 0.7), 4.3% (blur 1.0); load_digits
8x8: 99-100% (JPEG q50, 2x + JPEG, brightness), 91.7% (blur 0.5), 55.3% (JPEG 80 -> 70 -> 60),
30% (half size: 4x4), 0% (blur 0.7 and 1.0 on 8 pixels). False matches: MNIST 1.2% of 243 pairs
within 2 bits, 0.5% of 1,377 within 4; load_digits 0% of 3 / 3.2% of 63; printed look-alikes 0%
of 1,783 / 1,794 (the phash alone: 100% of every row).

    PYTHONPATH=. /work/venv/bin/python benchmarks/dedup.py [--radius 4] [--catch | --confirm]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shiftkit.images import decode as images
from shiftkit.images import dedup  # noqa: E402
from tests import helpers  # noqa: E402  (MNIST: shared if present, else shipped)


def mnist_phashes(n: int) -> np.ndarray:
    """phashes of ``n`` MNIST pictures: the digits, then their transposes (tests/helpers.py mnist_many)."""
    pics = helpers.mnist_many(n)[0]
    return np.array([images.phash(images.working_image(np.ascontiguousarray(p))) for p in pics], dtype=np.uint64)


def catch(radius: int) -> None:
    import tempfile

    import polars as pl
    from PIL import Image

    from shiftkit.ingest.stage import ingest
    from tests import helpers

    mx, my = helpers.mnist(2000, 30000)
    dx, dy = helpers.digits()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, xs, ys in (("MNIST", mx, my), ("load_digits", dx, dy)):
            for q, rs in ((75, Image.BICUBIC), (90, Image.BILINEAR)):
                root = tmp / f"{name}-{q}"
                helpers.write_folder(root, xs, ys, prefix="o")
                for i, (img, lab) in enumerate(zip(xs, ys, strict=False)):
                    im = Image.fromarray(img)
                    im.resize((im.width * 2, im.height * 2), rs).save(
                        root / str(int(lab)) / f"c_{i:05d}.jpg", quality=q
                    )
                ingest({"d": root}, tmp / f"m-{name}-{q}", params=None)
                m = pl.read_parquet(tmp / f"m-{name}-{q}" / "manifest.parquet").sort("drop", "image_id")
                m = m.with_columns(
                    kind=pl.col("path").str.extract(r"/(o|c)_"),
                    i=pl.col("path").str.extract(r"_(\d+)\.").cast(pl.Int64),
                )
                thumbs = np.frombuffer(b"".join(m["thumb"].to_list()), np.uint8).reshape(m.height, -1)
                keys, h = m["image_id"].to_list(), m["phash"].to_numpy()
                for how, groups in (
                    ("phash only", dedup.group_ids(keys, h, radius)),
                    ("phash + thumbnail", dedup.group_ids(keys, h, radius, thumbs=thumbs)),
                ):
                    g = m.with_columns(group=pl.Series(groups))
                    pairs = g.filter(pl.col("kind") == "o").join(g.filter(pl.col("kind") == "c"), on="i")
                    caught = (pairs["group"] == pairs["group_right"]).mean()
                    sizes = g.group_by("group").len()["len"]
                    print(
                        f"{name} 2x JPEG q{q}, radius {radius}, {how}: {caught:.1%} of {pairs.height:,} copies grouped "
                        f"with their original; largest group {sizes.max()}, "
                        f"{int((sizes > 2).sum())} groups of > 2 images"
                    )


def _jpeg(a: np.ndarray, q: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf).convert("L"))


def copies_of(a: np.ndarray) -> dict[str, np.ndarray]:
    """Real near copies of one image: re-encoded, resized, lightly blurred, recompressed, brighter."""
    from PIL import Image, ImageFilter

    im = Image.fromarray(a)
    return {
        "JPEG q50": _jpeg(a, 50),
        "2x bilinear + JPEG q90": _jpeg(np.asarray(im.resize((im.width * 2, im.height * 2), Image.BILINEAR)), 90),
        "2x bicubic + JPEG q75": _jpeg(np.asarray(im.resize((im.width * 2, im.height * 2), Image.BICUBIC)), 75),
        "half size": np.asarray(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.BILINEAR)),
        "blur sigma 0.5": np.asarray(im.filter(ImageFilter.GaussianBlur(0.5))),
        "blur sigma 0.7": np.asarray(im.filter(ImageFilter.GaussianBlur(0.7))),
        "blur sigma 1.0": np.asarray(im.filter(ImageFilter.GaussianBlur(1.0))),
        "JPEG 80 -> 70 -> 60": _jpeg(_jpeg(_jpeg(a, 80), 70), 60),
        "brightness +20": np.clip(a.astype(np.int16) + 20, 0, 255).astype(np.uint8),
    }


def blurry_targets(x: np.ndarray) -> np.ndarray:
    """load_digits as a low-detail target: 8x8 enlarged to 32x32 (bilinear), Gaussian blur 1.5."""
    from PIL import Image, ImageFilter

    blur = ImageFilter.GaussianBlur(1.5)
    return np.stack([np.asarray(Image.fromarray(a).resize((32, 32), Image.BILINEAR).filter(blur)) for a in x])


def printed_on(target: np.ndarray, digit: int) -> np.ndarray:
    """A printed digit (PIL's default font) drawn over the coarse layout of ``target``: the digit's
    detail above the phash's 8x8 DCT band, the target's below it. Its phash equals the target's
    (0-2 bits) although every detail differs: the look-alike a hash-only gate calls a copy."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(im).text((16, 16), str(digit), fill=255, font=ImageFont.load_default(size=26), anchor="mm")
    coeffs = cv2.dct(np.asarray(im, np.float32))
    coeffs[:8, :8] = 0
    return np.clip(target * 0.5 + 64 + cv2.idct(coeffs) * 0.5, 0, 255).round().astype(np.uint8)


def confirm() -> None:
    """How often the pixel confirmation (dedup.closeness / is_copy) keeps real copies and refuses
    distinct look-alikes whose phashes are within the radius (what the hash alone would call copies)."""
    mx = helpers.mnist(3000, 30000)[0]
    dx, dy = helpers.digits()
    print("real near copies caught (the phash alone: whenever within the radius)")
    for name, xs in (("MNIST 28x28", mx[:300]), ("load_digits 8x8", dx[:300])):
        got: dict[str, list[bool]] = {}
        for a in xs:
            for kind, c in copies_of(a).items():
                got.setdefault(kind, []).append(dedup.is_copy(*dedup.closeness(a, c)))
        for kind, ok in got.items():
            print(f"  {name:<16} {kind:<24} {np.mean(ok):6.1%} of {len(ok)}")
    print("distinct images within the phash radius: share confirmed as copies (false matches)")
    t = blurry_targets(dx)
    sets = [("MNIST", mx, mx, None), ("load_digits 8x8", dx, dx, None), ("printed over blurry digits", None, t, dy)]
    for name, xs, ys, labels in sets:
        for radius in (2, 4):
            if labels is not None:  # one constructed look-alike per target image
                xs_ = np.stack([printed_on(t[k], (int(labels[k]) + 1) % 10) for k in range(len(t))])
                d = np.bitwise_count(_phashes(xs_) ^ _phashes(ys))
                pairs = [(xs_[k], ys[k]) for k in np.flatnonzero(d <= radius)]
            else:
                h = _phashes(xs)
                i, j = dedup.hamming_pairs(h, None, radius)
                pairs = [(xs[a], xs[b]) for a, b in zip(i, j, strict=True) if not np.array_equal(xs[a], xs[b])]
            rate = np.mean([dedup.is_copy(*dedup.closeness(a, b)) for a, b in pairs]) if pairs else float("nan")
            print(f"  {name:<32} radius {radius}: {rate:6.1%} of {len(pairs):,} pairs (phash alone: 100%)")


def _phashes(pics: np.ndarray) -> np.ndarray:
    return np.array([images.phash(images.working_image(np.ascontiguousarray(p))) for p in pics], dtype=np.uint64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catch", action="store_true", help="what the groups hold (see above), not the speed")
    ap.add_argument("--confirm", action="store_true", help="catch and false-match rates of check's pixel confirmation")
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.confirm:
        confirm()
        return 0
    if args.catch:
        catch(2 if args.radius == 4 and "--radius" not in (argv or sys.argv) else args.radius)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    hashes = mnist_phashes(max(sizes))
    print(f"phashes of {hashes.size:,} MNIST images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rng = np.random.default_rng(0)
    order = rng.permutation(hashes.size)  # every size draws from originals and transposes alike
    prev = None
    print(f"{'hashes':>8} {'seconds':>8} {'groups':>8} {'pairs':>9} {'x per doubling':>15}")
    for n in sizes:
        h = hashes[order[:n]]
        keys = [f"{k:06d}" for k in range(n)]
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            groups = dedup.group_ids(keys, h, args.radius)
            best = min(best, time.perf_counter() - t)
        pairs = dedup.hamming_pairs(np.unique(h), None, args.radius)[0].size
        ratio = "" if prev is None else f"{(best / prev[1]) ** (1 / np.log2(n / prev[0])):.2f}"
        print(f"{n:>8,} {best:>8.3f} {len(set(groups)):>8,} {pairs:>9,} {ratio:>15}")
        prev = (n, best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
