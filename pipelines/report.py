"""DVC stage `report`: predictions (+ manifest, synth table) -> reports/ (md, html, metrics, plots)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--predictions", default="data/predictions/predictions.parquet")
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--synth", default=None)
    ap.add_argument("--compare", default=None, help="another run's predictions: each gap's change, with an interval")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    from shiftkit.config import load_params
    from shiftkit.errors import ShiftkitError
    from shiftkit.report import run_report

    try:
        data = run_report(
            args.predictions, args.out, manifest=args.manifest, synth=args.synth,
            compare_to=args.compare, params=load_params(args.params).report,
        )
    except ShiftkitError as exc:
        print(f"report: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    d = data.decomposition
    print(f"report: diagnosis {d.diagnosis}; dev error {d.errors['dev']}; wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
