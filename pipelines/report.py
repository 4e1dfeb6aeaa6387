"""DVC stage `report`: predictions (+ manifest, synth table) -> the report folder (md, html, metrics, plots)."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--synth", default=None)
    ap.add_argument("--compare", default=None, help="another run's predictions: each gap's change, with an interval")
    ap.add_argument("--curve", default=None, help="the learning curve's curve.json: its section, figure and advice")
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.core.outputs import guard
        from shiftkit.params import load_params
        from shiftkit.report.stage import OUTPUTS, run_report, summary_line

        args = ap.parse_args(argv)
        guard("report", reads={"--predictions": args.predictions, "--manifest": args.manifest, "--synth": args.synth,
                               "--compare": args.compare, "--curve": args.curve, "--params": args.params},
              folders={"--out": args.out}, owned={"--out": OUTPUTS})
        p = load_params(args.params)
        data = run_report(args.predictions, args.out, manifest=args.manifest, synth=args.synth,
                          compare_to=args.compare, params=p.report, curve=args.curve, model=p.train.model,
                          img_size=p.train.img_size)
        return summary_line(data, args.out)

    return run_stage("report", work)


if __name__ == "__main__":
    sys.exit(main())
