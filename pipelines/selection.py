"""DVC stages of the curve's selection simulation (curve_select_* in dvc.yaml): the web-only model's dev
results (every strategy's first point), a strategy's round 0 (nothing chosen: the web-only model),
and one round of one strategy, from the previous round's folder (one DVC matrix entry per
(strategy, round), so adding a strategy or a round runs only the new entries).

Each step is a function of shiftkit.curve.selection; every path is an argument: dvc.yaml writes them, once."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def _parser():
    ap = stage_parser(__doc__)
    ap.add_argument("--params", default="params.yaml")
    sub = ap.add_subparsers(dest="step", required=True)
    w = _with_data(sub.add_parser("web", help="the web-only model on the dev images"))
    w.add_argument("--out", required=True)
    s = sub.add_parser("start", help="a strategy's round 0: nothing chosen, the web step's dev results")
    s.add_argument("--web-point", required=True, help="the web step's folder")
    s.add_argument("--out", required=True)
    r = _with_data(sub.add_parser("round", help="one round of one strategy, after the previous round"))
    r.add_argument("--strategy", required=True)
    r.add_argument("--round", type=int, required=True, help="this round's number (1, 2, ...)")
    r.add_argument("--after", required=True, help="the previous round's folder (round 0's: from the start step)")
    r.add_argument("--pixels", help="the curve's decoded-image store (left out: each training decodes)")
    r.add_argument("--out", required=True)
    return ap


def _with_data(step):
    """``step`` with the inputs the web and round steps share."""
    step.add_argument("--manifest", required=True)
    step.add_argument("--splits", required=True, help="the plain splits: the target's train images are the pool")
    step.add_argument("--web", required=True, help="the web-only model folder")
    return step


def _step(args) -> str:
    from shiftkit.core import outputs
    from shiftkit.curve import selection
    from shiftkit.params import load_params

    p = load_params(args.params)
    if args.step == "start":
        outputs.guard("curve_select_start", reads={"--web-point": args.web_point}, folders={"--out": args.out})
        return selection.start(args.web_point, args.out)
    reads = {"--manifest": args.manifest, "--splits": args.splits, "--web": args.web}
    if args.step == "web":
        outputs.guard("curve_select_web", reads=reads, folders={"--out": args.out})
        return selection.web_dev(args.web, args.manifest, args.splits, args.out, p.curve, p.evaluate.workers)
    from shiftkit.select.strategies import get_strategy

    get_strategy(args.strategy)
    outputs.guard("curve_select", reads={**reads, "--after": args.after, "--pixels": args.pixels or []},
                  folders={"--out": args.out})
    return selection.run_round(args.strategy, args.round, args.manifest, args.splits, args.web, args.out, p.train,
                               p.curve, previous=args.after, pixels=args.pixels or None, workers=p.evaluate.workers)


def main(argv: list[str] | None = None) -> int:
    ap = _parser()

    def work() -> str:
        return _step(ap.parse_args(argv))

    return run_stage("selection", work)


if __name__ == "__main__":
    sys.exit(main())
