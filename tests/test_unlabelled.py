"""Unlabelled target images: ``ingest --unlabelled`` -> the split's ``unlabelled`` pool -> the synthesis fit only.

Real images: 60 MNIST digits (web, label folders), 40 load_digits digits (labelled target, label
folders) and 40 more load_digits digits written flat, without labels, as the target's unlabelled pool.
"""

from __future__ import annotations

import json
import warnings

import polars as pl
import pytest
from PIL import Image

from shiftkit import splits
from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.ingest.stage import ingest
from shiftkit.params import params_from_mapping
from shiftkit.synth import stage
from shiftkit.training import loader as data
from tests.helpers import digits, mnist, run_cli, write_folder

TRAINING_SPLITS = ("train", "bridge", "dev", "test")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlabelled")
    write_folder(root / "web", *mnist(60))
    write_folder(root / "target", *digits(40), size=28)
    pool_images, _ = digits(40, offset=40)  # their labels are thrown away
    (root / "photos").mkdir()
    for i, img in enumerate(pool_images):
        Image.fromarray(img).resize((28, 28), Image.BILINEAR).save(root / "photos" / f"user_{i:03d}.png")
    ing = ingest({"web": root / "web", "target": root / "target"}, root / "manifest",
                 unlabelled={"target": root / "photos"}, workers=1)
    params = params_from_mapping({
        "split": {"dev": 10, "test": 10, "bridge": 4},
        "synth": {"fit_web": 200, "fit_target": 200, "max_rounds": 1, "workers": 1, "weighting": "none",
                  "fraction": 0.1},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", splits.SplitWarning)  # few images per label: the documented fallback
        result = splits.run_split(ing.manifest_path, root / "splits", params.split)
    fit = stage.run_synth(ing.manifest_path, root / "splits" / "splits.parquet", root / "synth", params.synth)
    return root, ing, result, fit


def test_flat_folder_enters_the_manifest_without_labels(pipeline):
    _root, ing, _result, _fit = pipeline
    manifest = io.read_table(ing.manifest_path, schema.MANIFEST)
    pool = manifest.filter(pl.col("label").is_null())
    assert pool.height == 40
    assert set(pool["domain"]) == {"target"}
    assert all(p.startswith("user_") for p in pool["path"])
    assert manifest.filter(pl.col("label").is_not_null()).height == 100
    assert ing.summary["domains"]["target"]["unlabelled"] == 40
    assert "unlabelled" not in ing.summary["domains"]["web"]
    assert sum(ing.summary["domains"]["target"]["labels"].values()) == 40


def test_synth_fit_uses_the_pool_while_train_and_evaluate_never_see_it(pipeline):
    root, ing, result, _fit = pipeline
    manifest = io.read_table(ing.manifest_path, schema.MANIFEST)
    pool_ids = set(manifest.filter(pl.col("label").is_null())["image_id"])
    table = io.read_table(root / "splits" / "splits.parquet", schema.SPLITS_TABLE)
    assert set(table.filter(pl.col("split") == schema.UNLABELLED)["image_id"]) == pool_ids
    assert not pool_ids & set(table.filter(pl.col("split").is_in(TRAINING_SPLITS))["image_id"])
    assert result.composition["unlabelled"] == {"target": 40}
    assert sum(t["images"] for t in result.composition["totals"].values()) == 100
    # what train and evaluate read: the items of their splits, by name
    seen = data.items(manifest, ing.manifest_path, table, TRAINING_SPLITS)
    assert seen.height == 100 and not pool_ids & set(seen["image_id"])
    assert seen["label"].null_count() == 0
    # the fit sampled every target image it may look at (fit_target 200 > 40 + target train): the pool included
    fit = json.loads((root / "synth" / "fit.json").read_text())
    assert set(fit["unlabelled_target_ids"]) == pool_ids
    target_train = table.filter((pl.col("split") == "train") & (pl.col("domain") == "target")).height
    assert fit["sample_sizes"]["target"] == target_train + 40


def test_ingest_cli_takes_unlabelled_folders_and_refuses_a_missing_one(tmp_path):
    write_folder(tmp_path / "web", *mnist(6))
    bad = run_cli(["ingest", "-d", "web=" + str(tmp_path / "web"), "--unlabelled", "target=" + str(tmp_path / "nope"),
                   "--out", str(tmp_path / "m")])
    assert bad.code == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "m" / "manifest.parquet").exists()


def test_check_against_a_reference_with_an_unlabelled_pool(pipeline, tmp_path):
    from shiftkit.check.stage import run_check

    root, ing, _result, _fit = pipeline
    write_folder(tmp_path / "drop" / "target", *digits(30, offset=100), size=28)
    report = run_check([f"target={tmp_path / 'drop' / 'target'}"], ing.manifest_path, raise_on_fail=False)
    rules = {f.rule for f in report.findings}
    assert "new_labels" not in rules  # the pool's null label is not a label, known or new
    shares = [f for f in report.findings if f.rule == "class_share"]
    assert all(None not in [s["label"] for s in f.data["shares"]] for f in shares)


def test_check_latest_on_a_drop_with_an_unlabelled_pool_counts_it_apart(pipeline, tmp_path):
    """The pipeline's check stage (--latest) on the example's first drop, which holds the pool: the
    pool's null labels are counted as unlabelled, not as a label (check.json could not be written)."""
    root, ing, _result, _fit = pipeline
    r = run_cli(["check", "--latest", "--reference", ing.manifest_path, "--out", tmp_path / "out"])
    assert r.code == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "out" / "check.json").read_text())["summary"]
    assert summary["unlabelled"] == 40 and sum(summary["labels"].values()) == 100
    assert set(summary["labels"]) == {str(d) for d in range(10)}
    assert "140 image(s) in the drop (target 80, web 60), 40 of them without labels, 0 quarantined" in (
        tmp_path / "out" / "check.md").read_text()


def test_shift_reads_the_unlabelled_pool_by_its_split_name(pipeline):
    from shiftkit.shift import stage as shift

    root, ing, _result, _fit = pipeline
    pool = shift.manifest_set("B", ing.manifest_path, splits=root / "splits" / "splits.parquet", split=["unlabelled"])
    assert len(pool.paths) == 40 and all(p.name.startswith("user_") for p in pool.paths)


def test_an_unlabelled_listing_needs_only_a_path_column(tmp_path):
    write_folder(tmp_path / "web", *mnist(6))
    pool_images, _ = digits(5, offset=200)
    (tmp_path / "pool" / "any").mkdir(parents=True)
    for i, img in enumerate(pool_images):
        Image.fromarray(img).resize((28, 28), Image.BILINEAR).save(tmp_path / "pool" / "any" / f"p{i}.png")
    listing = tmp_path / "pool" / "photos.csv"
    listing.write_text("path\n" + "".join(f"any/p{i}.png\n" for i in range(5)))
    ok = run_cli(["ingest", "-d", f"web={tmp_path / 'web'}", "--unlabelled", f"target={listing}",
                  "--out", str(tmp_path / "m")])
    assert ok.code == 0, ok.stderr
    manifest = io.read_table(tmp_path / "m" / "manifest.parquet", schema.MANIFEST)
    pool = manifest.filter(pl.col("domain") == "target")
    assert pool.height == 5 and pool["label"].null_count() == 5
    assert manifest.filter(pl.col("domain") == "web")["label"].null_count() == 0
    listing.write_text("file\nany/p0.png\n")
    bad = run_cli(["ingest", "-d", f"web={tmp_path / 'web'}", "--unlabelled", f"target={listing}",
                   "--out", str(tmp_path / "m")])
    assert bad.code == 2 and "photos.csv" in bad.stderr and "path" in bad.stderr and "Traceback" not in bad.stderr
