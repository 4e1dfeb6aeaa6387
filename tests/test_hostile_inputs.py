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
    write_folder(tmp_path / "raw" / "target", *digits(40, offset=200), prefix="t", size=16)
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
    # through the worker processes of the cache (runtime.imap; two chunks of 256): the same line
    with pytest.raises(UndecodableImage, match=r"bad\.png no longer decodes"):
        build_cache([str(good)] * 300 + [str(bad)], 8, 1, workers=2)
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
    assert "; correlation " in line and "mean difference" in line
    assert "/printed_" not in md


# --- finding 6: a file name cannot inject text into the terminal, check.md, report.md or HTML -------

EVIL = "\x1b[2J\x1b[31mok\n| error | `x` | all clear [bold]|\u202e.png"


def test_control_characters_in_names_are_escaped_in_every_medium():
    from shiftkit.core.text import md_code, md_text, rich_text, safe_name
    from shiftkit.report import html, markdown

    assert safe_name(EVIL) == "\\x1b[2J\\x1b[31mok\\x0a| error | `x` | all clear [bold]|\\u202e.png"
    for shown in (md_text(EVIL), md_code(EVIL), rich_text(EVIL), markdown._cell(EVIL), html._e(EVIL)):
        assert "\x1b" not in shown and "\u202e" not in shown, shown
    assert "\n" not in md_text(EVIL) + md_code(EVIL) + markdown._cell(EVIL)
    assert md_code("a`b") == "`a\\x60b`" and "\\|" in md_text(EVIL) and "\\[bold]" in rich_text(EVIL)


def test_check_escapes_a_drop_file_named_with_ansi_escapes_and_a_newline(small_folder, tmp_path):
    r = run_cli(["ingest", "--domain", f"web={small_folder}/web", "--domain", f"target={small_folder}/target",
                 "--out", tmp_path / "m"])
    assert r.code == 0, r.stderr
    assert run_cli(["split", "--manifest", tmp_path / "m" / "manifest.parquet", "--out", tmp_path / "s",
                    "--dev", "4", "--test", "4"]).code == 0
    man = pl.read_parquet(tmp_path / "m" / "manifest.parquet").join(
        pl.read_parquet(tmp_path / "s" / "splits.parquet"), on="image_id")
    dev = man.filter(pl.col("split") == "dev").sort("path").row(0, named=True)
    drop = tmp_path / "drop" / "target" / dev["label"]
    drop.mkdir(parents=True)
    (drop / EVIL).write_bytes((small_folder / "target" / dev["path"]).read_bytes())  # a byte copy: named as a leak
    r = run_cli(["check", f"target={tmp_path}/drop/target", "--reference", tmp_path / "m" / "manifest.parquet",
                 "--splits", tmp_path / "s" / "splits.parquet", "--out", tmp_path / "c"])
    assert r.code == 1, r.stderr
    md = (tmp_path / "c" / "check.md").read_text()
    assert "\\x1b[2J\\x1b[31mok\\x0a" in md and "\x1b" not in md and "\u202e" not in md
    assert not any(line.startswith("| error | `x`") for line in md.splitlines())  # no line of the sender's own
    assert "\x1b" not in r.stdout + r.stderr and "\u202e" not in r.stdout + r.stderr
    # one line per finding and the verdict: the name's newline did not start a line of its own
    assert len(r.lines) == 2 and r.lines[0].startswith("error [leakage] ") and "check failed" in r.lines[1]
    assert "\\x1b[2J" in r.lines[0]


# --- finding 12: the rest, by kind ------------------------------------------------------------------
# folders and listings: a file 1,100 folders deep, a blank label folder, listing values of the wrong
# type or encoding, URLs in a listing


def _ingest(tmp_path: Path, *args) -> tuple:
    r = run_cli(["ingest", *map(str, args), "--out", tmp_path / "m"])
    return r, (_quarantine(tmp_path / "m") if r.code == 0 else {})


def test_deep_folders_and_blank_labels_are_quarantined_not_a_recursion_error(small_folder, tmp_path, monkeypatch):
    import os

    monkeypatch.chdir(small_folder / "web")
    for _ in range(1100):  # step by step: the whole path is longer than the system allows in one call
        os.mkdir("d")
        os.chdir("d")
    Path("x.png").write_bytes(_png(digits(1)[0][0]))
    monkeypatch.chdir(tmp_path)
    (small_folder / "web" / " ").mkdir()
    (small_folder / "web" / " " / "blank.png").write_bytes(_png(digits(1, offset=5)[0][0]))
    try:
        r, q = _ingest(tmp_path, "--domain", f"web={small_folder}/web")
    finally:  # bottom up, step by step (pytest's own clean-up would recurse 1,100 deep)
        os.chdir(small_folder / "web")
        for _ in range(1100):
            os.chdir("d")
        os.remove("x.png")
        for _ in range(1100):
            os.chdir("..")
            os.rmdir("d")
        os.chdir(tmp_path)
    assert r.code == 0, r.stderr
    reason, detail = q["d/" * 64 + "d"]
    assert reason == "stray_file" and "65 levels deep" in detail
    assert q[" /blank.png"][0] == "stray_file" and "blank" in q[" /blank.png"][1]


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("nul", ("NUL byte", "row 2")),
        ("list-path", ("column path", "List")),
        ("struct-label", ("column label", "Struct")),
    ],
)
def test_a_listing_of_the_wrong_shape_is_one_line_naming_it(small_folder, tmp_path, kind, names):
    files = ["web/1/w_00001.png", "web/2/w_00002.png"]
    if kind == "nul":
        df = pl.DataFrame({"path": [files[0], "web/2/\x00w.png"], "label": ["1", "2"], "domain": ["web"] * 2})
    elif kind == "list-path":
        df = pl.DataFrame({"path": [[f] for f in files], "label": ["1", "2"], "domain": ["web"] * 2})
    else:
        df = pl.DataFrame({"path": files, "label": [{"a": 1}, {"a": 2}], "domain": ["web"] * 2})
    listing = small_folder / "listing.parquet"
    df.write_parquet(listing)
    r = run_cli(["ingest", "--listing", listing, "--out", tmp_path / "m"])
    assert_bad_input(r, str(listing), *names)
    assert not (tmp_path / "m" / "manifest.parquet").exists()


def test_utf16_listings_are_read_and_urls_in_a_listing_are_never_normalised(small_folder, tmp_path):
    rows = "path,label,domain\nweb/1/w_00001.png,1,web\nhttps://example.com/a.png,1,web\n"
    listing = small_folder / "listing.csv"
    listing.write_text(rows, encoding="utf-16")  # with its byte-order mark, as Excel saves "Unicode text"
    r, q = _ingest(tmp_path, "--listing", listing)
    assert r.code == 0, r.stderr
    assert q["https://example.com/a.png"][0] == "outside_root" and "a URL" in q["https://example.com/a.png"][1]
    assert pl.read_parquet(tmp_path / "m" / "manifest.parquet")["path"].to_list() == ["web/1/w_00001.png"]


# values that were never validated: model.json, report.properties, a recipe nested 50,000 deep


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("img_size", 0, "from 8 to 4096"),
        ("img_size", -5, "from 8 to 4096"),
        ("img_size", "32", "from 8 to 4096"),
        ("img_size", 10**12, "from 8 to 4096"),
        ("mean", [], "finite number"),
        ("std", [0, 0, 0], "positive"),
        ("labels", "0123", "list of label names"),
        (None, None, "expected a json object"),
    ],
)
def test_model_json_values_are_validated_by_name(tmp_path, key, value, expected):
    import json

    from shiftkit.core.errors import ModelError
    from shiftkit.training.models import read_meta

    meta = {"model": "resnet18", "labels": ["0", "1"], "img_size": 32, "channels": 3,
            "mean": [0.5] * 3, "std": [0.25] * 3}
    if key is None:
        meta = None
    else:
        meta[key] = value
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=expected) as err:
        read_meta(tmp_path / "model.json")
    assert str(tmp_path / "model.json") in str(err.value) and (key is None or key in str(err.value))


def test_repeated_report_properties_and_deeply_nested_recipes_are_refused(tmp_path):
    from shiftkit.core.errors import ConfigError
    from shiftkit.params import load_params
    from shiftkit.synth.recipe import Recipe, load_recipe, reproduce

    (tmp_path / "params.yaml").write_text("report: {properties: [blur, blur]}\n")
    with pytest.raises(ConfigError, match=r"report\.properties.*at most once"):
        load_params(tmp_path / "params.yaml")
    nested = "[" * 50_000 + "]" * 50_000
    (tmp_path / "recipe.json").write_text(nested)
    with pytest.raises(ConfigError, match=r"recipe\.json is nested too deeply"):
        load_recipe(tmp_path / "recipe.json")
    with pytest.raises(ConfigError, match="nested too deeply"):
        Recipe.from_json(nested)
    with pytest.raises(ConfigError, match="nested too deeply"):
        reproduce(nested, np.zeros((8, 8), np.uint8))


# processes and interrupts: -j 256 for 3 files, an interrupted check's temporary folder


def _pid(_: int) -> int:
    import os

    return os.getpid()


def test_workers_are_capped_at_the_items_and_the_cores():
    import os

    from shiftkit.runtime.imap import process_map, resolve_workers

    cores = len(os.sched_getaffinity(0))
    assert resolve_workers(256) == cores and resolve_workers(0) == cores
    pids = set(process_map(_pid, range(3), workers=256, chunksize=1))
    assert len(pids) <= min(3, cores)
    assert set(process_map(_pid, range(3), workers=256, chunksize=8)) == {os.getpid()}  # one chunk: inline


def test_an_interrupted_check_does_not_claim_its_deleted_temporary_folder(small_folder, tmp_path, monkeypatch):
    from shiftkit.check import stage
    from shiftkit.core.console import kept_notes, recording_kept

    r = run_cli(["ingest", "--domain", f"web={small_folder}/web", "--out", tmp_path / "ref"])
    assert r.code == 0, r.stderr

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "apply_rules", interrupted)
    with recording_kept(), pytest.raises(KeyboardInterrupt):
        try:
            stage.run_check([f"web={small_folder}/web"], tmp_path / "ref" / "manifest.parquet", out=tmp_path / "c")
        finally:
            notes = list(kept_notes())
    assert not any("shiftkit-check-" in n for n in notes), notes


def test_labels_in_a_script_the_font_lacks_draw_without_warnings_on_stderr():
    import warnings

    from shiftkit.report import figures

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = figures.confusion(["\U0001f600", "\u732b", "ok"], np.eye(3, dtype=int) * 5)
    assert png.startswith(b"\x89PNG") and not [w for w in caught if "Glyph" in str(w.message)]


def test_a_confusion_matrix_of_many_classes_is_summarised_in_analysis_json():
    import json

    from shiftkit.report.jsonout import MAX_DENSE_CONFUSION, _confusion

    labels = [f"c{i}" for i in range(1000)]
    cm = np.zeros((1000, 1000), np.int64)
    np.fill_diagonal(cm, 3)
    cm[5, 7] = 2
    out = _confusion(labels, cm)
    assert out["matrix"] is None and [5, 7, 2] in out["nonzero"] and len(out["nonzero"]) == 1001
    assert len(json.dumps(out)) < 40_000  # the dense matrix: over 2 MB of json (136 MB at 10,000 classes)
    small = _confusion(labels[:MAX_DENSE_CONFUSION], cm[:MAX_DENSE_CONFUSION, :MAX_DENSE_CONFUSION])
    assert small["matrix"][5][5] == 3


def test_an_interrupted_train_says_which_model_it_kept(tmp_path):
    from shiftkit.core.console import kept_notes, recording_kept
    from shiftkit.training.checkpoint import _note_model_kept

    with recording_kept():
        _note_model_kept(tmp_path / "models", 1)
        _note_model_kept(tmp_path / "models", 2)
        assert kept_notes() == [f"the model in {tmp_path / 'models'} after epoch 2 (continue with --resume)"]
