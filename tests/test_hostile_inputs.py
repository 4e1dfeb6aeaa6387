"""Hostile input, round 2 (issue 25, findings 5, 6, 10, 11 and 12), grouped by kind.

Each test shows the quality bar of ``tests/test_hostile.py``: bad input is one line on stderr
naming the file, option or value and what was expected, exit 2, never an "internal error"; a file
that cannot be used is quarantined with a reason, never a crash of the whole run.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from shiftkit.core.errors import ImageDecodeError
from shiftkit.core.reasons import QuarantineReason
from tests.helpers import assert_bad_input, digits, run_cli, write_folder


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_bomb(arr: np.ndarray, inflated: int = 4 << 20, before_idat: bool = True) -> bytes:
    """A valid PNG with a zTXt chunk that inflates to ``inflated`` bytes (past Pillow's 1 MB limit)."""
    png = _png(arr)
    z = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\0" * inflated, 9))
    return png[:33] + z + png[33:] if before_idat else png[:-12] + z + png[-12:]


def _quarantine(out: Path) -> dict[str, tuple[str, str]]:
    q = pl.read_parquet(out / "quarantine.parquet")
    return {p: (r, d) for p, r, d in zip(q["path"], q["reason"], q["detail"], strict=True)}


@pytest.fixture
def small_folder(tmp_path) -> Path:
    x, y = digits(12)
    write_folder(tmp_path / "raw" / "web", x, y, prefix="w")
    write_folder(tmp_path / "raw" / "target", x[::-1].copy(), y[::-1].copy(), prefix="t", size=16)
    return tmp_path / "raw"


# --- finding 5: a file bigger than memory is quarantined by its size, never read -------------------


def test_a_sparse_terabyte_file_is_quarantined_as_too_large_by_ingest_and_check(small_folder, tmp_path):
    r = run_cli(["ingest", "--domain", f"web={small_folder}/web", "--domain", f"target={small_folder}/target",
                 "--out", tmp_path / "ref"])
    assert r.code == 0, r.stderr
    x, y = digits(6, offset=100)
    write_folder(tmp_path / "drop" / "web", x, y, prefix="d")
    huge = tmp_path / "drop" / "web" / str(int(y[0])) / "huge.png"
    with open(huge, "wb") as fh:  # sparse: no disk, 1 TB by its size (what truncate -s 1T makes)
        fh.truncate(1 << 40)
    r = run_cli(["ingest", "--domain", f"web={tmp_path}/drop/web", "--out", tmp_path / "m"])
    assert r.code == 0, r.stderr
    reason, detail = _quarantine(tmp_path / "m")[f"{int(y[0])}/huge.png"]
    assert reason == "too_large" and "1,099,511,627,776 bytes" in detail and "ingest.max_bytes" in detail
    # check ingests the drop the same way: a corrupt file there (1 of 7 blocks), never "out of memory"
    r = run_cli(["check", f"web={tmp_path}/drop/web", "--reference", tmp_path / "ref" / "manifest.parquet",
                 "--out", tmp_path / "c"])
    assert r.code == 1 and "out of memory" not in r.stderr and "internal" not in r.stderr, r.stderr
    assert "huge.png" in (tmp_path / "c" / "check.md").read_text() and QuarantineReason.TOO_LARGE.corrupt


def test_the_size_cap_is_a_param_and_covers_store_reads(tmp_path):
    from shiftkit.images import reading, storage

    (tmp_path / "s" / "a").mkdir(parents=True)
    (tmp_path / "s" / "a" / "big.png").write_bytes(_png(np.zeros((300, 300), np.uint8)) + b"\0" * 70_000)
    (tmp_path / "s" / "a" / "ok.png").write_bytes(_png(np.zeros((9, 9), np.uint8)))
    url = f"file://{tmp_path}/s"
    big, ok = reading.read_objects(url, ["a/big.png", "a/ok.png"], 89_478_485, max_bytes=65_536 + 1000)
    assert isinstance(big, ImageDecodeError) and big.reason is QuarantineReason.TOO_LARGE and "a/big.png" in big.detail
    assert isinstance(ok, bytes)
    with pytest.raises(ImageDecodeError, match="too_large"):
        storage.read_bytes(f"{url}/a/big.png", max_bytes=1000)
    with pytest.raises(ImageDecodeError, match="too_large"):
        reading.read_capped(tmp_path / "s" / "a" / "big.png", max_bytes=1000)
    r = run_cli(["ingest", "--domain", f"web={tmp_path}/s", "--out", tmp_path / "m", "--params", _params(
        tmp_path, "ingest: {max_bytes: lots}\n")])
    assert_bad_input(r, "ingest.max_bytes")


def _params(tmp: Path, text: str) -> Path:
    p = tmp / "params.yaml"
    p.write_text(text)
    return p


# --- finding 10: decode failures after ingest name the file; ingest and the loaders agree ------------


@pytest.mark.parametrize("before_idat", [True, False], ids=["zTXt-before-IDAT", "zTXt-after-IDAT"])
def test_a_png_text_bomb_is_refused_by_ingest_as_by_the_loaders(before_idat):
    from shiftkit.images import decode

    bomb = _text_bomb(digits(1)[0][0], before_idat=before_idat)
    verdicts = []
    for read in (lambda b: decode.decode_working(b), lambda b: decode.decode(b)):
        with pytest.raises(ImageDecodeError) as err:
            read(bomb)
        verdicts.append(err.value.reason)
    assert verdicts == [QuarantineReason.DECOMPRESSION_BOMB] * 2
    # a small text chunk is fine in both (the same pixels)
    plain = _png(digits(1)[0][0])
    small = plain[:33] + _chunk(b"tEXt", b"Software\x00x") + plain[33:]
    assert np.array_equal(decode.decode_working(small)[1], decode.decode_working(plain)[1])


def test_an_image_damaged_after_ingest_names_the_file_in_train_and_evaluate_loaders(tmp_path):
    from shiftkit.training.loader import UndecodableImage, build_cache, decode_resized

    good = tmp_path / "good.png"
    good.write_bytes(_png(digits(1)[0][0]))
    bad = tmp_path / "bad.png"
    bad.write_bytes(_png((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8))[:-200])
    with pytest.raises(UndecodableImage, match=r"bad\.png no longer decodes \(truncated") as err:
        decode_resized(str(bad), 8, 1)
    assert "run shiftkit ingest again" in str(err.value)
    # through the worker processes of the cache (runtime.imap): the same one line, naming the file
    with pytest.raises(UndecodableImage, match=r"bad\.png no longer decodes"):
        build_cache([str(good), str(bad), str(good)], 8, 1, workers=2)
    # and as torch's DataLoader hands it back from a worker: the line is taken back out of its text
    wrapped = ("Caught UndecodableImage in DataLoader worker process 0.\nOriginal Traceback (most recent call "
               "last):\n  File \"x.py\", line 1\nshiftkit.training.loader.UndecodableImage: /d/bad.png no longer "
               "decodes (truncated: x)\n")
    assert str(UndecodableImage(wrapped)) == "/d/bad.png no longer decodes (truncated: x)"


def test_image_decode_errors_cross_processes_intact():
    import pickle

    exc = pickle.loads(pickle.dumps(ImageDecodeError(QuarantineReason.TRUNCATED, "a.png: cut")))
    assert exc.reason is QuarantineReason.TRUNCATED and exc.detail == "a.png: cut"


# --- finding 11: the gate does not cry wolf on look-alikes of a low-detail target -----------------


def test_check_passes_printed_digits_that_share_a_phash_with_blurry_dev_images(tmp_path):
    """The reference's target: load_digits enlarged 8x8 -> 32x32 and blurred (low detail); the drop:
    printed digits, each drawn over the coarse layout of a dev/test image so that its phash is
    within 2 bits (the hash alone blocked them: exit 1). A real copy still blocks, with its closeness."""
    import benchmarks.dedup as bench
    from shiftkit.images import decode as images

    x, y = digits(120)
    write_folder(tmp_path / "raw" / "web", *digits(60, offset=500), prefix="w", size=32)
    blurry = bench.blurry_targets(x)
    write_folder(tmp_path / "raw" / "target", blurry, y, prefix="t")
    assert run_cli(["ingest", "--domain", f"web={tmp_path}/raw/web", "--domain", f"target={tmp_path}/raw/target",
                    "--out", tmp_path / "m"]).code == 0
    assert run_cli(["split", "--manifest", tmp_path / "m" / "manifest.parquet", "--out", tmp_path / "s"]).code == 0
    man = pl.read_parquet(tmp_path / "m" / "manifest.parquet").join(
        pl.read_parquet(tmp_path / "s" / "splits.parquet"), on="image_id")
    held = man.filter(pl.col("split").is_in(["dev", "test"]) & (pl.col("domain") == "target")).sort("path")
    drop = tmp_path / "drop" / "web"
    near = 0
    for k, rel in enumerate(held["path"].to_list()[:12]):
        t = np.asarray(Image.open(tmp_path / "raw" / "target" / rel))
        look = bench.printed_on(t, (int(rel.split("/")[0]) + 1) % 10)
        near += images.hamming(bench._phashes(look[None])[0], bench._phashes(t[None])[0]) <= 2
        (drop / str(k % 10)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(look).save(drop / str(k % 10) / f"printed_{k}.png")
    assert near >= 10  # what the hash-only gate called copies of dev/test images
    args = ["check", f"web={drop}", "--reference", tmp_path / "m" / "manifest.parquet",
            "--splits", tmp_path / "s" / "splits.parquet", "--out", tmp_path / "c"]
    r = run_cli(args)
    assert r.code == 0, r.stderr
    # a real copy (enlarged 2x, JPEG) of one of those dev/test images still blocks, and says how close it is
    rel = held["path"][0]
    im = Image.open(tmp_path / "raw" / "target" / rel)
    im.resize((64, 64), Image.BILINEAR).save(drop / "0" / "copy.jpg", quality=90)
    r = run_cli(args)
    assert r.code == 1, r.stderr
    md = (tmp_path / "c" / "check.md").read_text()
    line = next(ln for ln in md.splitlines() if "copy.jpg = near (" in ln)
    assert "; correlation " in line and "mean difference" in line and "t_" in line
    assert "/printed_" not in md
