"""DVC stage `train`: transfer learning on the train split (and its synthesised children)."""

from __future__ import annotations

import os
import sys

from shiftkit.cli.app import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--manifest", default="data/manifest/manifest.parquet")
    ap.add_argument("--splits", default="data/splits/splits.parquet")
    ap.add_argument("--synth", default="data/synth/synth.parquet", help="'' to train without synthesised images")
    ap.add_argument("--out", default="models")
    ap.add_argument("--live", default="dvclive")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--resume", action="store_true")

    def work() -> str | None:
        from shiftkit.params import load_params
        from shiftkit.training.train import train

        args = ap.parse_args(argv)
        tp = load_params(args.params).train
        r = train(args.manifest, args.splits, args.out, tp, synth=args.synth or None, live_dir=args.live,
                  resume=args.resume)
        if int(os.environ.get("RANK", "0")) != 0:
            return None  # under torchrun, rank 0 speaks
        return (f"train: {tp.model} for {r.epochs} epoch(s) on {r.device}: dev accuracy {r.dev_accuracy:.3f}, "
                f"{r.images_per_s:,.0f} img/s, {r.seconds:.0f} s -> {args.out}")

    return run_stage("train", work)


if __name__ == "__main__":
    sys.exit(main())
