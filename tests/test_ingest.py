import contextvars
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import polars as pl
import pytest

from shiftkit.cli import run as cli
from shiftkit.core.console import output_to, stderr_console
from shiftkit.core.errors import ConfigError, DataError, InputPathError
from shiftkit.core.reasons import QUARANTINE_REASONS
from shiftkit.ingest import stage as ingest_mod
from shiftkit.ingest.params import IngestParams
from shiftkit.ingest.walk import read_listing
from tests import helpers
from tests.ingest_helpers import bomb_png, count_files, messy_folder, png_bytes


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    expected = messy_folder(root)
    out = root / "out"
    result = ingest_mod.ingest({"web": root / "web", "target": root / "target"}, out, workers=1)
    return root, expected, out, result


def _tables(out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(out / "manifest.parquet"), pl.read_parquet(out / "quarantine.parquet")


def test_every_file_is_accounted_for_once_with_its_reason(messy):
    root, expected, out, result = messy
    man, qua = _tables(out)
    n_files = count_files(root / "web") + count_files(root / "target")
    assert n_files == len(expected)
    assert man.height + qua.height == n_files == result.files
    got = {(d, p): "manifest" for d, p in man.select("domain", "path").iter_rows()}
    for d, p, r in qua.select("domain", "path", "reason").iter_rows():
        assert (d, p) not in got
        got[(d, p)] = r
    assert got == expected
    assert set(qua["reason"]) <= set(QUARANTINE_REASONS)
    assert sum(result.by_reason.values()) == qua.height
    assert man["image_id"].n_unique() == man.height


def test_duplicates_name_the_kept_file_and_cross_domain_copies_are_summarised(messy):
    _, _, out, result = messy
    _, qua = _tables(out)
    details = dict(qua.select(pl.concat_str("domain", pl.lit(":"), "path"), "detail").iter_rows())
    copy = next(k for k in details if k.endswith("d01_copy.png"))
    assert details[copy].startswith("the same bytes as ") and "d01.png in domain web" in details[copy]
    assert "d05.png" in details[next(k for k in details if k.endswith("link_in.png"))]
    conflicts = qua.filter(pl.col("reason") == "conflicting_label")
    assert conflicts.height == 2 and conflicts["label"].n_unique() == 2
    cross = result.summary["cross_domain_copies"]
    assert cross["groups"] == 1
    assert {f["domain"] for f in cross["examples"][0]["files"]} == {"web", "target"}


@pytest.mark.parametrize(
    "name, fmt, mode, size",
    [
        ("cmyk.jpg", "JPEG", "CMYK", (28, 28)),
        ("rotated.jpg", "JPEG", "RGB", (28, 48)),  # stored 48x28, EXIF orientation 6
        ("deep16.png", "PNG", "I;16", (28, 28)),
        ("animated.gif", "GIF", "P", (28, 28)),
        ("alpha.png", "PNG", "RGBA", (28, 28)),
        ("palette.png", "PNG", "P", (28, 28)),
    ],
    ids=["cmyk", "exif-rotated", "16-bit", "animated-gif", "rgba", "palette-transparent"],
)
def test_unusual_but_valid_images_keep_their_size(messy, name, fmt, mode, size):
    _, _, out, _ = messy
    man, _ = _tables(out)
    row = man.filter(pl.col("path").str.ends_with("/" + name)).row(0, named=True)
    assert (row["format"], row["mode"], (row["width"], row["height"])) == (fmt, mode, size)
    assert 0.0 < row["brightness"] < 1.0 and row["blur"] > 0


def test_near_copies_share_a_dup_group(messy):
    _, _, out, _ = messy
    man, _ = _tables(out)
    a = man.filter(pl.col("path").str.ends_with("d00.png")).row(0, named=True)
    b = man.filter(pl.col("path").str.ends_with("d00_recoded.jpg")).row(0, named=True)
    # named after the earliest member in (drop, image_id) order
    assert a["dup_group"] == b["dup_group"] == min(a["image_id"], b["image_id"])
    assert man["dup_group"].n_unique() < man.height


def test_bomb_header_is_refused_fast_without_allocating_pixels(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(30000))
    ingest_mod._init_worker(frozenset(), (89_478_485, 8, 255, 536_870_912))
    tracemalloc.start()
    t = time.perf_counter()
    (record,) = ingest_mod._process((str(tmp_path), ["bomb.png"]))
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert record[1:] == ("bad", ("decompression_bomb", record[2][1]))
    assert "30000x30000" in record[2][1]
    assert seconds < 0.5
    assert peak < 5_000_000  # 30000 x 30000 grey pixels would be 900 MB


def test_two_runs_give_byte_identical_tables_whatever_the_workers(messy, tmp_path):
    root, _, out, _ = messy
    other = root / "out_again"
    shutil.rmtree(other, ignore_errors=True)
    ingest_mod.ingest({"web": root / "web", "target": root / "target"}, other, workers=2)
    for name in ("manifest.parquet", "quarantine.parquet", "summary.json"):
        assert (out / name).read_bytes() == (other / name).read_bytes(), name


def test_rerun_with_nothing_new_is_byte_identical_and_decodes_nothing(tmp_path):
    x, y = helpers.mnist(30, offset=500)
    helpers.write_folder(tmp_path / "web", x, y)
    out = tmp_path / "out"
    first = ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    assert first.decoded == 30 and second.decoded == 0 and second.new_files == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_new_files_get_a_new_drop_and_only_they_are_decoded(tmp_path):
    x, y = helpers.mnist(40, offset=700)
    helpers.write_folder(tmp_path / "web", x[:30], y[:30])
    out = tmp_path / "out"
    ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    old = pl.read_parquet(out / "manifest.parquet")
    helpers.write_folder(tmp_path / "web", x[30:], y[30:], prefix="new")
    (tmp_path / "web" / "0" / "bad.jpg").write_bytes(b"<html></html>")
    res = ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    man, qua = _tables(out)
    assert res.drop == 2 and res.decoded == 11 and res.new_files == 11
    assert set(man.filter(pl.col("drop") == 2)["path"].str.split("/").list.get(1).str.head(3)) == {"new"}
    assert man.filter(pl.col("drop") == 2).height == 10
    assert qua.row(0, named=True)["drop"] == 2
    # old rows keep their drop, their properties and their near-duplicate group names
    assert man.filter(pl.col("drop") == 1).drop("dup_group").equals(old.drop("dup_group"))
    kept = man.join(old.select("image_id", pl.col("dup_group").alias("old_group")), on="image_id")
    assert (kept["dup_group"] == kept["old_group"]).sum() >= kept.height - 2


def test_vanished_files_leave_the_tables(tmp_path):
    x, y = helpers.mnist(20, offset=900)
    paths = helpers.write_folder(tmp_path / "web", x, y)
    out = tmp_path / "out"
    ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    paths[0].unlink()
    res = ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    man, _ = _tables(out)
    assert res.vanished == 1 and res.new_files == 0 and res.drop == 1
    assert man.height == 19 and paths[0].relative_to(tmp_path / "web").as_posix() not in man["path"].to_list()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_listing_rows_resolve_against_the_listing_folder(tmp_path, suffix):
    x, y = helpers.mnist(3, offset=1200)
    data = tmp_path / "data"
    helpers.write_folder(data / "imgs", x, y)
    (tmp_path / "outside.png").write_bytes(png_bytes(x[0]))
    rows = {
        "path": [f"imgs/{y[0]}/img_00000.png", f"imgs/{y[1]}/img_00001.png", "../outside.png", "imgs/missing.png"],
        "label": ["a", "b", "a", "c"],
        "domain": ["web", "target", "web", "web"],
    }
    listing = data / f"list.{suffix}"
    df = pl.DataFrame(rows)
    df.write_csv(listing) if suffix == "csv" else df.write_parquet(listing)
    ingest_mod.ingest({}, tmp_path / "out", listing=listing, workers=1)
    man, qua = _tables(tmp_path / "out")
    assert sorted(man.select("domain", "label").iter_rows()) == [("target", "b"), ("web", "a")]
    assert set(man["root"]) == {"../data"}
    assert dict(qua.select("path", "reason").iter_rows()) == {
        "../outside.png": "outside_root",
        "imgs/missing.png": "unreadable",
    }


def test_params_decide_too_small_and_reused_verdicts_follow_them(tmp_path):
    x, y = helpers.mnist(2, offset=1300)
    helpers.write_folder(tmp_path / "web", x, y)
    out = tmp_path / "out"
    ingest_mod.ingest({"web": tmp_path / "web"}, out, params=IngestParams(min_size=30), workers=1)
    assert set(pl.read_parquet(out / "quarantine.parquet")["reason"]) == {"too_small"}
    res = ingest_mod.ingest({"web": tmp_path / "web"}, out, params=IngestParams(min_size=8), workers=1)
    assert res.accepted == 2 and res.decoded == 2


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"domains": {"web": "nope"}}, InputPathError, "domain 'web', nope, does not exist"),
        ({"domains": {"bad/name": "."}}, ConfigError, "domain name 'bad/name'"),
        ({"domains": {}}, ConfigError, "at least one --domain"),
        ({"domains": {}, "listing": "missing.csv"}, InputPathError, "Listing missing.csv does not exist"),
    ],
    ids=["missing-folder", "bad-domain-name", "no-input", "missing-listing"],
)
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ingest_mod.ingest(out=tmp_path / "out", **kwargs)


def test_listing_without_a_column_is_refused(tmp_path):
    listing = tmp_path / "l.csv"
    listing.write_text("path,domain\na.png,web\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) label; expected columns: path, label, domain"):
        read_listing(listing)


def _cli(args, capsys):
    code = cli.main(args)
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def small_web(tmp_path):
    x, y = helpers.mnist(5, offset=1500)
    helpers.write_folder(tmp_path / "web", x, y)
    return tmp_path


@pytest.mark.parametrize(
    "args, match",
    [
        (["ingest", "--domain", "web=does/not/exist"], "does/not/exist, does not exist"),
        (["ingest", "--domain", "web"], "--domain must be NAME=PATH"),
        (["ingest", "--domain", "web=WEB", "--colour", "red"], "No such option: --colour"),
        (["ingest", "--domain", "web=WEB", "--out", "FILE/sub"], "FILE"),
        (["ingest", "--domain", "web=WEB", "--listing", "nope.csv"], "Listing nope.csv does not exist"),
    ],
    ids=["missing-folder", "domain-without-equals", "unknown-option", "unwritable-output", "missing-listing"],
)
def test_cli_bad_input_is_one_line_and_exit_2(small_web, capsys, monkeypatch, args, match):
    monkeypatch.chdir(small_web)
    (small_web / "FILE").write_text("a file, not a folder")
    args = [a.replace("WEB", str(small_web / "web")) for a in args]
    code, err = _cli(args, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert match in err


def test_cli_ingest_prints_the_counts_by_reason(small_web, capsys):
    (small_web / "web" / "0").mkdir(exist_ok=True)
    (small_web / "web" / "0" / "empty.png").write_bytes(b"")
    code, err = _cli(
        ["ingest", "--domain", f"web={small_web / 'web'}", "--out", str(small_web / "m"), "--workers", "1"], capsys
    )
    assert code == 0
    assert "quarantine: empty" in err and "total" in err and "Traceback" not in err
    assert (small_web / "m" / "manifest.parquet").is_file()


def _stage(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"stage_{name}", Path(__file__).resolve().parents[1] / "pipelines" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stage_scripts_run_and_fail_with_one_line(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("example:\n  web_images: 20\n  target_images: 10\n")
    assert _stage("example").main(["--out", str(tmp_path / "raw"), "--params", str(params)]) == 0
    ingest_stage = _stage("ingest")
    raw = tmp_path / "raw"
    args = [
        "--domain",
        f"web={raw / 'web'}",
        "--domain",
        f"target={raw / 'target'}",
        "--out",
        str(tmp_path / "m"),
        "--params",
        str(params),
    ]
    assert ingest_stage.main(args) == 0
    assert "30 files -> 30 in the manifest" in capsys.readouterr().out
    assert ingest_stage.main(["--domain", "web=nowhere", "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err


def test_output_folder_inside_a_root_is_not_ingested(tmp_path):
    x, y = helpers.mnist(6, offset=1700)
    helpers.write_folder(tmp_path / "web", x, y)
    out = tmp_path / "web" / "manifest"
    ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    res = ingest_mod.ingest({"web": tmp_path / "web"}, out, workers=1)
    assert res.files == 6 and res.quarantined == 0 and res.new_files == 0


def test_progress_bar_and_summary_reach_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SHIFTKIT_PROGRESS", "1")
    x, y = helpers.mnist(12, offset=1800)
    helpers.write_folder(tmp_path / "web", x, y)
    (tmp_path / "web" / "stray.txt").write_text("x")
    # a library caller (a fresh context: no CLI turned output on) sees nothing unless it asks
    contextvars.Context().run(ingest_mod.ingest, {"web": tmp_path / "web"}, tmp_path / "quiet", workers=1)
    assert capsys.readouterr().err == ""
    with output_to(stderr_console()):
        ingest_mod.ingest({"web": tmp_path / "web"}, tmp_path / "out", workers=1)
    err = capsys.readouterr().err
    assert "ingest" in err and "12/12" in err  # the bar's final count
    assert "quarantine: stray_file" in err and "13" in err


def test_a_file_name_that_is_not_utf8_is_quarantined_not_a_crash(tmp_path, capsys):
    x, y = helpers.mnist(6, offset=300)
    helpers.write_folder(tmp_path / "web", x, y)
    label = sorted((tmp_path / "web").iterdir())[0]
    with open(os.fsencode(label) + b"/caf\xff\xfe.png", "wb") as fh:
        fh.write(png_bytes(x[0][::-1]))
    code = cli.main(["ingest", "--domain", f"web={tmp_path / 'web'}", "--out", str(tmp_path / "out")])
    assert code == 0 and "Traceback" not in capsys.readouterr().err
    _, qua = _tables(tmp_path / "out")
    row = qua.filter(pl.col("reason") == "name_not_utf8").row(0, named=True)
    assert row["path"] == f"{label.name}/caf\\xff\\xfe.png" and "not valid UTF-8" in row["detail"]


def test_the_same_bytes_in_web_and_target_keep_the_target_copy(tmp_path):
    x, y = helpers.mnist(5, offset=400)
    helpers.write_folder(tmp_path / "web", x, y, prefix="w")
    helpers.write_folder(tmp_path / "target", x[:2], y[:2], prefix="t")  # the same bytes as two web files
    res = ingest_mod.ingest({"web": tmp_path / "web", "target": tmp_path / "target"}, tmp_path / "out", workers=1)
    man, qua = _tables(tmp_path / "out")
    assert res.accepted == 5 and man.filter(pl.col("domain") == "target").height == 2
    dup = qua.filter(pl.col("reason") == "duplicate").sort("path")
    assert dup["domain"].to_list() == ["web", "web"]
    assert all("in domain target (the target domain's copy is kept)" in d for d in dup["detail"])
