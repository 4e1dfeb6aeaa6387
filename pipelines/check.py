"""DVC stage `check`: gate the newest ingested drop before it is split and trained on.

Checks the newest drop of the persisted manifest against the earlier drops (and, from the second
run on, the splits they were given), as `shiftkit check --latest` does. Exit 1 stops `dvc repro`.
"""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--reference", default="data/manifest/manifest.parquet", help="the manifest ingest appended to")
    ap.add_argument("--splits", default=None, help="splits of the earlier drops (copies of dev/test images block)")
    ap.add_argument("--allow-new-labels", action="store_true", default=None)
    ap.add_argument("--out", default="data/check", help="folder for check.json and check.md")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.check.stage import run_latest_drop_check
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        report = run_latest_drop_check(args.reference, splits=args.splits, out=args.out,
                                       params=load_params(args.params), allow_new_labels=args.allow_new_labels)
        return f"check: {report.verdict} ({len(report.warnings)} warning(s)); report in {args.out}/check.md"

    return run_stage("check", work)


if __name__ == "__main__":
    sys.exit(main())
