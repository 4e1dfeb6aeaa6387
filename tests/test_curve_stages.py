"""The learning-curve stages end to end on real digits: budgets, every (arm, budget) trained and
evaluated through pipelines/learning_curve.py, the curve summarised and embedded in the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from shiftkit.core import files as io
from shiftkit.core import schema
from tests.train_helpers import build_example, build_synth

REPO = Path(__file__).resolve().parents[1]
ARMS = ["baseline", "synth", "finetune"]
BUDGETS = [0, 8]

# seven trainings (web, baseline@8, synth@0, synth@8, finetune@8: the two others are copies; and the
# baseline's second draw at each budget, as dvc.yaml's --draws ${curve.baseline_draws} asks)
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


def _curve(argv):
    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import learning_curve as script  # pipelines/learning_curve.py
    finally:
        sys.path.pop(0)
    return script.main(argv)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("curve")
    m, s = build_example(base, n_web=60, n_target=50, n_dev=12, n_test=8, n_bridge=10)
    syn = build_synth(base, m, s, limit=30)
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump({
        "train": {"img_size": 16, "batch_size": 16, "workers": 0, "finetune_epochs": 1, "head_epochs": 1},
        "curve": {"arms": ARMS, "budgets": BUDGETS, "finetune_epochs": 1, "replicates": 200},
        "report": {"replicates": 200, "gallery": 0},
    }))
    common = ["--params", str(params), "--manifest", str(m)]
    budgets = base / "budgets"
    assert _curve([*common, "budgets", "--splits", str(s), "--out", str(budgets)]) == 0
    px = base / "pixels"
    assert _curve([*common, "pixels", "--splits", str(s), "--out", str(px)]) == 0
    spx = base / "synth_pixels"  # the copies' own store, as curve_synth_pixels in dvc.yaml
    assert _curve([*common, "pixels", "--splits", str(s), "--synth", str(syn), "--copies-only", "--out", str(spx)]) == 0
    web = base / "models" / "web"
    assert _curve([*common, "train", "--arm", "baseline", "--budget", "0", "--splits", str(budgets / "0.parquet"),
                   "--out", str(web), "--pixels", str(px)]) == 0
    for arm in ARMS:
        for b in BUDGETS:
            model = base / "models" / f"{arm}-{b}"
            assert _curve([*common, "train", "--arm", arm, "--budget", str(b), "--splits",
                           str(budgets / f"{b}.parquet"), "--synth", str(syn), "--start", str(web), "--out", str(model),
                           "--live", str(base / "dvclive" / f"{arm}-{b}"), "--pixels", str(px),
                           "--pixels", str(spx), "--draws", "2"]) == 0
            out = base / "predictions" / f"{arm}-{b}" / "predictions.parquet"
            assert _curve([*common, "evaluate", "--arm", arm, "--model", str(model), "--synth", str(syn),
                           "--out", str(out)]) == 0
    assert _curve([*common, "summarize", "--predictions", str(base / "predictions"), "--budgets", str(budgets),
                   "--synth", str(syn), "--out", str(base / "curve")]) == 0
    return base, m, s, syn, params


def test_each_point_trains_on_its_budget(run):
    base, m, s, syn, _ = run
    man = io.read_table(m, schema.MANIFEST).select("image_id", "domain")

    def trained(arm, b):
        t = io.read_table(base / "models" / f"{arm}-{b}" / "splits.parquet", schema.SPLITS_TABLE)
        return t.join(man, on="image_id").filter(pl.col("split") == "train")

    counts = json.loads((base / "budgets" / "budgets.json").read_text())["images"]
    assert counts == {"0": 0, "8": 8}
    for b, k in counts.items():
        for arm in ("baseline", "synth"):
            t = trained(arm, b)
            assert t.filter(pl.col("domain") == "target").height == k
            assert t.filter(pl.col("domain") == "web").height == 50  # 60 web images, 10 in the bridge
    assert trained("finetune", "8")["domain"].to_list() == ["target"] * 8
    # the 8 are inside "all", and dev/test/bridge are the same images for every point
    ids = {b: set(trained("baseline", b).filter(pl.col("domain") == "target")["image_id"]) for b in counts}
    assert ids["0"] <= ids["8"]
    evals = {}
    for arm in ARMS:
        for b in counts:
            p = io.read_table(base / "predictions" / f"{arm}-{b}" / "predictions.parquet", schema.PREDICTIONS)
            evals[(arm, b)] = set(p.filter(pl.col("split").is_in(["dev", "test", "bridge"])
                                           & (pl.col("source") == "manifest"))["image_id"])
            assert ("synth" in p["domain"].to_list()) == (arm == "synth")
    assert len({frozenset(v) for v in evals.values()}) == 1
    # budget 0 of baseline and finetune is the web-only model itself, not a second training
    for arm in ("baseline", "finetune"):
        assert (base / "models" / f"{arm}-0" / "model.safetensors").read_bytes() == (
            base / "models" / "web" / "model.safetensors").read_bytes()
    # every point has its dvclive record (DVC declares it as an output), a copied one included
    for arm in ARMS:
        for b in counts:
            live = json.loads((base / "dvclive" / f"{arm}-{b}" / "metrics.json").read_text())
            assert 0.0 <= live["dev"]["accuracy"] <= 1.0
    assert (base / "models" / "finetune-8" / "model.safetensors").read_bytes() != (
        base / "models" / "web" / "model.safetensors").read_bytes()


def test_the_baselines_second_draw_measures_the_training_noise_and_keeps_no_model(run):
    base, *_ = run
    for b in BUDGETS:
        model = base / "models" / f"baseline-{b}"
        assert [p.name for p in (model / "draw-2").iterdir()] == ["predictions.parquet"]
        assert not list(model.glob(".draw-*"))  # the draw's training folder is gone
        draw = io.read_table(base / "predictions" / f"baseline-{b}" / "draw-2" / "predictions.parquet",
                             schema.PREDICTIONS)
        own = io.read_table(base / "predictions" / f"baseline-{b}" / "predictions.parquet", schema.PREDICTIONS)
        dev = pl.col("split") == "dev"
        assert sorted(draw.filter(dev)["image_id"]) == sorted(own.filter(dev)["image_id"])
    for arm in ("synth", "finetune"):  # only the baseline draws again
        assert not (base / "models" / f"{arm}-8" / "draw-2").exists()
    data = json.loads((base / "curve" / "curve.json").read_text())
    assert data["baseline_draws"] == 2 and data["training_df"] == 2 and data["training_sd"] >= 0


def test_the_curve_and_the_report_show_every_point_and_the_answer(run, tmp_path):
    base, m, s, syn, params = run
    data = json.loads((base / "curve" / "curve.json").read_text())
    assert len(data["points"]) == 6 and data["images"] == [0, 8]
    assert {(p["arm"], p["budget"]) for p in data["points"]} == {(a, str(b)) for a in ARMS for b in BUDGETS}
    for p in data["points"]:
        assert p["dev_ci"][0] <= p["dev_error"] <= p["dev_ci"][1]
        assert set(p["gaps"]) == {"avoidable_bias", "variance", "data_mismatch", "dev_overfit"}
    assert len(data["worth"]) == 4 and all(w["text"] for w in data["worth"])
    assert data["sentence"].endswith(".")
    plot = json.loads((base / "curve" / "plot.json").read_text())
    assert [r["images"] for r in plot] == [0, 8] and set(plot[0]) == {"images", *ARMS}
    assert (base / "curve" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| synth | 0 |" in (base / "curve" / "curve.md").read_text()
    out = tmp_path / "reports"
    rc = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "report.py"), "--predictions",
         str(base / "predictions" / "synth-8" / "predictions.parquet"), "--compare",
         str(base / "predictions" / "baseline-8" / "predictions.parquet"), "--curve", str(base / "curve"),
         "--params", str(params), "--out", str(out)], capture_output=True, text=True, cwd=REPO,
    )
    assert rc.returncode == 0, rc.stderr
    md = (out / "report.md").read_text()
    assert "## Learning curve: labelled target images" in md and data["sentence"] in md
    assert "](curve.png)" in md and (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert md.index("## Learning curve") < md.index("## Compared with")
    assert "Learning curve" in (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["curve"]["sentence"] == data["sentence"]
    assert set(metrics["curve"]["points"]) == {f"{a}@{b}" for a in ARMS for b in BUDGETS}


def test_a_budget_larger_than_the_target_is_one_line_and_exit_2(run, tmp_path, capsys):
    base, m, s, _, _ = run
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"curve": {"budgets": [0, 31]}}))
    out = tmp_path / "budgets"
    rc = _curve(["--params", str(params), "--manifest", str(m), "budgets", "--splits", str(s), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "asks for 31 labelled target images" in err[0] and "holds 30" in err[0]
    assert not out.exists()


def test_a_points_gaps_resample_synthesised_children_with_their_parents(run, tmp_path):
    # without the synth table every child is its own cluster: only the synth arm's intervals change
    base, m, s, syn, params = run
    bare = tmp_path / "curve"
    assert _curve(["--params", str(params), "--manifest", str(m), "summarize", "--predictions",
                   str(base / "predictions"), "--budgets", str(base / "budgets"), "--synth", "",
                   "--out", str(bare)]) == 0

    def gaps(folder):
        data = json.loads((folder / "curve.json").read_text())
        return {(p["arm"], p["budget"]): p["gaps"] for p in data["points"]}

    with_parents, alone = gaps(base / "curve"), gaps(bare)
    for b in BUDGETS:
        assert with_parents[("baseline", str(b))] == alone[("baseline", str(b))]
        mine, theirs = with_parents[("synth", str(b))]["variance"], alone[("synth", str(b))]["variance"]
        assert mine["value"] == theirs["value"] and mine["ci"] != theirs["ci"]


def test_the_reports_curve_table_keeps_the_decompositions_gap_order(run, tmp_path):
    from shiftkit.report import curve as curve_report

    base = run[0]
    data = json.loads((base / "curve" / "curve.json").read_text())
    # metrics.json sorts keys: the table must not follow them
    for p in data["points"]:
        p["gaps"] = dict(sorted(p["gaps"].items()))
    assert curve_report.header(data)[3:7] == ["bias", "variance", "mismatch", "dev overfit"]
    first = data["points"][0]
    want = f"{first['gaps']['variance']['value'] * 100:+.1f}"
    assert curve_report.rows(data)[0][4].startswith(want)


def test_the_unlabelled_pools_predictions_take_no_part_in_the_curve(run, tmp_path):
    """curve_evaluate predicts the unlabelled pool too (the report's label-free section): the curve
    must read the labelled splits only (dvc repro on the example stopped on the 'unlabelled' split)."""
    import shutil

    base, m, s, syn, params = run
    preds = tmp_path / "predictions"
    shutil.copytree(base / "predictions", preds)
    for f in preds.glob("*/predictions.parquet"):
        table = pl.read_parquet(f)
        pool = table.filter(pl.col("split") == "dev").head(3).with_columns(
            pl.col("image_id") + "-pool", split=pl.lit("unlabelled"), label=pl.lit(None, table.schema["label"]),
            correct=pl.lit(None, pl.Boolean))
        pl.concat([table, pool]).write_parquet(f)
    out = tmp_path / "curve"
    assert _curve(["--params", str(params), "--manifest", str(m), "summarize", "--predictions", str(preds),
                   "--budgets", str(base / "budgets"), "--synth", str(syn), "--out", str(out)]) == 0

    def points(folder):
        data = json.loads((folder / "curve.json").read_text())
        return [(p["arm"], p["budget"], p["gaps"]) for p in data["points"]]

    assert points(out) == points(base / "curve")
