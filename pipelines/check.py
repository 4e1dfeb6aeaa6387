"""DVC stage `check`: gate the newest ingested drop before it is split and trained on.

Checks the newest drop of the persisted manifest against the earlier drops (and, from the second
run on, the splits they were given), as `shiftkit check --latest` does. Exit 1 stops `dvc repro`.
"""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--reference", required=True, help="the manifest ingest appended to")
    ap.add_argument("--splits", help="splits of the earlier drops, if any (copies of dev/test images block)")
    ap.add_argument("--allow-new-labels", action="store_true", default=None)
    ap.add_argument("--out", required=True, help="folder for check.json and check.md")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.check.stage import run_latest_drop_check, summary_line
        from shiftkit.core.outputs import guard
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        guard("check", reads={"--reference": args.reference, "--splits": args.splits, "--params": args.params},
              folders={"--out": args.out}, owned={"--out": ("check.json", "check.md")})
        params = load_params(args.params)
        report = run_latest_drop_check(args.reference, splits=args.splits, out=args.out, params=params.check,
                                       ingest_params=params.ingest, allow_new_labels=args.allow_new_labels)
        return summary_line(report, args.out)

    return run_stage("check", work)


if __name__ == "__main__":
    sys.exit(main())
