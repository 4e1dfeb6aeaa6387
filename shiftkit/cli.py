"""The ``shiftkit`` command line: every pipeline stage by hand, ``report`` and the ``check`` gate.

Commands are thin: parse, load params, call one library function, print a summary. Stage
modules are imported inside the commands, so ``shiftkit --help`` and ``shiftkit check`` never
pay for torch or albumentations. ``main(argv)`` returns the exit code:

- 0: done;
- 1: ``shiftkit check`` found blocking problems in a data drop (and for internal errors);
- 2: bad input (a missing path, a bad value, an unknown option): one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

import shiftkit
from shiftkit.console import console
from shiftkit.errors import CheckFailed, ShiftkitError

app = typer.Typer(
    name="shiftkit",
    help=(
        "Find out why an image classifier errs on its target distribution, and fix it: "
        "ingest, split, synthesise target-like data, train with transfer learning, evaluate, "
        "and report the error decomposition (bias, variance, data mismatch, dev overfitting)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", help="params.yaml to read settings from (defaults if absent)."
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"shiftkit {shiftkit.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """shiftkit: data-shift diagnosis for image classifiers."""


def load_params(path: Path):
    """Load params.yaml for a command (imported lazily so that config errors exit 2)."""
    from shiftkit.config import load_params as _load

    return _load(path)


# =============================================================================================
# Commands. Each stage owns one block below; keep blocks apart so that edits merge cleanly.
# =============================================================================================


# --- example, ingest ---------------------------------------------------------------------------
# (see the foundation issue)


# --- split, check ------------------------------------------------------------------------------
# (see the split issue)


# --- synth, shift ------------------------------------------------------------------------------


@app.command("synth")
def synth_cmd(
    manifest: Path = typer.Option(Path("data/manifest/manifest.parquet"), "--manifest", help="The manifest table."),
    splits: Path = typer.Option(Path("data/splits/splits.parquet"), "--splits", help="The splits table."),
    out: Path = typer.Option(Path("data/synth"), "--out", help="Output folder (synth.parquet, images/, recipe.json, fit.json)."),
    recipe: Optional[Path] = typer.Option(
        None, "--recipe", help="Reuse a saved recipe.json (or fit.json) and skip the fit."
    ),
    preview: Optional[int] = typer.Option(
        None, "--preview", help="Write preview.png: N parents beside their degraded copies, values under each."
    ),
    copies: Optional[int] = typer.Option(None, "--copies", help="Degraded copies per image (overrides synth.copies)."),
    fraction: Optional[float] = typer.Option(
        None, "--fraction", help="Share of web train/bridge images to degrade (overrides synth.fraction)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the fit and of every copy (overrides synth.seed)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes; 0 = all cores (overrides synth.workers)."),
    params: Path = PARAMS_OPTION,
) -> None:
    """Fit degradations to the target's train images, then write target-like copies of web images.

    Children keep their parent's split (train or bridge, never dev or test) and dup group.
    """
    from shiftkit import synth

    p = load_params(params)
    overrides = {k: v for k, v in {"copies": copies, "fraction": fraction, "seed": seed, "workers": workers}.items()
                 if v is not None}
    if overrides:
        p = p.replace("synth", **overrides)
    summary = synth.run_synth(manifest, splits, out, p.synth, recipe_path=recipe, preview=preview)
    if not summary["enabled"]:
        console.print(f"synth: disabled (synth.enabled: false); wrote an empty table to {out / 'synth.parquet'}")
        return
    console.print(
        f"synth: {summary['images']} images from {summary['parents']} parents in {summary['seconds']} s "
        f"({summary['rate']} img/s) -> {out}"
    )


@app.command("shift")
def shift_cmd(
    a: Optional[Path] = typer.Option(None, "--a", help="Folder of set A (instead of --manifest filters)."),
    b: Optional[Path] = typer.Option(None, "--b", help="Folder of set B (instead of --manifest filters)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Manifest table to draw both sets from."),
    splits: Optional[Path] = typer.Option(None, "--splits", help="Splits table (needed by --a-split/--b-split)."),
    a_split: list[str] = typer.Option([], "--a-split", help="Split(s) of set A (repeatable)."),
    a_domain: list[str] = typer.Option([], "--a-domain", help="Domain(s) of set A (repeatable)."),
    b_split: list[str] = typer.Option([], "--b-split", help="Split(s) of set B (repeatable)."),
    b_domain: list[str] = typer.Option([], "--b-domain", help="Domain(s) of set B (repeatable)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="timm model whose pooled output are the features (random init offline)."
    ),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="Images sampled per set (0: all)."),
    permutations: Optional[int] = typer.Option(None, "--permutations", help="Permutations of the MMD test."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sampling, the folds and the permutations."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as json to this file."),
    params: Path = PARAMS_OPTION,
) -> None:
    """How far apart two image sets are: per-property KS and Wasserstein, domain AUC, MMD test.

    Give two folders (--a, --b) or a manifest with split/domain filters for each set.
    """
    import json

    from shiftkit import io, shift
    from shiftkit.errors import ConfigError

    p = load_params(params)
    overrides = {k: v for k, v in {"model": model, "max_images": max_images, "permutations": permutations,
                                    "seed": seed}.items() if v is not None}
    if overrides:
        p = p.replace("shift", **overrides)
    sp = p.shift
    if a is not None or b is not None:
        if a is None or b is None or manifest is not None:
            raise ConfigError("Give either two folders (--a and --b) or --manifest with filters, not a mix.")
        set_a, set_b = shift.folder_set("A", a), shift.folder_set("B", b)
    elif manifest is not None:
        set_a = shift.manifest_set("A", manifest, splits=splits, split=a_split, domain=a_domain)
        set_b = shift.manifest_set("B", manifest, splits=splits, split=b_split, domain=b_domain)
    else:
        raise ConfigError("shift needs two image sets: --a and --b folders, or --manifest with filters.")
    result = shift.compare(
        set_a, set_b, max_images=sp.max_images, folds=sp.folds, permutations=sp.permutations, seed=sp.seed,
        feature_size=sp.feature_size, model=sp.model or None, model_size=sp.model_size, workers=sp.workers,
    )
    result["mmd"]["rejects"] = result["mmd"]["p_value"] <= sp.alpha
    result["mmd"]["alpha"] = sp.alpha
    console.print(shift.render_table(result))
    if json_out is not None:
        io.write_json(json_out, result)
    typer.echo(json.dumps(result, sort_keys=True))


# --- train, evaluate ---------------------------------------------------------------------------
# (see the training issue)


# --- report ------------------------------------------------------------------------------------
# (see the report issue)


# =============================================================================================
# Entry points
# =============================================================================================


def _usage_exceptions() -> tuple[type[BaseException], ...]:
    """Usage-error classes of whichever click the installed typer is built on."""
    found: list[type[BaseException]] = []
    for modname in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = __import__(modname, fromlist=["ClickException"])
        except ImportError:
            continue
        found.append(mod.ClickException)
    return tuple(found)


def _exit_exceptions() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [typer.Exit]
    try:
        import click

        found.append(click.exceptions.Exit)
    except ImportError:
        pass
    return tuple(found)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, standalone_mode=False, prog_name="shiftkit")
    except CheckFailed as exc:
        print(f"shiftkit: {_one_line(exc)}", file=sys.stderr)
        return 1
    except ShiftkitError as exc:
        print(f"shiftkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except _exit_exceptions() as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _usage_exceptions() as exc:
        cmd = getattr(getattr(exc, "ctx", None), "command_path", None) or "shiftkit"
        print(f"{cmd}: error: {_one_line(exc.format_message())} (see '{cmd} --help')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shiftkit: interrupted; outputs already written are complete, the rest was not written.", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"shiftkit: error:{where} {_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    except (RuntimeError,) as exc:
        if type(exc).__name__ == "Abort" or exc.__class__.__module__.startswith(("typer", "click")):
            print("shiftkit: aborted.", file=sys.stderr)
            return 1
        raise
    if isinstance(result, int):
        return result
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
