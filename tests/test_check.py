"""`shiftkit check`: the gate for a new data drop, on real digits ingested for real."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageFilter

from shiftkit import check
from shiftkit.cli.run import main
from shiftkit.core.errors import CheckFailed, RegistryError
from shiftkit.core.files import image_paths, read_table
from shiftkit.core.schema import MANIFEST, SPLITS_TABLE
from shiftkit.ingest.stage import ingest
from shiftkit.params import load_params
from shiftkit.splits.stage import run_split
from tests import helpers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(example_folders, tmp_path_factory):
    """The example ingested and split: (manifest path, splits path, dev rows with their files)."""
    out = tmp_path_factory.mktemp("reference")
    ingest({"web": example_folders / "web", "target": example_folders / "target"}, out / "manifest")
    manifest_path = out / "manifest" / "manifest.parquet"
    run_split(manifest_path, out / "splits")
    manifest = read_table(manifest_path, MANIFEST)
    manifest = manifest.with_columns(file=pl.Series([str(p) for p in image_paths(manifest, manifest_path)]))
    table = read_table(out / "splits" / "splits.parquet", SPLITS_TABLE)
    dev = manifest.join(table.select("image_id", "split"), on="image_id").filter(pl.col("split") == "dev").sort("path")
    return manifest_path, out / "splits" / "splits.parquet", dev


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check(drop: Path, reference, tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    manifest_path, splits_path, _ = reference
    out = tmp_path / "report"
    code = main(
        ["check", str(drop), "--reference", str(manifest_path), "--splits", str(splits_path), "--out", str(out), *extra]
    )
    return code, json.loads((out / "check.json").read_text()), (out / "check.md").read_text()


def _clean_drop(root: Path, n: int = 120, offset: int = 20000) -> Path:
    x, y = helpers.mnist(n, offset)
    helpers.write_folder(root / "web", x, y, prefix="new")
    return root


# --- acceptance ----------------------------------------------------------------------------------


def test_a_byte_copy_of_a_dev_image_blocks_and_is_named(reference, tmp_path, capsys):
    _, _, dev = reference
    src = Path(dev["file"][0])
    drop = _clean_drop(tmp_path / "drop", n=30)
    dest = drop / "target" / dev["label"][0] / "copy_of_dev.png"
    dest.parent.mkdir(parents=True)
    shutil.copy(src, dest)
    code, report, md = _check(drop, reference, tmp_path)
    assert code == 1
    assert report["verdict"] == "fail"
    leak = [f for f in report["findings"] if f["rule"] == "leakage"]
    assert leak and leak[0]["severity"] == "error"
    assert "copy_of_dev.png = exact copy of" in leak[0]["message"] and src.name in leak[0]["message"]
    assert "copy_of_dev.png" in md and "blocked" in md
    assert "copy_of_dev.png" in capsys.readouterr().err


def test_a_resized_jpeg_copy_of_a_dev_image_blocks_and_is_named(reference, tmp_path):
    _, _, dev = reference
    src = Path(dev["file"][0])
    drop = tmp_path / "drop"
    dest = drop / "target" / dev["label"][0] / "resized.jpg"
    dest.parent.mkdir(parents=True)
    im = Image.open(src)
    im.resize((im.width * 2, im.height * 2), Image.BILINEAR).save(dest, quality=90)
    code, report, md = _check(drop, reference, tmp_path)
    assert code == 1
    leak = [f for f in report["findings"] if f["rule"] == "leakage"][0]
    assert "resized.jpg = near (" in leak["message"] and src.name in leak["message"]
    assert "resized.jpg" in md


def test_a_clean_drop_passes(reference, tmp_path):
    manifest_path, splits_path, _ = reference
    before = (_digest(manifest_path), _digest(splits_path))
    code, report, md = _check(_clean_drop(tmp_path / "drop"), reference, tmp_path)
    assert code == 0, [f["message"] for f in report["findings"] if f["severity"] == "error"]
    assert report["verdict"] == "pass" and report["summary"]["images"] == 120
    assert "passed" in md
    assert (_digest(manifest_path), _digest(splits_path)) == before  # the reference is only read


# --- errors --------------------------------------------------------------------------------------


def test_a_new_label_blocks_unless_allowed(reference, tmp_path):
    drop = _clean_drop(tmp_path / "drop", n=30)
    x, _ = helpers.mnist(5, 30000)
    helpers.write_folder(drop / "web", x, np.full(5, 42), prefix="odd")
    code, report, _ = _check(drop, reference, tmp_path)
    assert code == 1
    finding = [f for f in report["findings"] if f["rule"] == "new_labels"][0]
    assert (
        finding["severity"] == "error" and "'42'" in finding["message"] and "--allow-new-labels" in finding["message"]
    )
    code, report, _ = _check(drop, reference, tmp_path, "--allow-new-labels")
    assert code == 0
    assert [f["severity"] for f in report["findings"] if f["rule"] == "new_labels"] == ["warning"]


@pytest.mark.parametrize("broken, expected", [(1, 0), (6, 1)], ids=["below-tolerance", "above-tolerance"])
def test_corrupt_files_block_above_the_tolerance(reference, tmp_path, broken, expected):
    drop = _clean_drop(tmp_path / "drop", n=100)
    for i in range(broken):
        (drop / "web" / "3" / f"broken_{i}.png").write_bytes(b"<html>not an image</html>")
    code, report, _ = _check(drop, reference, tmp_path)
    assert code == expected
    finding = [f for f in report["findings"] if f["rule"] == "corrupt"][0]
    assert finding["severity"] == ("error" if expected else "warning")
    assert f"{broken} of {100 + broken} files" in finding["message"]
    assert any("broken_0.png (not_an_image)" in f for f in finding["files"])


def test_the_same_bytes_under_two_labels_block(reference, tmp_path):
    drop = _clean_drop(tmp_path / "drop", n=30)
    one = next((drop / "web" / "3").glob("*.png"))
    (drop / "web" / "8").mkdir(exist_ok=True)
    shutil.copy(one, drop / "web" / "8" / "same_bytes.png")
    code, report, _ = _check(drop, reference, tmp_path)
    assert code == 1
    assert any(f["rule"] == "conflicting_labels" and f["severity"] == "error" for f in report["findings"])


def test_a_byte_copy_of_a_reference_image_under_another_label_blocks(reference, tmp_path):
    manifest_path, _, _ = reference
    ref = read_table(manifest_path, MANIFEST).filter(pl.col("domain") == "web").sort("path")
    src = image_paths(ref.head(1), manifest_path)[0]
    other = "7" if ref["label"][0] != "7" else "1"
    drop = tmp_path / "drop"
    (drop / "web" / other).mkdir(parents=True)
    shutil.copy(src, drop / "web" / other / "relabelled.png")
    code, report, _ = _check(drop, reference, tmp_path)
    assert code == 1
    finding = [f for f in report["findings"] if f["rule"] == "conflicting_labels"][0]
    assert "byte copies of reference images with another label" in finding["message"]
    assert any("relabelled.png" in f for f in finding["files"])


# --- warnings ------------------------------------------------------------------------------------


def test_blurred_drop_warns_about_drift_with_effect_sizes(reference, tmp_path):
    x, y = helpers.mnist(150, 40000)
    root = tmp_path / "drop" / "web"
    for i, (img, lab) in enumerate(zip(x, y, strict=False)):
        (root / str(lab)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)).save(root / str(lab) / f"blur_{i}.png")
    code, report, md = _check(tmp_path / "drop", reference, tmp_path)
    assert code == 0  # drift informs, it does not block
    drift = [f for f in report["findings"] if f["rule"] == "drift" and f["severity"] == "warning"]
    blur = [f for f in drift if f["data"]["property"] == "blur"][0]
    assert blur["data"]["ks"] > 0.5 and blur["data"]["cohens_d"] < -0.5
    assert "KS" in blur["message"] and "Cohen's d" in blur["message"] and "Wasserstein" in blur["message"]
    assert "| blur |" in md


def test_copies_of_training_images_tiny_images_and_class_share_warn(reference, tmp_path):
    manifest_path, splits_path, _ = reference
    ref = read_table(manifest_path, MANIFEST)
    train_ids = read_table(splits_path, SPLITS_TABLE).filter(pl.col("split") == "train")["image_id"]
    train = ref.filter(
        pl.col("image_id").is_in(train_ids.to_list()) & (pl.col("domain") == "web") & (pl.col("label") == "1")
    ).sort("path")
    drop = tmp_path / "drop"
    (drop / "web" / "1").mkdir(parents=True)
    for k, src in enumerate(image_paths(train.head(30), manifest_path)):
        shutil.copy(src, drop / "web" / "1" / f"again_{k}.png")
    x, y = helpers.mnist(5, 50000)
    helpers.write_folder(drop / "web", x, np.ones(5, int), prefix="tiny", size=12)
    code, report, _ = _check(drop, reference, tmp_path)
    assert code == 0
    rules = {f["rule"]: f for f in report["findings"] if f["severity"] == "warning"}
    assert "of the drop are copies of training images (30 exact" in rules["train_copies"]["message"]
    assert "5 image(s) have a side below 16 pixels" in rules["tiny"]["message"]
    assert "the share of 10 label(s) moves" in rules["class_share"]["message"]


# --- registry, bad input, start-up ----------------------------------------------------------------


def test_rule_registry_is_strict():
    with pytest.raises(
        RegistryError, match=r"Check rule 'leakage' is registered twice; registered rules: .*corrupt.*tiny"
    ):
        check.rule("leakage")(lambda ctx: [])
    with pytest.raises(
        RegistryError, match=r"Unknown check rule 'nope'; valid rules: class_share, conflicting_labels, corrupt, drift"
    ):
        check.get_rule("nope")


def test_rules_say_at_their_definition_whether_they_need_a_reference():
    # the first drop has nothing to compare with: run_latest_drop_check skips these
    needing = [n for n in check.rule_names() if check.needs_reference(n)]
    assert needing == ["class_share", "drift", "leakage", "new_labels", "train_copies"]


def test_cohens_d_and_drift_table_on_known_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 4000), rng.normal(0.0, 1.0, 4000)
    assert check.cohens_d(a, b) == pytest.approx(1.0, abs=0.06)
    assert check.cohens_d(b, b) == 0.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere"], r"Drop folder nowhere does not exist"),
        (["web"], r"The reference manifest missing.parquet does not exist \(--reference expects manifest.parquet"),
        (["web=a=b"], r"Drop folder a=b \(domain 'web'\) does not exist"),
    ],
    ids=["missing-drop", "missing-reference", "bad-assignment"],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web" / "1").mkdir(parents=True)
    code = main(["check", *args, "--reference", "missing.parquet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    import re

    assert re.search(message, err), err


def test_check_params_are_validated():
    from shiftkit.core.errors import ConfigError
    from shiftkit.params import params_from_mapping

    with pytest.raises(ConfigError, match=r"'check.max_corrupt' parameter must be a fraction in \[0, 1\]. Got 2"):
        params_from_mapping({"check": {"max_corrupt": 2}})


def test_library_raises_check_failed(reference, tmp_path):
    manifest_path, splits_path, dev = reference
    drop = tmp_path / "drop" / "target" / "0"
    drop.mkdir(parents=True)
    shutil.copy(dev["file"][0], drop / "leak.png")
    with pytest.raises(CheckFailed, match=r"1 blocking finding\(s\); first: \[leakage\]"):
        check.run_check(
            [f"target={tmp_path / 'drop' / 'target'}"],
            manifest_path,
            splits=splits_path,
            params=load_params(None).check,
        )


def test_check_starts_without_torch(reference, tmp_path):
    manifest_path, _, _ = reference
    drop = _clean_drop(tmp_path / "drop", n=10)
    code = (
        "import sys; from shiftkit.cli.run import main; "
        f"rc = main(['check', {str(drop)!r}, '--reference', {str(manifest_path)!r}, "
        f"'--out', {str(tmp_path / 'o')!r}]); "
        "print(rc, [m for m in ('torch', 'timm', 'albumentations') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stderr


def test_ci_workflow_runs_the_check_on_pull_requests_that_add_data():
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "data-check.yml").read_text())
    triggers = wf[True]  # YAML 1.1 reads the key `on` as true
    assert "drops/**" in triggers["pull_request"]["paths"]
    script = "\n".join(step.get("run", "") for step in wf["jobs"]["check"]["steps"])
    assert (
        "--diff-filter=A" in script and "shiftkit check" in script and "--splits data/splits/splits.parquet" in script
    )


def _ingested_drops(root: Path, second: Path | None) -> Path:
    """The example ingested (drop 1), split, then ``second`` ingested as drop 2 into the same manifest."""
    x, y = helpers.mnist(150)
    helpers.write_folder(root / "raw" / "web", x, y, prefix="web")
    tx, ty = helpers.digits(150)
    helpers.write_folder(root / "raw" / "target", tx, ty, prefix="digit")
    domains = {"web": root / "raw" / "web", "target": root / "raw" / "target"}
    ingest(domains, root / "manifest")
    run_split(root / "manifest" / "manifest.parquet", root / "splits")
    if second is not None:
        ingest(domains, root / "manifest")
    return root / "manifest" / "manifest.parquet"


def test_latest_first_drop_runs_only_rules_without_a_reference(tmp_path):
    manifest = _ingested_drops(tmp_path, None)
    report = check.run_latest_drop_check(manifest, splits=tmp_path / "no-splits-yet.parquet", out=tmp_path / "c")
    assert report.verdict == "pass"
    assert report.summary["drop"] == 1
    assert "leakage" not in report.summary["rules"] and "corrupt" in report.summary["rules"]
    assert json.loads((tmp_path / "c" / "check.json").read_text())["summary"]["drop"] == 1


def test_latest_drop_with_a_copy_of_a_dev_image_fails_the_pipeline_gate(tmp_path, capsys):
    manifest = _ingested_drops(tmp_path, tmp_path / "raw")
    # the second drop: one dev image, resized and re-encoded, added to the web folder
    splits = read_table(tmp_path / "splits" / "splits.parquet", SPLITS_TABLE)
    man = read_table(manifest, MANIFEST)
    dev_id = splits.filter(pl.col("split") == "dev")["image_id"][0]
    dev_row = man.filter(pl.col("image_id") == dev_id)
    src = image_paths(dev_row, manifest)[0]
    dest = tmp_path / "raw" / "web" / str(dev_row["label"][0]) / "copy.jpg"
    Image.open(src).resize((16, 16), Image.BILINEAR).save(dest, quality=90)
    ingest({"web": tmp_path / "raw" / "web", "target": tmp_path / "raw" / "target"}, tmp_path / "manifest")
    code = main(
        [
            "check",
            "--latest",
            "--reference",
            str(manifest),
            "--splits",
            str(tmp_path / "splits" / "splits.parquet"),
            "--out",
            str(tmp_path / "c"),
        ]
    )
    assert code == 1
    data = json.loads((tmp_path / "c" / "check.json").read_text())
    assert data["summary"]["drop"] == 2 and data["summary"]["images"] == 1
    leak = [f for f in data["findings"] if f["rule"] == "leakage"]
    assert leak and any("copy.jpg" in f for f in leak[0]["files"])
    assert "check failed" in capsys.readouterr().err


def test_latest_and_drop_folders_are_exclusive(tmp_path, capsys):
    assert main(["check", str(tmp_path), "--latest", "--reference", str(tmp_path / "m.parquet")]) == 2
    assert "either DROP folders or --latest" in capsys.readouterr().err
    assert main(["check", "--reference", str(tmp_path / "m.parquet")]) == 2
    assert "No drop given" in capsys.readouterr().err


def test_a_link_to_etc_passwd_and_a_name_that_is_not_utf8_are_named_with_their_reason(reference, tmp_path, capsys):
    drop = _clean_drop(tmp_path / "drop")
    (drop / "web" / "3" / "passwd.png").symlink_to("/etc/passwd")
    raw = os.fsencode(drop / "web" / "4") + b"/bad\xff\xfe.png"
    with open(raw, "wb") as fh:
        fh.write(next((drop / "web" / "4").iterdir()).read_bytes())
    code, data, md = _check(drop, reference, tmp_path)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err  # quarantined, not a crash; nothing corrupt: passes
    found = [f for f in data["findings"] if f["rule"] == "quarantined"]
    assert len(found) == 1 and found[0]["data"]["reasons"] == {"name_not_utf8": 1, "outside_root": 1}
    assert "passwd.png (outside_root: a link to /etc/passwd" in md
    assert "bad\\xff\\xfe.png (name_not_utf8" in md
