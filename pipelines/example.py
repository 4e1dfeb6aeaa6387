"""DVC stage `example`: write the embedded example named by example.name (digits or photos)."""

from __future__ import annotations

import sys

from shiftkit.cli.run import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--out", required=True, help="folder for web/, target/ and unlabelled/")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.core.outputs import guard
        from shiftkit.ingest.example import summary_line, write_example
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        replaced = [f"{args.out}/{d}" for d in ("web", "target", "unlabelled")]  # the folders it replaces
        guard("example", reads={"--params": args.params}, folders={"--out": replaced})
        p = load_params(args.params).example
        counts = write_example(p.name, args.out, p)
        return summary_line(p.name, counts, args.out)

    return run_stage("example", work)


if __name__ == "__main__":
    sys.exit(main())
