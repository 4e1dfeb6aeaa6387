"""DVC stage ``split``: manifest -> data/splits (splits.parquet, composition.json/.md).

Previous splits in the output folder are honoured (the stage's output is ``persist: true`` in
dvc.yaml so that DVC does not delete them before the run): old images keep their split.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default="data/manifest/manifest.parquet", help="manifest.parquet from ingest")
    ap.add_argument("--out", default="data/splits", help="output folder")
    ap.add_argument("--params", default="params.yaml", help="params.yaml (section split)")
    args = ap.parse_args(argv)

    from shiftkit.cli import run_stage
    from shiftkit.config import load_params
    from shiftkit.splits import run_split

    return run_stage("split", lambda: run_split(args.manifest, args.out, load_params(args.params).split).summary())


if __name__ == "__main__":
    sys.exit(main())
