"""The decoded-image store the learning curve's trainings share (shiftkit.training.pixels): decoded once,
copied by every training, and the same model as when a training decodes its own images."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from shiftkit.core import files as io
from shiftkit.core import schema
from shiftkit.core.errors import DataError
from shiftkit.training import loader as data
from shiftkit.training import pixels
from shiftkit.training.params import TrainParams
from shiftkit.training.train import train
from tests.train_helpers import build_example, build_synth

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARAMS = TrainParams(img_size=16, batch_size=16, finetune_epochs=1, head_epochs=0, workers=0)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    base = tmp_path_factory.mktemp("pixels")
    m, s = build_example(base, n_web=40, n_target=30, n_dev=10, n_test=6, n_bridge=6)
    syn = build_synth(base, m, s, limit=12)
    return base, m, s, syn


def _model(folder):
    return (folder / "model.safetensors").read_bytes()


def test_the_store_holds_each_training_image_once_decoded_as_training_would(tables, tmp_path):
    base, m, s, syn = tables
    meta = pixels.write_store(m, s, tmp_path / "px", 16, 3, synth=syn)
    man, spl, sy = data.read_inputs(m, s, syn)
    rows = data.items(man, m, spl, ["train", "dev"], sy, syn)
    assert meta["images"] == rows["image_id"].n_unique() == rows.height
    assert sorted(meta) == ["channels", "format", "images", "size", "skipped"] and not meta["skipped"]
    store = pixels.PixelStore.open(tmp_path / "px")
    out = np.zeros((rows.height, 16, 16, 3), dtype=np.uint8)
    assert store.fill(rows["image_id"].to_list(), out).all()
    decoded = data.build_cache(rows["abspath"].to_list(), 16, 3)
    assert np.array_equal(out, decoded)
    # any order of ids, with unknown ones among them: each row lands where its id is
    ids = ["not-stored", *reversed(rows["image_id"].to_list())]
    out = np.zeros((len(ids), 16, 16, 3), dtype=np.uint8)
    assert store.fill(ids, out).tolist() == [False] + [True] * rows.height
    assert not out[0].any() and np.array_equal(out[1:], decoded[::-1])
    # test and bridge images are never read by a training: not stored
    other = data.items(man, m, spl, ["test"])
    assert not store.fill(other["image_id"].to_list(), np.zeros((other.height, 16, 16, 3), np.uint8)).any()


def test_a_training_from_the_store_is_the_training_that_decodes(tables, tmp_path):
    base, m, s, syn = tables
    plain = tmp_path / "plain"
    train(m, s, plain, PARAMS, synth=syn, live_dir=None)
    full = tmp_path / "full"
    pixels.write_store(m, s, full, 16, 3, synth=syn)
    shared = tmp_path / "shared"
    train(m, s, shared, PARAMS, synth=syn, live_dir=None, pixels=full)
    assert _model(shared) == _model(plain)
    # a store without the synthesised children: those are decoded, the rest copied; same model
    part = tmp_path / "part"
    assert pixels.write_store(m, s, part, 16, 3)["images"] < json.loads((full / "meta.json").read_text())["images"]
    mixed = tmp_path / "mixed"
    train(m, s, mixed, PARAMS, synth=syn, live_dir=None, pixels=part)
    assert _model(mixed) == _model(plain)


def test_a_store_of_another_size_or_too_large_is_not_used(tables, tmp_path):
    base, m, s, _ = tables
    plain, other = tmp_path / "plain", tmp_path / "px32"
    train(m, s, plain, PARAMS, live_dir=None)
    pixels.write_store(m, s, other, 32, 3)
    # a store whose pixels would be wrong for this size is ignored, never mixed in
    train(m, s, tmp_path / "a", PARAMS, live_dir=None, pixels=other)
    assert _model(tmp_path / "a") == _model(plain)
    meta = pixels.write_store(m, s, tmp_path / "small", 16, 3, max_mb=0)
    assert meta["images"] == 0 and "more than train.cache_mb=0" in meta["skipped"]
    train(m, s, tmp_path / "b", PARAMS, live_dir=None, pixels=tmp_path / "small")
    assert _model(tmp_path / "b") == _model(plain)


def test_a_folder_that_is_not_a_store_is_a_data_error_naming_it(tables, tmp_path):
    base, m, s, _ = tables
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "meta.json").write_text('{"format": 99}')
    pl.DataFrame({"image_id": ["a"], "row": [0]}).write_parquet(tmp_path / "junk" / "index.parquet")
    with pytest.raises(DataError, match="junk"):
        train(m, s, tmp_path / "m", PARAMS, live_dir=None, pixels=tmp_path / "junk")
    with pytest.raises(DataError, match="decoded-image store"):
        pixels.PixelStore.open(tmp_path / "empty")
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_the_store_is_replaced_as_a_whole(tables, tmp_path):
    base, m, s, _ = tables
    px = tmp_path / "px"
    pixels.write_store(m, s, px, 16, 3)
    before = io.read_json(px / "meta.json")
    pixels.write_store(m, s, px, 8, 1)
    after = pixels.PixelStore.open(px)
    assert (after.size, after.channels) == (8, 1) and before["size"] == 16
    assert np.load(px / "pixels.npy", mmap_mode="r").shape[1:] == (8, 8, 1)
    assert io.read_table(s, schema.SPLITS_TABLE).height > 0  # inputs untouched


def test_copies_have_a_store_of_their_own_and_a_training_decodes_nothing(tables, tmp_path, monkeypatch):
    """The curve's two stores (the manifest's images; the synthesised copies alone): a training with
    copies copies every image from them, decodes none, and trains the same model as one that decodes."""
    base, m, s, syn = tables
    plain = tmp_path / "plain"
    train(m, s, plain, PARAMS, synth=syn, live_dir=None)
    man_store, copies = tmp_path / "px", tmp_path / "copies"
    n_man = pixels.write_store(m, s, man_store, 16, 3)["images"]
    n_copies = pixels.write_store(m, s, copies, 16, 3, synth=syn, copies_only=True)["images"]
    sy = io.read_table(syn, schema.SYNTH)
    assert n_copies == sy.filter(pl.col("split") == "train")["image_id"].n_unique() > 0
    assert set(pixels.PixelStore.open(copies).rows) <= set(sy["image_id"].to_list())
    assert n_man + n_copies == pixels.write_store(m, s, tmp_path / "all", 16, 3, synth=syn)["images"]

    def no_decoding(paths, *a, **k):
        raise AssertionError(f"decoded {len(paths)} image(s) that the stores hold")

    monkeypatch.setattr(data, "build_cache", no_decoding)
    both = tmp_path / "both"
    train(m, s, both, PARAMS, synth=syn, live_dir=None, pixels=[man_store, copies])
    assert _model(both) == _model(plain)
