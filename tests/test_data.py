from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from shiftkit.core.errors import DataError
from shiftkit.training import batches
from shiftkit.training import loader as data
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
    want = dict(zip(parent["image_id"], parent["label"], strict=False))
    assert all(want[i] == lab for i, lab in zip(kids["image_id"], kids["label"], strict=False))
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
    for (xa, ya), (xb, yb) in zip(inline, forked, strict=False):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    other = epoch_batches(0, 2)
    assert not torch.equal(inline[0][1], other[0][1])  # a new epoch reshuffles
    assert sorted(torch.cat([b[1] for b in inline]).tolist()) == y.tolist()


def test_normalised_input_on_device():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, -1, 1, 1)
    std = torch.tensor([0.25, 0.25, 0.25]).view(1, -1, 1, 1)
    out = batches.to_input(x, mean, std, torch.device("cpu"), channels_last=False)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full_like(out, 2.0))
    assert batches.to_input(x, mean, std, torch.device("cpu"), True).is_contiguous(memory_format=torch.channels_last)


def test_cache_budget():
    assert data.cache_fits(1000, 32, 3, 3)
    assert not data.cache_fits(10**6, 224, 3, 2048)


# ---------------------------------------------------------------------------------------------
# the device path


def _ramp_image(size=32):
    """A smooth, asymmetric RGB image: a blurred digit, a horizontal and a vertical ramp."""
    import cv2

    from tests import helpers

    x, _ = helpers.mnist(1)
    digit = cv2.GaussianBlur(cv2.resize(x[0], (size, size)), (5, 5), 1.5)
    ramp = np.arange(size, dtype=np.uint8) * (255 // size)
    return np.dstack([digit, np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size))])


@pytest.mark.parametrize(
    "tx, ty, sx, sy, degrees, flip",
    [
        (3, -2, 1.0, 1.0, 0.0, False),
        (0, 0, 1.1, 0.9, 0.0, False),
        (0, 0, 1.0, 1.0, 10.0, False),
        (2, 1, 0.95, 1.08, -7.0, True),
    ],
    ids=["shift", "scale-xy", "rotate", "all-then-flip"],
)
def test_batched_affine_is_albumentations_affine_then_flip(tx, ty, sx, sy, degrees, flip):
    # the same parameters give the same image (to uint8 rounding): shift, scale, rotation and
    # flip mean the same thing, with the same sign, centre and border on both paths
    import albumentations as A
    import cv2

    img = _ramp_image()
    ops = [
        A.Affine(
            translate_px={"x": (tx, tx), "y": (ty, ty)},
            scale={"x": (sx, sx), "y": (sy, sy)},
            rotate=(degrees, degrees),
            border_mode=cv2.BORDER_REPLICATE,
            p=1.0,
        )
    ]
    want = A.Compose(ops + ([A.HorizontalFlip(p=1.0)] if flip else []))(image=img)["image"].astype(np.float64)
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    theta = batches.affine_matrix(one(tx), one(ty), one(sx), one(sy), one(degrees), torch.tensor([flip]), 32)
    got = batches.augment_batch(torch.from_numpy(img).permute(2, 0, 1)[None].float(), theta)[0].permute(1, 2, 0).numpy()
    diff = np.abs(got - want)
    assert diff.max() <= 0.51 and diff.mean() < 0.25


def test_drawn_parameters_follow_the_documented_ranges():
    n, size = 20000, 32
    gen = torch.Generator().manual_seed(0)
    shift = batches.affine_thetas(data.Augment(translate=0.08), n, size, gen)
    px = (-shift[:, 0, 2] * size / 2).double()  # theta's offset is minus the shift, in units of 2/size
    assert torch.allclose(px, px.round(), atol=1e-4)  # whole pixels
    counts = {int(v): int(c) for v, c in zip(*px.round().unique(return_counts=True), strict=False)}
    assert set(counts) == {-2, -1, 0, 1, 2}  # 0.08 * 32 = 2.56 px, truncated towards zero
    assert abs(counts[0] / n - 1 / 2.56) < 0.02 and abs(counts[2] / n - 0.56 / 5.12) < 0.02
    zoom = batches.affine_thetas(data.Augment(scale=0.1), n, size, gen)
    sx, sy = 1 / zoom[:, 0, 0], 1 / zoom[:, 1, 1]
    assert 0.9 <= sx.min() < 0.905 and 1.095 < sx.max() <= 1.1 and abs(float(sx.mean()) - 1.0) < 0.003
    assert abs(float(torch.corrcoef(torch.stack([sx, sy]))[0, 1])) < 0.05  # x and y drawn independently
    turn = batches.affine_thetas(data.Augment(rotate=10, hflip=True), n, size, gen)
    flipped = turn[:, 0, 0] < 0
    assert abs(float(flipped.float().mean()) - 0.5) < 0.02
    deg = torch.rad2deg(torch.atan2(turn[:, 1, 0] * torch.where(flipped, -1, 1), turn[:, 1, 1]))
    assert -10 <= deg.min() < -9.9 and 9.9 < deg.max() <= 10


def _cache_of(example, size=16, channels=3):
    m, s, _ = example
    man, spl, _ = data.read_inputs(m, s)
    paths = data.items(man, m, spl, ["train"])["abspath"].to_list()
    return paths, data.build_cache(paths, size, channels)


def test_device_batches_without_augmentation_equal_the_loader_path(example):
    paths, cache = _cache_of(example)
    y = np.arange(len(paths)) % 10
    feed = batches.Feed.of(torch.device("cpu"), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    old = batches.LoaderBatches(
        data.make_loader(
            data.ImageDataset(paths, y, size=16, channels=3, cache=cache), batch_size=16, shuffle=True, seed=5
        ),
        feed.device,
        feed.mean,
        feed.std,
    )
    new = batches.DeviceBatches(cache, y, batch_size=16, feed=feed, shuffle=True, seed=5)
    assert len(new) == len(old) == -(-len(paths) // 16)
    for epoch in (0, 3):
        old.set_epoch(epoch)
        new.set_epoch(epoch)
        pairs = list(zip(old, new, strict=True))
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in pairs)
    assert sorted(torch.cat([b[1] for b in new]).tolist()) == sorted(y.tolist())


def test_device_augmentation_is_a_function_of_seed_epoch_and_batch(example):
    paths, cache = _cache_of(example)
    aug = data.Augment(translate=0.1, scale=0.1, rotate=15, hflip=True)
    feed = batches.Feed.of(torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, channels_last=True)

    def epoch(e, seed=0):
        src = batches.DeviceBatches(
            cache, np.zeros(len(paths)), batch_size=8, feed=feed, augment=aug, shuffle=True, seed=seed
        )
        src.set_epoch(e)
        return [x for x, _ in src]

    first = epoch(1)
    assert first[0].is_contiguous(memory_format=torch.channels_last) and first[0].dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(1), strict=True))  # a fresh source, same draws
    assert not torch.equal(first[0], epoch(2)[0]) and not torch.equal(first[0], epoch(1, seed=1)[0])
    plain = batches.DeviceBatches(cache, np.zeros(len(paths)), batch_size=8, feed=feed, shuffle=True)
    plain.set_epoch(1)
    assert not torch.equal(first[0], next(iter(plain))[0])


def test_no_albumentations_version_check_once_shiftkit_is_imported(tmp_path):
    # offline (here: an unreachable proxy) albumentations warns at import in every worker process
    # unless its switch is set; importing shiftkit sets it, so the import is silent. The control
    # in the same process shows that the check itself does warn under these conditions.
    import os
    import subprocess
    import sys

    code = (
        "import os, warnings\n"
        "import shiftkit\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import albumentations\n"
        "    quiet = len(w)\n"
        "    del os.environ['NO_ALBUMENTATIONS_UPDATE']\n"
        "    albumentations.check_version.check_for_updates()\n"
        "    print(quiet, len(w) - quiet)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        HTTPS_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    quiet, control = map(int, out.stdout.split())
    assert quiet == 0 and control >= 1
