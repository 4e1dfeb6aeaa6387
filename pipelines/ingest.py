"""DVC stage `ingest`: the example's domains and its unlabelled pool -> the manifest folder (manifest,
quarantine, summary)."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser
from shiftkit.runtime import engine


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--domain", action="append", default=[], metavar="NAME=PATH", help="repeat per domain")
    ap.add_argument("--listing", default=None, help="CSV/parquet with columns path, label, domain")
    ap.add_argument("--unlabelled", action="append", default=[], metavar="NAME=PATH",
                    help="a flat folder (or listing) of images without labels for domain NAME: the unlabelled pool")
    ap.add_argument("--out", required=True, help="folder for manifest.parquet, quarantine.parquet, summary.json")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.core.config import parse_assignments
        from shiftkit.core.outputs import guard
        from shiftkit.ingest.stage import OWNED, ingest, summary_line
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        roots = parse_assignments(args.domain)
        pool = parse_assignments(args.unlabelled, "--unlabelled")
        guard("ingest", reads={"--domain": roots.values(), "--listing": args.listing, "--unlabelled": pool.values(),
                               "--params": args.params},
              folders={"--out": args.out}, owned={"--out": OWNED})
        params = load_params(args.params)
        engine.activate(params.engine)  # where the per-image work runs (params.yaml engine section)
        res = ingest(roots, args.out, listing=args.listing, params=params.ingest, unlabelled=pool,
                     keep_domain=params.split.target_domain)
        return summary_line(res)

    return run_stage("ingest", work)


if __name__ == "__main__":
    sys.exit(main())
