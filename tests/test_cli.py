"""One way to run and to fail: the command line and every ``pipelines/*.py`` script share one
exception -> exit code mapping (shiftkit.cli.run.exit_code_for); library output is quiet unless the
command line turns it on."""

from __future__ import annotations

import inspect
import io as stdio
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from PIL import Image
from rich.console import Console

from shiftkit.cli import app as cli
from shiftkit.cli import run
from shiftkit.core.errors import CheckFailed, ConfigError, Terminated
from tests import helpers
from tests.helpers import REPO, assert_bad_input, run_cli

STAGES = sorted(p.stem for p in (REPO / "pipelines").glob("*.py"))


def _script(name: str, *args, cwd: Path) -> helpers.CliResult:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SHIFTKIT_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(REPO / "pipelines" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return helpers.CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (ConfigError("The 'x' parameter of split must be > 0. Got -1 instead."), 2, "error: The 'x'"),
        (CheckFailed("check failed: 2 blocking finding(s)"), 1, "check failed"),
        (IsADirectoryError(21, "Is a directory", "/data/out.json"), 2, "/data/out.json"),
        (KeyboardInterrupt(), 130, "interrupted: nothing was written"),
        (Terminated(), 143, "terminated: nothing was written"),
        (MemoryError(), 2, "out of memory"),
        (TypeError("x" * 10_000), 1, "internal error: TypeError"),
    ],
)
def test_one_mapping_from_exception_to_exit_code_and_one_line(exc, code, words, capsys):
    assert run.exit_code_for(exc, "shiftkit") == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert len(err) < 600  # a long value is quoted as a prefix, never whole


def test_stage_scripts_are_written_in_one_style():
    """Every pipelines/*.py parses with stage_parser inside its work and runs it through run_stage."""
    assert len(STAGES) == 8  # the seven stages and the selection simulation (issue 24)
    for name in STAGES:
        text = (REPO / "pipelines" / f"{name}.py").read_text()
        assert "stage_parser(__doc__)" in text and f'run_stage("{name}", work)' in text, name
        assert "cli_main" not in text and "argparse.ArgumentParser" not in text, name


def test_stage_script_folder_where_a_file_should_be_is_exit_2_one_line(tmp_path, example_folders):
    manifest = tmp_path / "m"
    assert _script("ingest", "--domain", f"web={example_folders / 'web'}", "--domain",
                   f"target={example_folders / 'target'}", "--out", manifest, cwd=tmp_path).code == 0
    (tmp_path / "s" / "splits.parquet").mkdir(parents=True)
    r = _script("split", "--manifest", manifest / "manifest.parquet", "--out", tmp_path / "s", cwd=tmp_path)
    assert_bad_input(r, "splits.parquet")
    r = _script("split", "--manifest", tmp_path, "--out", tmp_path / "s2", cwd=tmp_path)  # a folder as the table
    assert_bad_input(r, str(tmp_path))
    r = _script("split", "--manifest", manifest / "manifest.parquet", "--out", tmp_path / "s3", "--bogus",
                cwd=tmp_path)  # a usage error is one line too (argparse prints two)
    assert_bad_input(r, "--bogus")


def test_stage_script_bad_param_is_exit_2_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("example:\n  web_images: -5\n")
    r = _script("example", "--out", tmp_path / "raw", "--params", tmp_path / "params.yaml", cwd=tmp_path)
    assert_bad_input(r, "web_images")
    assert not (tmp_path / "raw").exists()


def test_stage_script_blocked_check_is_exit_1_one_line(tmp_path):
    from shiftkit.core.files import image_paths, read_table
    from shiftkit.core.schema import MANIFEST, SPLITS_TABLE
    from shiftkit.ingest.stage import ingest
    from shiftkit.splits.stage import run_split

    x, y = helpers.mnist(150)
    helpers.write_folder(tmp_path / "raw" / "web", x, y, prefix="web")
    tx, ty = helpers.digits(150)
    helpers.write_folder(tmp_path / "raw" / "target", tx, ty, prefix="digit")
    domains = {"web": tmp_path / "raw" / "web", "target": tmp_path / "raw" / "target"}
    manifest = tmp_path / "manifest" / "manifest.parquet"
    ingest(domains, manifest.parent, workers=1)
    run_split(manifest, tmp_path / "splits")
    splits = read_table(tmp_path / "splits" / "splits.parquet", SPLITS_TABLE)
    dev_id = splits.filter(pl.col("split") == "dev")["image_id"][0]
    dev_row = read_table(manifest, MANIFEST).filter(pl.col("image_id") == dev_id)
    copy = tmp_path / "raw" / "web" / str(dev_row["label"][0]) / "copy.jpg"
    Image.open(image_paths(dev_row, manifest)[0]).resize((16, 16), Image.BILINEAR).save(copy, quality=90)
    ingest(domains, manifest.parent, workers=1)  # drop 2: a copy of a dev image
    r = _script("check", "--reference", manifest, "--splits", tmp_path / "splits" / "splits.parquet",
                "--out", tmp_path / "c", cwd=tmp_path)
    assert_bad_input(r, "check failed", code=1)
    assert (tmp_path / "c" / "check.md").is_file()


def test_a_library_call_prints_nothing_and_the_command_line_shows_messages(example_folders, tmp_path, capfd):
    from shiftkit.ingest.stage import ingest

    ingest({"web": example_folders / "web"}, tmp_path / "a", workers=1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    r = run_cli(["ingest", "--domain", f"web={example_folders / 'web'}", "--out", tmp_path / "b", "-j", "1"])
    assert r.code == 0 and "400 files" in r.stderr.replace(",", "")
    ingest({"web": example_folders / "web"}, tmp_path / "c", workers=1)  # quiet again after the CLI ran
    assert capfd.readouterr() == ("", "")
    buf = stdio.StringIO()  # a library user can capture the messages
    from shiftkit.core.console import output_to

    with output_to(Console(file=buf, width=200)):
        ingest({"web": example_folders / "web"}, tmp_path / "d", workers=1)
    assert "400" in buf.getvalue().replace(",", "")


def test_command_functions_follow_one_naming_pattern():
    for command in cli.app.registered_commands:
        fn = command.callback
        assert fn.__name__ == f"{command.name}_command", fn.__name__
        # in cli/app.py, or in a cli/<area>.py module whose command app.py registers (issue 24's select)
        assert inspect.getmodule(fn) is cli or inspect.getmodule(fn).__name__.startswith("shiftkit.cli."), fn
