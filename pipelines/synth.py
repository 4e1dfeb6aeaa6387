"""DVC stage `synth`: fit a recipe to the target's train images, degrade web train/bridge copies."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser
from shiftkit.runtime import engine


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--splits", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--images-url", default=None, help="write the images under this URL/<run id>/, not in --out")

    def work() -> str:
        from shiftkit.core.outputs import guard
        from shiftkit.params import load_params
        from shiftkit.synth.stage import OWNED, run_synth, summary_line

        args = ap.parse_args(argv)
        guard("synth", reads={"--manifest": args.manifest, "--splits": args.splits, "--params": args.params},
              folders={"--out": args.out if args.images_url is None else None}, owned={"--out": OWNED})
        params = load_params(args.params)
        engine.activate(params.engine)  # where the per-image work runs (params.yaml engine section)
        return summary_line(run_synth(args.manifest, args.splits, args.out, params.synth,
                                      images_url=args.images_url), args.out)

    return run_stage("synth", work)


if __name__ == "__main__":
    sys.exit(main())
