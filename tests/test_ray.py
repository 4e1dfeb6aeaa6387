"""The ray engine on a real local Ray cluster (2 CPUs, started once for the test session).

The same stage functions run on the local engine and on Ray; their outputs must be the same
bytes: manifest, quarantine, synth table and images (every engine in shiftkit/runtime/ keeps the item order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from shiftkit.ingest.example import write_example
from shiftkit.ingest.params import ExampleParams
from shiftkit.params import load_params
from shiftkit.runtime import engine
from tests import ingest_helpers

REPO = Path(__file__).resolve().parents[1]
RECIPE = {
    "steps": [
        {"name": "crop_to_content", "p": 1.0, "params": {}},
        {"name": "gaussian_blur", "p": 0.7, "params": {"sigma": [0.3, 1.2]}},
    ]
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example (300 web digits, 200 target) plus a messy domain whose files land in the quarantine."""
    root = tmp_path_factory.mktemp("ray-example")
    write_example("digits", root, ExampleParams(web_images=300, target_images=200, seed=0))
    ingest_helpers.messy_folder(root / "messy")
    return root


def _stages(root: Path, out: Path, *, workers: int) -> None:
    from shiftkit.ingest.stage import ingest
    from shiftkit.splits.stage import run_split
    from shiftkit.synth import run_synth

    params = load_params(REPO / "params.yaml")
    domains = {"web": root / "web", "target": root / "target", "messy": root / "messy" / "web"}
    ingest(domains, out / "manifest", params=params.ingest, workers=workers)
    run_split(out / "manifest" / "manifest.parquet", out / "splits", params.split)
    recipe = out / "recipe-in.json"
    recipe.write_text(json.dumps(RECIPE))
    synth_params = params.replace("synth", workers=workers, weighting="none").synth
    run_synth(out / "manifest" / "manifest.parquet", out / "splits" / "splits.parquet", out / "synth",
              synth_params, recipe_path=recipe, preview=0)


def test_ingest_split_synth_are_byte_identical_on_ray(example, tmp_path, ray_cluster):
    _stages(example, tmp_path / "local", workers=2)
    with engine.use("ray"):
        _stages(example, tmp_path / "ray", workers=2)
    local, on_ray = _tree(tmp_path / "local"), _tree(tmp_path / "ray")
    assert local.keys() == on_ray.keys()
    for name in ("manifest/manifest.parquet", "manifest/quarantine.parquet", "splits/splits.parquet",
                 "synth/synth.parquet"):
        assert local[name] == on_ray[name], name
    images = [k for k in local if k.startswith("synth/images/")]
    assert len(images) > 100
    assert [k for k in images if local[k] != on_ray[k]] == []
    quarantine = pl.read_parquet(tmp_path / "ray" / "manifest" / "quarantine.parquet")
    assert quarantine.height > 5  # the messy domain's corrupt and odd files went through Ray too


def test_cli_engine_option_runs_ingest_on_ray(example, tmp_path, ray_cluster):
    from shiftkit.cli.run import main

    out = tmp_path / "m"
    code = main(["ingest", "--domain", f"web={example / 'web'}", "--domain", f"target={example / 'target'}",
                 "--out", str(out), "--engine", "ray", "--params", str(REPO / "params.yaml")])
    assert code == 0
    assert engine.current().name == "ray"
    engine.activate()  # back to the default for the tests that follow
    assert pl.read_parquet(out / "manifest.parquet").height == 500


def test_ray_errors_in_a_task_reach_the_caller(ray_cluster):
    from shiftkit.runtime.imap import imap

    with engine.use("ray"), pytest.raises(ZeroDivisionError):
        list(imap(_inverse, [1, 2, 0, 4], chunksize=1))
    with engine.use("ray"):
        assert list(imap(_inverse, [1, 2, 4, 5, 8], chunksize=2)) == [1.0, 0.5, 0.25, 0.2, 0.125]


def _inverse(x: int) -> float:
    return 1 / x


def test_engine_name_is_checked():
    from shiftkit.core.errors import ConfigError
    from shiftkit.params import params_from_mapping

    with pytest.raises(ConfigError, match="engine.name"):
        params_from_mapping({"engine": {"name": "spark"}})
    with pytest.raises(ConfigError, match="local, ray"):
        engine.make("dask")


_WITHOUT_RAY = "import sys; sys.modules['ray'] = None\n"


def test_without_ray_installed_shiftkit_imports_and_the_ray_engine_is_one_line(example, tmp_path):
    """Ray is an optional extra: a Python where ``import ray`` fails still runs the local engine."""
    script = _WITHOUT_RAY + (
        "import shiftkit.cli.app, shiftkit.ingest.stage, shiftkit.synth, shiftkit.shift.stage, shiftkit.check.stage\n"
        "from shiftkit.cli.run import main\n"
        f"sys.exit(main(['ingest', '--domain', 'web={example / 'web'}', '--out', '{tmp_path / 'm'}', "
        "'--engine', 'ray']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e '.[ray]'" in lines[0]
    assert not (tmp_path / "m" / "manifest.parquet").exists()
