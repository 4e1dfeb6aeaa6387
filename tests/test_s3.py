"""Images in object storage, against a real S3-compatible server on 127.0.0.1 (moto's, see conftest).

ingest and check read s3:// roots through s3fs (the ordinary client path, endpoint and dummy
credentials from the standard AWS variables), and a DVC remote on that server round-trips a
pipeline output through `dvc push` / `dvc pull`; synth writes its images to an s3:// prefix.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from shiftkit.core.errors import ImageDecodeError
from shiftkit.images import reading, storage
from shiftkit.ingest.example import write_example
from shiftkit.ingest.params import ExampleParams
from shiftkit.params import load_params
from tests import ingest_helpers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bucket(s3_server, tmp_path_factory):
    """s3://shiftkit-test holding the example (web/, target/) and a hostile prefix (odd/)."""
    import s3fs

    local = tmp_path_factory.mktemp("s3-example")
    write_example("digits", local, ExampleParams(web_images=120, target_images=80, seed=1))
    fs = s3fs.S3FileSystem()
    fs.mkdir("shiftkit-test")
    fs.put(str(local / "web"), "shiftkit-test/web", recursive=True)
    fs.put(str(local / "target"), "shiftkit-test/target", recursive=True)
    x, _ = ingest_helpers.helpers.mnist(3, offset=500)
    big_bomb = ingest_helpers.bomb_png() + bytes(200_000)  # header says 30000x30000; 200 KB follow
    odd = {
        "odd/1/good.png": ingest_helpers.png_bytes(x[0]),
        "odd/1/empty.png": b"",
        "odd/1/text.png": b"not an image at all",
        "odd/1/bomb.png": big_bomb,
        "odd/1/../escape.png": ingest_helpers.png_bytes(x[1]),  # a key that normalises out of odd/1
        "odd/loose.png": ingest_helpers.png_bytes(x[2]),  # no label folder
        "odd-sibling/1/beside.png": ingest_helpers.png_bytes(x[2]),  # shares the prefix's first letters
    }
    for key, data in odd.items():
        fs.pipe_file(f"shiftkit-test/{key}", data)
    return {"url": "s3://shiftkit-test", "local": local, "fs": fs}


def test_ingest_from_s3_matches_ingest_from_disk(bucket, tmp_path):
    from shiftkit.ingest.stage import ingest

    params = load_params(REPO / "params.yaml").ingest
    url = bucket["url"]
    res = ingest({"web": f"{url}/web", "target": f"{url}/target/"}, tmp_path / "s3", params=params, workers=2)
    ingest({"web": bucket["local"] / "web", "target": bucket["local"] / "target"}, tmp_path / "disk",
           params=params, workers=2)
    on_s3 = pl.read_parquet(tmp_path / "s3" / "manifest.parquet")
    on_disk = pl.read_parquet(tmp_path / "disk" / "manifest.parquet")
    assert res.accepted == on_s3.height == 200
    assert sorted(on_s3["root"].unique()) == [f"{url}/target", f"{url}/web"]
    assert on_s3.drop("root").equals(on_disk.drop("root"))


def test_split_and_synth_read_their_images_from_an_s3_manifest(bucket, tmp_path):
    from shiftkit.ingest.stage import ingest
    from shiftkit.splits.stage import run_split
    from shiftkit.synth import run_synth

    params = load_params(REPO / "params.yaml")
    url = bucket["url"]
    ingest({"web": f"{url}/web", "target": f"{url}/target"}, tmp_path / "m", params=params.ingest, workers=2)
    run_split(tmp_path / "m" / "manifest.parquet", tmp_path / "s", params.split)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": [{"name": "gaussian_blur", "p": 1.0, "params": {"sigma": [0.5, 1.0]}}]}))
    res = run_synth(tmp_path / "m" / "manifest.parquet", tmp_path / "s" / "splits.parquet", tmp_path / "y",
                    params.replace("synth", workers=2, weighting="none").synth, recipe_path=recipe, preview=0)
    table = pl.read_parquet(tmp_path / "y" / "synth.parquet")
    assert res["images"] == table.height > 50  # every web train/bridge parent, read from s3://
    assert all((tmp_path / "y" / p).is_file() for p in table["path"])


def test_s3_safety_rules_and_every_object_accounted_for(bucket, tmp_path):
    from shiftkit.ingest.stage import ingest

    params = load_params(REPO / "params.yaml").ingest
    res = ingest({"odd": f"{bucket['url']}/odd"}, tmp_path / "m", params=params, workers=1)
    manifest = pl.read_parquet(tmp_path / "m" / "manifest.parquet")
    quarantine = pl.read_parquet(tmp_path / "m" / "quarantine.parquet")
    fates = dict.fromkeys(manifest["path"], "manifest")
    fates.update(zip(quarantine["path"], quarantine["reason"], strict=True))
    assert fates == {
        "1/good.png": "manifest",
        "1/empty.png": "empty",
        "1/text.png": "not_an_image",
        "1/bomb.png": "decompression_bomb",
        "1/../escape.png": "outside_root",
        "loose.png": "stray_file",
    }
    assert res.files == len(bucket["fs"].find("shiftkit-test/odd"))  # nothing of odd-sibling/
    detail = quarantine.filter(pl.col("path") == "1/bomb.png")["detail"].item()
    assert f"first {storage.HEAD_BYTES} bytes only" in detail  # told by the ranged read of the header


def test_read_objects_reads_the_header_first(bucket):
    out = reading.read_objects(f"{bucket['url']}/odd", ["1/bomb.png", "1/good.png", "1/missing.png"], 89_478_485)
    assert isinstance(out[0], ImageDecodeError) and out[0].reason == "decompression_bomb"
    assert out[1] == bucket["fs"].cat_file("shiftkit-test/odd/1/good.png")
    assert isinstance(out[2], FileNotFoundError)
    # under a generous limit the same object is read to its end
    whole = reading.read_objects(f"{bucket['url']}/odd", ["1/bomb.png"], 10**10)[0]
    assert isinstance(whole, bytes) and len(whole) > storage.HEAD_BYTES and whole.endswith(bytes(1000))


def test_check_a_drop_in_s3_against_a_local_reference(bucket, tmp_path):
    from shiftkit.cli.run import main
    from shiftkit.ingest.stage import ingest

    params = load_params(REPO / "params.yaml")
    ingest({"web": bucket["local"] / "web"}, tmp_path / "ref", params=params.ingest, workers=1)
    code = main(["check", f"target={bucket['url']}/target", "--reference", str(tmp_path / "ref" / "manifest.parquet"),
                 "--out", str(tmp_path / "check"), "--params", str(REPO / "params.yaml")])
    report = json.loads((tmp_path / "check" / "check.json").read_text())
    assert code == (1 if report["errors"] else 0)
    assert report["summary"]["images"] == 80 and report["summary"]["quarantined"] == 0
    assert report["summary"]["domains"] == {"target": 80} and report["summary"]["reference_images"] == 120


def test_missing_s3_prefix_is_one_line_exit_2(bucket, tmp_path, capsys):
    from shiftkit.cli.run import main

    code = main(["ingest", "--domain", f"web={bucket['url']}/nothing-here", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "s3://shiftkit-test/nothing-here" in err[0] and "holds no objects" in err[0]
    assert not (tmp_path / "m" / "manifest.parquet").exists()


def _dvc(*args: str) -> None:
    """One `dvc` command line, run by DVC's own entry point in this process (its import costs seconds)."""
    from dvc.cli import main

    assert main(list(args)) == 0, f"dvc {' '.join(args)} failed"


def test_dvc_push_and_pull_a_stage_output_through_the_s3_remote(s3_server, tmp_path, monkeypatch):
    """What README "At scale" shows: a second clone pulls a stage's outputs instead of recomputing."""
    import s3fs

    s3fs.S3FileSystem().mkdir("shiftkit-dvc")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    _dvc("init", "--no-scm", "-q")
    code = ("import numpy as np, pathlib; p = pathlib.Path('out'); p.mkdir(exist_ok=True); "
            "[(p / f'{i}.npy').write_bytes(np.random.default_rng(i).bytes(5000)) for i in range(3)]")
    _dvc("stage", "add", "-q", "-n", "make", "-o", "out", f'{sys.executable} -c "{code}"')
    _dvc("repro", "-q")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert len(before) == 3
    _dvc("remote", "add", "-d", "store", "s3://shiftkit-dvc/cache")
    _dvc("remote", "modify", "store", "endpointurl", s3_server)
    _dvc("push", "-q")
    assert len(s3fs.S3FileSystem().find("shiftkit-dvc/cache")) >= 3  # the three files (and the folder's listing)
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    _dvc("pull", "-q")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_synthesis_written_to_s3_matches_a_local_run(bucket, tmp_path, capsys):
    """`synth --images-url s3://...`: the workers write the copies as objects below a prefix named by the
    run's inputs; the table stays local, names that prefix in `root`, and train's loading reads it."""
    from shiftkit.cli.run import main
    from shiftkit.images.decode import decode
    from shiftkit.ingest.stage import ingest
    from shiftkit.splits.stage import run_split
    from shiftkit.synth import run_synth
    from shiftkit.training import loader as data

    params = load_params(REPO / "params.yaml")
    ingest({"web": bucket["local"] / "web", "target": bucket["local"] / "target"}, tmp_path / "m",
           params=params.ingest, workers=2)
    run_split(tmp_path / "m" / "manifest.parquet", tmp_path / "s", params.split)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"steps": [{"name": "gaussian_blur", "p": 1.0, "params": {"sigma": [0.5, 1.0]}}]}))
    synth_params = params.replace("synth", workers=2, weighting="none").synth
    run_synth(tmp_path / "m" / "manifest.parquet", tmp_path / "s" / "splits.parquet", tmp_path / "local",
              synth_params, recipe_path=recipe, preview=0)
    url = "s3://shiftkit-test/synth-out"
    for out in ("s3a", "s3b"):  # twice: the same inputs write the same keys again
        run_synth(tmp_path / "m" / "manifest.parquet", tmp_path / "s" / "splits.parquet", tmp_path / out,
                  synth_params, recipe_path=recipe, preview=2, images_url=url)
    local = pl.read_parquet(tmp_path / "local" / "synth.parquet")
    remote = pl.read_parquet(tmp_path / "s3a" / "synth.parquet")
    assert remote.drop("root").equals(local) and local.height > 50
    assert remote.equals(pl.read_parquet(tmp_path / "s3b" / "synth.parquet"))
    (root,) = remote["root"].unique().to_list()
    assert root.startswith(f"{url}/") and len(root) == len(url) + 17  # <url>/<16-hex run id>
    assert not (tmp_path / "s3a" / "images").exists() and (tmp_path / "s3a" / "preview.png").is_file()
    fs = bucket["fs"]
    fs.invalidate_cache()
    keys = sorted(fs.find(root.removeprefix("s3://")))
    assert keys == sorted(f"{root.removeprefix('s3://')}/{p}" for p in local["path"])
    for p in local["path"].to_list()[:20]:
        assert fs.cat_file(f"{root.removeprefix('s3://')}/{p}") == (tmp_path / "local" / p).read_bytes()
    # train and evaluate find the children through the table's root
    man, spl, syn = data.read_inputs(tmp_path / "m" / "manifest.parquet", tmp_path / "s" / "splits.parquet",
                                     tmp_path / "s3a" / "synth.parquet")
    kids = data.items(man, tmp_path / "m" / "manifest.parquet", spl, ["train"], syn,
                      tmp_path / "s3a" / "synth.parquet").filter(pl.col("source") == "synth")
    assert kids.height and all(p.startswith(f"{root}/images/train/") for p in kids["abspath"])
    assert decode(kids["abspath"][0]).pixels.size
    # a local path is not a URL: one line, exit 2, nothing written
    code = main(["synth", "--manifest", str(tmp_path / "m" / "manifest.parquet"), "--splits",
                 str(tmp_path / "s" / "splits.parquet"), "--out", str(tmp_path / "bad"), "--recipe", str(recipe),
                 "--images-url", str(tmp_path / "elsewhere"), "--params", str(REPO / "params.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a URL" in err[0] and not (tmp_path / "bad").exists()


def test_a_failed_object_read_is_an_unreadable_image_not_an_internal_error(bucket):
    """Decoding an image by its URL (train, shift, synth read the manifest's objects so): a store read
    that fails is an ``ImageDecodeError`` with the unreadable reason, which the stages report as such."""
    from shiftkit.core.reasons import QuarantineReason
    from shiftkit.images.decode import decode, inspect, load_pixels

    url = f"{bucket['url']}/odd/1/no-such-object.png"
    for read in (decode, inspect, load_pixels):
        with pytest.raises(ImageDecodeError) as err:
            read(url)
        assert err.value.reason is QuarantineReason.UNREADABLE and url in err.value.detail


def test_an_object_that_vanishes_before_its_read_is_quarantined_and_ingest_exits_0(bucket, tmp_path, monkeypatch):
    """The store lists an object, then its read fails: one quarantine row (unreadable), exit code 0."""
    from shiftkit.cli.run import main

    fs = bucket["fs"]
    x, _ = ingest_helpers.helpers.mnist(2, offset=700)
    for i in range(2):
        fs.pipe_file(f"shiftkit-test/vanish/1/{i}.png", ingest_helpers.png_bytes(x[i]))
    listed = storage.list_objects

    def list_then_delete(url: str, what: str) -> list[storage.Listed]:
        out = listed(url, what)
        fs.rm_file("shiftkit-test/vanish/1/1.png")  # gone between the listing and the read
        fs.invalidate_cache()
        return out

    monkeypatch.setattr(storage, "list_objects", list_then_delete)
    code = main(["ingest", "--domain", f"web={bucket['url']}/vanish", "--out", str(tmp_path / "m"),
                 "--workers", "1", "--params", str(REPO / "params.yaml")])
    assert code == 0
    manifest = pl.read_parquet(tmp_path / "m" / "manifest.parquet")
    quarantine = pl.read_parquet(tmp_path / "m" / "quarantine.parquet")
    assert manifest["path"].to_list() == ["1/0.png"]
    assert quarantine.select("path", "reason").rows() == [("1/1.png", "unreadable")]
