"""DVC stage `report`: predictions (+ manifest, synth table) -> reports/ (md, html, metrics, plots)."""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--predictions", default="data/predictions/predictions.parquet")
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--synth", default=None)
    ap.add_argument("--compare", default=None, help="another run's predictions: each gap's change, with an interval")
    ap.add_argument("--curve", default=None, help="the learning curve's curve.json: its section, figure and advice")
    ap.add_argument("--out", default="reports")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.params import load_params
        from shiftkit.report.stage import run_report

        args = ap.parse_args(argv)
        data = run_report(args.predictions, args.out, manifest=args.manifest, synth=args.synth,
                          compare_to=args.compare, params=load_params(args.params).report, curve=args.curve)
        d = data.decomposition
        return f"report: diagnosis {d.diagnosis}; dev error {d.errors['dev']}; wrote {args.out}/"

    return run_stage("report", work)


if __name__ == "__main__":
    sys.exit(main())
