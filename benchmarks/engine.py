"""The engines side by side: ingest and synthesis on the local engine and on Ray, same cores.

Each round runs the same stage functions on both engines, back to back (the order alternates
between rounds), into fresh output folders, and prints images/s and the ratio ray / local (the
engine's overhead; goal >= 0.8). Ray is started once with --workers CPUs and warmed up first
(its start-up is printed apart: a cluster pays it once, not per stage). Sets:
  A: MNIST digits upscaled to 64x64 RGB PNG (benchmarks/ingest.py's set A);
  B: photo-like 512x512 JPEGs at quality 90 (its set B);
synthesis degrades B-style images with benchmarks/synth.py's fixed recipe (small 64 px PNG and
large 512 px JPEG parents).

With --s3, moto's S3 server is started on 127.0.0.1 and set A is ingested from s3:// and from
the local disk, on the local engine: the ratio is what object storage costs (here a loopback
HTTP server, so it measures the client path, not a network).

    PYTHONPATH=. python benchmarks/engine.py [--workers 2] [--rounds 3] [--small 6000] [--large 600] [--s3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import ingest as ingest_bench  # noqa: E402  (benchmarks/ingest.py: the sets A and B)
import synth as synth_bench  # noqa: E402  (benchmarks/synth.py: parents, tables, recipe)

from shiftkit.ingest.params import IngestParams  # noqa: E402
from shiftkit.params import params_from_mapping  # noqa: E402
from shiftkit.runtime import engine  # noqa: E402
from shiftkit.runtime import ray as ray_engine  # noqa: E402


def ingest_rate(root: Path | str, out: Path, workers: int) -> float:
    from shiftkit.ingest.stage import ingest

    shutil.rmtree(out, ignore_errors=True)
    res = ingest({"web": root}, out, params=IngestParams(workers=workers), show=False)
    return res.files / res.seconds


def synth_rate(tables: tuple[Path, Path], recipe_path: Path, out: Path, workers: int) -> float:
    from shiftkit import synth

    shutil.rmtree(out, ignore_errors=True)
    params = params_from_mapping({"synth": {"workers": workers, "preview": 0, "weighting": "none"}}).synth
    t0 = time.perf_counter()
    res = synth.run_synth(tables[0], tables[1], out, params, recipe_path=recipe_path, preview=0)
    return res["images"] / (time.perf_counter() - t0)


def side_by_side(name: str, run, rounds: int) -> list[float]:
    ratios = []
    for r in range(rounds):
        rates = {}
        for eng in (("local", "ray") if r % 2 == 0 else ("ray", "local")):
            with engine.use(eng):
                rates[eng] = run()
        ratios.append(rates["ray"] / rates["local"])
        print(f"{name:28s} round {r + 1}: local {rates['local']:8.0f} img/s, ray {rates['ray']:8.0f} img/s, "
              f"ray/local {ratios[-1]:.2f}", flush=True)
    return ratios


def _moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    url = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    return proc, url


def s3_ratio(root: Path, tmp: Path, workers: int, rounds: int) -> None:
    import s3fs

    proc, _ = _moto()
    try:
        fs = s3fs.S3FileSystem()
        fs.mkdir("bench")
        t0 = time.perf_counter()
        fs.put(str(root), "bench/a", recursive=True)
        print(f"uploaded set A to moto in {time.perf_counter() - t0:.1f} s", flush=True)
        for r in range(rounds):
            disk = ingest_rate(root, tmp / "s3-disk", workers)
            s3 = ingest_rate("s3://bench/a", tmp / "s3-s3", workers)
            print(f"ingest A from s3:// (local engine) round {r + 1}: disk {disk:8.0f} img/s, s3 {s3:8.0f} img/s, "
                  f"s3/disk {s3 / disk:.2f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--small", type=int, default=6000, help="64 px PNGs (ingest A, synth small)")
    ap.add_argument("--large", type=int, default=600, help="512 px JPEGs (ingest B, synth large)")
    ap.add_argument("--s3", action="store_true", help="also ingest set A from a local moto S3 server")
    ap.add_argument("--only", default="ingest,synth", help="comma list of ingest, synth")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="shiftkit-engine-bench-"))
    try:
        # Ray runs its workers at nice 15 (its worker_niceness); on a machine that other people's
        # processes share, that alone would starve them against the local engine's nice-0 pool
        os.environ.setdefault("RAY_worker_niceness", "0")
        t0 = time.perf_counter()
        ray = ray_engine.connect(engine.make("ray"), cpus=args.workers)
        print(f"ray: started a local instance with {args.workers} CPUs in {time.perf_counter() - t0:.1f} s "
              f"(ray {ray.__version__})", flush=True)
        ingest_bench.build_png_set(tmp / "A", args.small)
        ingest_bench.build_jpeg_set(tmp / "B", args.large)
        only = set(args.only.split(","))
        results: dict[str, list[float]] = {}
        if "ingest" in only:
            with engine.use("ray"):  # warm-up: Ray's worker processes import shiftkit once
                ingest_rate(tmp / "A", tmp / "warm", args.workers)
            results["ingest A 64px PNG"] = side_by_side(
                "ingest A 64px PNG", lambda: ingest_rate(tmp / "A", tmp / "out", args.workers), args.rounds)
            results["ingest B 512px JPEG"] = side_by_side(
                "ingest B 512px JPEG", lambda: ingest_rate(tmp / "B", tmp / "out", args.workers), args.rounds)
        if "synth" in only:
            for name, n, size in (("synth small 64px", args.small, 64), ("synth large 512px", args.large, 512)):
                root = tmp / f"synth-{size}"
                tables = synth_bench.write_tables(root, synth_bench.make_set(root, n, size))
                rpath = root / "recipe.json"
                rpath.write_text(json.dumps(synth_bench.recipe().to_dict()))
                with engine.use("ray"):  # warm-up: albumentations imported in Ray's workers
                    synth_rate(tables, rpath, root / "warm", args.workers)
                results[name] = side_by_side(
                    name, lambda t=tables, r=rpath, o=root / "out": synth_rate(t, r, o, args.workers), args.rounds)
        print("summary (ray / local images/s per round; goal >= 0.8):")
        for name, ratios in results.items():
            print(f"  {name:28s} " + " ".join(f"{x:.2f}" for x in ratios) + f"   min {min(ratios):.2f}")
        if args.s3:
            s3_ratio(tmp / "A", tmp, args.workers, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
