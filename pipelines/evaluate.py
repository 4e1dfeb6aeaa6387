"""DVC stage `evaluate`: predictions on train (sampled), bridge, dev, test and synth children."""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--manifest", default="data/manifest/manifest.parquet")
    ap.add_argument("--splits", default="data/splits/splits.parquet")
    ap.add_argument("--synth", default="data/synth/synth.parquet", help="'' to predict without synthesised images")
    ap.add_argument("--model", default="models")
    ap.add_argument("--out", default="data/predictions/predictions.parquet")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.params import load_params
        from shiftkit.training.evaluate import evaluate

        args = ap.parse_args(argv)
        r = evaluate(args.manifest, args.splits, args.model, args.out, load_params(args.params).evaluate,
                     synth=args.synth or None)
        acc = ", ".join(f"{k} {v:.3f}" for k, v in r.accuracy.items())
        return f"evaluate: {sum(r.counts.values()):,} images on {r.device} in {r.seconds:.1f} s ({acc}) -> {args.out}"

    return run_stage("evaluate", work)


if __name__ == "__main__":
    sys.exit(main())
