"""DVC stage `evaluate`: predictions on train (sampled), bridge, dev, test and synth children."""

from __future__ import annotations

import argparse
import sys

from shiftkit.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", default="data/manifest/manifest.parquet")
    parser.add_argument("--splits", default="data/splits/splits.parquet")
    parser.add_argument("--synth", default="data/synth/synth.parquet", help="'' to predict without synthesised images")
    parser.add_argument("--model", default="models")
    parser.add_argument("--out", default="data/predictions/predictions.parquet")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    # same code path as `shiftkit evaluate` (params, summary line, exit code 2 on bad input)
    cmd = ["evaluate", "--manifest", args.manifest, "--splits", args.splits, "--model", args.model,
           "--out", args.out, "--params", args.params]
    if args.synth:
        cmd += ["--synth", args.synth]
    return cli_main(cmd)


if __name__ == "__main__":
    sys.exit(main())
