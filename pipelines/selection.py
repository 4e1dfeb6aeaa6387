"""DVC stages of the curve's selection simulation (curve_select_* in dvc.yaml): the web-only model's dev
results (every strategy's first point), and one strategy's rounds (one DVC matrix entry per strategy).

Each step is a function of shiftkit.curve.selection; every path is an argument: dvc.yaml writes them, once."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def _parser():
    ap = stage_parser(__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--splits", required=True, help="the plain splits: the target's train images are the pool")
    ap.add_argument("--web", required=True, help="the web-only model folder")
    sub = ap.add_subparsers(dest="step", required=True)
    w = sub.add_parser("web", help="the web-only model on the dev images")
    w.add_argument("--out", required=True)
    r = sub.add_parser("rounds", help="every round of one strategy")
    r.add_argument("--strategy", required=True)
    r.add_argument("--pixels", help="the curve's decoded-image store (left out: each training decodes)")
    r.add_argument("--out", required=True)
    return ap


def _step(args) -> str:
    from shiftkit.curve import selection
    from shiftkit.params import load_params

    p = load_params(args.params)
    if args.step == "web":
        return selection.web_dev(args.web, args.manifest, args.splits, args.out, p.curve, p.evaluate.workers)
    return selection.run_strategy(args.strategy, args.manifest, args.splits, args.web, args.out, p.train, p.curve,
                                  pixels=args.pixels or None, workers=p.evaluate.workers)


def main(argv: list[str] | None = None) -> int:
    ap = _parser()

    def work() -> str:
        return _step(ap.parse_args(argv))

    return run_stage("selection", work)


if __name__ == "__main__":
    sys.exit(main())
