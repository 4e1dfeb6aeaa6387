"""Hostile input, command by command: every bad input is ONE line on stderr, exit 2, no traceback,
and the output folder exactly as it was (hashed before and after).

How to add a case: append a :class:`Case` to ``CASES`` below (or to a table of your own, passed
to ``check_case``). A case is the command line, with these placeholders filled in per test:

- ``{tmp}``: an empty folder of the test's own (write bad inputs there in ``setup``);
- ``{manifest}``, ``{splits}``, ``{raw}``: a small valid example, ingested and split once per
  session (read-only: copy before you damage it);

``names``: what the one stderr line must mention (the option or file at fault; placeholders
allowed). ``out``: the output the command would write (a file or folder): ``setup`` may fill it
with an earlier run's outputs, and it must hash the same afterwards.

Hypothesis strategies at the bottom damage one column of a valid table at a time; add a
strategy or a column there to cover a new table.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import CliResult, assert_bad_input, run_cli, tree_hash


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    names: tuple[str, ...] = ()
    out: str = "{tmp}/out"
    setup: Callable[[Path, dict[str, Path]], None] | None = None
    code: int = 2


def _fill(text: str, where: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in where.items()})


def check_case(case: Case, tmp: Path, tables: dict[str, Path]) -> CliResult:
    """Run one case: set it up, hash its output, run the CLI, assert the quality bar."""
    where = {**tables, "tmp": tmp}
    if case.setup is not None:
        case.setup(tmp, where)
    out = Path(_fill(case.out, where))
    before = tree_hash(out)
    result = run_cli([_fill(a, where) for a in case.args])
    assert_bad_input(result, *(_fill(n, where) for n in case.names), code=case.code)
    assert tree_hash(out) == before, f"{out} changed although the command failed"
    return result


# --- setups: bad inputs written into {tmp} -------------------------------------------------------


def _dir_at(rel: str) -> Callable[[Path, dict[str, Path]], None]:
    """A folder where the command expects (or writes) a file."""

    def setup(tmp: Path, where: dict[str, Path]) -> None:
        (tmp / rel).mkdir(parents=True)
        (tmp / rel / "keep.txt").write_text("an earlier file the command must not touch")

    return setup


def _file_at(rel: str, data: bytes = b"not what you think") -> Callable[[Path, dict[str, Path]], None]:
    def setup(tmp: Path, where: dict[str, Path]) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)

    return setup


def _copy(src: Path, dest: Path) -> None:
    """A table copied to another folder: its relative image root then points nowhere."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)


def _params(text: str) -> Callable[[Path, dict[str, Path]], None]:
    return _file_at("params.yaml", text.encode("utf-8"))


def _arm_model(source: bytes | None) -> Callable[[Path, dict[str, Path]], None]:
    """An untrained model folder whose model.json names the source's batch-norm statistics
    (training/bnstats.py) and whose ``source_bn.safetensors`` holds ``source`` (None: no file)."""

    def setup(tmp: Path, where: dict[str, Path]) -> None:
        from shiftkit.training import bnstats, models
        from shiftkit.training.checkpoint import write_model

        model = models.create_model("resnet10t", 10, in_chans=1)
        mean, std = models.data_config(model, 1)
        write_model(tmp / "models", model, {"model": "resnet10t", "labels": [str(i) for i in range(10)],
                                            "img_size": 16, "channels": 1, "mean": mean, "std": std,
                                            bnstats.META_KEY: bnstats.meta_entry("target")})
        if source is not None:
            (tmp / "models" / bnstats.SOURCE_NAME).write_bytes(source)

    return setup


CASES: list[Case] = [
    # ingest
    Case("ingest-missing-root", ("ingest", "--domain", "web={tmp}/nope", "--out", "{tmp}/out"), ("{tmp}/nope",)),
    Case("ingest-bad-assignment", ("ingest", "--domain", "web", "--out", "{tmp}/out"), ("--domain",)),
    Case("ingest-out-is-a-file", ("ingest", "--domain", "web={raw}/web", "--out", "{tmp}/out"), ("{tmp}/out",),
         setup=_file_at("out")),
    Case("ingest-bad-param",
         ("ingest", "--domain", "web={raw}/web", "--out", "{tmp}/out", "--params", "{tmp}/params.yaml"),
         ("ingest.workers", "many"), setup=_params("ingest: {workers: many}\n")),
    # split
    Case("split-missing-manifest", ("split", "--manifest", "{tmp}/nope.parquet", "--out", "{tmp}/out"),
         ("{tmp}/nope.parquet",)),
    Case("split-manifest-not-parquet", ("split", "--manifest", "{tmp}/m.parquet", "--out", "{tmp}/out"),
         ("{tmp}/m.parquet",), setup=_file_at("m.parquet")),
    Case("split-bad-dev-size", ("split", "--manifest", "{manifest}", "--out", "{tmp}/out", "--dev", "lots"),
         ("--dev",)),
    # shift
    Case("shift-json-is-a-folder", ("shift", "--a", "{raw}/web/0", "--b", "{raw}/target/0", "--json", "{tmp}/out",
                                    "--max-images", "20", "--permutations", "10"),
         ("--json", "{tmp}/out"), setup=_dir_at("out")),
    Case("shift-images-missing-under-the-root", ("shift", "--manifest", "{tmp}/m/manifest.parquet", "--a-domain", "web",
                                                 "--b-domain", "target"), ("cannot read", "{tmp}/m/"),
         setup=lambda tmp, where: _copy(where["manifest"], tmp / "m" / "manifest.parquet")),
    # evaluate: an arm's model folder whose second set of batch-norm statistics is missing or damaged
    Case("evaluate-source-bn-missing", ("evaluate", "--manifest", "{manifest}", "--splits", "{splits}", "--model",
                                        "{tmp}/models", "--out", "{tmp}/out/p.parquet"),
         ("{tmp}/models", "source_bn.safetensors"), setup=_arm_model(None)),
    Case("evaluate-source-bn-corrupt", ("evaluate", "--manifest", "{manifest}", "--splits", "{splits}", "--model",
                                        "{tmp}/models", "--out", "{tmp}/out/p.parquet"),
         ("{tmp}/models/source_bn.safetensors", "corrupt"), setup=_arm_model(b"\x08" + b"\x00" * 7 + b"{}")),
    # example
    Case("example-unknown", ("example", "faces", "{tmp}/out"), ("faces",)),
]


@pytest.fixture(scope="session")
def small_tables(example_folders, tmp_path_factory) -> dict[str, Path]:
    """The conftest example (400 web, 200 target) ingested and split once, for every case to read."""
    work = tmp_path_factory.mktemp("hostile")
    raw = work / "raw"
    shutil.copytree(example_folders, raw)
    r = run_cli(["ingest", "--domain", f"web={raw}/web", "--domain", f"target={raw}/target",
                 "--out", work / "manifest"])
    assert r.code == 0, r.stderr
    r = run_cli(["split", "--manifest", work / "manifest" / "manifest.parquet", "--out", work / "splits"])
    assert r.code == 0, r.stderr
    return {"raw": raw, "manifest": work / "manifest" / "manifest.parquet",
            "splits": work / "splits" / "splits.parquet"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_output_alone(case, tmp_path, small_tables):
    check_case(case, tmp_path, small_tables)


def test_the_harness_fails_on_what_it_guards_against(tmp_path, small_tables):
    """A valid run, a traceback, two lines and a changed folder must each fail the checks."""
    valid = Case("valid-split", ("split", "--manifest", "{manifest}", "--out", "{tmp}/out"))
    with pytest.raises(AssertionError, match="exit 0, expected 2"):
        check_case(valid, tmp_path, small_tables)
    with pytest.raises(AssertionError):
        assert_bad_input(CliResult(2, "", "Traceback (most recent call last):\n  boom\n"))
    with pytest.raises(AssertionError, match="one line"):
        assert_bad_input(CliResult(2, "", "shiftkit: error: a\nand b\n"))
    with pytest.raises(AssertionError, match="not named"):
        assert_bad_input(CliResult(2, "", "shiftkit: error: something\n"), "--dev")
    before = tree_hash(tmp_path / "out")
    (tmp_path / "out" / "composition.md").write_text("changed")
    assert tree_hash(tmp_path / "out") != before


# --- hypothesis: one damaged column of a valid table at a time -----------------------------------

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(""),
    st.text(max_size=8),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)


def _damaged(df: pl.DataFrame, column: str, value, rows: int) -> pl.DataFrame:
    """``df`` with ``column`` set to ``value`` in its first ``rows`` rows (any type: the column may change type)."""
    values = [value] * min(rows, df.height) + df[column].to_list()[rows:]
    try:
        series = pl.Series(column, values, strict=False)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        series = pl.Series(column, [str(v) for v in values])
    return df.with_columns(series)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(column=st.sampled_from(["image_id", "label", "domain", "path", "root", "width", "height", "sharpness"]),
       value=HOSTILE_VALUES, rows=st.integers(min_value=1, max_value=3))
def test_split_on_a_damaged_manifest_is_never_a_traceback(small_tables, tmp_path_factory, column, value, rows):
    tmp = tmp_path_factory.mktemp("damaged")
    df = pl.read_parquet(small_tables["manifest"])
    if column not in df.columns:
        return
    bad = tmp / "manifest.parquet"
    _damaged(df, column, value, rows).write_parquet(bad)
    out = tmp / "out"
    r = run_cli(["split", "--manifest", bad, "--out", out])
    if r.code == 0:  # a value the stage may accept (a new label, an odd path)
        return
    assert_bad_input(r)  # naming the table file: not yet (splits.py's row checks name the column only)
    assert tree_hash(out) == "absent"


# --- params.yaml at the boundary, one bad file per command ---------------------------------------
# Every command reads --params before it touches anything: a bad file is one line naming the file
# and the key, exit 2, and the output folder (here holding an earlier file) exactly as it was.
# Value-level cases for every field are fuzzed in tests/test_config.py.

_LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                    + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                       for p, c in zip("abcdefgh", "bcdefghi", strict=True)])


def _params_and_out(data: bytes) -> Callable[[Path, dict[str, Path]], None]:
    def setup(tmp: Path, where: dict[str, Path]) -> None:
        _file_at("params.yaml", data)(tmp, where)
        _dir_at("out")(tmp, where)

    return setup


_P = ("--params", "{tmp}/params.yaml")
PARAMS_CASES: list[Case] = [
    Case("params-example-int-section", ("example", "digits", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "section name 1"), setup=_params_and_out(b"1: foo\n")),
    Case("params-ingest-int-key", ("ingest", "--domain", "web={raw}/web", "--out", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "parameter name 1 in ingest"), setup=_params_and_out(b"ingest: {1: 2, foo: 3}\n")),
    Case("params-split-utf16", ("split", "--manifest", "{manifest}", "--out", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "not UTF-8"), setup=_params_and_out("split: {seed: 1}\n".encode("utf-16"))),
    Case("params-check-latin1", ("check", "--latest", "--reference", "{manifest}", "--out", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "not UTF-8"), setup=_params_and_out("split: {target_domain: 'été'}".encode("latin-1"))),
    Case("params-synth-seed-negative", ("synth", "--manifest", "{manifest}", "--splits", "{splits}", "--out",
                                        "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "synth.seed"), setup=_params_and_out(b"synth: {seed: -1}\n")),
    Case("params-shift-aliases", ("shift", "--a", "{raw}/web/0", "--b", "{raw}/target/0", "--json",
                                  "{tmp}/out/shift.json", *_P),
         ("{tmp}/params.yaml", "aliases are not allowed"), setup=_params_and_out(_LAUGHS.encode())),
    Case("params-train-seed-1e23", ("train", "--manifest", "{manifest}", "--splits", "{splits}", "--out", "{tmp}/out",
                                    *_P),
         ("{tmp}/params.yaml", "train.seed"), setup=_params_and_out(b"train: {seed: 1.0e+23}\n")),
    Case("params-train-lr-nan", ("train", "--manifest", "{manifest}", "--splits", "{splits}", "--out", "{tmp}/out",
                                 *_P),
         ("{tmp}/params.yaml", "train.finetune_lr"), setup=_params_and_out(b"train: {finetune_lr: .nan}\n")),
    Case("params-evaluate-bool", ("evaluate", "--manifest", "{manifest}", "--splits", "{splits}", "--model",
                                  "{tmp}/models", "--out", "{tmp}/out/predictions.parquet", *_P),
         ("{tmp}/params.yaml", "evaluate.batch_size"), setup=_params_and_out(b"evaluate: {batch_size: yes}\n")),
    Case("params-report-seed-negative", ("report", "{tmp}/predictions.parquet", "--out", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "report.seed"), setup=_params_and_out(b"report: {seed: -1}\n")),
    Case("params-report-unknown-key", ("report", "{tmp}/predictions.parquet", "--out", "{tmp}/out", *_P),
         ("{tmp}/params.yaml", "report.sed"), setup=_params_and_out(b"report: {sed: 1}\n")),
]


@pytest.mark.parametrize("case", PARAMS_CASES, ids=[c.id for c in PARAMS_CASES])
def test_a_bad_params_file_is_one_line_exit_2_for_every_command(case, tmp_path, small_tables):
    check_case(case, tmp_path, small_tables)
