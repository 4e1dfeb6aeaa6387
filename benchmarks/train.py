"""Training throughput through shiftkit's data loader, as a ratio to the limit.

The limit: the same model and training step fed from uint8 batches already in memory (no
decoding, no augmentation, no loader). Each variant runs the same number of optimizer steps on
real MNIST PNGs (28x28 -> img_size); variants are interleaved so that load from other processes
affects them alike, and the ratio is taken between the best passes (as timeit does: on a shared
machine the best pass is the one least disturbed), with the medians beside.

    PYTHONPATH=. python benchmarks/train.py [--images 3000] [--img-size 32] [--model resnet10t]
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

from shiftkit import data, models  # noqa: E402
from tests.train_helpers import build_example  # noqa: E402


def _step_fn(model, device, mean, std, channels_last, amp_dtype):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

    def step(x, y):
        x = data.to_input(x, mean, std, device, channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = crit(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_limit(step, batches, device) -> float:
    n, t0 = 0, time.perf_counter()
    for x, y in batches:
        step(x, y)
        n += y.shape[0]
    _sync(device)
    return n / (time.perf_counter() - t0)


def run_loader(step, loader, epoch, device) -> tuple[float, float]:
    """images/s, and the fraction of the wall time spent in training steps (not waiting for data)."""
    data.set_epoch(loader, epoch)
    n, stepping, t0 = 0, 0.0, time.perf_counter()
    for x, y in loader:
        ts = time.perf_counter()
        step(x, y)
        _sync(device)
        stepping += time.perf_counter() - ts
        n += y.shape[0]
    total = time.perf_counter() - t0
    return n / total, stepping / total


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

    device = data.resolve_device(args.device)
    cuda = device.type == "cuda"
    amp_dtype = None if (not cuda or args.no_amp) else (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    channels_last = cuda and not args.no_amp
    with tempfile.TemporaryDirectory() as tmp:
        m, s = build_example(Path(tmp), n_web=args.images, n_target=40, n_dev=10, n_test=10, n_bridge=0)
        man, spl, _ = data.read_inputs(m, s)
        rows = data.items(man, m, spl, ["train"])
        labels = data.labels_of(man)
        paths, y = rows["abspath"].to_list(), data.targets(rows, labels)
        size, ch, bs = args.img_size, 3, args.batch_size

        torch.manual_seed(0)
        model = models.create_model(args.model, len(labels), in_chans=ch).to(device).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        mean_t, std_t = models.data_config(model, ch)
        mean = torch.tensor(mean_t, device=device).view(1, -1, 1, 1)
        std = torch.tensor(std_t, device=device).view(1, -1, 1, 1)
        step = _step_fn(model, device, mean, std, channels_last, amp_dtype)

        t0 = time.perf_counter()
        cache = data.build_cache(paths, size, ch, workers=args.workers)
        cache_s = time.perf_counter() - t0
        # the limit: the same uint8 batches, already in memory (on the device when there is one)
        order = np.random.default_rng(0).permutation(len(paths))
        mem = [
            (torch.from_numpy(cache[order[i : i + bs]]).permute(0, 3, 1, 2).to(device), torch.from_numpy(y[order[i : i + bs]]).to(device))
            for i in range(0, len(order), bs)
        ]
        aug = data.Augment(translate=0.08, scale=0.1, rotate=10)
        variants = {
            "limit (tensors in memory)": None,
            f"loader, cache, augment, {args.workers} workers": data.ImageDataset(paths, y, size=size, channels=ch, augment=aug, cache=cache),
            "loader, cache, augment, 0 workers": data.ImageDataset(paths, y, size=size, channels=ch, augment=aug, cache=cache),
            f"loader, decode each epoch, augment, {args.workers} workers": data.ImageDataset(paths, y, size=size, channels=ch, augment=aug),
        }
        workers = {k: (0 if "0 workers" in k else args.workers) for k in variants}
        loaders = {
            k: data.make_loader(ds, batch_size=bs, shuffle=True, seed=0, workers=workers[k], pin_memory=cuda)
            for k, ds in variants.items()
            if ds is not None
        }
        for x, yy in mem[:3]:  # warm-up: allocator and oneDNN primitives
            step(x, yy)
        rates = {k: [] for k in variants}
        fed = {k: [] for k in variants}
        for r in range(args.repeats):
            for k in variants:
                if k.startswith("limit"):
                    rates[k].append(run_limit(step, mem, device))
                    fed[k].append(1.0)
                else:
                    rate, frac = run_loader(step, loaders[k], r, device)
                    rates[k].append(rate)
                    fed[k].append(frac)
    limit = max(rates["limit (tensors in memory)"])
    limit_med = statistics.median(rates["limit (tensors in memory)"])
    print(f"{args.model} at {size}x{size}, batch {bs}, {len(paths)} images, {device}, amp={amp_dtype}, "
          f"torch threads {torch.get_num_threads()}; cache built in {cache_s:.2f} s ({len(paths) / cache_s:,.0f} img/s)")
    for k, v in rates.items():
        best, med = max(v), statistics.median(v)
        print(
            f"  {k:<50} best {best:6,.0f} img/s  ratio {best / limit:4.2f} | median {med:6,.0f}  ratio {med / limit_med:4.2f}"
            f" | fed {statistics.median(fed[k]):4.2f}  (runs: {', '.join(f'{x:,.0f}' for x in v)})"
        )
    print("fed: median fraction of the loop's wall time spent in training steps rather than waiting for the next")
    print("batch, measured inside each pass, so other processes' load affects both parts alike.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
