"""``shiftkit select``: which pool images to label next.

The command function is plain; :mod:`shiftkit.cli.app` registers it (``app.command("select")``) on its
last lines. This module imports nothing of ``cli.app``, so the two never import each other (the
import-cycle test of tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from shiftkit.core.console import console
from shiftkit.core.outputs import guard

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", help="params.yaml to read settings from (defaults if absent)."
)


def select_command(
    model: Path = typer.Option(..., "--model", help="Trained model folder (from `shiftkit train`, e.g. models/web)."),
    budget: int = typer.Option(..., "--budget", "-n", help="How many images to choose."),
    out: Path = typer.Option(..., "--out", help="Folder for selection.csv, selection.png, selection.json."),
    strategy: str = typer.Option(
        "margin", "--strategy", help="random, margin, entropy, coreset or clue (shiftkit/select/strategies.py)."
    ),
    manifest: Path | None = typer.Option(None, "--manifest", "-m", help="Manifest of the pool's images."),
    splits: Path | None = typer.Option(
        None, "--splits", help="Splits or budget table: the pool is split 'unlabelled' + the target's unused train "
        "images (every target train image when the table has no 'unused' row); never dev, test or bridge."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="A folder of images or a CSV/parquet listing (column path): the pool, instead of tables."
    ),
    params: Path = PARAMS_OPTION,
) -> None:
    """Choose which unlabelled images to label next: a listing for a labelling tool and a contact sheet.

    Give --manifest and --splits, or --images. Whether the strategy beats random on your data is what
    the curve's selection simulation measures (curve.selection).
    """
    from shiftkit.core.errors import ConfigError
    from shiftkit.params import load_params
    from shiftkit.select import pool as pools
    from shiftkit.select.stage import select, summary_line
    from shiftkit.select.strategies import get_strategy

    guard("select", reads={"--manifest": manifest, "--splits": splits, "--images": images, "--model": model,
                           "--params": params}, folders={"--out": out}, owned={"--out": ("selection.*",)})
    sp = load_params(params).select  # select.seed: random's draw, coreset's first centre, clue's k-means
    get_strategy(strategy)  # an unknown name fails before any table or model is read
    if budget < 1:
        raise ConfigError(f"The --budget option must be at least 1; got {budget}.")
    if images is not None:
        if manifest is not None or splits is not None:
            raise ConfigError("Give either --images or --manifest with --splits, not both.")
        pool = pools.from_images(images)
    elif manifest is not None and splits is not None:
        pool = pools.from_tables(manifest, splits, sp.target_domain)
    else:
        raise ConfigError("Give the pool: --manifest with --splits, or --images (a folder or a listing).")
    r = select(pool, model, out, strategy=strategy, budget=budget, seed=sp.seed, batch_size=sp.batch_size,
               workers=sp.workers)
    console.print(summary_line(r))
