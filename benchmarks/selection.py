"""``shiftkit select`` on 10,000 unlabelled images with a resnet10t: wall time of the whole command.

The images are real MNIST digits (the 12,000 shipped in shiftkit/ingest/data) written as 64x64
PNGs in a flat folder (``--images``: every file is read, hashed, decoded and resized to the
model's ``img_size`` from its model.json: 32 px, the project's default ``train.img_size``). The
model is a resnet10t with random weights written as ``shiftkit train`` writes one (speed does not
depend on the weights). Each strategy runs as its own ``python -m shiftkit select`` process, so
start-up, hashing, decoding, the one forward pass (probabilities and pooled features together),
the strategy and the contact sheet are all counted. (Not named benchmarks/select.py: a script of
that name shadows the standard library's ``select`` for every script in this folder.) The
acceptance bar is under 60 s on 2 cores.
Besides the wall time it prints the CPU seconds the command used (user + system, all its threads and
processes): on a machine shared with other work the wall time includes waiting for a core, the CPU
time does not, and on 2 free cores the wall time lies between cpu / 2 and cpu.

Then, in this process (one torch thread per core, as the command), each phase on its own, to show
what dominates: listing and hashing the files (``pool``), decoding them alone through the loader the
command uses (``decode``), decoding + the forward pass (``embed``), each strategy's choice
(``score``) and the listing + contact sheet (``write``).

    PYTHONPATH=. python benchmarks/selection.py [--images 10000] [--budget 300] [--strategies margin clue coreset]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shiftkit.ingest.example import mnist_subset  # noqa: E402


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    x, _ = mnist_subset()
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(x[i % len(x)]).resize((64, 64), Image.BILINEAR).save(folder / f"img_{i:05d}.png")
        if i >= len(x):  # more images than digits: make the bytes distinct
            with open(folder / f"img_{i:05d}.png", "ab") as fh:
                fh.write(i.to_bytes(4, "little"))


def write_model(folder: Path, img_size: int) -> None:
    from shiftkit.training.checkpoint import write_model as write
    from shiftkit.training.models import create_model, data_config

    model = create_model("resnet10t", 10, in_chans=3, pretrained=False)
    mean, std = data_config(model, 3)
    folder.mkdir(parents=True)
    write(folder, model, {"model": "resnet10t", "labels": [str(i) for i in range(10)], "img_size": img_size,
                          "channels": 3, "mean": list(mean), "std": list(std), "pretrained": False})


def phases(pool_dir: Path, model_dir: Path, budget: int, strategies: list[str], batch_size: int) -> None:
    """Each phase of ``shiftkit select --images`` timed on its own (see the module docstring)."""
    from shiftkit.select import pool as pools
    from shiftkit.select.embed import embed
    from shiftkit.select.stage import contact_sheet
    from shiftkit.select.strategies import PoolView, choose
    from shiftkit.training import loader as data
    from shiftkit.training.models import load_trained

    def timed(name: str, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        print(f"  {name:14s} wall {time.perf_counter() - t:6.1f} s  cpu {time.process_time() - c:6.1f} s", flush=True)
        return out

    pool = timed("pool (hash)", lambda: pools.from_images(pool_dir))
    _, meta = load_trained(model_dir)
    paths = pool["abspath"].to_list()

    def decode_only() -> int:
        ds = data.ImageDataset(paths, np.zeros(len(paths), dtype=np.int64), size=meta["img_size"],
                               channels=meta["channels"])
        return sum(x.shape[0] for x, _ in data.make_loader(ds, batch_size=batch_size, shuffle=False))

    timed("decode", decode_only)
    emb = timed("embed", lambda: embed(model_dir, paths, batch_size=batch_size))
    picked = None
    for s in strategies:
        picked = timed(f"score {s}", lambda s=s: choose(s, PoolView(emb.probs, emb.feats, emb.labels, seed=0), budget))
    rows = pool[picked.index.tolist()]
    shown = min(100, rows.height)
    timed("write", lambda: contact_sheet(rows["abspath"].to_list()[:shown], [str(k) for k in range(shown)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--strategies", nargs="+", default=["margin", "clue", "coreset"])
    ap.add_argument("--batch-size", type=int, default=256, help="select.batch_size")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        write_images(base / "pool", a.images)
        write_model(base / "model", a.img_size)
        print(f"wrote {a.images:,} 64x64 PNGs and a resnet10t ({a.img_size} px) in {time.perf_counter() - t0:.1f} s")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for s in a.strategies:
            t, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run([sys.executable, "-m", "shiftkit", "select", "--images", str(base / "pool"),
                                   "--model", str(base / "model"), "--budget", str(a.budget), "--strategy", s,
                                   "--out", str(base / f"sel-{s}"), "--params", str(ROOT / "params.yaml")],
                                  env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
            last = (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1]
            # on a shared machine the wall time includes waiting for the cores; the CPU seconds the
            # command used do not: on 2 free cores its wall time lies between cpu / 2 and cpu
            print(f"{s:8s} exit {proc.returncode}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                  f"({a.images / wall:,.0f} img/s wall)  | {last}", flush=True)
        print("phases, in this process:")
        phases(base / "pool", base / "model", a.budget, a.strategies, a.batch_size)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
