"""Benchmark: split a 1,000,000-row manifest (limit: 1 s on a 2-core machine).

Prints the seconds of ``splits.assign`` alone and of ``splits.run_split`` end to end (read the
manifest, assign, write splits.parquet and the composition), each the best and the median of 5 runs, and
their ratio to the 1 s limit. Run: ``PYTHONPATH=. python benchmarks/split.py [rows]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from shiftkit import splits
from shiftkit.core.files import write_table
from shiftkit.core.schema import MANIFEST
from tests.splits_helpers import full_manifest, synthetic_manifest

LIMIT_S = 1.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rows = int(args[0]) if args else 1_000_000
    manifest = synthetic_manifest(rows, target_share=0.1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.parquet"
        write_table(full_manifest(manifest), path, MANIFEST)
        assign_s, run_s = [], []
        for i in range(5):
            t = time.perf_counter()
            splits.assign(manifest)
            assign_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = splits.run_split(path, Path(tmp) / f"out{i}")
            run_s.append(time.perf_counter() - t)
    print(f"rows: {rows:,}; {result.summary()}")
    print(
        f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(others' work slows every figure)"
    )
    for name, times in (
        ("assign (membership, quotas, leakage check, composition)", assign_s),
        ("run_split end to end (read manifest, assign, write 3 files)", run_s),
    ):
        best, med = min(times), statistics.median(times)
        print(
            f"{name}: best {best:.3f} s (ratio to the {LIMIT_S:g} s limit {best / LIMIT_S:.2f}), "
            f"median {med:.3f} s (ratio {med / LIMIT_S:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
