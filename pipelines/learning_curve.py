"""DVC stages of the learning curve (curve_* in dvc.yaml): budgets, pixels, train and evaluate one point, the curve.

Each step is a function of shiftkit.curve (budgets, stage, summary); one (arm, budget) point is one DVC
matrix entry. Every path is an argument: dvc.yaml writes them, once."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def _parser():
    ap = stage_parser(__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifest", required=True)
    sub = ap.add_subparsers(dest="step", required=True)
    b = sub.add_parser("budgets", help="one splits table per budget")
    b.add_argument("--splits", required=True)
    b.add_argument("--out", required=True)
    x = sub.add_parser("pixels", help="decode every training image once, for every point")
    x.add_argument("--splits", required=True)
    x.add_argument("--synth", help="also store this synth table's copies (none when left out)")
    x.add_argument("--copies-only", action="store_true", help="store the synth table's copies alone")
    x.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train one (arm, budget) point")
    t.add_argument("--arm", required=True)
    t.add_argument("--budget", required=True)
    t.add_argument("--splits", required=True, help="the budget's table, written by the budgets step")
    t.add_argument("--synth", help="the synth table (an arm that uses synthesis needs it)")
    t.add_argument("--start", help="the web-only model folder (left out while training it)")
    t.add_argument("--out", required=True)
    t.add_argument("--live", help="the point's dvclive folder (none when left out)")
    t.add_argument("--pixels", action="append", help="a decoded-image store of the pixels step (repeat: the "
                   "manifest's images, the synthesised copies; left out: each training decodes)")
    t.add_argument("--unlabelled", help="a folder or listing of target images without labels (arms that adapt)")
    t.add_argument("--draws", type=int, default=1, help="the baseline: trainings in all, each with its own seed "
                   "(curve.baseline_draws; the others keep their predictions only, for the training noise)")
    e = sub.add_parser("evaluate", help="predictions of one point")
    e.add_argument("--arm", required=True)
    e.add_argument("--model", required=True)
    e.add_argument("--synth", help="the synth table (an arm that uses synthesis needs it)")
    e.add_argument("--out", required=True)
    s = sub.add_parser("summarize", help="the curve from every point's predictions")
    s.add_argument("--predictions", required=True)
    s.add_argument("--budgets", required=True)
    s.add_argument("--synth", help="the synth table: children are resampled with their parents (left out: none)")
    s.add_argument("--selection", help="the selection simulation's folder (curve_select_*; left out: none)")
    s.add_argument("--out", required=True)
    return ap


def _guard(args) -> None:
    """Every step's outputs apart from its inputs (shiftkit/core/outputs.py)."""
    from shiftkit.core.outputs import guard

    reads = {k: getattr(args, k.strip("-"), None) for k in
             ("--manifest", "--params", "--splits", "--synth", "--start", "--pixels", "--model", "--predictions",
              "--budgets")}
    out = {"--out": args.out}
    if args.step == "evaluate":
        guard(f"learning_curve {args.step}", reads=reads, files=out)
    else:
        guard(f"learning_curve {args.step}", reads=reads, folders=out, live=getattr(args, "live", None))


def _step(args) -> str:
    from shiftkit.curve import budgets, stage, summary
    from shiftkit.params import load_params

    p = load_params(args.params)
    _guard(args)
    if args.step == "budgets":
        counts = budgets.write_budgets(args.manifest, args.splits, args.out, p.curve)
        return budgets.budgets_summary(counts, args.out)
    if args.step == "pixels":
        return stage.write_pixels(args.manifest, args.splits, args.out, p.train, synth=args.synth or None,
                                  copies_only=args.copies_only)
    if args.step == "train":
        return stage.train_arm(
            args.arm, budgets.parse_budget(args.budget), args.manifest, args.splits, args.out, p.train, p.curve,
            synth=args.synth or None, start=args.start or None, live_dir=args.live or None, pixels=args.pixels or None,
            unlabelled=args.unlabelled or None, draws=args.draws,
        )
    if args.step == "evaluate":
        return stage.evaluate_arm(args.arm, args.manifest, args.model, args.out, p.evaluate, synth=args.synth or None)
    data = stage.build_curve(args.predictions, args.budgets, args.manifest, p.curve, p.report, synth=args.synth or None)
    if args.selection:  # which images to label: the strategies against random (shiftkit/curve/selection.py)
        from shiftkit.curve.selection import summarize

        data["selection"] = summarize(args.selection, args.manifest, p.curve, synth=args.synth or None)
    summary.write_curve(data, args.out)
    return summary.curve_summary(data)


def main(argv: list[str] | None = None) -> int:
    ap = _parser()

    def work() -> str:
        return _step(ap.parse_args(argv))

    return run_stage("learning_curve", work)


if __name__ == "__main__":
    sys.exit(main())
