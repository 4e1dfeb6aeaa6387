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
# (see the synthesis issue)


# --- train, evaluate ---------------------------------------------------------------------------


@app.command("train")
def train_cmd(
    manifest: Path = typer.Option(Path("data/manifest/manifest.parquet"), "--manifest", help="Manifest table from ingest."),
    splits: Path = typer.Option(Path("data/splits/splits.parquet"), "--splits", help="Splits table (train/bridge/dev/test)."),
    synth: Optional[Path] = typer.Option(
        None, "--synth", help="Synth table (synth.parquet); its train children join the training set."
    ),
    out: Path = typer.Option(Path("models"), "--out", help="Folder for model.safetensors, model.json and the resume point."),
    live: Path = typer.Option(Path("dvclive"), "--live", help="dvclive folder for per-epoch metrics and plots."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last completed epoch in --out."),
    model: Optional[str] = typer.Option(None, "--model", help="timm model name (overrides train.model)."),
    pretrained: Optional[str] = typer.Option(
        None, "--pretrained", help="true (timm hub), false, or a checkpoint path (overrides train.pretrained)."
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Fine-tuning epochs (overrides train.finetune_epochs)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides train.device)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data-loader worker processes (overrides train.workers)."),
    params_path: Path = PARAMS_OPTION,
) -> None:
    """Transfer learning with a timm CNN: new head on a frozen backbone, then fine-tuning.

    Writes the model after every epoch (atomically); run with [bold]torchrun[/] for several
    GPUs or processes (rank 0 writes).
    """
    import os

    from shiftkit.train import train

    params = load_params(params_path)
    changes = {}
    if model is not None:
        changes["model"] = model
    if pretrained is not None:
        low = pretrained.strip().lower()
        changes["pretrained"] = True if low == "true" else False if low == "false" else pretrained
    if epochs is not None:
        changes["finetune_epochs"] = epochs
    if device is not None:
        changes["device"] = device
    if workers is not None:
        changes["workers"] = workers
    tp = params.replace("train", **changes).train if changes else params.train
    result = train(manifest, splits, out, tp, synth=synth, live_dir=live, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(
            f"trained {tp.model} for {result.epochs} epoch(s) on {result.device}: dev accuracy "
            f"{result.dev_accuracy:.3f}, {result.images_per_s:,.0f} img/s, {result.seconds:.0f} s -> {out}"
        )


@app.command("evaluate")
def evaluate_cmd(
    manifest: Path = typer.Option(Path("data/manifest/manifest.parquet"), "--manifest", help="Manifest table from ingest."),
    splits: Path = typer.Option(Path("data/splits/splits.parquet"), "--splits", help="Splits table (train/bridge/dev/test)."),
    synth: Optional[Path] = typer.Option(None, "--synth", help="Synth table; its children are predicted as domain 'synth'."),
    model_dir: Path = typer.Option(Path("models"), "--model", help="Model folder written by shiftkit train."),
    out: Path = typer.Option(
        Path("data/predictions/predictions.parquet"), "--out", help="Predictions table to write."
    ),
    train_sample: Optional[int] = typer.Option(
        None, "--train-sample", help="At most this many train images (overrides evaluate.train_sample)."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides evaluate.device)."),
    params_path: Path = PARAMS_OPTION,
) -> None:
    """Predict train (eval mode, a seeded sample), bridge, dev and test into predictions.parquet."""
    from shiftkit.evaluate import evaluate

    params = load_params(params_path)
    changes = {k: v for k, v in (("train_sample", train_sample), ("device", device)) if v is not None}
    ep = params.replace("evaluate", **changes).evaluate if changes else params.evaluate
    result = evaluate(manifest, splits, model_dir, out, ep, synth=synth)
    acc = ", ".join(f"{k} {v:.3f}" for k, v in result.accuracy.items())
    console.print(f"predicted {sum(result.counts.values()):,} images on {result.device} in {result.seconds:.1f} s ({acc}) -> {out}")


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
