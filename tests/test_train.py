import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from shiftkit.cli import run as cli
from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.console import output_to, stderr_console
from shiftkit.core.errors import ConfigError, DataError
from shiftkit.params import load_params
from shiftkit.training.checkpoint import STATE_NAME
from shiftkit.training.train import train
from tests.train_helpers import build_example, build_synth

REPO = Path(__file__).resolve().parents[1]
TINY = dict(img_size=16, batch_size=16, workers=0, finetune_epochs=1, head_epochs=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes):
    return load_params(None).replace("train", **{**TINY, **changes}).train


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    m, s = build_example(base, n_web=60, n_target=40, n_dev=10, n_test=10, n_bridge=10)
    return base, m, s


def test_train_writes_model_metadata_resume_point_and_dvclive(example, tmp_path, monkeypatch, capsys):
    base, m, s = example
    syn = build_synth(tmp_path, m, s, limit=8)
    monkeypatch.setenv("SHIFTKIT_PROGRESS", "1")
    with output_to(stderr_console()):  # the library is quiet unless its caller turns output on
        r = train(m, s, tmp_path / "models", tiny(finetune_epochs=2), synth=syn, live_dir=tmp_path / "dvclive")
    meta = json.loads((tmp_path / "models" / "model.json").read_text())
    assert meta["model"] == "resnet10t" and meta["labels"] == [str(i) for i in range(10)]
    assert meta["img_size"] == 16 and meta["channels"] == 3 and len(meta["mean"]) == 3
    assert len(meta["params_hash"]) == 64 and meta["shiftkit_version"] and meta["epochs_done"] == 2
    weights = load_file(tmp_path / "models" / "model.safetensors")
    assert weights["fc.weight"].shape[0] == 10
    assert (tmp_path / "models" / STATE_NAME).is_file()
    assert r.epochs == 2 and 0.0 <= r.dev_accuracy <= 1.0
    bar = capsys.readouterr().err
    assert "epoch 2/2 finetune" in bar and "img/s" in bar and "dev acc" in bar
    metrics = json.loads((tmp_path / "dvclive" / "metrics.json").read_text())
    assert metrics["step"] == 1 and "accuracy" in metrics["dev"] and "loss" in metrics["train"]
    tsv = (tmp_path / "dvclive" / "plots" / "metrics" / "dev" / "accuracy.tsv").read_text().splitlines()
    assert len(tsv) == 3  # header + one row per epoch: what `dvc plots` draws
    # nothing half-written is left behind
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.endswith(".tmp")]


def test_pretrained_checkpoint_new_head_frozen_then_finetuned(example, tmp_path):
    base, m, s = example
    # first run: web images of five labels only -> a 5-class head
    man = io.read_table(m, schema.MANIFEST)
    web5 = man.filter((pl.col("domain") == "web") & pl.col("label").is_in([str(i) for i in range(5)]))
    m5 = io.write_table(web5, m.parent / "web5.parquet", schema.MANIFEST)
    spl = io.read_table(s, schema.SPLITS_TABLE).filter(pl.col("image_id").is_in(web5["image_id"].to_list()))
    spl = spl.with_columns(
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit("dev")).otherwise(pl.col("split")).alias("split")
    )
    s5 = io.write_table(spl, tmp_path / "s5.parquet", schema.SPLITS_TABLE)
    train(m5, s5, tmp_path / "first", tiny(), live_dir=None)
    first = load_file(tmp_path / "first" / "model.safetensors")
    assert first["fc.weight"].shape[0] == 5

    after_head = {}

    def grab(epoch, batch):
        if epoch == 1 and batch == 0:  # the checkpoint on disk is the end of the frozen phase
            after_head.update(load_file(tmp_path / "second" / "model.safetensors"))

    train(m, s, tmp_path / "second", tiny(pretrained=str(tmp_path / "first")), live_dir=None, on_batch=grab)
    final = load_file(tmp_path / "second" / "model.safetensors")
    assert after_head["fc.weight"].shape[0] == 10
    backbone = [k for k in first if not k.startswith("fc.")]
    assert all(torch.equal(first[k], after_head[k]) for k in backbone)  # weights and BN statistics
    changed = [k for k in backbone if k.endswith("weight") and not torch.equal(first[k], final[k])]
    assert "conv1.0.weight" in changed and "layer4.0.conv2.weight" in changed
    meta = json.loads((tmp_path / "second" / "model.json").read_text())
    assert meta["phases"] == ["head", "finetune"] and meta["pretrained"].endswith("first")


class _Stop(Exception):
    pass


def test_resume_after_interruption_equals_an_uninterrupted_run(example, tmp_path):
    base, m, s = example
    p = tiny(finetune_epochs=2, seed=7)
    train(m, s, tmp_path / "full", p, live_dir=tmp_path / "live_full")

    def boom(epoch, batch):
        if epoch == 1 and batch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        train(m, s, tmp_path / "cut", p, live_dir=tmp_path / "live_cut", on_batch=boom)
    assert json.loads((tmp_path / "cut" / "model.json").read_text())["epochs_done"] == 1
    train(m, s, tmp_path / "cut", p, live_dir=tmp_path / "live_cut", resume=True)
    full = load_file(tmp_path / "full" / "model.safetensors")
    resumed = load_file(tmp_path / "cut" / "model.safetensors")
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    steps = (tmp_path / "live_cut" / "plots" / "metrics" / "dev" / "accuracy.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in steps[1:]] == ["0", "1"]
    # resuming with other parameters is refused
    with pytest.raises(ConfigError, match="written with other train parameters"):
        train(m, s, tmp_path / "cut", tiny(finetune_epochs=2, seed=8), live_dir=None, resume=True)
    # ... and so is resuming on the other batch path (the images no longer fit the cache)
    assert json.loads((tmp_path / "cut" / "model.json").read_text())["batch_path"] == "device"
    with pytest.raises(ConfigError, match="written on the device batch path, this run takes the loader path"):
        train(m, s, tmp_path / "cut", tiny(finetune_epochs=2, seed=7, cache_mb=0), live_dir=None, resume=True)


def test_empty_train_split(example, tmp_path):
    base, m, s = example
    spl = io.read_table(s, schema.SPLITS_TABLE).with_columns(
        pl.when(pl.col("split") == "train").then(pl.lit("bridge")).otherwise(pl.col("split")).alias("split")
    )
    s2 = io.write_table(spl, tmp_path / "s.parquet", schema.SPLITS_TABLE)
    with pytest.raises(DataError, match=r"The 'train' split of .*s.parquet holds no images"):
        train(m, s2, tmp_path / "models", tiny(), live_dir=None)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "resnet10"], "Did you mean resnet10t"),
        (["--pretrained", "{junk}"], "corrupt or not a safetensors file"),
        (["--epochs", "-1"], "train.finetune_epochs"),
        (["--epochs", "0"], "nothing to train"),
        (["--device", "tpu"], "'train.device' parameter must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
    ids=["unknown-model", "corrupt-checkpoint", "bad-epochs", "no-epochs-from-scratch", "bad-device"],
)
def test_cli_bad_input_is_one_line_exit_2(example, tmp_path, capsys, args, match):
    base, m, s = example
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"garbage")
    args = [a.replace("{junk}", str(junk)) for a in args]
    code = cli.main(["train", "--manifest", str(m), "--splits", str(s), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert match in err


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(example, tmp_path):
    base, m, s = example
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  img_size: 16\n  batch_size: 8\n  workers: 0\n  finetune_epochs: 1\n")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "shiftkit",
        "train",
        "--manifest",
        str(m),
        "--splits",
        str(s),
        "--out",
        str(tmp_path / "ddp"),
        "--live",
        str(tmp_path / "live"),
        "--params",
        str(params),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("trained resnet10t") == 1  # rank 0 alone reports and writes
    meta = json.loads((tmp_path / "ddp" / "model.json").read_text())
    assert meta["epochs_done"] == 1 and meta["labels"] == [str(i) for i in range(10)]
    weights = load_file(tmp_path / "ddp" / "model.safetensors")
    assert weights["fc.weight"].shape == (10, 512)
    assert json.loads((tmp_path / "live" / "metrics.json").read_text())["step"] == 0


def _tiny_params(tmp_path, **extra):
    lines = {"img_size": 16, "batch_size": 16, "workers": 0, "finetune_epochs": 1, "threads": 1, **extra}
    path = tmp_path / "params.yaml"
    path.write_text("train:\n" + "".join(f"  {k}: {v}\n" for k, v in lines.items()))
    return path


def test_splits_partly_matching_warn_and_cache_fallback_says_why(example, tmp_path, capsys):
    # rows of the splits table that name no manifest image are counted in one warning; images that
    # do not fit train.cache_mb go through the worker-process loader, with one line saying why
    base, m, s = example
    spl = io.read_table(s, schema.SPLITS_TABLE)
    ghosts = spl.head(3).with_columns(pl.col("image_id").str.replace(r"^.", "g"))
    s2 = io.write_table(pl.concat([spl, ghosts]), tmp_path / "s.parquet", schema.SPLITS_TABLE)
    args = [
        "train",
        "--manifest",
        str(m),
        "--splits",
        str(s2),
        "--out",
        str(tmp_path / "o"),
        "--live",
        str(tmp_path / "live"),
        "--params",
        str(_tiny_params(tmp_path, cache_mb=0)),
    ]
    code = cli.main(args)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    assert f"3 of {spl.height + 3} rows of {s2} name no image of {m}" in err
    assert "train.cache_mb=0" in err and "worker processes" in err
    assert json.loads((tmp_path / "o" / "model.json").read_text())["epochs_done"] == 1


def test_splits_matching_no_manifest_image_is_one_line_exit_2(example, tmp_path, capsys):
    base, m, s = example
    spl = io.read_table(s, schema.SPLITS_TABLE).with_columns(pl.col("image_id").str.replace(r"^.", "g"))
    s2 = io.write_table(spl, tmp_path / "s.parquet", schema.SPLITS_TABLE)
    code = cli.main(["train", "--manifest", str(m), "--splits", str(s2), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "None of the" in err and "s.parquet" in err
