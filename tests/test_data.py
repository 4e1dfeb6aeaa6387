from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from shiftkit import data
from shiftkit.errors import DataError
from tests.train_helpers import build_example, build_synth


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    m, s = build_example(base, n_web=40, n_target=30, n_dev=8, n_test=8, n_bridge=6)
    syn = build_synth(base, m, s, limit=10)
    return m, s, syn


def test_items_join_splits_and_synth_children(example):
    m, s, syn = example
    man, spl, st = data.read_inputs(m, s, syn)
    assert data.labels_of(man) == sorted(man["label"].unique().to_list())
    tr = data.items(man, m, spl, ["train"], st, syn)
    assert set(tr["split"]) == {"train"}
    assert tr.filter(pl.col("source") == "manifest").height == spl.filter(pl.col("split") == "train").height
    kids = tr.filter(pl.col("source") == "synth")
    assert kids.height > 0 and set(kids["domain"]) == {"synth"}
    # children carry their parent's label
    parent = st.join(man.select(pl.col("image_id").alias("parent_id"), "label"), on="parent_id")
    want = dict(zip(parent["image_id"], parent["label"]))
    assert all(want[i] == lab for i, lab in zip(kids["image_id"], kids["label"]))
    assert all(Path(p).is_file() for p in tr["abspath"])
    dev = data.items(man, m, spl, ["dev"], st, syn)
    assert set(dev["domain"]) == {"target"}  # synth children never enter dev


def test_unknown_label_is_one_clear_error():
    frame = pl.DataFrame({"label": ["cat", "dog", "emu"]})
    with pytest.raises(DataError, match=r"Label\(s\) 'emu' of the data are missing from the model's labels"):
        data.targets(frame, ["cat", "dog"])


@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
def test_batches_are_uint8_nchw_and_cache_matches_decoding(example, channels):
    m, s, _ = example
    man, spl, _ = data.read_inputs(m, s)
    tr = data.items(man, m, spl, ["train"])
    paths = tr["abspath"].to_list()[:10]
    y = np.arange(10)
    cache = data.build_cache(paths, 24, channels)
    cached = data.ImageDataset(paths, y, size=24, channels=channels, cache=cache)
    fresh = data.ImageDataset(paths, y, size=24, channels=channels)
    xb, yb = cached.__getitems__(list(range(10)))
    assert xb.dtype == torch.uint8 and tuple(xb.shape) == (10, channels, 24, 24)
    assert torch.equal(xb, fresh.__getitems__(list(range(10)))[0])
    assert torch.equal(yb, torch.arange(10))
    assert xb.float().std() > 0  # real pixels, not a blank


def test_augmentation_is_a_function_of_seed_epoch_and_batch(example):
    m, s, _ = example
    man, spl, _ = data.read_inputs(m, s)
    paths = data.items(man, m, spl, ["train"])["abspath"].to_list()[:8]
    aug = data.Augment(translate=0.1, scale=0.1, rotate=15)

    def batch(epoch, seed=0):
        ds = data.ImageDataset(paths, np.zeros(8), size=32, channels=1, augment=aug, seed=seed)
        ds.set_epoch(epoch)
        return ds.__getitems__(list(range(8)))[0]

    plain = data.ImageDataset(paths, np.zeros(8), size=32, channels=1).__getitems__(list(range(8)))[0]
    assert torch.equal(batch(0), batch(0))
    assert not torch.equal(batch(0), batch(1))
    assert not torch.equal(batch(0), batch(0, seed=1))
    assert not torch.equal(batch(0), plain)


def test_loader_order_and_content_do_not_depend_on_workers(example):
    m, s, _ = example
    man, spl, _ = data.read_inputs(m, s)
    paths = data.items(man, m, spl, ["train"])["abspath"].to_list()
    y = np.arange(len(paths))
    aug = data.Augment(translate=0.1)

    def epoch_batches(workers, epoch):
        ds = data.ImageDataset(paths, y, size=16, channels=1, augment=aug, seed=3)
        loader = data.make_loader(ds, batch_size=16, shuffle=True, seed=3, workers=workers)
        data.set_epoch(loader, epoch)
        return list(loader)

    inline, forked = epoch_batches(0, 1), epoch_batches(2, 1)
    assert len(inline) == len(forked)
    for (xa, ya), (xb, yb) in zip(inline, forked):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    other = epoch_batches(0, 2)
    assert not torch.equal(inline[0][1], other[0][1])  # a new epoch reshuffles
    assert sorted(torch.cat([b[1] for b in inline]).tolist()) == y.tolist()


def test_normalised_input_on_device():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, -1, 1, 1)
    std = torch.tensor([0.25, 0.25, 0.25]).view(1, -1, 1, 1)
    out = data.to_input(x, mean, std, torch.device("cpu"), channels_last=False)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full_like(out, 2.0))
    assert data.to_input(x, mean, std, torch.device("cpu"), True).is_contiguous(memory_format=torch.channels_last)


def test_cache_budget():
    assert data.cache_fits(1000, 32, 3, 3)
    assert not data.cache_fits(10**6, 224, 3, 2048)
