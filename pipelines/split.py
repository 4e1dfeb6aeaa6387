"""DVC stage `split`: manifest -> the splits folder (splits.parquet, composition.json/.md).

Previous splits in the output folder are honoured (the stage's output is ``persist: true`` in
dvc.yaml so that DVC does not delete them before the run): old images keep their split.
"""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--manifest", required=True, help="manifest.parquet from ingest")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--params", default="params.yaml", help="params.yaml (section split)")

    def work() -> str:
        from shiftkit.core.outputs import guard
        from shiftkit.params import load_params
        from shiftkit.splits.stage import OWNED, run_split

        args = ap.parse_args(argv)
        guard("split", reads={"--manifest": args.manifest, "--params": args.params}, folders={"--out": args.out},
              owned={"--out": OWNED})
        return run_split(args.manifest, args.out, load_params(args.params).split).summary()

    return run_stage("split", work)


if __name__ == "__main__":
    sys.exit(main())
