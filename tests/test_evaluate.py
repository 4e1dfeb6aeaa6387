import json

import polars as pl
import pytest
import torch

from shiftkit.cli import run as cli
from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError, ModelError
from shiftkit.params import load_params
from shiftkit.training import models
from shiftkit.training.checkpoint import write_model
from shiftkit.training.evaluate import evaluate
from tests.train_helpers import build_example, build_synth

LABELS = [str(i) for i in range(10)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model_dir(path, labels=LABELS, channels=1):
    # an untrained model is enough to test the plumbing: predictions need not be right
    torch.manual_seed(0)
    model = models.create_model("resnet10t", len(labels), in_chans=channels)
    mean, std = models.data_config(model, channels)
    meta = {"model": "resnet10t", "labels": labels, "img_size": 16, "channels": channels, "mean": mean, "std": std}
    write_model(path, model, meta)
    return path


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaluate")
    m, s = build_example(base, n_web=60, n_target=40, n_dev=10, n_test=10, n_bridge=10)
    syn = build_synth(base, m, s, limit=12)
    model_dir = _model_dir(base / "models")
    return base, m, s, syn, model_dir


def _params(**changes):
    return load_params(None).replace("evaluate", **{"workers": 0, **changes}).evaluate


def test_predictions_cover_every_split_and_synth_children(example, tmp_path):
    base, m, s, syn, model_dir = example
    out = tmp_path / "pred" / "predictions.parquet"
    r = evaluate(m, s, model_dir, out, _params(), synth=syn)
    df = io.read_table(out, schema.PREDICTIONS)
    assert set(df["split"]) == {"train", "bridge", "dev", "test"}
    spl = io.read_table(s, schema.SPLITS_TABLE)
    real = df.filter(pl.col("source") == "manifest")
    assert real.height == spl.height  # every manifest image of every split, none twice
    assert real["image_id"].n_unique() == real.height
    kids = df.filter(pl.col("domain") == "synth")
    assert kids.height == 12 and set(kids["split"]) <= {"train", "bridge"}
    assert set(df.filter(pl.col("split").is_in(["dev", "test"]))["domain"]) == {"target"}
    assert df["correct"].to_list() == (df["pred"] == df["label"]).to_list()
    assert df["confidence"].min() > 0 and df["confidence"].max() <= 1
    assert all(p.is_file() for p in io.image_paths(df, out))  # path is relative to the table
    assert sum(r.counts.values()) == df.height


def test_train_sample_is_capped_seeded_and_byte_stable(example, tmp_path):
    base, m, s, syn, model_dir = example
    a, b, c = (tmp_path / f"{k}.parquet" for k in "abc")
    evaluate(m, s, model_dir, a, _params(train_sample=15))
    evaluate(m, s, model_dir, b, _params(train_sample=15))
    evaluate(m, s, model_dir, c, _params(train_sample=15, seed=1))
    df = io.read_table(a, schema.PREDICTIONS)
    assert df.filter(pl.col("split") == "train").height == 15
    assert df.filter(pl.col("split") == "dev").height == 10  # other splits are never capped
    assert a.read_bytes() == b.read_bytes()
    other = io.read_table(c, schema.PREDICTIONS).filter(pl.col("split") == "train")
    assert set(other["image_id"]) != set(df.filter(pl.col("split") == "train")["image_id"])


def test_manifest_labels_missing_from_the_checkpoint(example, tmp_path):
    base, m, s, syn, _ = example
    small = _model_dir(tmp_path / "m5", labels=LABELS[:5])
    with pytest.raises(DataError, match=r"Label\(s\) '5', '6'.* missing from the checkpoint .*model.json"):
        evaluate(m, s, small, tmp_path / "p.parquet", _params())


def test_empty_split(example, tmp_path):
    base, m, s, syn, model_dir = example
    spl = io.read_table(s, schema.SPLITS_TABLE).filter(pl.col("split") != "test")
    s2 = io.write_table(spl, tmp_path / "s.parquet", schema.SPLITS_TABLE)
    with pytest.raises(DataError, match=r"The 'test' split of .*s.parquet holds no images"):
        evaluate(m, s2, model_dir, tmp_path / "p.parquet", _params())


@pytest.mark.parametrize(
    "damage, match",
    [
        ("weights", "is corrupt or not a safetensors file"),
        ("meta", "not valid json"),
        ("shape", "does not fit"),
    ],
    ids=["corrupt-weights", "corrupt-metadata", "weights-of-another-head"],
)
def test_damaged_model_is_one_line_exit_2(example, tmp_path, capsys, damage, match):
    base, m, s, syn, _ = example
    d = _model_dir(tmp_path / "models")
    if damage == "weights":
        (d / models.WEIGHTS_NAME).write_bytes(b"\x01" * 100)
    elif damage == "meta":
        (d / models.META_NAME).write_text("{not json")
    else:
        meta = json.loads((d / models.META_NAME).read_text())
        io.write_json(d / models.META_NAME, {**meta, "labels": LABELS + ["10"]})
    code = cli.main(
        ["evaluate", "--manifest", str(m), "--splits", str(s), "--model", str(d), "--out", str(tmp_path / "p.parquet")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "p.parquet").exists()


def test_cli_evaluate_writes_the_table(example, tmp_path, capsys):
    base, m, s, syn, model_dir = example
    out = tmp_path / "p.parquet"
    code = cli.main(
        [
            "evaluate",
            "--manifest",
            str(m),
            "--splits",
            str(s),
            "--synth",
            str(syn),
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--train-sample",
            "20",
        ]
    )
    assert code == 0 and "predicted" in capsys.readouterr().err
    assert io.read_table(out, schema.PREDICTIONS).filter(pl.col("split") == "train").height <= 40


def test_load_trained_refuses_a_folder_without_metadata(tmp_path):
    with pytest.raises(ModelError, match="has no model.json"):
        models.load_trained(tmp_path)


def test_predictions_are_replaced_whole_or_not_at_all(example, tmp_path, monkeypatch):
    # a write that dies half-way (disk full, Ctrl-C) leaves the previous predictions intact and
    # no temporary file beside them
    base, m, s, syn, model_dir = example
    out = tmp_path / "predictions.parquet"
    evaluate(m, s, model_dir, out, _params(train_sample=10))
    before = out.read_bytes()

    def dies_half_way(self, file, **kwargs):
        with open(file, "wb") as fh:
            fh.write(b"PAR1 half a table")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        evaluate(m, s, model_dir, out, _params(train_sample=20))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]


def test_byte_identical_copies_are_predicted_once_and_reported(example, tmp_path):
    # a recipe without random parameters gives a parent's copies the same bytes, so the same image_id:
    # they weight the parent in training, but an image is one prediction and one outcome
    from shiftkit.report.stage import build_report, write_report
    from shiftkit.stats.bootstrap import cluster_ids

    base, m, s, _, model_dir = example
    syn = build_synth(tmp_path, m, s, per_parent=3, limit=8)
    table = io.read_table(syn, schema.SYNTH)
    assert table.height == 24 and table["image_id"].n_unique() == 8
    out = tmp_path / "pred" / "predictions.parquet"
    evaluate(m, s, model_dir, out, _params(), synth=syn)
    df = io.read_table(out, schema.PREDICTIONS)
    assert df["image_id"].n_unique() == df.height
    assert df.filter(pl.col("domain") == "synth").height == 8
    clusters = cluster_ids(io.read_table(m, schema.MANIFEST), table)
    assert clusters["image_id"].n_unique() == clusters.height
    kids = clusters.join(table.select("image_id", "parent_id").unique(), on="image_id")
    parents = io.read_table(m, schema.MANIFEST).select(pl.col("image_id").alias("parent_id"), "dup_group")
    kids = kids.join(parents, on="parent_id").with_columns(want=pl.coalesce("dup_group", "parent_id"))
    assert (kids["cluster"] == kids["want"]).all()  # each copy resampled with its parent
    report = build_report(out, manifest=m, synth=syn)
    write_report(report, tmp_path / "report")
    assert "synth" in (tmp_path / "report" / "report.md").read_text()
