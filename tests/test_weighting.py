"""Density-ratio weighting of synthesis parents (shiftkit.synth.weighting and its use in the synth stage)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import polars as pl
import pytest

from shiftkit import synth
from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import ConfigError, DataError
from shiftkit.images import features
from shiftkit.params import params_from_mapping
from shiftkit.synth import weighting as wt
from tests import helpers
from tests.synth_helpers import write_manifest, write_splits


def _blurred(x: np.ndarray) -> np.ndarray:
    """Digits reduced to 7x7 and back to 28x28: the 'low resolution' kind of the same digits."""
    return np.stack([cv2.resize(cv2.resize(d, (7, 7), interpolation=cv2.INTER_AREA), (28, 28),
                                interpolation=cv2.INTER_LINEAR) for d in x])


def _feats(pixels) -> np.ndarray:
    return np.hstack(features.cheap_features(list(pixels), 8))


# ---------------------------------------------------------------------------------------------
# the pieces


def test_allocate_gives_each_parent_the_floor_or_ceiling_of_its_share_and_sums_to_total():
    w = np.random.default_rng(1).gamma(0.5, size=500)
    counts = wt.allocate(w, 1234, seed=7)
    expected = 1234 * w / w.sum()
    assert counts.sum() == 1234
    assert np.all(counts >= np.floor(expected) - 1e-9) and np.all(counts <= np.ceil(expected) + 1e-9)
    assert np.array_equal(counts, wt.allocate(w, 1234, seed=7))
    assert not np.array_equal(counts, wt.allocate(w, 1234, seed=8))
    assert np.array_equal(wt.allocate(np.ones(10), 20, seed=3), np.full(10, 2))
    assert wt.allocate(w, 0, seed=0).sum() == 0


def test_cap_bounds_the_weights_and_effective_share_measures_their_spread():
    log_w = np.r_[np.zeros(99), 50.0]  # one parent a million million times likelier
    w = wt.cap(log_w, clip=10.0)
    assert w.mean() == pytest.approx(1.0)
    assert w.max() / np.median(w) == pytest.approx(10.0)
    assert wt.effective_share(np.ones(40)) == pytest.approx(1.0)
    assert wt.effective_share(np.r_[np.ones(1), np.zeros(9)]) == pytest.approx(0.1)
    assert 0.1 < wt.effective_share(w) < 1.0


def test_weights_favour_web_images_that_look_like_the_target():
    # web: 200 sharp and 200 low-resolution MNIST digits; target: other low-resolution digits
    x, _ = helpers.mnist(600)
    web = np.concatenate([x[:200], _blurred(x[200:400])])
    target = _blurred(x[400:600])
    model = wt.fit_weighting(_feats(web), _feats(target), feature_size=8, clip=10.0)
    counts = wt.allocate(model.weights(_feats(web)), 400, seed=0)
    # resampled by the weights, the web set is mostly of the target's kind (it was half)
    assert counts[200:].sum() / counts.sum() >= 0.9
    # two samples of one set: nearly even weights (the regularisation is chosen by cross-validation)
    x = x[np.random.default_rng(0).permutation(len(x))]
    same = wt.fit_weighting(_feats(x[:200]), _feats(x[200:400]), feature_size=8, clip=10.0)
    assert wt.effective_share(same.weights(_feats(x[400:]))) >= 0.9


def test_weighting_round_trips_through_json_and_refuses_a_broken_one():
    x, _ = helpers.mnist(40)
    model = wt.fit_weighting(_feats(x[:20]), _feats(x[20:]), feature_size=8, clip=5.0)
    again = wt.Weighting.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.allclose(again.weights(_feats(x)), model.weights(_feats(x)))
    bad = {**model.to_dict(), "coef": [1.0]}
    with pytest.raises(ConfigError, match="mean, scale and coef of one length"):
        wt.Weighting.from_dict(bad)
    with pytest.raises(ConfigError, match="must be a mapping with feature_size"):
        wt.Weighting.from_dict({"clip": 2})
    with pytest.raises(DataError, match="expects 70 features per image"):
        model.weights(np.zeros((3, 5)))
    with pytest.raises(DataError, match="needs at least 2 web and 2 target images"):
        wt.fit_weighting(_feats(x[:1]), _feats(x[1:5]), feature_size=8, clip=5.0)


def test_weighting_params_are_checked():
    with pytest.raises(ConfigError, match="synth.weighting"):
        params_from_mapping({"synth": {"weighting": "importance"}})
    with pytest.raises(ConfigError, match=r"'synth.weight_clip' parameter must be >= 1. Got 0.5"):
        params_from_mapping({"synth": {"weight_clip": 0.5}})


# ---------------------------------------------------------------------------------------------
# in the fit and the stage


def _tables(tmp_path, web: np.ndarray, web_y, target: np.ndarray, target_y):
    helpers.write_folder(tmp_path / "web", web, web_y, prefix="w")
    helpers.write_folder(tmp_path / "target", target, target_y, prefix="t")
    mpath = tmp_path / "m" / "manifest.parquet"
    manifest = write_manifest(mpath, {"web": tmp_path / "web", "target": tmp_path / "target"})
    spath = tmp_path / "s" / "splits.parquet"
    return manifest, write_splits(spath, manifest), mpath, spath


def _params(**values):
    return params_from_mapping({"synth": {"fit_web": 80, "fit_target": 80, "workers": 2, **values}}).synth


def test_fit_keeps_the_weighting_when_it_brings_held_out_target_images_closer(tmp_path):
    x, y = helpers.mnist(900)
    web = np.concatenate([x[:300], _blurred(x[300:600])])
    manifest, splits, mpath, _ = _tables(tmp_path, web, y[:600], _blurred(x[600:900]), y[600:900])
    # no recipe steps: only the weighting can move the web set towards the target
    fit = synth.fit_from_tables(manifest, splits, mpath, _params(max_rounds=0))
    check = fit.weighting_check
    assert not fit.recipe.steps
    assert check["used"] and fit.weighting is not None
    assert check["sizes"]["target_held_out"] >= 40
    h = check["held_out"]
    assert h["weighted"]["auc"] <= h["recipe"]["auc"] - 0.1
    # the model saved with the recipe gives the same weights as the fitted one
    again = synth.load_weighting(io.write_json(tmp_path / "recipe.json", fit.to_dict()["recipe"]))
    f = _feats(web[:50])
    assert np.allclose(again.weights(f), fit.weighting.weights(f))


def test_fit_on_two_halves_of_one_folder_does_not_keep_the_weighting(tmp_path):
    x, y = helpers.mnist(600)
    order = np.random.default_rng(0).permutation(600)  # two random halves
    x, y = x[order], y[order]
    manifest, splits, mpath, _ = _tables(tmp_path, x[:300], y[:300], x[300:], y[300:])
    fit = synth.fit_from_tables(manifest, splits, mpath, _params(max_rounds=0))
    assert fit.weighting is None
    assert fit.weighting_check["used"] is False
    assert abs(fit.weighting_check["held_out"]["weighted"]["auc"] - 0.5) < 0.2


def test_too_few_held_out_target_images_leave_the_weighting_out(tmp_path):
    x, y = helpers.mnist(120)
    manifest, splits, mpath, _ = _tables(tmp_path, x[:100], y[:100], x[100:120], y[100:120])
    fit = synth.fit_from_tables(manifest, splits, mpath, _params(max_rounds=0))
    assert fit.weighting is None and "too few target train images" in fit.weighting_check["reason"]


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("weighted")
    x, y = helpers.mnist(900)
    web = np.concatenate([x[:300], _blurred(x[300:600])])
    _, _, mpath, spath = _tables(tmp, web, y[:600], _blurred(x[600:900]), y[600:900])
    params = _params(max_rounds=0, copies=2, fraction=0.5)
    fit = synth.fit_from_tables(io.read_table(mpath, schema.MANIFEST), io.read_table(spath, schema.SPLITS_TABLE),
                                mpath, params)
    assert fit.weighting is not None
    # an empty recipe writes no copies: one step that leaves the pixels as they are (a pen width
    # change of 0) keeps the copies' shares to the weighting alone
    recipe = io.write_json(tmp / "recipe.json",
                           synth.recipe_file_dict(synth.Recipe((synth.make_step("stroke", size=0),)), fit.weighting))
    out = tmp / "synth"
    summary = synth.run_synth(mpath, spath, out, params, recipe_path=recipe, preview=0)
    return tmp, mpath, spath, out, summary


def test_stage_shares_the_copies_by_weight_and_records_them(weighted_run):
    _tmp, mpath, _, out, summary = weighted_run

    table = io.read_table(out / "synth.parquet", schema.SYNTH)
    m = io.read_table(mpath, schema.MANIFEST)
    web_ids = set(m.filter(m["domain"] == "web")["image_id"])
    # fraction x copies x web images in train/bridge (every web image is in one of them here)
    assert table.height == summary["images"] == round(0.5 * 2 * len(web_ids))
    assert summary["weighting"]["copies"] == table.height
    # copies went mostly to the low-resolution parents (file prefix w, the second half by index)
    paths = dict(zip(m["image_id"], m["path"], strict=True))
    low = [int(paths[p].split("_")[-1].split(".")[0]) >= 300 for p in table["parent_id"]]
    assert sum(low) / len(low) >= 0.85
    # copy numbers run 0..k-1 per parent, and each child is rebuilt from its record
    per = table.group_by("parent_id").agg(n=pl.len(), top=pl.col("copy").max())
    assert (per["top"] == per["n"] - 1).all()
    assert "weighting" in io.read_json(out / "recipe.json")
    assert io.read_json(out / "fit.json")["recipe"]["weighting"] == io.read_json(out / "recipe.json")["weighting"]


def test_reusing_a_weighted_recipe_gives_byte_identical_outputs(weighted_run, tmp_path):
    _, mpath, spath, out, _ = weighted_run
    again = tmp_path / "again"
    synth.run_synth(mpath, spath, again, _params(max_rounds=0, copies=2, fraction=0.5),
                    recipe_path=out / "recipe.json", preview=0)
    assert (again / "synth.parquet").read_bytes() == (out / "synth.parquet").read_bytes()
    files = sorted(p.relative_to(out) for p in (out / "images").rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in (again / "images").rglob("*.png"))
    assert all((out / p).read_bytes() == (again / p).read_bytes() for p in files)
    # weighting: none ignores the saved model and gives every picked parent its copies
    even = tmp_path / "even"
    s = synth.run_synth(mpath, spath, even, _params(copies=2, fraction=0.5, weighting="none"),
                        recipe_path=out / "recipe.json", preview=0)
    assert s["weighting"] is None
