from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from rich.console import Console

from shiftkit import synth
from shiftkit.cli.run import main
from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.console import output_to
from shiftkit.core.errors import ConfigError, DataError, RegistryError, ShiftkitError
from shiftkit.images.decode import decode
from shiftkit.params import load_params, params_from_mapping
from tests import helpers
from tests.synth_helpers import folder_digest, reduce, small_tables, write_manifest, write_splits

# ---------------------------------------------------------------------------------------------
# registry and recipe validation


def test_unknown_degradation_lists_valid_names():
    with pytest.raises(RegistryError, match=r"Unknown degradation 'oil_paint'; valid names: .*gaussian_blur.*quantize"):
        synth.make_step("oil_paint")


def test_duplicate_registration_is_refused():
    deg = synth.get("jpeg")
    with pytest.raises(RegistryError, match="registered twice"):
        synth.register(deg)


@pytest.mark.parametrize(
    ("name", "ranges", "message"),
    [
        ("gaussian_blur", {"sigma": (0.5, 50.0)},
         r"'sigma' range of step 'gaussian_blur' must lie within \[0.05, 20\]"),
        ("jpeg", {"quality": (90, 10)}, r"low <= high. Got \[90, 10\]"),
        ("downscale", {"scale": 1.5}, r"within \[0.01, 1\]"),
        ("quantize", {"levels": 1}, r"within \[2, 256\]"),
        ("zoom", {"factor": 2.0}, r"no parameter\(s\) factor; valid ones: scale"),
    ],
    ids=["sigma-too-big", "reversed-range", "scale-above-1", "one-level", "unknown-param"],
)
def test_out_of_bounds_ranges_raise_config_error(name, ranges, message):
    with pytest.raises(ConfigError, match=message):
        synth.make_step(name, **ranges)


def test_probability_must_be_a_fraction():
    with pytest.raises(ConfigError, match=r"'p' parameter of step 'jpeg' must be a number in \[0, 1\]. Got 1.5"):
        synth.make_step("jpeg", p=1.5)


def test_recipe_json_round_trip_and_unknown_name_in_file():
    r = synth.Recipe((synth.make_step("crop_to_content", margin_x=0.1), synth.make_step("jpeg", quality=(40, 60))))
    assert synth.Recipe.from_json(r.to_json()) == r
    bad = json.dumps({"steps": [{"name": "blurr", "p": 1.0}]})
    with pytest.raises(RegistryError, match="valid names: .*motion_blur"):
        synth.Recipe.from_json(bad)


# ---------------------------------------------------------------------------------------------
# applying recipes


def _digit(rgb: bool = False) -> np.ndarray:
    x = helpers.mnist(1, 7)[0][0]
    return np.repeat(x[..., None], 3, axis=2) if rgb else x


@pytest.mark.parametrize("name", synth.names(), ids=synth.names())
@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
def test_every_degradation_applies_and_is_deterministic(name, rgb):
    px = _digit(rgb)
    recipe = synth.Recipe((synth.make_step(name),))
    a, rec_a = recipe.apply(px, 11)
    b, rec_b = recipe.apply(px, 11)
    assert a.dtype == np.uint8 and a.ndim == px.ndim
    assert rec_a == rec_b and rec_a["steps"][0]["name"] == name
    assert synth.encode_png(a) == synth.encode_png(b)


def test_same_seed_gives_byte_identical_images_and_other_seeds_differ():
    recipe = synth.high_order_recipe()
    px = _digit(rgb=True)
    first = [synth.encode_png(recipe.apply(px, s)[0]) for s in range(5)]
    again = [synth.encode_png(recipe.apply(px, s)[0]) for s in range(5)]
    assert first == again
    assert len(set(first)) == 5


def test_probability_decides_which_steps_fire_without_shifting_values():
    jpeg = synth.make_step("jpeg", quality=(20, 90))
    always = synth.Recipe((synth.make_step("gauss_noise", p=1.0, std=(0.01, 0.2)), jpeg))
    sometimes = synth.Recipe((synth.make_step("gauss_noise", p=0.0, std=(0.01, 0.2)), jpeg))
    ra, rs = always.sample(3), sometimes.sample(3)
    assert [s["name"] for s in rs["steps"]] == ["jpeg"]
    assert ra["steps"][1] == rs["steps"][0]  # jpeg drew the same quality and seed


def test_crop_to_content_fills_the_frame_with_the_digit():
    px = _digit()
    out = synth.Recipe((synth.make_step("crop_to_content", stretch=1.0),)).apply(px, 0)[0]
    top, left, bottom, right = synth.content_box(out)
    assert (bottom - top) >= 26 and (right - left) >= 20
    before = synth.content_box(px)
    assert (before[2] - before[0]) <= 20  # MNIST pads digits into a 20x20 box


def test_downscale_keep_size_zero_returns_the_small_image():
    px = _digit()
    small = synth.Recipe((synth.make_step("downscale", scale=8 / 28, keep_size=0),)).apply(px, 0)[0]
    same = synth.Recipe((synth.make_step("downscale", scale=8 / 28, keep_size=1),)).apply(px, 0)[0]
    assert small.shape == (8, 8) and same.shape == (28, 28)


def test_quantize_keeps_the_requested_number_of_levels():
    grad = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    out = synth.Recipe((synth.make_step("quantize", levels=17),)).apply(grad, 0)[0]
    assert len(np.unique(out)) == 17


def test_threshold_binarises_to_the_background_and_full_contrast():
    px = _digit()
    out = synth.Recipe((synth.make_step("threshold", level=0.5),)).apply(px, 0)[0]
    assert set(np.unique(out)) == {0, 255}
    assert np.array_equal(out == 255, px > 127)
    inverted = synth.Recipe((synth.make_step("threshold", level=0.5),)).apply(255 - px, 0)[0]
    assert np.array_equal(inverted, 255 - out)  # dark ink on paper binarises the same way


@pytest.mark.parametrize("dark_on_light", [False, True], ids=["light-ink", "dark-ink"])
def test_stroke_thickens_or_thins_the_content_whatever_its_polarity(dark_on_light):
    px = _digit()
    ink = (lambda a: a < 128) if dark_on_light else (lambda a: a > 127)
    src = 255 - px if dark_on_light else px
    thick = synth.Recipe((synth.make_step("stroke", size=3),)).apply(src, 0)[0]
    thin = synth.Recipe((synth.make_step("stroke", size=-3),)).apply(src, 0)[0]
    assert ink(thin).sum() < ink(src).sum() < ink(thick).sum()
    assert np.array_equal(synth.Recipe((synth.make_step("stroke", size=0),)).apply(src, 0)[0], src)


@pytest.mark.parametrize(
    ("name", "ranges"),
    [("rotate", {"angle": (-15.0, 15.0)}), ("elastic", {"alpha": (0.5, 2.0), "sigma": (0.1, 0.3)})],
    ids=["rotate", "elastic"],
)
def test_per_copy_geometry_draws_its_own_values_and_the_record_reproduces_each(name, ranges):
    px = _digit()
    recipe = synth.Recipe((synth.make_step(name, **ranges),))
    outs = [recipe.apply(px, s) for s in range(4)]
    values = [rec["steps"][0]["values"] for _out, rec in outs]
    assert len({json.dumps(v, sort_keys=True) for v in values}) == 4  # every copy its own pose
    for (lo, hi), key in ((ranges[k], k) for k in sorted(ranges)):
        assert all(lo <= v[key] <= hi for v in values)
    for out, rec in outs:
        assert synth.encode_png(synth.reproduce(json.dumps(rec), px)) == synth.encode_png(out)
        assert not np.array_equal(out, px)
    assert len({synth.encode_png(o) for o, _r in outs}) == 4


def test_rotate_turns_a_bar_and_pads_with_the_background():
    bar = np.zeros((29, 29), np.uint8)
    bar[4:25, 13:16] = 255  # an upright stroke
    turned = synth.Recipe((synth.make_step("rotate", angle=45.0),)).apply(bar, 0)[0]
    top, left, bottom, right = synth.content_box(turned)
    assert (right - left) > 12 and (bottom - top) < 20  # now on the diagonal
    # counter-clockwise: the top end moves left, so the top-left quadrant holds ink
    assert turned[:10, :14].sum() > 0 and turned[:10, 15:].sum() == 0
    assert turned[0, 0] == 0 and turned[-1, -1] == 0


def test_elastic_keeps_the_ink_and_zero_alpha_changes_nothing():
    px = _digit()
    bent = synth.Recipe((synth.make_step("elastic", alpha=2.0, sigma=0.2),)).apply(px, 5)[0]
    assert not np.array_equal(bent, px)
    assert abs(int((bent > 127).sum()) - int((px > 127).sum())) < 0.35 * (px > 127).sum()
    same = synth.Recipe((synth.make_step("elastic", alpha=0.0, sigma=0.2),)).apply(px, 5)[0]
    assert np.array_equal(same, px)


@pytest.mark.parametrize(
    ("name", "ranges", "message"),
    [("rotate", {"angle": (-90.0, 0.0)}, r"'angle' range of step 'rotate' must lie within \[-45, 45\]"),
     ("elastic", {"sigma": 0.0}, r"'sigma' range of step 'elastic' must lie within \[0.01, 1\]")],
    ids=["rotate-too-far", "elastic-sigma-zero"],
)
def test_new_geometry_ranges_are_checked(name, ranges, message):
    with pytest.raises(ConfigError, match=message):
        synth.make_step(name, **ranges)


def test_reproduce_rebuilds_one_image_from_its_record_alone():
    px = _digit(rgb=True)
    recipe = synth.high_order_recipe()
    out, record = recipe.apply(px, 1234)
    again = synth.reproduce(json.dumps(record), px)
    assert synth.encode_png(again) == synth.encode_png(out)
    with pytest.raises(ConfigError, match="not valid json"):
        synth.reproduce("{nope", px)


# ---------------------------------------------------------------------------------------------
# the fit (acceptance scenarios)


@pytest.mark.slow
def test_fit_on_the_example_finds_framing_and_halves_the_property_distance():
    web = list(helpers.mnist(160)[0])
    target = list(helpers.digits(160)[0])
    fit = synth.fit_recipe(web, target, seed=0, workers=2)
    assert fit.before["auc"] >= 0.95
    assert fit.after["property_distance"] <= 0.5 * fit.before["property_distance"]
    assert {"crop_to_content", "zoom"} & set(fit.recipe.names)
    assert fit.after["separability"] < fit.before["separability"]
    # load_digits counted the ink of binary bitmaps per cell: without binarising, a thicker pen
    # and the reduction to 8x8 the classifier keeps an AUC above 0.9 (measured 0.80 with them)
    assert {"threshold", "stroke", "downscale"} <= set(fit.recipe.names)
    assert fit.after["auc"] <= 0.85


def test_fit_on_a_resolution_only_pair_chooses_downscaling_and_no_geometry():
    web = list(helpers.mnist(120)[0])
    target = list(reduce(helpers.mnist(120, 120)[0], 8))
    fit = synth.fit_recipe(web, target, seed=0, workers=2, max_steps=2, patience=0)
    assert "downscale" in fit.recipe.names
    assert not set(synth.GEOMETRY) & set(fit.recipe.names)


def test_fit_on_two_halves_of_one_folder_chooses_almost_nothing():
    x = helpers.mnist(240)[0]
    fit = synth.fit_recipe(list(x[:120]), list(x[120:]), seed=0, workers=2, patience=0)
    assert len(fit.recipe.steps) <= 1
    assert not {*synth.GEOMETRY, "downscale"} & set(fit.recipe.names)


def test_fit_refuses_a_sample_too_small():
    with pytest.raises(DataError, match="needs at least 6 web and 6 target images. Got 3 web"):
        synth.fit_recipe([_digit()] * 3, [_digit()] * 10)


# ---------------------------------------------------------------------------------------------
# the stage


@pytest.fixture(scope="module")
def tables(example_folders, tmp_path_factory):
    d = tmp_path_factory.mktemp("synth_tables")
    manifest = write_manifest(
        d / "manifest" / "manifest.parquet", {"web": example_folders / "web", "target": example_folders / "target"}
    )
    write_splits(d / "splits" / "splits.parquet", manifest)
    return d / "manifest" / "manifest.parquet", d / "splits" / "splits.parquet"


def _params(**synth_values):
    return params_from_mapping({"synth": {"fit_web": 80, "fit_target": 80, "max_rounds": 2, "workers": 2,
                                          "weighting": "none",
                                          **synth_values}}).synth


@pytest.fixture(scope="module")
def synth_run(tables, tmp_path_factory):
    manifest, splits = tables
    out = tmp_path_factory.mktemp("synth_out") / "synth"
    summary = synth.run_synth(manifest, splits, out, _params(copies=2, fraction=0.5), preview=6)
    return out, summary


def test_children_inherit_split_and_group_and_never_reach_dev_or_test(tables, synth_run):
    manifest, splits = tables
    out, summary = synth_run
    table = io.read_table(out / "synth.parquet", schema.SYNTH)
    assert table.height == summary["images"] > 0
    assert set(table["split"]) <= {"train", "bridge"}
    assert set(table["domain"]) == {"synth"}
    assert set(table["copy"]) == {0, 1}
    m = io.read_table(manifest, schema.MANIFEST)
    s = io.read_table(splits, schema.SPLITS_TABLE)
    parents = table.join(m.select("image_id", "domain", "label", "dup_group"), left_on="parent_id",
                         right_on="image_id", suffix="_p").join(s.select("image_id", "split"), left_on="parent_id",
                                                                 right_on="image_id", suffix="_p")
    assert parents.height == table.height
    assert (parents["domain_p"] == "web").all()
    assert (parents["split"] == parents["split_p"]).all()
    assert (parents["dup_group"] == parents["dup_group_p"]).all()
    assert (parents["label"] == parents["label_p"]).all()
    # about half of the web train/bridge parents were picked, two copies each
    n_web = s.join(m, on="image_id").filter(pl.col("domain") == "web").height
    assert 0.35 * n_web <= table["parent_id"].n_unique() <= 0.65 * n_web


def test_synth_paths_are_relative_and_records_reproduce_the_files(tables, synth_run):
    manifest, _ = tables
    out, _ = synth_run
    table = io.read_table(out / "synth.parquet", schema.SYNTH)
    m = io.read_table(manifest, schema.MANIFEST)
    parent_path = dict(zip(m["image_id"], io.image_paths(m, manifest), strict=True))
    for row in table.head(5).iter_rows(named=True):
        child = out / row["path"]
        assert not row["path"].startswith("/") and child.is_file()
        rebuilt = synth.reproduce(row["recipe"], decode(parent_path[row["parent_id"]]).pixels)
        assert synth.encode_png(rebuilt) == child.read_bytes()
    assert (out / "recipe.json").is_file() and (out / "fit.json").is_file()
    fit = io.read_json(out / "fit.json")
    assert {"before", "after", "rounds", "sample_sizes"} <= set(fit)
    with Image.open(out / "preview.png") as im:
        assert im.width > 200 and im.height > 100


def test_same_seed_gives_byte_identical_outputs_and_recipe_reuse_skips_the_fit(tables, synth_run, tmp_path):
    manifest, splits = tables
    out, _ = synth_run
    again = tmp_path / "again"
    summary = synth.run_synth(manifest, splits, again, _params(copies=2, fraction=0.5), recipe_path=out / "recipe.json")
    assert "reused" in io.read_json(again / "fit.json")
    assert summary["fit"] == {}
    assert (again / "synth.parquet").read_bytes() == (out / "synth.parquet").read_bytes()
    first = sorted(p.relative_to(out) for p in (out / "images").rglob("*.png"))
    assert first == sorted(p.relative_to(again) for p in (again / "images").rglob("*.png"))
    assert all((out / p).read_bytes() == (again / p).read_bytes() for p in first[:50])


def test_disabled_synth_writes_an_empty_table(tables, tmp_path):
    manifest, splits = tables
    synth.run_synth(manifest, splits, tmp_path / "off", _params(enabled=False))
    table = io.read_table(tmp_path / "off" / "synth.parquet", schema.SYNTH)
    assert table.height == 0 and "copy" in table.columns


def test_no_web_images_in_train_is_a_data_error(tables, tmp_path):
    manifest, splits = tables
    with pytest.raises(DataError, match="needs at least 6 web images"):
        synth.run_synth(manifest, splits, tmp_path / "x", _params(web_domain="photos"))


def test_cli_synth_with_a_bad_recipe_file_exits_2_with_one_line(tables, tmp_path, capsys):
    manifest, splits = tables
    bad = tmp_path / "recipe.json"
    bad.write_text(json.dumps({"steps": [{"name": "gaussian_blur", "params": {"sigma": [0.5, 99]}}]}))
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  workers: 1\n")
    code = main(["synth", "--manifest", str(manifest), "--splits", str(splits), "--out", str(tmp_path / "o"),
                 "--recipe", str(bad), "--params", str(params)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "'sigma' range of step 'gaussian_blur' must lie within" in err


def test_cli_synth_reuses_a_recipe_and_writes_the_table(tables, tmp_path, capsys):
    manifest, splits = tables
    recipe = tmp_path / "recipe.json"
    io.write_json(recipe, synth.Recipe((synth.make_step("downscale", scale=0.3),)).to_dict())
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  fraction: 0.2\n  workers: 1\n")
    code = main(["synth", "--manifest", str(manifest), "--splits", str(splits), "--out", str(tmp_path / "o"),
                 "--recipe", str(recipe), "--params", str(params), "--copies", "1"])
    assert code == 0
    table = io.read_table(tmp_path / "o" / "synth.parquet", schema.SYNTH)
    assert table.height > 0
    assert all(json.loads(r)["steps"][0]["name"] == "downscale" for r in table["recipe"])


def test_mixed_image_modes_keep_their_channels(tmp_path):
    x, y = helpers.mnist(24)
    root = tmp_path / "web"
    for i, (img, lab) in enumerate(zip(x, y, strict=True)):
        d = root / str(lab)
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        mode = ("L", "RGB", "P", "LA")[i % 4]
        im.convert(mode).save(d / f"m{i}.png")
    t, ty = helpers.digits(24)
    helpers.write_folder(tmp_path / "target", t, ty)
    manifest = write_manifest(tmp_path / "m" / "manifest.parquet", {"web": root, "target": tmp_path / "target"})
    write_splits(tmp_path / "s" / "splits.parquet", manifest)
    recipe = tmp_path / "r.json"
    io.write_json(recipe, synth.Recipe((synth.make_step("gauss_noise", std=0.05),)).to_dict())
    synth.run_synth(tmp_path / "m" / "manifest.parquet", tmp_path / "s" / "splits.parquet", tmp_path / "o",
                    _params(workers=1), recipe_path=recipe)
    table = io.read_table(tmp_path / "o" / "synth.parquet", schema.SYNTH)
    parent = dict(zip(manifest["image_id"], io.image_paths(manifest, tmp_path / "m" / "manifest.parquet"), strict=True))
    modes = dict(zip(manifest["image_id"], manifest["mode"], strict=True))
    seen = set()
    for row in table.iter_rows(named=True):
        child = decode(tmp_path / "o" / row["path"]).pixels
        assert child.ndim == decode(parent[row["parent_id"]]).pixels.ndim
        seen.add(modes[row["parent_id"]])
    assert len(seen) >= 3


def test_params_synth_section_validates():
    assert load_params(None).synth.enabled is True
    with pytest.raises(ConfigError, match=r"'synth.fraction' parameter must be a fraction in \(0, 1\]. Got 0.0"):
        params_from_mapping({"synth": {"fraction": 0.0}})


# ---------------------------------------------------------------------------------------------
# the registry: one decorated function declares a degradation


@pytest.fixture
def invert_registered():
    """A degradation the package does not have, declared here as a user would: one decorated function."""

    @synth.degradation("invert", kind="polarity", order=175, params={"amount": synth.ParamSpec(0.0, 1.0, (1.0, 1.0))},
                       grid=[{"amount": 1.0}], doc="light ink on dark paper <-> dark ink on light paper")
    def _invert(_t, img, v, _seed):
        a = v["amount"]
        return np.clip(np.rint(img * (1.0 - a) + (255.0 - img) * a), 0, 255).astype(np.uint8)

    yield _invert
    if "invert" in synth.names():
        synth.unregister("invert")


def test_a_degradation_declared_in_a_test_module_is_tried_by_the_fit_and_used_by_a_recipe(invert_registered):
    assert synth.CANONICAL_ORDER[-1] == "invert"  # order 175: after jpeg (170)
    web = list(helpers.mnist(48)[0])
    target = [255 - x for x in helpers.mnist(48, 48)[0]]  # other digits, dark ink on light paper
    fit = synth.fit_recipe(web, target, seed=0, workers=1, max_steps=1, patience=0, refine=0)
    tried = {name for entry in fit.log if "top" in entry for top in entry["top"] for name in top["recipe"]}
    assert "invert" in tried
    assert "invert" in fit.recipe.names
    assert fit.after["auc"] < 0.8 <= fit.before["auc"]
    recipe = synth.Recipe.from_json(synth.Recipe((synth.make_step("invert"),)).to_json())
    out, record = recipe.apply(web[0], 3)
    assert np.array_equal(out, 255 - web[0])
    assert synth.encode_png(synth.reproduce(json.dumps(record), web[0])) == synth.encode_png(out)
    synth.unregister("invert")
    assert "invert" not in synth.CANONICAL_ORDER
    with pytest.raises(RegistryError, match="Unknown degradation 'invert'"):
        synth.make_step("invert")


def test_the_registry_is_strict_about_names():
    with pytest.raises(RegistryError, match="'jpeg' is registered twice"):
        synth.degradation("jpeg", kind="compression", order=1, params={})(lambda t, img, v, s: img)
    with pytest.raises(RegistryError, match="Unknown degradation 'nope'; valid names: .*zoom"):
        synth.unregister("nope")
    assert synth.get("jpeg").order == 170  # the failed declaration left the registered one alone


def test_the_fit_grid_and_canonical_order_come_from_the_declarations():
    web, target = list(helpers.mnist(12)[0]), list(helpers.digits(12)[0])
    moves = synth.candidates(synth.grid_context(web, target, [None] * 12))
    names = {m.name if isinstance(m, synth.Step) else tuple(s.name for s in m) for m in moves}
    # jpeg, jpeg_chroma: JPEG targets only; colour and tone steps: colour samples only (tests/test_camera.py)
    colour_only = {"jpeg_chroma", "white_balance", "saturation", "chromatic_aberration", "exposure_gamma"}
    declared_grids = {n for n in synth.names() if synth.get(n).grid is not None} - {"jpeg"} - colour_only
    assert declared_grids <= names and "iso_noise" not in names
    assert ("threshold", "downscale") in names  # the pair that only pays together
    assert list(synth.CANONICAL_ORDER) == sorted(synth.names(), key=lambda n: (synth.get(n).order, n))
    assert set(synth.GEOMETRY) == {"shear", "rotate", "elastic", "crop_to_content", "zoom", "translate"}


# ---------------------------------------------------------------------------------------------
# the stage: empty recipes, whole-folder replacement, previews


def test_an_empty_fitted_recipe_writes_no_copies_and_says_why(tmp_path):
    x, y = helpers.mnist(320, 2000)
    manifest, splits = small_tables(tmp_path, (x[:160], y[:160]), (x[160:], y[160:]))  # two halves of one folder
    buf = StringIO()
    with output_to(Console(file=buf, width=400)):
        summary = synth.run_synth(manifest, splits, tmp_path / "out",
                                  _params(weighting="density_ratio", max_rounds=1, refine=0))
    assert summary["images"] == 0 and summary["parents"] == 0
    assert io.read_json(tmp_path / "out" / "recipe.json")["steps"] == []
    said = buf.getvalue()
    assert "no degradation brought the web images closer to the target (domain AUC 0." in said
    assert "no copies written" in summary["note"]
    assert not (tmp_path / "out" / "images").exists()
    synth.run_synth(manifest, splits, tmp_path / "off", _params(enabled=False))
    # the same empty table as synthesis switched off: the later stages run as without synthesis
    assert (tmp_path / "out" / "synth.parquet").read_bytes() == (tmp_path / "off" / "synth.parquet").read_bytes()


@pytest.fixture
def reuse_tables(tmp_path):
    """Small tables and a saved recipe: a stage run without a fit."""
    manifest, splits = small_tables(tmp_path, helpers.mnist(40), helpers.digits(30))
    recipe = tmp_path / "recipe.json"
    io.write_json(recipe, synth.Recipe((synth.make_step("gauss_noise", std=0.05),)).to_dict())
    return manifest, splits, recipe


def _break_a_parent_midway(manifest: Path) -> None:
    m = io.read_table(manifest, schema.MANIFEST).filter(pl.col("domain") == "web").sort("image_id")
    io.image_paths(m, manifest)[m.height // 2].unlink()


def test_a_failed_run_leaves_the_previous_output_folder_untouched(reuse_tables, tmp_path):
    manifest, splits, recipe = reuse_tables
    out = tmp_path / "out"
    synth.run_synth(manifest, splits, out, _params(workers=1), recipe_path=recipe, preview=4)
    before = folder_digest(out)
    assert {"synth.parquet", "recipe.json", "fit.json", "preview.png"} <= set(before)
    other = tmp_path / "other.json"
    io.write_json(other, synth.Recipe((synth.make_step("jpeg", quality=30),)).to_dict())
    _break_a_parent_midway(manifest)
    with pytest.raises(ShiftkitError):
        synth.run_synth(manifest, splits, out, _params(workers=1), recipe_path=other, preview=4)
    assert folder_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


def test_a_failed_first_run_leaves_nothing(reuse_tables, tmp_path):
    manifest, splits, recipe = reuse_tables
    _break_a_parent_midway(manifest)
    with pytest.raises(ShiftkitError):
        synth.run_synth(manifest, splits, tmp_path / "new", _params(workers=1), recipe_path=recipe)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".new")) == []


def test_cli_synth_rejects_a_negative_preview_like_params_yaml(reuse_tables, tmp_path, capsys):
    manifest, splits, recipe = reuse_tables
    params = tmp_path / "params.yaml"
    params.write_text("synth:\n  workers: 1\n")
    code = main(["synth", "--manifest", str(manifest), "--splits", str(splits), "--out", str(tmp_path / "o"),
                 "--recipe", str(recipe), "--params", str(params), "--preview", "-3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "'synth.preview' parameter" in err and "-3" in err
    assert not (tmp_path / "o").exists()
    params.write_text("synth:\n  workers: 1\n  preview: -3\n")
    assert main(["synth", "--manifest", str(manifest), "--splits", str(splits), "--out", str(tmp_path / "o"),
                 "--recipe", str(recipe), "--params", str(params)]) == 2
    assert capsys.readouterr().err.strip().endswith(err.split("error: ", 1)[1])  # the params file is named first
    with pytest.raises(ConfigError, match="'synth.preview' parameter"):
        synth.run_synth(manifest, splits, tmp_path / "o", _params(), recipe_path=recipe, preview=-3)
