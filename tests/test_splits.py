"""Splits: the recipe (dev/test from the target), shuffle, stability, groups, leakage, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shiftkit import splits
from shiftkit.cli.run import main
from shiftkit.core.errors import ConfigError, DataError, RegistryError, SchemaError
from shiftkit.core.files import read_table, write_table
from shiftkit.core.schema import MANIFEST, SPLITS_TABLE
from shiftkit.splits.params import SplitParams
from tests import helpers
from tests.splits_helpers import example_manifest, full_manifest, manifest_from_images, synthetic_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    """The example's shape in small: 3,000 MNIST digits (web) and all 1,797 load_digits (target)."""
    return example_manifest(web=3000, target=1797)


def _split_of(result) -> dict[str, str]:
    return dict(result.table.select("image_id", "split").iter_rows())


# --- acceptance ----------------------------------------------------------------------------------


def test_target_strategy_takes_dev_and_test_only_from_the_target(example):
    result = splits.assign(example)
    t = result.table
    held = t.filter(pl.col("split").is_in(["dev", "test"]))
    assert held["domain"].unique().to_list() == ["target"]
    tot = result.composition["totals"]
    # 0.25 of 1,797 target images each, rounded half up
    assert tot["dev"]["images"] == tot["test"]["images"] == 449
    # the bridge has the training pool's mixture of domains (stratified by domain x label)
    pool_share = result.composition["training_pool_target_share"]
    assert tot["bridge"]["domains"].keys() == {"web", "target"}
    assert abs(tot["bridge"]["target_share"] - pool_share) < 0.01
    assert "hold only images of the target domain 'target'" in result.composition["statements"][0]


def test_dev_is_stratified_by_label(example):
    t = splits.assign(example).table
    target = example.filter(pl.col("domain") == "target").group_by("label").len().sort("label")
    dev = t.filter(pl.col("split") == "dev").group_by("label").len().sort("label")
    expected = target["len"].to_numpy() * 449 / 1797
    assert np.all(np.abs(dev["len"].to_numpy() - expected) <= 1)


def test_shuffle_strategy_shows_a_dev_set_of_mostly_web_images(example):
    result = splits.assign(example, SplitParams(strategy="shuffle", dev=0.1, test=0.1))
    dev = result.composition["totals"]["dev"]
    assert dev["images"] == 480  # 0.1 of 4,797
    assert dev["target_share"] < 0.5  # mostly web: the naive mix optimises for the wrong images
    statement = result.composition["statements"][0]
    web_in_dev = dev["images"] - dev["target_images"]
    assert f"{web_in_dev:,} of {dev['images']:,} dev images" in statement
    assert "use strategy 'target'" in statement


def test_appending_a_drop_keeps_every_earlier_assignment(example, tmp_path):
    first_manifest = full_manifest(example)
    write_table(first_manifest, tmp_path / "m1.parquet", MANIFEST)
    first = splits.run_split(tmp_path / "m1.parquet", tmp_path / "splits")
    wx, wy = helpers.mnist(1000, offset=3000)
    second_manifest = pl.concat([example, manifest_from_images(wx, wy, "web", drop=2)])
    write_table(second_manifest, tmp_path / "m2.parquet", MANIFEST)
    second = splits.run_split(tmp_path / "m2.parquet", tmp_path / "splits")
    before, after = _split_of(first), _split_of(second)
    kept = sum(after[k] == v for k, v in before.items())
    assert kept == len(before) == 4797  # 100% of the earlier images keep their split
    assert second.kept == 4797 and second.assigned == 1000 and not second.reshuffled
    new = second.table.filter(~pl.col("image_id").is_in(list(before)))
    assert set(new["split"].unique().to_list()) <= {"train", "bridge"}  # web images: never dev/test


def test_changing_the_seed_reshuffles_and_says_so(example, tmp_path):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    first = splits.run_split(tmp_path / "m.parquet", tmp_path / "s")
    with pytest.warns(splits.SplitWarning, match=r"seed 0 -> 7.*assigned afresh"):
        second = splits.run_split(tmp_path / "m.parquet", tmp_path / "s", SplitParams(seed=7))
    assert second.reshuffled and second.kept == 0
    moved = sum(a != b for a, b in zip(first.table["split"], second.table["split"], strict=False))
    assert moved > 100


def test_same_inputs_give_byte_identical_outputs(example, tmp_path):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    splits.run_split(tmp_path / "m.parquet", tmp_path / "a")
    splits.run_split(tmp_path / "m.parquet", tmp_path / "b")
    for name in ("splits.parquet", "composition.json", "composition.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    table = read_table(tmp_path / "a" / "splits.parquet", SPLITS_TABLE)
    assert table.height == example.height


def test_membership_depends_on_group_and_seed_not_on_row_order(example):
    a = splits.assign(example)
    b = splits.assign(example.reverse())
    assert _split_of(a) == _split_of(b)


def test_composition_markdown_has_split_domain_label_counts(example):
    md = splits.assign(example).markdown
    assert "| split | domain | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | total |" in md
    assert "| dev | target |" in md and "| bridge | web |" in md


# --- groups and leakage ----------------------------------------------------------------------------


# groups of 4 cannot fill every quota exactly
@pytest.mark.filterwarnings("ignore::shiftkit.splits.assignment.SplitWarning")
def test_every_copy_of_an_image_lands_in_the_same_split():
    m = synthetic_manifest(3000, target_share=0.5, group_size=4)
    t = splits.assign(m).table
    assert t.group_by("group").agg(pl.col("split").n_unique())["split"].max() == 1


def test_leakage_check_names_the_images_that_straddle():
    table = pl.DataFrame(
        {
            "image_id": ["a" * 64, "b" * 64, "c" * 64],
            "split": ["train", "dev", "train"],
            "group": ["g1", "g1", "g2"],
        }
    )
    with pytest.raises(
        DataError, match=r"Leakage: 1 group\(s\) of exact or near duplicates.*aaaaaaaaaaaa \(train.*bbbbbbbbbbbb \(dev"
    ):
        splits.check_leakage(table)


def test_leakage_check_passes_bridge_and_train_sharing_nothing_with_dev():
    table = pl.DataFrame({"image_id": ["a", "b", "c"], "split": ["train", "bridge", "dev"], "group": ["g", "g", "h"]})
    splits.check_leakage(table)  # train and bridge are one side: not leakage


def test_a_new_copy_that_links_a_dev_and_a_train_image_fails_loudly():
    m = synthetic_manifest(400, target_share=1.0)
    first = splits.assign(m, SplitParams(bridge=0.1))
    dev_id = first.table.filter(pl.col("split") == "dev")["image_id"][0]
    train_id = first.table.filter(pl.col("split") == "train")["image_id"][0]
    # ingest regroups: a new near copy joins the dev and the train image into one group
    m2 = m.with_columns(
        dup_group=pl.when(pl.col("image_id").is_in([dev_id, train_id])).then(pl.lit(dev_id)).otherwise("dup_group")
    )
    new = pl.DataFrame({"image_id": ["f" * 64], "domain": ["target"], "label": ["0"], "dup_group": [dev_id]})
    with pytest.raises(
        DataError, match=f"Leakage.*{train_id[:12]} \\(train.*{dev_id[:12]} \\(dev.*ffffffffffff \\(dev"
    ):
        splits.assign(pl.concat([m2, new]), SplitParams(bridge=0.1), first.table, SplitParams(bridge=0.1).settings())


# --- hashing -----------------------------------------------------------------------------------------


def test_group_keys_are_stable_across_runs_and_name_kinds():
    sha = hashlib.sha256(b"x").hexdigest()
    keys = splits.group_keys(pl.Series([sha, "custom-group"]))
    assert int(keys[0]) == int(sha[:16], 16)
    assert int(keys[1]) == int.from_bytes(hashlib.blake2b(b"custom-group", digest_size=8).digest(), "big")


def test_membership_hash_changes_with_the_seed():
    g = pl.Series([hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)])
    assert (splits.membership_hash(g, 0, "holdout") != splits.membership_hash(g, 1, "holdout")).all()


@pytest.mark.parametrize(
    "sizes, total, expected",
    [({"a": 50, "b": 50}, 11, {"a": 6, "b": 5}), ({"a": 1, "b": 99}, 10, {"a": 0, "b": 10}), ({"a": 3}, 5, {"a": 3})],
    ids=["tie-goes-to-first", "proportional", "capped"],
)
def test_largest_remainder_allocation(sizes, total, expected):
    assert splits.allocate(sizes, total) == expected


# --- impossible requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        (
            SplitParams(target_domain="phone"),
            r"target domain 'phone' \(split.target_domain\) is not in the manifest.*target, web",
        ),
        (
            SplitParams(dev=300, test=300),
            r"dev \(300\) \+ test \(300\) = 600 images were asked for, but the target domain 'target' holds only 500",
        ),
        (SplitParams(dev=0.0001), r"'split.dev' size 0.0001 of 500 images .* gives an empty dev set"),
        (SplitParams(bridge=20000), r"bridge \(20000 images.*whole training pool"),
    ],
    ids=["unknown-target-domain", "dev-plus-test-too-large", "empty-dev", "bridge-too-large"],
)
def test_impossible_requests_raise_clear_errors(params, message):
    m = synthetic_manifest(5000, target_share=0.1, seed=3).filter(
        (pl.col("domain") == "web") | (pl.int_range(pl.len()) < 10**9)
    )
    m = pl.concat([m.filter(pl.col("domain") == "web"), m.filter(pl.col("domain") == "target").head(500)])
    with pytest.raises(DataError, match=message):
        splits.assign(m, params)


def test_a_manifest_without_target_images_is_refused():
    m = synthetic_manifest(100, target_share=0.0)
    with pytest.raises(
        DataError, match=r"target domain 'target'.*not in the manifest, or has no images; its domains are: web"
    ):
        splits.assign(m)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"dev": -3}, r"The 'split.dev' parameter must be a fraction in \(0, 1\) or a count >= 1. Got -3 instead."),
        ({"test": 1.5}, r"'split.test' parameter must be a fraction in \(0, 1\) or a count >= 1. Got 1.5"),
        ({"dev": 0.6, "test": 0.5}, r"must sum to less than 1"),
        ({"strategy": "random"}, r"'split.strategy' parameter must be one of 'target', 'shuffle'. Got 'random'"),
    ],
    ids=["negative-count", "fraction-above-one", "fractions-sum-to-one", "unknown-strategy"],
)
def test_bad_split_params_name_the_parameter(values, message):
    from shiftkit.params import params_from_mapping

    with pytest.raises(ConfigError, match=message):
        params_from_mapping({"split": values})


def test_rare_labels_are_pooled_with_a_warning():
    m = synthetic_manifest(2000, target_share=0.2, labels=3)
    rare = pl.DataFrame(
        {
            "image_id": ["e" * 64, "d" * 64],
            "domain": ["target"] * 2,
            "label": ["zebra"] * 2,
            "dup_group": ["e" * 64, "d" * 64],
        }
    )
    with pytest.warns(
        splits.SplitWarning, match=r"Label\(s\) 'zebra' have fewer than 3 images.*pooled into one stratum"
    ):
        result = splits.assign(pl.concat([m, rare]))
    assert any("zebra" in w for w in result.composition["warnings"])


# --- command line and stage ---------------------------------------------------------------------------


def test_cli_split_writes_outputs_and_overrides_params(example, tmp_path, capsys):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    code = main(
        [
            "split",
            "--manifest",
            str(tmp_path / "m.parquet"),
            "--out",
            str(tmp_path / "s"),
            "--dev",
            "100",
            "--test",
            "0.1",
        ]
    )
    assert code == 0
    comp = json.loads((tmp_path / "s" / "composition.json").read_text())
    assert comp["totals"]["dev"]["images"] == 100 and comp["totals"]["test"]["images"] == 180
    assert comp["settings"]["dev"] == 100
    assert "split (target): train" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dev", "lots"], r"'--dev' option of split must be a fraction in \(0, 1\) or a count >= 1. Got 'lots'"),
        (["--manifest", "nowhere.parquet"], r"manifest table nowhere.parquet does not exist"),
        (["--strategy", "random"], r"'split.strategy' parameter must be one of"),
    ],
    ids=["bad-size", "missing-manifest", "bad-strategy"],
)
def test_cli_split_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys, example):
    write_table(full_manifest(example.head(50)), tmp_path / "m.parquet", MANIFEST)
    base = ["split", "--manifest", str(tmp_path / "m.parquet"), "--out", str(tmp_path / "s")]
    code = main(base + args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    import re

    assert re.search(message, err)


def test_pipeline_stage_script(example, tmp_path, monkeypatch, capsys):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    monkeypatch.syspath_prepend(str(REPO / "pipelines"))
    import importlib

    stage = importlib.import_module("split")
    assert (
        stage.main(
            [
                "--manifest",
                str(tmp_path / "m.parquet"),
                "--out",
                str(tmp_path / "s"),
                "--params",
                str(tmp_path / "none.yaml"),
            ]
        )
        == 2
    )
    assert "Params file" in capsys.readouterr().err
    assert stage.main(["--manifest", str(tmp_path / "m.parquet"), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "splits.parquet").is_file() and (tmp_path / "s" / "composition.md").is_file()
    sys.modules.pop("split", None)


def test_second_drop_through_real_ingest_keeps_every_split(example_folders, tmp_path):
    """The acceptance run: ingest, split, add 1,000 MNIST digits, ingest again, split again."""
    from shiftkit.ingest.stage import ingest

    data = tmp_path / "raw"
    shutil.copytree(example_folders, data)
    domains = {"web": data / "web", "target": data / "target"}
    ingest(domains, tmp_path / "manifest")
    first = splits.run_split(tmp_path / "manifest" / "manifest.parquet", tmp_path / "splits")
    x, y = helpers.mnist(1000, offset=10000)
    helpers.write_folder(data / "web", x, y, prefix="drop2")
    ingest(domains, tmp_path / "manifest")
    manifest = read_table(tmp_path / "manifest" / "manifest.parquet", MANIFEST)
    assert sorted(manifest["drop"].unique().to_list()) == [1, 2]
    second = splits.run_split(tmp_path / "manifest" / "manifest.parquet", tmp_path / "splits")
    before, after = _split_of(first), _split_of(second)
    assert sum(after[k] == v for k, v in before.items()) == len(before)  # 100% kept
    assert second.kept == len(before) and second.assigned == manifest.height - len(before)
    held = second.table.filter(pl.col("split").is_in(["dev", "test"]))
    assert held["domain"].unique().to_list() == ["target"]


def test_fresh_ignores_previous_splits(example, tmp_path):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    first = splits.run_split(tmp_path / "m.parquet", tmp_path / "s")
    again = splits.run_split(tmp_path / "m.parquet", tmp_path / "s")
    fresh = splits.run_split(tmp_path / "m.parquet", tmp_path / "s", fresh=True)
    assert again.kept == example.height and fresh.kept == 0
    assert _split_of(fresh) == _split_of(first)  # same seed and sizes: the same draw
    assert fresh.composition["counts"] == first.composition["counts"]


@pytest.mark.parametrize(
    "content, error, message",
    [
        ("columns", SchemaError, r"manifest table in .*bad.parquet lacks column\(s\) path, root"),
        ("junk", DataError, r"Cannot read the manifest table .*bad.parquet"),
    ],
    ids=["missing-columns", "not-parquet"],
)
def test_a_bad_manifest_file_is_named(content, error, message, tmp_path):
    path = tmp_path / "bad.parquet"
    if content == "columns":
        pl.DataFrame({"image_id": ["a"]}).write_parquet(path)
    else:
        path.write_bytes(b"nonsense")
    with pytest.raises(error, match=message):
        splits.run_split(path, tmp_path / "out")
    assert not (tmp_path / "out" / "splits.parquet").exists()


def test_duplicated_image_ids_are_refused_with_one_line(example, tmp_path, capsys):
    m = full_manifest(example)
    write_table(pl.concat([m, m.head(3)]), tmp_path / "m.parquet", MANIFEST)
    code = main(["split", "--manifest", str(tmp_path / "m.parquet"), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "more than once" in err and m["image_id"][0][:16] in err
    assert not (tmp_path / "s").exists()


def test_split_outputs_are_replaced_as_one_set(example, tmp_path, monkeypatch):
    write_table(full_manifest(example), tmp_path / "m.parquet", MANIFEST)
    splits.run_split(tmp_path / "m.parquet", tmp_path / "s")
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("shiftkit.splits.stage.write_text", interrupted)  # after splits.parquet and composition.json
    with pytest.raises(KeyboardInterrupt):
        splits.run_split(tmp_path / "m.parquet", tmp_path / "s", SplitParams(seed=5))
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.parquet", "s"]  # no temporary folder left


def test_class_shares_of_dev_and_test_are_within_the_band_of_the_target(example):
    result = splits.assign(full_manifest(example), SplitParams())
    shares = result.composition["class_shares"]
    assert {r["split"] for r in shares} == {"dev", "test"} and all(r["within"] for r in shares)
    assert "Class shares of dev and test" in result.markdown
    # a dev set that misses a class entirely is flagged by the band
    bad = [dict(r, images=0, within=r["low"] <= 0) if r["label"] == "1" else r for r in shares]
    warned = splits.share_warnings(bad)
    assert len(warned) == 2 and "'1' 0" in warned[0] and "does not represent the target" in warned[0]


def test_downstream_readers_never_see_a_held_out_copy(example, tmp_path):
    from shiftkit.training import loader as data

    m = full_manifest(example)
    table = splits.assign(m, SplitParams()).table
    web = table.filter(pl.col("domain") == "web")["image_id"][0]
    table = table.with_columns(
        split=pl.when(pl.col("image_id") == web).then(pl.lit("held_out_copy")).otherwise("split")
    )
    for which in (["train"], ["bridge"], ["dev"], ["test"], ["train", "bridge", "dev", "test"]):
        assert web not in data.items(m, tmp_path / "m.parquet", table, which)["image_id"].to_list()


def test_second_drop_of_web_copies_of_dev_and_test_images_is_held_out(tmp_path, capsys):
    """The recipe's first rule through the real ingest: web near copies of dev/test images are named and idle."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from shiftkit.ingest.stage import ingest

    raw = tmp_path / "raw"
    x, y = helpers.mnist(300)
    helpers.write_folder(raw / "web", x, y, prefix="web")
    tx, ty = helpers.digits(400)
    helpers.write_folder(raw / "target", tx, ty, prefix="digit")
    domains = {"web": raw / "web", "target": raw / "target"}
    ingest(domains, tmp_path / "manifest")
    manifest = tmp_path / "manifest" / "manifest.parquet"
    assert main(["split", "--manifest", str(manifest), "--out", str(tmp_path / "splits")]) == 0
    first = read_table(tmp_path / "splits" / "splits.parquet", SPLITS_TABLE)
    m1 = read_table(manifest, MANIFEST).join(first.select("image_id", "split"), on="image_id")
    held = m1.filter(pl.col("split").is_in(["dev", "test"])).sort("image_id").head(6)
    for path, label in held.select("path", "label").iter_rows():  # the web scraped 6 dev/test digits, re-encoded
        info = PngInfo()
        info.add_text("source", "scraped")  # other bytes, the same picture
        Image.open(raw / "target" / path).save(raw / "web" / label / f"scraped_{Path(path).stem}.png", pnginfo=info)
    ingest(domains, tmp_path / "manifest")
    capsys.readouterr()
    assert main(["split", "--manifest", str(manifest), "--out", str(tmp_path / "splits")]) == 0
    out = capsys.readouterr().out
    second = read_table(tmp_path / "splits" / "splits.parquet", SPLITS_TABLE)
    m2 = read_table(manifest, MANIFEST).join(second.select("image_id", "split"), on="image_id")
    scraped = m2.filter(pl.col("path").str.contains("scraped_"))
    assert scraped.height == 6 and set(scraped["split"]) == {"held_out_copy"}
    assert set(m2.filter(pl.col("split").is_in(["dev", "test"]))["domain"]) == {"target"}
    before = dict(first.select("image_id", "split").iter_rows())
    assert all(s == before[i] for i, s in second.select("image_id", "split").iter_rows() if i in before)
    composition = json.loads((tmp_path / "splits" / "composition.json").read_text())
    named = {h["image_id"]: h["copies"] for h in composition["held_out_copies"]}
    assert set(named) == set(scraped["image_id"]) and set(named.values()) <= set(held["image_id"])
    assert "6 image(s) of other domains held out as near copies of dev/test images" in out


def test_a_strategy_is_one_decorated_function_and_the_params_accept_exactly_the_registered_ones(example):
    from shiftkit.splits.strategies import STRATEGIES, shuffle_pool, strategy

    assert list(STRATEGIES) == ["target", "shuffle"]
    with pytest.raises(ConfigError, match=r"must be one of 'target', 'shuffle'\. Got 'everything'"):
        SplitParams(strategy="everything")
    strategy("everything", target_only=False)(lambda c, params: shuffle_pool(c, params))
    try:
        result = splits.assign(example, SplitParams(strategy="everything", dev=0.1, test=0.1))
        shuffled = splits.assign(example, SplitParams(strategy="shuffle", dev=0.1, test=0.1))
        assert result.table.equals(shuffled.table)
        with pytest.raises(RegistryError, match="'everything' is registered twice"):
            strategy("everything", target_only=True)(shuffle_pool)
    finally:
        del STRATEGIES["everything"]
    with pytest.raises(ConfigError, match="Got 'everything'"):
        SplitParams(strategy="everything")
