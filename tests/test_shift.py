from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from shiftkit.cli.run import main
from shiftkit.core.errors import ConfigError, DataError, InputPathError
from shiftkit.images import features
from shiftkit.params import params_from_mapping
from shiftkit.shift import stage as shift
from shiftkit.stats import twosample
from tests import helpers
from tests.synth_helpers import write_manifest, write_splits


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """Two random halves of one folder of 400 MNIST digits."""
    root = tmp_path_factory.mktemp("halves")
    x, y = helpers.mnist(400, 1000)
    order = np.random.default_rng(5).permutation(len(x))
    helpers.write_folder(root / "a", x[order[:200]], y[order[:200]])
    helpers.write_folder(root / "b", x[order[200:]], y[order[200:]])
    return root / "a", root / "b"


def test_two_halves_of_one_folder_are_indistinguishable(halves):
    a, b = halves
    res = shift.compare(shift.folder_set("A", a), shift.folder_set("B", b), permutations=200, workers=1)
    assert abs(res["domain_auc"]["auc"] - 0.5) <= 0.1
    assert res["a"]["sampled"] == 200 and res["b"]["sampled"] == 200
    assert set(res["properties"]) == set(features.PROPS)
    assert all(r["ks_p"] > 0.001 for r in res["properties"].values())


def test_mmd_over_20_random_splits_rejects_at_most_twice(halves):
    a, b = halves
    paths = list(shift.folder_set("A", a).paths) + list(shift.folder_set("B", b).paths)
    thumbs, props, _ = shift.set_features(paths, size=16, workers=1)
    feats = np.hstack([thumbs, props])
    rejections = 0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(feats))
        res = twosample.mmd_test(feats[order[:200]], feats[order[200:]], permutations=200, seed=seed)
        rejections += res["p_value"] <= 0.05
    assert rejections <= 2


def test_mnist_against_digits_is_far_apart(example_folders):
    res = shift.compare(
        shift.folder_set("web", example_folders / "web"),
        shift.folder_set("target", example_folders / "target"),
        max_images=120,
        permutations=100,
        workers=1,
    )
    assert res["domain_auc"]["auc"] > 0.95
    assert res["mmd"]["p_value"] == pytest.approx(1 / 101)
    assert res["properties"]["extent"]["mean_b"] > res["properties"]["extent"]["mean_a"]


def test_mmd_p_value_is_k_plus_one_over_n_plus_one():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 3.0
    res = twosample.mmd_test(x, y, permutations=49, seed=0)
    assert res["p_value"] == pytest.approx(1 / 50)
    assert twosample.mmd_test(x, y, permutations=0)["p_value"] == 1.0
    with pytest.raises(DataError, match="two non-empty sets"):
        twosample.mmd_test(x[:0], y)


def test_empty_folder_and_missing_folder_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="image set 'A' is empty: no image file"):
        shift.folder_set("A", tmp_path / "empty")
    with pytest.raises(InputPathError, match="does not exist"):
        shift.folder_set("A", tmp_path / "nope")


@pytest.fixture()
def params_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("shift:\n  workers: 1\n")
    return str(p)


@pytest.fixture(scope="module")
def tables(example_folders, tmp_path_factory):
    d = tmp_path_factory.mktemp("shift_tables")
    m = write_manifest(d / "manifest.parquet", {"web": example_folders / "web", "target": example_folders / "target"})
    write_splits(d / "splits.parquet", m)
    return d / "manifest.parquet", d / "splits.parquet"


def test_manifest_filters_and_their_errors(tables):
    manifest, splits = tables
    s = shift.manifest_set("A", manifest, splits=splits, split=["train"], domain=["target"])
    assert 0 < len(s.paths) < 200 and "split=train" in s.description
    with pytest.raises(ConfigError, match="needs --splits"):
        shift.manifest_set("A", manifest, split=["dev"])
    with pytest.raises(DataError, match="image set 'B' is empty: manifest .* domain=web matched no image"):
        shift.manifest_set("B", manifest, splits=splits, split=["dev"], domain=["web"])


def test_cli_shift_on_a_manifest_prints_json_with_sample_sizes(tables, tmp_path, capsys, params_file):
    manifest, splits = tables
    out = tmp_path / "shift.json"
    code = main(
        [
            "shift",
            "--manifest",
            str(manifest),
            "--splits",
            str(splits),
            "--a-domain",
            "web",
            "--b-domain",
            "target",
            "--b-split",
            "train",
            "--max-images",
            "80",
            "--permutations",
            "50",
            "--json",
            str(out),
            "--params",
            params_file,
        ]
    )
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["a"]["sampled"] == 80 and res["b"]["images"] < 200
    assert json.loads(out.read_text())["mmd"]["permutations"] == 50
    assert res["mmd"]["rejects"] is True


def test_cli_shift_empty_set_exits_2_with_one_line(tables, capsys, params_file):
    manifest, splits = tables
    code = main(
        [
            "shift",
            "--manifest",
            str(manifest),
            "--splits",
            str(splits),
            "--a-split",
            "dev",
            "--a-domain",
            "web",
            "--b-domain",
            "target",
            "--params",
            params_file,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "is empty" in err


def test_cli_shift_refuses_a_mix_of_folders_and_manifest(tables, tmp_path, capsys, params_file):
    manifest, _ = tables
    code = main(["shift", "--a", str(tmp_path), "--manifest", str(manifest), "--params", params_file])
    assert code == 2 and "either two folders" in capsys.readouterr().err


def test_mixed_image_modes_are_compared_after_normalisation(tmp_path):
    x, y = helpers.mnist(40)
    for i, (img, lab) in enumerate(zip(x, y, strict=False)):
        d = tmp_path / ("a" if i < 20 else "b") / str(lab)
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        im.convert(("L", "RGB", "P", "LA", "I;16")[i % 5]).save(d / f"m{i}.png")
    res = shift.compare(
        shift.folder_set("A", tmp_path / "a"),
        shift.folder_set("B", tmp_path / "b"),
        folds=3,
        permutations=20,
        workers=1,
    )
    assert res["a"]["modes"] == ["L", "RGB"]
    assert 0.0 <= res["domain_auc"]["auc"] <= 1.0


@pytest.mark.slow
def test_timm_backbone_features(halves):
    pytest.importorskip("timm")
    a, b = halves
    res = shift.compare(
        shift.folder_set("A", a),
        shift.folder_set("B", b),
        max_images=40,
        folds=3,
        permutations=50,
        model="resnet10t",
        model_size=32,
        workers=1,
    )
    assert "resnet10t" in res["features"]
    assert 0.0 <= res["domain_auc"]["auc"] <= 1.0


def test_params_shift_section_validates():
    with pytest.raises(ConfigError, match=r"'shift.folds' parameter must be an integer >= 2. Got 1"):
        params_from_mapping({"shift": {"folds": 1}})
