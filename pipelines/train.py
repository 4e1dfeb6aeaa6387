"""DVC stage `train`: transfer learning on the train split (and its synthesised children)."""

from __future__ import annotations

import argparse
import sys

from shiftkit.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", default="data/manifest/manifest.parquet")
    parser.add_argument("--splits", default="data/splits/splits.parquet")
    parser.add_argument("--synth", default="data/synth/synth.parquet", help="'' to train without synthesised images")
    parser.add_argument("--out", default="models")
    parser.add_argument("--live", default="dvclive")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    # one code path with `shiftkit train`: the CLI loads params, calls shiftkit.train.train,
    # prints the one-line summary and turns bad input into one line and exit code 2
    cmd = ["train", "--manifest", args.manifest, "--splits", args.splits, "--out", args.out,
           "--live", args.live, "--params", args.params]
    if args.synth:
        cmd += ["--synth", args.synth]
    if args.resume:
        cmd.append("--resume")
    return cli_main(cmd)


if __name__ == "__main__":
    sys.exit(main())
