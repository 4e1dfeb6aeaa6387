"""DVC stage `example`: write the embedded digits example (MNIST web, load_digits target)."""

from __future__ import annotations

import sys

from shiftkit.cli.app import run_stage, stage_parser


def main(argv: list[str] | None = None) -> int:
    ap = stage_parser(__doc__)
    ap.add_argument("--out", default="data/raw", help="folder for web/ and target/ (default: data/raw)")
    ap.add_argument("--params", default="params.yaml")

    def work() -> str:
        from shiftkit.ingest.example import write_example
        from shiftkit.params import load_params

        args = ap.parse_args(argv)
        counts = write_example("digits", args.out, load_params(args.params).example)
        return f"example: {counts['web']} web and {counts['target']} target images in {args.out}"

    return run_stage("example", work)


if __name__ == "__main__":
    sys.exit(main())
