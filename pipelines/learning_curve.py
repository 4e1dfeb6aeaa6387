"""DVC stages of the learning curve (curve_* in dvc.yaml): budgets, train and evaluate one point, the curve.

Each step is a function of shiftkit.curve.stage; one (arm, budget) point is one DVC matrix entry."""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser


def _parser():
    ap = stage_parser(__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifest", default="data/manifest/manifest.parquet")
    sub = ap.add_subparsers(dest="step", required=True)
    b = sub.add_parser("budgets", help="one splits table per budget")
    b.add_argument("--splits", default="data/splits/splits.parquet")
    b.add_argument("--out", default="data/curve/budgets")
    x = sub.add_parser("pixels", help="decode every training image once, for every point")
    x.add_argument("--splits", default="data/splits/splits.parquet")
    x.add_argument("--synth", default="", help="also store this synth table's copies ('' for none)")
    x.add_argument("--out", default="data/curve/pixels")
    t = sub.add_parser("train", help="train one (arm, budget) point")
    t.add_argument("--arm", required=True)
    t.add_argument("--budget", required=True)
    t.add_argument("--budgets", default="data/curve/budgets")
    t.add_argument("--synth", default="data/synth/synth.parquet")
    t.add_argument("--start", default="", help="the web-only model folder ('' while training it)")
    t.add_argument("--out", required=True)
    t.add_argument("--live", default="")
    t.add_argument("--pixels", default="", help="the decoded-image store of the pixels step ('' decodes)")
    e = sub.add_parser("evaluate", help="predictions of one point")
    e.add_argument("--arm", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--synth", default="data/synth/synth.parquet")
    e.add_argument("--out", required=True)
    s = sub.add_parser("summarize", help="the curve from every point's predictions")
    s.add_argument("--predictions", default="data/curve/predictions")
    s.add_argument("--budgets", default="data/curve/budgets")
    s.add_argument("--synth", default="data/synth/synth.parquet",
                   help="the synth table: children are resampled with their parents ('' for none)")
    s.add_argument("--out", default="data/curve/summary")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()

    def work() -> str:
        from shiftkit.curve import stage as curve_run
        from shiftkit.curve import worth as curve
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        p = load_params(args.params)
        if args.step == "budgets":
            counts = curve_run.write_budgets(args.manifest, args.splits, args.out, p.curve)
            shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
            return f"curve budgets (labelled target train images) {shown}; wrote {args.out}/"
        if args.step == "pixels":
            return curve_run.write_pixels(args.manifest, args.splits, args.out, p.train, synth=args.synth or None)
        if args.step == "train":
            return curve_run.train_arm(
                args.arm, curve.parse_budget(args.budget), args.manifest, args.budgets, args.out, p.train, p.curve,
                synth=args.synth or None, start=args.start or None, live_dir=args.live or None,
                pixels=args.pixels or None,
            )
        if args.step == "evaluate":
            return curve_run.evaluate_arm(args.arm, args.manifest, args.model, args.out, p.evaluate,
                                          synth=args.synth or None)
        data = curve_run.build_curve(args.predictions, args.budgets, args.manifest, p.curve, p.report,
                                     synth=args.synth or None)
        from shiftkit.report.curve import write_curve

        write_curve(data, args.out)
        return f"curve: {data['sentence']}"

    return run_stage("learning_curve", work)


if __name__ == "__main__":
    sys.exit(main())
