"""DVC stage `synth`: fit a recipe to the target's train images, degrade web train/bridge copies."""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser
from shiftkit.runtime import engine


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--manifest", default="data/manifest/manifest.parquet")
    ap.add_argument("--splits", default="data/splits/splits.parquet")
    ap.add_argument("--out", default="data/synth")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--images-url", default=None, help="write the images under this URL/<run id>/, not in --out")

    def work() -> str:
        from shiftkit.params import load_params
        from shiftkit.synth import run_synth

        args = ap.parse_args(argv)
        params = load_params(args.params)
        engine.activate(params.engine)  # where the per-image work runs (params.yaml engine section)
        res = run_synth(args.manifest, args.splits, args.out, params.synth, images_url=args.images_url)
        if not res["enabled"]:
            return f"synth: disabled; empty synth table in {args.out}"
        if not res["images"]:
            return f"synth: {res['note']}; empty synth table in {args.out}"
        return f"synth: {res['images']} images from {res['parents']} parents ({res['rate']} img/s); {res['recipe']}"

    return run_stage("synth", work)


if __name__ == "__main__":
    sys.exit(main())
