"""Benchmark: synthesis images/s as a ratio to the limit, on small (64x64) and large (512x512) images.

shiftkit's path: ``synth.run_synth`` with a saved recipe (no fit), all cores: decode, sample the
exact values, apply through the albumentations adapter, encode PNG, write, hash, record.
The limit: a plain loop over the same files on the same number of processes that reads,
decodes, applies the same albumentations transforms (one ``A.Compose`` built once per process,
fixed parameters) and writes the same PNG files. Prints images/s of both and their ratio
(median of ``--repeats`` passes). Goal: ratio >= 0.8.

    PYTHONPATH=. python benchmarks/synth.py [--small 4000] [--large 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shiftkit import synth  # noqa: E402
from shiftkit.core import files as io  # noqa: E402
from shiftkit.core import schema  # noqa: E402
from shiftkit.params import params_from_mapping  # noqa: E402
from shiftkit.runtime.imap import resolve_workers  # noqa: E402

SIGMA, SCALE, QUALITY = 1.0, 0.5, 70


def _mnist(n: int) -> np.ndarray:
    from tests import helpers  # the shared 60,000 digits, else the shipped 12,000 and variants

    return helpers.mnist_many(n)[0]


def make_set(root: Path, n: int, size: int) -> list[Path]:
    """``n`` RGB images of ``size`` px: MNIST digits on a noisy coloured texture (PNG small, JPEG large)."""
    rng = np.random.default_rng(0)
    digits = _mnist(n)
    ext = ".png" if size <= 64 else ".jpg"
    paths = []
    for i, d in enumerate(digits):
        big = cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        base = rng.uniform(0, 120, size=3).astype(np.float32)
        tex = cv2.GaussianBlur(rng.normal(0, 25, (size, size, 3)).astype(np.float32), (0, 0), 2)
        img = np.clip(base + tex + big[..., None] * 0.5, 0, 255).astype(np.uint8)
        p = root / "web" / str(i % 10) / f"img_{i:05d}{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
        cv2.imwrite(str(p), img[..., ::-1], params)
        paths.append(p)
    return paths


def write_tables(root: Path, paths: list[Path]) -> tuple[Path, Path]:
    """A manifest (placeholder properties: the recipe is given, no fit reads them) and splits."""
    ids = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    n = len(paths)
    manifest = pl.DataFrame({
        "image_id": ids, "path": [p.relative_to(root / "web").as_posix() for p in paths],
        "root": ["web"] * n, "domain": ["web"] * n, "label": [p.parent.name for p in paths],
        "width": [0] * n, "height": [0] * n, "format": ["PNG"] * n, "mode": ["RGB"] * n, "phash": [0] * n,
        **{c: [0.0] * n for c in ("blur", "brightness", "contrast", "effective_res", "noise", "extent")},
        "jpeg_quality": [None] * n, "drop": [1] * n, "dup_group": ids,
    })
    io.write_table(manifest, root / "manifest.parquet", schema.MANIFEST)
    splits = pl.DataFrame({"image_id": ids, "split": ["train"] * n, "group": ids})
    io.write_table(splits, root / "splits.parquet", schema.SPLITS_TABLE)
    return root / "manifest.parquet", root / "splits.parquet"


def recipe() -> synth.Recipe:
    return synth.Recipe((
        synth.make_step("gaussian_blur", sigma=SIGMA),
        synth.make_step("downscale", scale=SCALE, keep_size=1),
        synth.make_step("jpeg", quality=QUALITY),
    ))


# --- the limit: a plain loop -------------------------------------------------------------------

_COMPOSE = None


def _init_plain() -> None:
    global _COMPOSE
    import albumentations as A

    cv2.setNumThreads(1)
    _COMPOSE = A.Compose([
        A.GaussianBlur(sigma_limit=(SIGMA, SIGMA), blur_limit=0, p=1.0),
        A.Downscale(scale_range=(SCALE, SCALE), interpolation_pair={"downscale": cv2.INTER_AREA,
                                                                   "upscale": cv2.INTER_LINEAR}, p=1.0),
        A.ImageCompression(quality_range=(QUALITY, QUALITY), p=1.0),
    ], seed=0)


def _plain_one(item: tuple[str, str]) -> int:
    src, dst = item
    buf = np.frombuffer(Path(src).read_bytes(), np.uint8)
    img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    out = _COMPOSE(image=img)["image"]  # type: ignore[misc]
    ok, enc = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    with open(dst, "wb") as fh:
        fh.write(enc.tobytes())
    return len(enc)


def plain_loop(paths: list[Path], out: Path, workers: int) -> float:
    items = []
    for p in paths:
        d = out / p.parent.name
        d.mkdir(parents=True, exist_ok=True)
        items.append((str(p), str(d / (p.stem + ".png"))))
    t0 = time.perf_counter()
    # the same chunking as shiftkit's pool, so that neither side idles longer at the end
    chunk = max(1, min(64, len(items) // (16 * workers)))
    with mp.get_context("fork").Pool(workers, initializer=_init_plain) as pool:
        for _ in pool.imap(_plain_one, items, chunksize=chunk):
            pass
    return len(items) / (time.perf_counter() - t0)


def shiftkit_path(manifest: Path, splits: Path, out: Path, recipe_path: Path, workers: int) -> float:
    params = params_from_mapping({"synth": {"workers": workers, "preview": 0}}).synth
    t0 = time.perf_counter()
    res = synth.run_synth(manifest, splits, out, params, recipe_path=recipe_path, preview=0)
    return res["images"] / (time.perf_counter() - t0)


def bench(name: str, n: int, size: int, repeats: int, workers: int) -> float:
    root = Path(tempfile.mkdtemp(prefix=f"synth-bench-{name}-"))
    try:
        paths = make_set(root, n, size)
        manifest, splits = write_tables(root, paths)
        rpath = io.write_json(root / "recipe.json", recipe().to_dict())
        ours, limit = [], []
        for _ in range(repeats):
            shutil.rmtree(root / "plain", ignore_errors=True)
            limit.append(plain_loop(paths, root / "plain", workers))
            ours.append(shiftkit_path(manifest, splits, root / "synth", rpath, workers))
        o, lim = statistics.median(ours), statistics.median(limit)
        print(f"{name:5s} {size}x{size} n={n}: shiftkit {o:8.0f} img/s, plain loop {lim:8.0f} img/s, "
              f"ratio {o / lim:.2f} (goal >= 0.8; {workers} processes, median of {repeats})")
        return o / lim
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=4000, help="64x64 PNG images")
    ap.add_argument("--large", type=int, default=400, help="512x512 JPEG images")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    args = ap.parse_args(argv)
    os.environ.setdefault("SHIFTKIT_PROGRESS", "0")
    workers = resolve_workers(args.workers)
    bench("small", args.small, 64, args.repeats, workers)
    bench("large", args.large, 512, args.repeats, workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
