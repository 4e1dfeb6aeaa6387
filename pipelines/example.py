"""DVC stage `example`: write the embedded digits example (MNIST web, load_digits target)."""

from __future__ import annotations

import argparse

from shiftkit.cli import run_stage
from shiftkit.config import load_params
from shiftkit.example import write_example


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/raw", help="folder for web/ and target/ (default: data/raw)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)

    def work() -> str:
        counts = write_example("digits", args.out, load_params(args.params).example)
        return f"example: {counts['web']} web and {counts['target']} target images in {args.out}"

    return run_stage("example", work)


if __name__ == "__main__":
    raise SystemExit(main())
