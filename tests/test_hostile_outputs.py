"""Hostile outputs (issue 25: findings 1, 2, 3, 4, 7, 8): where a stage is told to write, and the
inputs that would disarm a gate. Same quality bar as tests/test_hostile.py (one line, exit 2, the
option or file named, the output hashed the same before and after), grouped by kind:

- an output over, inside or around an input, or two outputs at one place (shiftkit/core/outputs.py);
- devices, pipes and symbolic links as single-file outputs;
- a dvclive folder holding files dvclive did not write;
- a splits table of another manifest given to check; a reserved domain name at ingest;
- a full disk (a real small tmpfs when root can mount one, else ENOSPC raised at the OS seam).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from tests import test_hostile
from tests.helpers import REPO, assert_bad_input, run_cli, tree_hash
from tests.test_hostile import Case, _copy, _file_at, check_case

small_tables = test_hostile.small_tables  # the session fixture: the example ingested and split once


@pytest.fixture
def tables(request) -> dict[str, Path]:
    """``small_tables`` of tests/test_hostile.py (raw, manifest, splits)."""
    return request.getfixturevalue("small_tables")

SHIFT = ("shift", "--a", "{raw}/web/0", "--b", "{raw}/target/0", "--max-images", "20", "--permutations", "10")


def _copy_to(key: str, rel: str):
    def setup(tmp: Path, where: dict[str, Path]) -> None:
        _copy(where[key], tmp / rel)

    return setup


def _report_folder(tmp: Path, where: dict[str, Path]) -> None:
    """A report folder given as --live by mistake (dvclive's start-up would delete report.md/html)."""
    rep = tmp / "reports"
    (rep / "plots").mkdir(parents=True)
    for name in ("report.md", "report.html", "metrics.json", "analysis.json", "plots/errors.png"):
        (rep / name).write_text(f"the user's {name}")


def _foreign_splits(kind: str):
    """A splits table that does not belong to the reference: ids of another manifest, or no dev/test."""

    def setup(tmp: Path, where: dict[str, Path]) -> None:
        s = pl.read_parquet(where["splits"])
        if kind == "ids":
            s = s.with_columns(pl.col("image_id").map_elements(
                lambda x: hashlib.sha256(b"another manifest " + x.encode()).hexdigest(), return_dtype=pl.String))
        else:
            s = s.with_columns(pl.lit("train").alias("split"))
        s.write_parquet(tmp / "splits.parquet")
        drop = tmp / "drop" / "0"
        drop.mkdir(parents=True)
        m = pl.read_parquet(where["manifest"])
        dev = pl.read_parquet(where["splits"]).filter(pl.col("split") == "dev")["image_id"][0]
        row = m.filter(pl.col("image_id") == dev).row(0, named=True)
        shutil.copy(where["manifest"].parent / row["root"] / row["path"], drop / "copy.png")  # a dev image's bytes

    return setup


def _listing_with(domain: str):
    def setup(tmp: Path, where: dict[str, Path]) -> None:
        img = next((where["raw"] / "web" / "0").iterdir())
        shutil.copy(img, tmp / "a.png")
        (tmp / "l.csv").write_text(f"path,label,domain\na.png,0,{domain}\n")

    return setup


OUTPUT_CASES: list[Case] = [
    # --- an output over or around an input (finding 1) ---
    Case("evaluate-out-is-the-manifest",
         ("evaluate", "--manifest", "{tmp}/m/manifest.parquet", "--splits", "{splits}", "--model", "{tmp}/models",
          "--out", "{tmp}/m/manifest.parquet"), ("--out", "{tmp}/m/manifest.parquet", "--manifest"),
         out="{tmp}/m", setup=_copy_to("manifest", "m/manifest.parquet")),
    Case("evaluate-out-inside-the-model-folder",
         ("evaluate", "--manifest", "{manifest}", "--splits", "{splits}", "--model", "{tmp}/out",
          "--out", "{tmp}/out/predictions.parquet"), ("--out", "--model", "{tmp}/out"),
         setup=_file_at("out/model.json", b"{}")),
    Case("split-out-holds-the-manifest", ("split", "--manifest", "{tmp}/out/manifest.parquet", "--out", "{tmp}/out"),
         ("--out", "{tmp}/out", "--manifest"), setup=_copy_to("manifest", "out/manifest.parquet")),
    Case("ingest-out-inside-a-domain", ("ingest", "--domain", "web={tmp}/out", "--out", "{tmp}/out/manifest"),
         ("--out", "{tmp}/out/manifest", "--domain"), setup=_copy_to("manifest", "out/0/keep.parquet")),
    Case("synth-out-holds-the-splits",
         ("synth", "--manifest", "{manifest}", "--splits", "{tmp}/out/splits.parquet", "--out", "{tmp}/out"),
         ("--out", "--splits"), setup=_copy_to("splits", "out/splits.parquet")),
    Case("check-out-holds-the-reference",
         ("check", "target={raw}/target", "--reference", "{tmp}/out/manifest.parquet", "--out", "{tmp}/out"),
         ("--out", "--reference"), setup=_copy_to("manifest", "out/manifest.parquet")),
    Case("shift-json-is-the-params-file", (*SHIFT, "--params", "{tmp}/out", "--json", "{tmp}/out"),
         ("--json", "--params", "{tmp}/out"), setup=_file_at("out", b"shift: {seed: 1}\n")),
    Case("train-out-and-live-overlap",
         ("train", "--manifest", "{manifest}", "--splits", "{splits}", "--out", "{tmp}/out", "--live", "{tmp}/out"),
         ("--out", "--live", "overlap")),
    Case("select-out-is-the-pool-folder",
         ("select", "--images", "{tmp}/out", "--model", "{tmp}/models", "--budget", "2", "--out", "{tmp}/out"),
         ("--out", "{tmp}/out", "--images"), setup=_copy_to("manifest", "out/keep.parquet")),
    Case("evaluate-images-out-is-the-add-to-table",
         ("evaluate", "--images", "{raw}/target/0", "--model", "{tmp}/models", "--add-to", "{tmp}/out/p.parquet",
          "--out", "{tmp}/out/p.parquet"), ("--out", "{tmp}/out/p.parquet", "--add-to"),
         setup=_file_at("out/p.parquet", b"PAR1")),
    Case("models-out-json-is-a-symlink",
         ("models", "lenet5", "--no-speed", "--no-layers", "--img-size", "32", "--out", "{tmp}/out"),
         ("--out", "{tmp}/out/models.json", "link"),
         setup=lambda tmp, where: (_file_at("out/real.json", b"{}")(tmp, where),
                                   (tmp / "out" / "models.json").symlink_to("real.json"))),
    # --- links and special files as single-file outputs (finding 2) ---
    Case("shift-json-is-a-symlink", (*SHIFT, "--json", "{tmp}/out/link.json"),
         ("--json", "{tmp}/out/link.json", "link"),
         setup=lambda tmp, where: (_file_at("out/real.json", b"{}")(tmp, where),
                                   (tmp / "out" / "link.json").symlink_to("real.json"))),
    # --- a dvclive folder holding files dvclive did not write (finding 4) ---
    Case("train-live-is-a-report-folder",
         ("train", "--manifest", "{manifest}", "--splits", "{splits}", "--out", "{tmp}/models",
          "--live", "{tmp}/reports"), ("--live", "{tmp}/reports", "report.md"), out="{tmp}/reports",
         setup=_report_folder),
    # --- a gate that could be disarmed (finding 3) ---
    Case("check-splits-of-another-manifest",
         ("check", "target={tmp}/drop", "--reference", "{manifest}", "--splits", "{tmp}/splits.parquet",
          "--out", "{tmp}/out"), ("{tmp}/splits.parquet", "does not belong", "{manifest}"),
         setup=_foreign_splits("ids")),
    Case("check-splits-without-dev-or-test",
         ("check", "target={tmp}/drop", "--reference", "{manifest}", "--splits", "{tmp}/splits.parquet",
          "--out", "{tmp}/out"), ("{tmp}/splits.parquet", "dev or test"), setup=_foreign_splits("no-dev")),
    # --- a reserved domain name (finding 7) ---
    Case("ingest-domain-named-synth", ("ingest", "--domain", "synth={raw}/web", "--out", "{tmp}/out"),
         ("'synth'", "--domain", "reserved")),
    Case("ingest-listing-domain-named-synth", ("ingest", "--listing", "{tmp}/l.csv", "--out", "{tmp}/out"),
         ("'SYNTH'", "{tmp}/l.csv", "reserved"), setup=_listing_with("SYNTH"),
         out="{tmp}/l.csv"),  # ingest makes its (empty) --out folder before it reads a listing's names
]


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c.id for c in OUTPUT_CASES])
def test_a_hostile_output_is_one_line_exit_2_and_touches_nothing(case, tmp_path, tables):
    check_case(case, tmp_path, tables)


def test_a_stage_script_refuses_an_output_over_its_input(tmp_path, tables):
    """The pipelines/*.py scripts share the guard: split's --out holding its manifest."""
    _copy(tables["manifest"], tmp_path / "out" / "manifest.parquet")
    before = tree_hash(tmp_path / "out")
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "split.py"), "--manifest", str(tmp_path / "out" / "manifest.parquet"),
         "--out", str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "--out" in lines[0] and "--manifest" in lines[0], proc.stderr
    assert tree_hash(tmp_path / "out") == before


# --- devices and pipes are written through, never renamed over (finding 2) ------------------------


def _special(tmp: Path, kind: str) -> Path:
    path = tmp / kind
    if kind == "fifo":
        os.mkfifo(path)
    else:  # a character device like /dev/null (major 1, minor 3): as root, as in containers and CI
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_a_device_or_a_pipe_is_written_through(kind, tmp_path, tables):
    if kind == "chardev" and os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    path = _special(tmp_path, kind)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(path.read_bytes()), daemon=True)
    if kind == "fifo":
        reader.start()
    r = run_cli([a.format(**tables) for a in SHIFT] + ["--json", str(path)])
    assert r.code == 0, r.stderr
    mode = path.lstat().st_mode
    assert (stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)), f"{path} was replaced by a file"
    if kind == "fifo":
        reader.join(10)
        assert got and got[0].startswith(b"{") and b'"mmd"' in got[0]


# --- a full disk (finding 8) ----------------------------------------------------------------------


@contextlib.contextmanager
def _small_disk(where: Path):
    """A 4 MiB tmpfs at ``where`` (root), else a plain folder; yields a function that fills it."""
    where.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> None:
    """Use every block of the tmpfs."""
    with open(disk / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)


def _raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


FULL = {
    "split": lambda t, o: ["split", "--manifest", t["manifest"], "--out", o, "--fresh", "--seed", "5"],
    "ingest": lambda t, o: ["ingest", "--domain", f"web={t['raw']}/web", "--domain", f"target={t['raw']}/target",
                            "--out", o],
    "check": lambda t, o: ["check", f"target={t['raw']}/target", "--reference", t["manifest"], "--splits", t["splits"],
                           "--out", o],
    "example": lambda t, o: ["example", "digits", o],
    "evaluate": lambda t, o: ["evaluate", "--manifest", t["manifest"], "--splits", t["splits"], "--model",
                              t["model"], "--out", o, "--params", t["params"]],
}
FIRST = {  # the earlier output, written before the disk fills up
    "split": lambda t, o: ["split", "--manifest", t["manifest"], "--out", o],
    "ingest": lambda t, o: ["ingest", "--domain", f"web={t['raw']}/web", "--out", o],
    "check": lambda t, o: ["check", f"target={t['raw']}/target", "--reference", t["manifest"], "--out", o],
    "example": lambda t, o: ["example", "digits", o, "--params", str(Path(o).parent / "p.yaml")],
    "evaluate": lambda t, o: FULL["evaluate"](t, o),
}


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory) -> Path:
    """An untrained resnet10t at 16 px: evaluate's plumbing needs no right answers."""
    import torch

    from shiftkit.training import models
    from shiftkit.training.checkpoint import write_model

    path = tmp_path_factory.mktemp("model") / "models"
    torch.manual_seed(0)
    model = models.create_model("resnet10t", 10, in_chans=1)
    mean, std = models.data_config(model, 1)
    write_model(path, model, {"model": "resnet10t", "labels": [str(i) for i in range(10)], "img_size": 16,
                              "channels": 1, "mean": mean, "std": std})
    return path


@pytest.mark.parametrize("command", sorted(FULL))
def test_a_full_disk_is_one_line_naming_the_folder_and_the_earlier_output_stays(command, tmp_path, tables, request,
                                                                                monkeypatch):
    disk = tmp_path / "disk"
    tables = dict(tables)
    if command == "evaluate":
        tables["model"] = request.getfixturevalue("untrained_model")
        tables["params"] = tmp_path / "p.yaml"
        tables["params"].write_text("evaluate: {train_sample: 20, workers: 0}\n")
    with _small_disk(disk) as mounted:
        out = disk / ("out.parquet" if command == "evaluate" else "out")
        (disk / "p.yaml").write_text("example: {web_images: 20, target_images: 20}\n")
        first = run_cli([str(a) for a in FIRST[command](tables, str(out))])
        assert first.code in (0, 1), first.stderr  # check may block (exit 1): its report is written anyway
        before = tree_hash(out)
        if mounted:
            _fill(disk)
        else:  # no tmpfs: the OS seam every write goes through raises ENOSPC
            monkeypatch.setattr(os, "replace", _raise_enospc)
        r = run_cli([str(a) for a in FULL[command](tables, str(out))])
        assert_bad_input(r, str(out if command != "evaluate" else disk))
        assert "no space left" in r.stderr.lower() and "internal error" not in r.stderr
        assert tree_hash(out) == before, f"{out} changed on a full disk"
