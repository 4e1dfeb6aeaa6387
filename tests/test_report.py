from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from shiftkit.cli import run as cli
from shiftkit.core.config import ConfigError
from shiftkit.params import params_from_mapping
from tests.report_helpers import example_run, make_predictions, write_predictions

REPO = Path(__file__).resolve().parents[1]


def _run(capsys, *args) -> tuple[int, str]:
    code = cli.main(["report", *map(str, args)])
    return code, capsys.readouterr().err


def _spec(train, bridge, dev, n=2000):
    return {"train": (n, train), "bridge": (n, bridge), "dev": (n, dev), "test": (n, dev)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return example_run(tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize(
    ("rates", "variance", "mismatch", "diagnosis"),
    [((0.02, 0.09, 0.10), 0.07, 0.01, "variance"), ((0.02, 0.03, 0.10), 0.01, 0.07, "data_mismatch")],
    ids=["2-9-10-variance", "2-3-10-data-mismatch"],
)
def test_cli_acceptance_examples(tmp_path, capsys, rates, variance, mismatch, diagnosis):
    pred = write_predictions(make_predictions(_spec(*rates)), tmp_path / "p.parquet")
    code, err = _run(capsys, pred, "--out", tmp_path / "out", "--human-error", "0.01", "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(m) == {"errors", "gaps", "diagnosis", "counts", "label_free"}  # label_free: issue 23
    lf = m["label_free"]
    assert lf["chosen"] in lf["estimators"]
    for per in lf["estimators"].values():
        assert set(per) == {"bridge", "dev"}  # no unlabelled split predicted; test is never read
        for s, e in per.items():
            assert set(e) == {"estimate", "ci_low", "ci_high", "actual"}
            assert 0 <= e["ci_low"] <= e["estimate"] <= e["ci_high"] <= 1
            assert e["actual"] == pytest.approx(expected_err := {"bridge": rates[1], "dev": rates[2]}[s]), expected_err
    assert m["gaps"]["variance"]["value"] == pytest.approx(variance)
    assert m["gaps"]["data_mismatch"]["value"] == pytest.approx(mismatch)
    assert m["diagnosis"] == diagnosis
    expected = {"human": 0.01, "train": rates[0], "bridge": rates[1], "dev": rates[2], "test": rates[2]}
    assert m["errors"] == pytest.approx(expected)
    assert m["counts"] == {"train": 2000, "bridge": 2000, "dev": 2000, "test": 2000}
    for g in m["gaps"].values():
        assert set(g) == {"value", "ci_low", "ci_high"} and g["ci_low"] <= g["value"] <= g["ci_high"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"{'+7.0' if diagnosis == 'variance' else '+1.0'}" in md
    recs = json.loads((tmp_path / "out" / "analysis.json").read_text())["recommendations"]
    first = recs[0]["title"]
    assert ("Regularise" in first) if diagnosis == "variance" else ("classes" in first)


def test_full_report_on_real_images(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(capsys, run_dir["predictions"], "--manifest", run_dir["manifest"], "--synth", run_dir["synth"],
                     "--out", out)
    assert code == 0, err
    assert "data mismatch" in err and "◀ diagnosis" in err  # the rich tables on the terminal
    for f in ("report.md", "report.html", "metrics.json", "analysis.json", "plots/gaps.json", "plots/per_class.json",
              "plots/confusion.csv"):
        assert (out / f).is_file(), f
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    a = json.loads((out / "analysis.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["diagnosis"] == "data_mismatch"
    # the evidence: classes 3 and 8 carry the dev errors, blurry images fail more, synthesis is on
    rec = " ".join(r["title"] + " " + r["detail"] for r in a["recommendations"])
    assert "'3'" in rec and "'8'" in rec
    assert "sharpness" in rec and "Synthesis is on: 100 synthesised images" in rec
    assert set(a["by_property"]) == {"blur", "effective_res", "brightness"}
    blur = a["by_property"]["blur"]
    with_dev = [b for b in blur if b["dev_n"]]
    assert max(with_dev, key=lambda b: b["dev_error"]) is with_dev[0]  # the blurriest bucket fails most
    # figures: waterfall, per class, 3 property charts, confusion; 16 gallery thumbnails
    assert len(re.findall(r'<div class="fig"><img', html)) == 6
    assert html.count('<div class="card"><img') == 16
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "### Most confidently wrong dev images" in md and "## What to do next" in md
    confs = [g["confidence"] for g in a["confident_errors"]]
    assert confs == sorted(confs, reverse=True) and all(g["label"] != g["pred"] for g in a["confident_errors"])
    assert (out / "plots" / "confusion.csv").read_text().count("\n") == 1 + 150  # header + dev images


def test_same_inputs_give_identical_bytes(run_dir, tmp_path):
    from shiftkit.report.stage import run_report

    for name in ("a", "b"):
        run_report(run_dir["predictions"], tmp_path / name, manifest=run_dir["manifest"], synth=run_dir["synth"])
    for f in ("report.md", "report.html", "metrics.json", "analysis.json", "plots/gaps.json", "plots/confusion.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_missing_split_names_the_gap_and_computes_the_rest(tmp_path, capsys):
    spec = {"train": (500, 0.02), "bridge": (500, 0.09), "test": (500, 0.2)}
    pred = write_predictions(make_predictions(spec), tmp_path / "p.parquet")
    code, err = _run(capsys, pred, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["gaps"]["data_mismatch"] == {"value": None, "ci_low": None, "ci_high": None}
    assert m["gaps"]["variance"]["value"] == pytest.approx(0.07)
    assert m["counts"]["dev"] == 0 and m["errors"]["dev"] is None
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Data mismatch cannot be computed: the predictions have no dev split." in md
    assert "Dev overfitting cannot be computed" in md


def test_compare_shows_whether_the_mismatch_shrank(tmp_path, capsys):
    before = write_predictions(make_predictions(_spec(0.02, 0.03, 0.15, 800), seed=1),
                               tmp_path / "before" / "predictions.parquet")
    after = write_predictions(make_predictions(_spec(0.02, 0.04, 0.06, 800), seed=2), tmp_path / "after.parquet")
    code, err = _run(capsys, after, "--compare", before.parent, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    c = m["compare"]["data_mismatch"]
    assert c["value"] == pytest.approx(-0.1) and c["ci_high"] < 0 and c["verdict"] == "shrank"
    assert m["compare"]["dev"]["verdict"] == "shrank"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Compared with" in md
    assert "**Data mismatch shrank** against the compared run (-10.0 points" in md
    assert "<strong>Data mismatch shrank</strong>" in (tmp_path / "out" / "report.html").read_text()
    assert "Change of each gap" not in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.html").read_text().count('<div class="fig"><img') == 4


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop("correct"), r"lacks column\(s\) correct"),
        (lambda df: df.with_columns(pl.col("confidence").cast(pl.String)),
         r"mistyped column\(s\): confidence is String"),
        (lambda df: df.head(0), r"has no rows"),
        (lambda df: df.with_columns(split=pl.lit("valid")), r"unknown split name\(s\) 'valid'"),
        (lambda df: df.with_columns(label=pl.lit(None, pl.String)), r"null value\(s\) in column 'label'"),
    ],
    ids=["missing-column", "mistyped-column", "no-rows", "unknown-split", "null-labels"],
)
def test_bad_tables_exit_2_with_one_line(tmp_path, capsys, mutate, message):
    df = mutate(make_predictions({"train": (50, 0.1), "dev": (50, 0.2)}))
    path = tmp_path / "p.parquet"
    df.write_parquet(path)
    code, err = _run(capsys, path, "--out", tmp_path / "out")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty-file", r"is an empty file"),
        ("missing-file", r"does not exist"),
        ("human-error", r"'human_error' parameter of report must be a fraction in \[0, 1\)\. Got 1\.5"),
        ("negative-human-error", r"Got -0\.1 instead"),
        ("run-folder-without-predictions", r"holds no predictions table"),
        ("manifest-lacks-columns", r"The manifest table .* lacks column\(s\) path"),
    ],
)
def test_bad_input_exit_2_with_one_line(tmp_path, capsys, setup, message):
    path = write_predictions(make_predictions({"train": (50, 0.1)}), tmp_path / "p.parquet")
    args = [path]
    if setup == "empty-file":
        (tmp_path / "e.parquet").write_bytes(b"")
        args = [tmp_path / "e.parquet"]
    elif setup == "missing-file":
        args = [tmp_path / "nope.parquet"]
    elif setup == "human-error":
        args += ["--human-error", "1.5"]
    elif setup == "negative-human-error":
        args += ["--human-error", "-0.1"]
    elif setup == "manifest-lacks-columns":
        args += ["--manifest", path]
    else:
        (tmp_path / "run").mkdir()
        args = [tmp_path / "run"]
    code, err = _run(capsys, *args, "--out", tmp_path / "out")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_an_existing_report_survives_a_failed_run(tmp_path, capsys):
    good = write_predictions(make_predictions({"train": (50, 0.1), "dev": (50, 0.2)}), tmp_path / "p.parquet")
    assert _run(capsys, good, "--out", tmp_path / "out", "-q")[0] == 0
    before = (tmp_path / "out" / "metrics.json").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert _run(capsys, tmp_path / "bad.parquet", "--out", tmp_path / "out")[0] == 2
    assert (tmp_path / "out" / "metrics.json").read_bytes() == before


def test_params_section_is_validated():
    assert params_from_mapping({"report": {"human_error": 0.05}}).report.human_error == 0.05
    with pytest.raises(ConfigError, match=r"'report.human_error' parameter must be a fraction in \[0, 1\)"):
        params_from_mapping({"report": {"human_error": 1.0}})
    with pytest.raises(ConfigError, match=r"'report.properties' parameter must be one of"):
        params_from_mapping({"report": {"properties": ["sharpness"]}})


def test_params_file_drives_the_report(tmp_path, capsys):
    pred = write_predictions(make_predictions(_spec(0.02, 0.09, 0.10, 500)), tmp_path / "p.parquet")
    (tmp_path / "params.yaml").write_text("report:\n  human_error: 0.015\n  level: 0.9\n  replicates: 200\n")
    code, err = _run(capsys, pred, "--out", tmp_path / "out", "--params", tmp_path / "params.yaml", "-q")
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["errors"]["human"] == 0.015 and m["gaps"]["avoidable_bias"]["value"] == pytest.approx(0.005)
    assert "90% interval" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize(
    ("spec", "human", "diagnosis", "title"),
    [
        (_spec(0.12, 0.13, 0.14, 2000), 0.01, "avoidable_bias", "Train a bigger model"),
        (_spec(0.02, 0.03, 0.04, 2000) | {"test": (2000, 0.12)}, 0.0, "dev_overfit", "Use a bigger dev set"),
        ({"train": (2000, 0.05), "bridge": (2000, 0.05), "dev": (60, 0.1)}, 0.05, "inconclusive", "more dev images"),
    ],
    ids=["avoidable-bias", "dev-overfit", "inconclusive"],
)
def test_recommendations_follow_the_diagnosis(tmp_path, spec, human, diagnosis, title):
    from shiftkit.report.params import ReportParams
    from shiftkit.report.stage import build_report

    pred = write_predictions(make_predictions(spec), tmp_path / "p.parquet")
    data = build_report(pred, params=ReportParams(human_error=human))
    assert data.decomposition.diagnosis == diagnosis
    assert title in data.recommendations[0].title
    if diagnosis == "inconclusive":
        assert data.decomposition.resolve.more_images > 0
        assert f"{data.decomposition.resolve.more_images:,}" in data.recommendations[0].title


def test_pipeline_stage_script(run_dir, tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SHIFTKIT_PROGRESS": "0"}
    r = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "report.py"), "--predictions", str(run_dir["predictions"]),
         "--manifest", str(run_dir["manifest"]), "--out", str(tmp_path / "r"), "--params", str(tmp_path / "none.yaml")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert r.returncode == 2 and "Params file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "report.py"), "--predictions", str(run_dir["predictions"]),
         "--manifest", str(run_dir["manifest"]), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "diagnosis data_mismatch" in r.stdout and (tmp_path / "r" / "metrics.json").is_file()


def test_help_explains_every_option(capsys):
    assert cli.main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--manifest", "--synth", "--human-error", "--compare", "--out", "--params"):
        assert opt in out


# ---------------------------------------------------------------------------------------------
# the html in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_PROBE = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "const bad=i.filter(x=>!(x.complete&&x.naturalWidth>0)).length;"
    "console.log('PROBE images='+i.length+' broken='+bad)})</script>"
)


def _chromium_console(html_path: Path, tmp_path: Path) -> list[str]:
    """Console lines of a headless Chromium load of the page, with a probe that counts images."""
    probed = html_path.with_name("probed.html")
    probed.write_text(html_path.read_text().replace("</body>", _PROBE + "</body>"))
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    return [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_renders_in_chromium_without_console_errors(run_dir, tmp_path):
    from shiftkit.report.stage import run_report

    run_report(run_dir["predictions"], tmp_path / "out", manifest=run_dir["manifest"], synth=run_dir["synth"])
    lines = _chromium_console(tmp_path / "out" / "report.html", tmp_path)
    assert len(lines) == 1 and "PROBE images=22 broken=0" in lines[0], lines
    # the check can fail: a page with a script error and a broken image is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                   "<script>nope()</script></body></html>")
    lines = _chromium_console(bad, tmp_path)
    assert any("nope is not defined" in ln for ln in lines) and any("broken=1" in ln for ln in lines), lines


def test_many_classes_are_cut_in_figures_but_kept_in_json(tmp_path):
    from shiftkit.report.stage import build_report, write_report

    pred = write_predictions(make_predictions(_spec(0.02, 0.03, 0.3, 3000), classes=200), tmp_path / "p.parquet")
    data = build_report(pred)
    write_report(data, tmp_path / "out")
    a = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert len(a["confusion"]["labels"]) == 200
    md = (tmp_path / "out" / "report.md").read_text()
    assert "The 25 classes most involved in dev errors, of 200" in md
    assert "of 200" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(
    ("before_dev", "after_dev", "words"),
    [(0.06, 0.15, "**Data mismatch grew**"), (0.10, 0.10, "**No clear change in data mismatch**")],
    ids=["grew", "no-change"],
)
def test_compare_says_when_the_mismatch_did_not_shrink(tmp_path, capsys, before_dev, after_dev, words):
    before = write_predictions(make_predictions(_spec(0.02, 0.04, before_dev, 800), seed=1), tmp_path / "b.parquet")
    after = write_predictions(make_predictions(_spec(0.02, 0.04, after_dev, 800), seed=2), tmp_path / "a.parquet")
    code, err = _run(capsys, after, "--compare", before, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert words in (tmp_path / "out" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# one set of sections, every writer; the folder replaced as a set


def test_a_section_built_once_reaches_markdown_html_and_terminal(run_dir, monkeypatch):
    from shiftkit.report import blocks, html, markdown, sections, terminal
    from shiftkit.report.stage import build_report

    data = build_report(run_dir["predictions"])
    extra = blocks.Section("extra", "Learning <curve>", 2, [
        blocks.Text("**grew** with `data`"), blocks.Table(["a", "b"], [["x|y", "1"]], "lr"),
    ])
    monkeypatch.setattr(sections, "BUILDERS", (*sections.BUILDERS, lambda d: [extra]))
    built = sections.build_sections(data)  # once; every writer lays out the same list
    md, page = markdown.render_sections(built), html.render_sections(built)
    assert "## Learning <curve>\n\n**grew** with `data`\n\n| a | b |" in md and "| x\\|y | 1 |" in md
    assert "<h2>Learning &lt;curve&gt;</h2>" in page and "<p><strong>grew</strong> with <code>data</code></p>" in page
    assert '<td class="l">x|y</td><td class="">1</td>' in page
    # the terminal shows the errors section's tables, whose rows are the markdown's rows (less the
    # columns a narrow screen can spare), and names the new section
    from io import StringIO

    from rich.console import Console

    from shiftkit.core.console import output_to

    buf = StringIO()
    with output_to(Console(file=buf, width=200)):
        terminal.show(built)
    for row in sections.gap_rows(data.decomposition):
        assert row[0] in buf.getvalue() and row[2] in buf.getvalue() and row[1] not in buf.getvalue()
    assert "Learning <curve>" in buf.getvalue()


def test_writers_do_not_import_the_builders():
    import ast

    for name in ("markdown", "html", "terminal"):
        tree = ast.parse((REPO / "shiftkit" / "report" / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "shiftkit.report.sections" not in imported, name


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_folder_is_replaced_as_a_set(tmp_path, monkeypatch):
    from shiftkit.core.errors import InputPathError
    from shiftkit.report import html
    from shiftkit.report.stage import build_report, write_report

    out = tmp_path / "out"
    table = make_predictions({"train": (60, 0.1), "dev": (60, 0.2)})
    data = build_report(write_predictions(table, tmp_path / "p.parquet"))
    write_report(data, out)
    (out / ".gitignore").write_text("/report.md\n")
    (out / "plots" / "stale.json").write_text("{}")
    before = _tree(out)

    def broken(_data):
        raise OSError("disk full")

    monkeypatch.setattr(html, "render_sections", broken)
    with pytest.raises(OSError):
        write_report(data, out)
    assert _tree(out) == before  # metrics.json, analysis.json and plots/ were not rewritten alone
    monkeypatch.undo()
    write_report(data, out)
    assert (out / ".gitignore").read_text() == "/report.md\n"  # DVC's ignore file is kept
    assert not (out / "plots" / "stale.json").exists()  # the old set is gone as a whole
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputPathError, match=r"holds notes.txt, which this stage does not write"):
        write_report(data, out)
    assert (out / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# hostile predictions tables: exit 2, one line naming the file and column, the old report kept


@pytest.fixture(scope="module")
def good_report(tmp_path_factory):
    """A report folder written from a valid table, copied by each test that tries to spoil it."""
    from shiftkit.report.stage import build_report, write_report

    tmp = tmp_path_factory.mktemp("good")
    good = write_predictions(make_predictions({"train": (60, 0.1), "dev": (60, 0.2)}), tmp / "good.parquet")
    write_report(build_report(good), tmp / "out")
    return tmp / "out"


def _null_confidence(df):
    return df.with_columns(confidence=pl.when(pl.col("image_id") == "dev-000003").then(None).otherwise("confidence"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_null_confidence, r"1 null value\(s\) in column 'confidence'"),
        (lambda df: df.with_columns(confidence=pl.lit(float("nan"))), r"confidence value\(s\) that are NaN or outside"),
        (lambda df: df.with_columns(confidence=pl.col("confidence") + 2.0),
         r"confidence value\(s\) that are NaN or outside \[0, 1\] \(first: 2\.\d+"),
        (lambda df: df.with_columns(confidence=-pl.col("confidence")), r"outside \[0, 1\] \(first: -0\."),
        (lambda df: pl.concat([df, df.head(2)]),
         r"2 image_id value\(s\) on more than one row \(4 rows; first: 'train-"),
        (lambda df: df.with_columns(correct=~pl.col("correct")), r"column 'correct' contradicts label and pred"),
        (lambda df: df.with_columns(correct=pl.lit(True)), r"contradicts label and pred \(first: image 'train-"),
    ],
    ids=["null-confidence", "nan-confidence", "confidence-above-one", "negative-confidence", "duplicated-ids",
         "correct-inverted", "correct-always-true"],
)
def test_hostile_predictions_keep_the_old_report(tmp_path, capsys, good_report, mutate, message):
    out = tmp_path / "out"
    shutil.copytree(good_report, out)
    before = _tree(out)
    bad = tmp_path / "bad.parquet"
    mutate(make_predictions({"train": (60, 0.1), "dev": (60, 0.2)})).write_parquet(bad)
    code, err = _run(capsys, bad, "--out", out)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(bad) in err and re.search(message, err), err
    assert _tree(out) == before


def test_min_gap_a_small_certain_gap_is_not_worth_acting_on(tmp_path, capsys):
    # issue 23: data mismatch +0.4 points on 20,000 images per split is certain (p ~ 0) but small
    spec = {"train": (20000, 0.010), "bridge": (20000, 0.010), "dev": (20000, 0.014), "test": (20000, 0.014)}
    pred = write_predictions(make_predictions(spec), tmp_path / "p.parquet")
    params = tmp_path / "params.yaml"
    runs = {}
    for name, gap in (("default", None), ("zero", 0.0), ("tenth", 0.1)):
        params.write_text("report:\n  replicates: 400\n" + ("" if gap is None else f"  min_gap: {gap}\n"))
        code, err = _run(capsys, pred, "--out", tmp_path / name, "--quiet", "--params", params,
                         "--human-error", "0.01")  # no avoidable bias, no variance: only the +0.4 points
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert runs["zero"]["diagnosis"] == "data_mismatch"  # the old behaviour: any gap above zero
    assert runs["tenth"]["diagnosis"] == "data_mismatch"  # shown above 0.1 points
    assert runs["default"]["diagnosis"] == "inconclusive"  # not shown above 1.0 point
    md = (tmp_path / "default" / "report.md").read_text()
    assert "No gap worth acting on" in md and "1.0 points (`report.min_gap`)" in md
    assert "Dev error 1.4% [" in md and "lower `report.min_gap`" in md


def test_min_gap_a_large_gap_is_still_diagnosed_and_resolve_targets_the_threshold():
    from shiftkit.stats.bootstrap import SplitCount
    from shiftkit.stats.decompose import decompose

    counts = {"train": SplitCount(2000, 20), "bridge": SplitCount(2000, 20), "dev": SplitCount(2000, 200),
              "test": SplitCount(2000, 200)}
    assert decompose(counts, replicates=400, min_gap=0.01).diagnosis == "data_mismatch"  # +9 points
    small = {**counts, "dev": SplitCount(300, 9), "test": SplitCount(300, 9)}  # +2 points on 300 images
    d0 = decompose(small, replicates=400, min_gap=0.0)
    d1 = decompose(small, replicates=400, min_gap=0.01)
    assert d1.gaps["data_mismatch"].p_value > d0.gaps["data_mismatch"].p_value
    if d1.resolve is not None and d1.resolve.split and d0.resolve is not None and d0.resolve.split:
        assert d1.resolve.more_images > d0.resolve.more_images  # showing > 1 point needs more images than > 0
