"""Groups the user knows (photos of one object): from folders and listings into the manifest,
kept whole by split, counted by the report; and the truth case that needs them."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from PIL import Image

from shiftkit.core.files import read_table
from shiftkit.core.schema import MANIFEST, SPLITS
from shiftkit.ingest.example import write_example
from shiftkit.ingest.params import ExampleParams, IngestParams
from shiftkit.ingest.stage import ingest
from shiftkit.report.groups import NO_GROUPS
from shiftkit.report.sections import build_sections
from shiftkit.splits.assignment import assign
from shiftkit.splits.groups import union_groups
from shiftkit.splits.params import SplitParams
from shiftkit.splits.stage import run_split
from tests import helpers
from tests.groups_helpers import groups_truth_run


@pytest.fixture(scope="module")
def photo_manifest(tmp_path_factory):
    """The photos example, small (12 objects per class, 2 views), ingested with --group-depth 1."""
    root = tmp_path_factory.mktemp("photos")
    write_example("photos", root / "raw", ExampleParams(objects=12, views=2, size=40))
    ingest({"web": root / "raw" / "web", "target": root / "raw" / "target"}, root / "manifest",
           params=IngestParams(group_depth=1, workers=1))
    return root / "manifest" / "manifest.parquet"


def test_group_depth_names_each_image_by_its_object_folder(photo_manifest):
    m = read_table(photo_manifest, MANIFEST)
    assert m["group"].null_count() == 0
    expected = m["path"].str.split("/").list.get(1)  # <label>/<object>/<view>
    assert (m["group"] == expected).all()
    assert m.filter(pl.col("domain") == "web")["format"].unique().to_list() == ["PNG"]
    assert m.filter(pl.col("domain") == "target")["format"].unique().to_list() == ["JPEG"]
    # a quarter of the objects are photographed in both domains: one group across two renderings
    both = m.group_by("group").agg(pl.col("domain").n_unique().alias("k")).filter(pl.col("k") == 2)
    assert both.height >= 6


def test_listing_group_column_reaches_the_manifest_and_empty_means_none(tmp_path):
    x, y = helpers.mnist(6)
    rows = []
    for i, (img, lab) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "label": str(lab), "domain": "web" if i < 4 else "target",
                     "group": ["a", "a", "", "b", "b", " "][i]})
    pl.DataFrame(rows).write_csv(tmp_path / "list.csv")
    ingest({}, tmp_path / "m", listing=tmp_path / "list.csv", params=IngestParams(workers=1))
    m = read_table(tmp_path / "m" / "manifest.parquet", MANIFEST).sort("path")
    assert m["group"].to_list() == ["a", "a", None, "b", "b", None]


def test_without_group_depth_object_folders_are_stray(tmp_path):
    write_example("photos", tmp_path / "raw", ExampleParams(objects=2, views=1, size=24))
    r = ingest({"web": tmp_path / "raw" / "web"}, tmp_path / "m", params=IngestParams(workers=1))
    assert r.accepted == 0 and r.by_reason["stray_file"] == r.files == 6  # one object of one view per class


def test_union_joins_near_copies_and_user_groups():
    dup = pl.Series(["a", "b", "c", "d", "e", "f"])
    user = pl.Series(["x", None, "x", "y", "y", None])
    got = union_groups(dup, user).to_list()
    assert got == ["a", "b", "a", "d", "d", "f"]
    chained = union_groups(pl.Series(["a", "a", "c", "d"]), pl.Series([None, "x", "x", None])).to_list()
    assert chained == ["a", "a", "a", "d"]  # a near copy of one photo joins the photo's object


def _splits_per_group(table: pl.DataFrame, manifest: pl.DataFrame) -> pl.DataFrame:
    t = table.join(manifest.select("image_id", pl.col("group").alias("object")), on="image_id")
    return t.filter(pl.col("split").is_in(SPLITS)).group_by("object").agg(pl.col("split").unique().alias("splits"))


def test_two_photos_of_one_object_never_straddle_splits(photo_manifest, tmp_path):
    """Photos of one object (different files; in two domains, different renderings) carry one
    group: across seeds no group has images in two of train, bridge, dev and test, and a web photo
    of an object in dev/test is held out. Without the groups the same draw cuts objects apart."""
    m = read_table(photo_manifest, MANIFEST)
    cut_without = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(8):
            p = SplitParams(seed=seed, bridge=0.2, dev=0.34, test=0.34)
            res = run_split(photo_manifest, tmp_path / f"s{seed}", p)
            per = _splits_per_group(res.table, m)
            assert per["splits"].list.len().max() == 1, per.filter(pl.col("splits").list.len() > 1)
            held = res.table.filter(pl.col("split").is_in(["dev", "test"])).join(
                m.select("image_id", "group"), on="image_id")["group"].unique()
            web_of_held = res.table.join(m.select("image_id", "group", pl.col("domain").alias("d")), on="image_id")
            web_of_held = web_of_held.filter(pl.col("group").is_in(held.implode()) & (pl.col("d") == "web"))
            assert set(web_of_held["split"].to_list()) <= {"held_out_copy"}
            plain = assign(m.drop("group"), p).table
            cut_without += int(_splits_per_group(plain, m)["splits"].list.len().max() > 1)
    assert cut_without > 0  # the test can fail: without groups, objects straddle splits


def _text(data) -> str:
    return " ".join(getattr(b, "text", "") for s in build_sections(data) for b in s.blocks)


@pytest.mark.parametrize("seed", [0, 1])
def test_no_rendering_shift_with_groups_is_no_data_mismatch(tmp_path, seed):
    """Web and target rendered alike, showing different objects: with groups the bridge holds new
    objects, so the gap to new objects shows as variance, never as data mismatch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = groups_truth_run(tmp_path, seed, with_groups=True)
    d = data.decomposition
    print("groups", seed, d.diagnosis, d.errors, d.gaps["data_mismatch"], data.groups)
    assert d.diagnosis != "data_mismatch" and not d.gaps["data_mismatch"].claimed
    assert data.groups["user_groups"] and data.groups["bridge_images_sharing_train"] == 0
    assert data.groups["bridge"]["groups"] < data.groups["bridge"]["images"]  # objects, not images
    assert "No group straddles train and the bridge" in _text(data)
    assert NO_GROUPS not in _text(data)


def test_without_groups_the_report_says_the_bridge_may_share_objects(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        without = groups_truth_run(tmp_path, 0, with_groups=False)
        with_ = groups_truth_run(tmp_path, 0, with_groups=True)
    assert not without.groups["user_groups"]
    assert "may share objects with train" in _text(without) and "variance" in NO_GROUPS
    # the mechanism: a bridge of other photos of train objects is easier than one of new objects
    e_without, e_with = without.decomposition.errors, with_.decomposition.errors
    print("bridge error without/with groups", e_without["bridge"], e_with["bridge"])
    assert e_without["bridge"] < e_with["bridge"]
    assert np.isfinite(e_without["dev"])


def test_cli_group_depth_is_checked(tmp_path):
    r = helpers.run_cli(["ingest", "--domain", f"web={tmp_path}", "--group-depth", "-1", "--out", str(tmp_path / "m")])
    assert r.code == 2 and "--group-depth" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()


def test_giving_groups_to_an_earlier_split_reshuffles_instead_of_failing(photo_manifest):
    m = read_table(photo_manifest, MANIFEST)
    p = SplitParams(bridge=0.2, dev=0.34, test=0.34)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = assign(m.drop("group"), p)
        assert "user_groups" not in before.composition["settings"]
        again = assign(m.drop("group"), p, before.table, before.composition["settings"])
        assert not again.reshuffled and again.kept == before.table.height
        after = assign(m, p, before.table, before.composition["settings"])
    assert after.reshuffled and any("user_groups None -> True" in n for n in after.warnings)
    assert _splits_per_group(after.table, m)["splits"].list.len().max() == 1
