"""The whole chain on RGB JPEG photos, on the CPU: each stage's rate against the decode-only limit.

Stages, each run as the user runs it (``python -m shiftkit ...``, a fresh process, timed from the
outside): ingest, split, synth (fit + copies), train one epoch without and with the synthesised
copies, evaluate, report. The limit is a loop that only opens and fully decodes the same files with
Pillow in one process (what any stage that reads every image pays at least). Each stage's rate is
images handled / wall seconds, and its ratio to that limit is printed beside it. Training also
prints its own rate (the optimizer steps alone, from ``shiftkit train``'s summary), with and without
copies, and their ratio: the copies go through the same decoded cache and device batches as the
manifest's images, so the ratio should be about 1 (>= 0.9 is the acceptance).

Photos: by default built from the two real photographs scikit-learn ships (``load_sample_images``:
china.jpg and flower.jpg, 427 x 640, CC BY 2.0 per scikit-learn's documentation): random crops at
several scales, four classes (photo x left/right half), web images 256 px at JPEG quality 90, target
images 224 px as a poor phone renders them (a warm cast, blur, sensor noise, JPEG quality 70).
``--folder DIR`` takes any folder holding ``web/`` and ``target/`` ImageFolders instead (for example
``shiftkit example photos DIR``).

    PYTHONPATH=. python benchmarks/photo_chain.py [--web 240] [--target 240] [--img-size 128]
    PYTHONPATH=. python benchmarks/photo_chain.py --folder data/photos --keep /tmp/chain
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELS = ("china_left", "china_right", "flower_left", "flower_right")


def _crop(photo: np.ndarray, rng: np.random.Generator, right: bool, side: int) -> np.ndarray:
    """A random square crop of one half of ``photo``, resized to ``side`` px."""
    from PIL import Image

    h, w = photo.shape[:2]
    half = w // 2
    c = int(rng.integers(int(0.45 * h), int(0.95 * h) + 1))
    c = min(c, half + half // 2)
    x0 = int(rng.integers(0, max(1, w - half - c // 2))) + (half - c // 2 if right else 0)
    x0 = min(max(x0, 0), w - c)
    y0 = int(rng.integers(0, h - c + 1))
    im = Image.fromarray(photo[y0 : y0 + c, x0 : x0 + c]).resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _phone(px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A poor phone camera: warm cast, blur, brightness-dependent noise (JPEG comes at writing)."""
    import cv2

    x = px.astype(np.float32) * np.array([1.10, 1.0, 0.85], dtype=np.float32)
    x = cv2.GaussianBlur(x, (0, 0), 1.2)
    x = x + rng.normal(0, 1, x.shape).astype(np.float32) * np.sqrt(np.clip(x, 0, 255) * 0.08 + 4)
    return np.clip(x, 0, 255).astype(np.uint8)


def build_photos(root: Path, n_web: int, n_target: int, seed: int = 0) -> Path:
    """web/<label>/*.jpg (256 px, q90) and target/<label>/*.jpg (224 px, phone rendering, q70)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # china.jpg, flower.jpg
    rng = np.random.default_rng(seed)
    for domain, n, side, quality in (("web", n_web, 256, 90), ("target", n_target, 224, 70)):
        for i in range(n):
            k = i % len(LABELS)
            px = _crop(photos[k // 2], rng, bool(k % 2), side)
            if domain == "target":
                px = _phone(px, rng)
            d = root / domain / LABELS[k]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(px).save(d / f"{domain}_{i:05d}.jpg", quality=quality)
    return root


def decode_limit(files: list[Path], repeats: int = 2) -> float:
    """Images/s of opening and fully decoding ``files`` with Pillow, one process (best pass)."""
    from PIL import Image

    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in files:
            with Image.open(f) as im:
                im.load()
        best = max(best, len(files) / (time.perf_counter() - t0))
    return best


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def shiftkit(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``python -m shiftkit ARGS`` in ``cwd``; (wall seconds, CPU seconds of it and its workers,
    its output). Exits on failure. The CPU seconds are what a shared machine cannot inflate much:
    on a busy machine the wall time is mostly waiting."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHIFTKIT_PROGRESS": "0"}
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "shiftkit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode:
        sys.exit(f"shiftkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout + proc.stderr


def _params(path: Path, img_size: int, model: str, threads: int) -> None:
    path.write_text(
        "train:\n"
        f"  model: {model}\n  img_size: {img_size}\n  finetune_epochs: 1\n  batch_size: 32\n"
        f"  hflip: true\n  threads: {threads}\n"
        "evaluate:\n  train_sample: 200\n"
        "report:\n  replicates: 200\n"
    )


def _count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def run_chain(photos: Path, work: Path, img_size: int, model: str,
              threads: int) -> list[tuple[str, int, float, float, str]]:
    """Every stage in order; (stage, images handled, wall seconds, CPU seconds, the stage's own last line)."""
    _params(work / "params.yaml", img_size, model, threads)
    n_web, n_target = _count(photos / "web"), _count(photos / "target")
    rows = []

    def stage(name: str, n: int, args: list[str]) -> str:
        wall, cpu, out = shiftkit(args, work)
        last = [ln for ln in out.strip().splitlines() if ln.strip()][-1] if out.strip() else ""
        rows.append((name, n, wall, cpu, last))
        return out

    stage("ingest", n_web + n_target, ["ingest", "--domain", f"web={photos / 'web'}", "--domain",
                                       f"target={photos / 'target'}", "--out", "manifest"])
    stage("split", n_web + n_target, ["split", "--manifest", "manifest/manifest.parquet", "--out", "splits"])
    stage("synth", n_web, ["synth", "--manifest", "manifest/manifest.parquet", "--splits", "splits/splits.parquet",
                           "--out", "synth", "--preview", "0"])
    common = ["--manifest", "manifest/manifest.parquet", "--splits", "splits/splits.parquet"]
    stage("train (no copies)", 0, ["train", *common, "--out", "m0", "--live", "live0", "--epochs", "1"])
    stage("train (copies)", 0, ["train", *common, "--synth", "synth/synth.parquet", "--out", "m1", "--live", "live1",
                                "--epochs", "1"])
    stage("evaluate", n_web + n_target, ["evaluate", *common, "--synth", "synth/synth.parquet", "--model", "m1",
                                         "--out", "pred/predictions.parquet"])
    stage("report", n_web + n_target, ["report", "pred/predictions.parquet", "--manifest", "manifest/manifest.parquet",
                                       "--synth", "synth/synth.parquet", "--out", "reports", "--quiet"])
    return rows


def _train_rate(work: Path, live: str, line: str) -> float:
    """img/s of the optimizer steps: dvclive's ``images_per_s`` (unrounded), else the summary line's."""
    try:
        return float(json.loads((work / live / "metrics.json").read_text())["images_per_s"])
    except (OSError, KeyError, ValueError):
        m = re.search(r"([\d,]+) img/s", line)
        return float(m.group(1).replace(",", "")) if m else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="web/ and target/ ImageFolders of photos (default: built here)")
    ap.add_argument("--web", type=int, default=240, help="web photos to build (256 px)")
    ap.add_argument("--target", type=int, default=240, help="target photos to build (224 px)")
    ap.add_argument("--img-size", type=int, default=128, help="train.img_size")
    ap.add_argument("--model", default="resnet10t")
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: torch's default)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="photo_chain_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        photos = args.folder.resolve() if args.folder else build_photos(work / "photos", args.web, args.target)
        files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        limit = decode_limit(files)
        rows = run_chain(photos, work, args.img_size, args.model, args.threads)
        n_train = {r[0]: r for r in rows}
        print(f"{len(files)} photos ({photos}); decode-only limit (Pillow, 1 process): {limit:,.0f} img/s")
        print(f"{'stage':<20} {'images':>7} {'wall s':>8} {'CPU s':>8} {'img/s':>8} {'/ limit':>8}")
        for name, n, wall, cpu, last in rows:
            rate = n / wall if n else float("nan")
            print(f"{name:<20} {n:>7} {wall:>8.1f} {cpu:>8.1f} {rate:>8.1f} {rate / limit:>8.3f}   {last[:110]}")
        fit = json.loads((work / "synth" / "fit.json").read_text())
        print(f"synthesis fit: {fit['seconds']:.1f} s wall (fit.json), domain AUC {fit['before']['auc']:.3f} -> "
              f"{fit['after']['auc']:.3f} (bar: 60 s on 2 idle cores; the synth stage's CPU s above bound it "
              f"on a busy machine)")
        r0 = _train_rate(work, "live0", n_train["train (no copies)"][4])
        r1 = _train_rate(work, "live1", n_train["train (copies)"][4])
        print(f"training steps alone: {r0:,.1f} img/s without copies, {r1:,.1f} img/s with them: ratio {r1 / r0:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
