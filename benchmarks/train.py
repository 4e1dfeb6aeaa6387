"""Training throughput of shiftkit's two batch paths, as a ratio to the limit.

- limit: the same model and training step fed from uint8 batches already on the device (no
  decoding, no augmentation, no loader; normalised in the step);
- loader: the worker-process path (uint8 cache, albumentations per image in ``--workers``
  worker processes, collated batches copied to the device), which training falls back to when
  the images do not fit ``train.cache_mb``;
- device: the device path (:class:`shiftkit.training.batches.DeviceBatches`: the batch indexed from the
  uint8 cache, pinned on CUDA, copied as uint8, one batched affine on the device, prefetched on
  a side stream).

Each variant runs the same optimizer steps on real MNIST digits (the 12,000 shipped in
``shiftkit/data``, 28x28 PNGs resized to ``--img-size``); variants are interleaved so that load
from other processes affects them alike, and the ratio is taken between the best passes (as
timeit does: on a shared machine the best pass is the one least disturbed), with the medians
beside. ``busy`` is the fraction of the pass's wall time the device spends in training steps:
on CUDA the sum of the steps' spans between CUDA events, on the CPU the time inside the steps.

    PYTHONPATH=. python benchmarks/train.py [--images 3000] [--img-size 32] [--model resnet10t]
    PYTHONPATH=. python benchmarks/train.py --device cuda --model resnet50 --img-size 224 --batch-size 128

``benchmarks/gpu_check.sh`` runs the two GPU acceptance configurations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shiftkit.ingest.example import mnist_subset  # noqa: E402
from shiftkit.training import batches, models  # noqa: E402
from shiftkit.training import loader as data  # noqa: E402

AUGMENT = data.Augment(translate=0.08, scale=0.1, rotate=10)  # params.yaml's train defaults


def write_digits(folder: Path, n: int) -> tuple[list[str], np.ndarray]:
    """``n`` MNIST digits as PNG files (as ingest would find them); their paths and labels."""
    from PIL import Image

    x, y = mnist_subset()
    paths = []
    for i in range(n):
        p = folder / f"{i:06d}.png"
        Image.fromarray(x[i % len(x)]).save(p)
        paths.append(str(p))
    return paths, np.array([int(v) for v in y[np.arange(n) % len(y)]], dtype=np.int64)


def _step_fn(model, device, amp_dtype):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

    def step(x, y):
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = crit(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def run_pass(step, batches, device) -> tuple[float, float]:
    """images/s of one pass over ``batches`` (model inputs on the device), and the busy fraction."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    spans, n, stepping, t0 = [], 0, 0.0, time.perf_counter()
    for x, y in batches:
        if cuda:  # no host sync per step: the next batch is prepared while this one computes
            ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            ev[0].record()
            step(x, y)
            ev[1].record()
            spans.append(ev)
        else:
            ts = time.perf_counter()
            step(x, y)
            stepping += time.perf_counter() - ts
        n += y.shape[0]
    if cuda:
        torch.cuda.synchronize()
        stepping = sum(a.elapsed_time(b) for a, b in spans) / 1000.0
    total = time.perf_counter() - t0
    return n / total, min(1.0, stepping / total)


class _InMemory:
    """The limit: uint8 batches already on the device, normalised as they are handed out."""

    def __init__(self, cache: torch.Tensor, y: np.ndarray, bs: int, feed: batches.Feed) -> None:
        order = np.random.default_rng(0).permutation(len(y))
        dev = feed.device
        self.feed = feed
        chunks = [torch.from_numpy(order[i : i + bs]) for i in range(0, len(order), bs)]
        self.batches = [(cache[c].permute(0, 3, 1, 2).to(dev), torch.from_numpy(y)[c].to(dev)) for c in chunks]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        f = self.feed
        return ((batches.to_input(x, f.mean, f.std, f.device, f.channels_last), y) for x, y in self.batches)


def _sources(args, paths, y, feed, cache) -> dict[str, object]:
    bs, size, ch = args.batch_size, args.img_size, 3
    loader_ds = data.ImageDataset(paths, y, size=size, channels=ch, augment=AUGMENT, cache=cache.numpy())
    cuda = feed.device.type == "cuda"
    loader = data.make_loader(loader_ds, batch_size=bs, shuffle=True, seed=0, workers=args.workers, pin_memory=cuda)
    return {
        "limit: batches already on the device": _InMemory(cache, y, bs, feed),
        f"loader: cache, albumentations, {args.workers} workers": batches.LoaderBatches(
            loader, feed.device, feed.mean, feed.std, feed.channels_last
        ),
        "device: cache, batched affine on the device": batches.DeviceBatches(
            cache, y, batch_size=bs, feed=feed, augment=AUGMENT, shuffle=True, seed=0
        ),
    }


def _report(args, rates, busy, n, device, amp_dtype, cache_s) -> None:
    keys = list(rates)
    limit, limit_med = max(rates[keys[0]]), statistics.median(rates[keys[0]])
    print(
        f"{args.model} at {args.img_size}x{args.img_size}, batch {args.batch_size}, {n} images, {device}, "
        f"amp={amp_dtype}, torch threads {torch.get_num_threads()}; cache built in {cache_s:.2f} s "
        f"({n / cache_s:,.0f} img/s)"
    )
    for k in keys:
        v = rates[k]
        best, med = max(v), statistics.median(v)
        runs = ", ".join(f"{x:,.0f}" for x in v)
        print(
            f"  {k:<48} best {best:7,.0f} img/s  ratio {best / limit:4.2f} | median {med:7,.0f}  ratio "
            f"{med / limit_med:4.2f} | busy {statistics.median(busy[k]):4.2f}  (runs: {runs})"
        )
    print("ratio: images/s over the limit's; busy: median fraction of a pass's wall time spent in training steps.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", default="resnet10t")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (compare with the default AMP + channels_last)")
    args = ap.parse_args(argv)

    device = batches.resolve_device(args.device)
    cuda = device.type == "cuda"
    amp_dtype = None
    if cuda and not args.no_amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with tempfile.TemporaryDirectory() as tmp:
        paths, y = write_digits(Path(tmp), args.images)
        torch.manual_seed(0)
        model = models.create_model(args.model, 10, in_chans=3).to(device).train()
        if cuda and not args.no_amp:
            model.to(memory_format=torch.channels_last)
        mean_t, std_t = models.data_config(model, 3)
        feed = batches.Feed.of(device, mean_t, std_t, channels_last=cuda and not args.no_amp)
        step = _step_fn(model, device, amp_dtype)

        t0 = time.perf_counter()
        cache = data.empty_cache(len(paths), args.img_size, 3, pinned=cuda)
        data.build_cache(paths, args.img_size, 3, workers=args.workers, out=cache.numpy())
        cache_s = time.perf_counter() - t0
        sources = _sources(args, paths, y, feed, cache)
        for i, (x, yy) in enumerate(sources[next(iter(sources))]):  # warm-up: allocator, cuDNN / oneDNN
            step(x, yy)
            if i == 2:
                break
        rates = {k: [] for k in sources}
        busy = {k: [] for k in sources}
        for r in range(args.repeats):
            for k, src in sources.items():
                src.set_epoch(r)
                rate, frac = run_pass(step, src, device)
                rates[k].append(rate)
                busy[k].append(frac)
    _report(args, rates, busy, len(paths), device, amp_dtype, cache_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
