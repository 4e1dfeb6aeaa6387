"""Training with synthesised copies against training without them, on photos (same model and size).

A learning-curve point trains on its images from the curve's decoded stores. Three trainings of one
epoch, interleaved ``--repeats`` times on the same photos (the best pass of each is compared, as
benchmarks/train.py does: on a shared machine the best pass is the least disturbed):

- ``no copies``: web + target train images, copied from the manifest's store (curve_pixels);
- ``copies, decoded``: the same plus the synthesised copies, which the training decodes itself
  (before curve_synth_pixels: the copies were in no store);
- ``copies, stored``: the copies copied from their own store (curve_synth_pixels) like the rest.

Two rates per training: the optimizer steps alone (``TrainResult.images_per_s``) and images trained
per second of the whole ``train()`` call (cache fill, steps, dev evaluation, checkpoint). The
acceptance: with copies at >= 0.9 of the rate without them.

Photos: benchmarks/photo_chain.py's (crops of scikit-learn's two sample photographs; web 256 px,
target 224 px phone renderings, JPEG), or ``--folder DIR`` with web/ and target/ ImageFolders; the
copies come from ``shiftkit synth`` with a fixed recipe (downscale, blur, JPEG: no fit is timed here).

    PYTHONPATH=. python benchmarks/synth_train.py [--web 120] [--target 120] [--img-size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from photo_chain import build_photos, shiftkit  # noqa: E402

RECIPE = {"version": 1, "steps": [
    {"name": "downscale", "p": 1.0, "params": {"scale": [0.4, 0.6], "keep_size": [1.0, 1.0]}},
]}


def prepare(photos: Path, work: Path) -> None:
    """ingest, split and synth (fixed recipe) through the command line, in ``work``."""
    (work / "recipe.json").write_text(json.dumps(RECIPE))
    shiftkit(["ingest", "--domain", f"web={photos / 'web'}", "--domain", f"target={photos / 'target'}",
              "--out", "manifest"], work)
    shiftkit(["split", "--manifest", "manifest/manifest.parquet", "--out", "splits"], work)
    shiftkit(["synth", "--manifest", "manifest/manifest.parquet", "--splits", "splits/splits.parquet",
              "--out", "synth", "--recipe", "recipe.json", "--preview", "0"], work)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, help="web/ and target/ ImageFolders of photos (default: built here)")
    ap.add_argument("--web", type=int, default=120)
    ap.add_argument("--target", type=int, default=120)
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--model", default="resnet10t")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    from shiftkit.training.loader import read_tables
    from shiftkit.training.params import TrainParams
    from shiftkit.training.pixels import write_store
    from shiftkit.training.train import select_items, train

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="synth_train_"))
    try:
        photos = args.folder.resolve() if args.folder else build_photos(work / "photos", args.web, args.target)
        prepare(photos, work)
        m, s, syn = work / "manifest/manifest.parquet", work / "splits/splits.parquet", work / "synth/synth.parquet"
        p = TrainParams(model=args.model, img_size=args.img_size, batch_size=args.batch_size, finetune_epochs=1,
                        head_epochs=0, hflip=True, threads=args.threads)
        write_store(m, s, work / "px", p.img_size, p.channels)
        write_store(m, s, work / "px_copies", p.img_size, p.channels, synth=syn, copies_only=True)
        runs = {
            "no copies": {"pixels": work / "px"},
            "copies, decoded": {"synth": syn, "pixels": work / "px"},
            "copies, stored": {"synth": syn, "pixels": [work / "px", work / "px_copies"]},
        }
        best: dict[str, tuple[float, float, int]] = {}
        for r in range(args.repeats):
            for name, kw in runs.items():
                t0 = time.perf_counter()
                res = train(m, s, work / f"m{r}_{len(best)}", p, live_dir=None, **kw)
                wall = time.perf_counter() - t0
                seen = len(select_items(read_tables(m, s, kw.get("synth")))[1])
                old = best.get(name, (0.0, 0.0, 0))
                best[name] = (max(old[0], res.images_per_s), max(old[1], seen / wall), seen)
        base = best["no copies"]
        print(f"{args.model}, {args.img_size} px, batch {args.batch_size}, {args.threads} thread(s), one epoch; "
              f"best of {args.repeats}")
        print(f"{'training':<18} {'images':>7} {'steps img/s':>12} {'ratio':>6} {'whole img/s':>12} {'ratio':>6}")
        for name, (steps, whole, seen) in best.items():
            print(f"{name:<18} {seen:>7} {steps:>12.2f} {steps / base[0]:>6.2f} {whole:>12.2f} {whole / base[1]:>6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
