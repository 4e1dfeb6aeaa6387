"""DVC stage `ingest`: the example's domains -> data/manifest (manifest, quarantine, summary)."""

from __future__ import annotations

import argparse
import sys

from shiftkit.config import load_params, parse_assignments
from shiftkit.errors import ShiftkitError
from shiftkit.ingest import ingest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--domain", action="append", default=[], metavar="NAME=PATH", help="repeat per domain")
    ap.add_argument("--listing", default=None, help="CSV/parquet with columns path, label, domain")
    ap.add_argument("--out", default="data/manifest")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        res = ingest(parse_assignments(args.domain), args.out, listing=args.listing, params=load_params(args.params).ingest)
    except ShiftkitError as exc:
        print(f"ingest: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"ingest: {res.files} files -> {res.accepted} in the manifest, {res.quarantined} quarantined (drop {res.drop})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
