"""``shiftkit check``: the gate of a new data drop (exit 1 on blocking findings).

The command function is plain; :mod:`shiftkit.cli.app` registers it on its last lines, so the two
modules never import each other.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shiftkit.cli.common import ENGINE_OPTION, PARAMS_OPTION, load_params, use_engine
from shiftkit.cli.live import MODEL_OPTION, PREDICTIONS_OPTION, estimator
from shiftkit.core.console import console
from shiftkit.core.errors import CheckFailed
from shiftkit.core.outputs import guard
from shiftkit.core.text import rich_text


def check_command(
    drops: list[str] | None = typer.Argument(
        None,
        metavar="[DROP]...",
        help="New data: DOMAIN=PATH (PATH/<label>/<file>) or a folder of domains (PATH/<domain>/<label>/<file>).",
    ),
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Manifest the drop joins (data/manifest/manifest.parquet); never modified."
    ),
    splits: Path | None = typer.Option(
        None,
        "--splits",
        "-s",
        help="Splits of the reference (data/splits/splits.parquet): copies of dev/test images then block.",
    ),
    allow_new_labels: bool = typer.Option(
        False, "--allow-new-labels", help="A label the reference lacks is a warning, not an error."
    ),
    latest: bool = typer.Option(
        False,
        "--latest",
        help="Instead of a DROP folder, check the newest drop already ingested into the --reference "
        "manifest against its earlier drops (the pipeline's check stage).",
    ),
    out: Path = typer.Option(
        Path("data/check"), "--out", "-o", file_okay=False, help="Folder for check.json and check.md (a PR comment)."
    ),
    model_dir: Path | None = MODEL_OPTION,
    predictions: Path | None = PREDICTIONS_OPTION,
    engine: str | None = ENGINE_OPTION,
    params: Path = PARAMS_OPTION,
) -> None:
    """Gate a new data drop: exit 1 on blocking findings (leakage, corrupt files, new or conflicting labels).

    Either give the drop's folders (DROP...), which are ingested to a temporary place, or use
    --latest after `shiftkit ingest` appended the drop to the manifest.
    """
    from shiftkit.check.stage import run_check, run_latest_drop_check, summary_line
    from shiftkit.core.errors import ConfigError

    p = load_params(params)
    use_engine(p, engine)
    allow = True if allow_new_labels else None
    guard("check", reads={"DROP": [d.split("=", 1)[-1] for d in drops or []], "--reference": reference,
                          "--splits": splits, "--params": params}, folders={"--out": out},
          owned={"--out": ("check.json", "check.md")})
    estimate = estimator(model_dir, predictions, p) if model_dir or predictions else None
    if latest and drops:
        raise ConfigError("Give either DROP folders or --latest, not both.")
    if not latest and not drops:
        raise ConfigError(
            "No drop given: pass DOMAIN=PATH or a folder of domains, or --latest to check the newest ingested drop."
        )
    how = {"splits": splits, "out": out, "params": p.check, "ingest_params": p.ingest, "allow_new_labels": allow,
           "raise_on_fail": False, "estimate": estimate}
    report = run_latest_drop_check(reference, **how) if latest else run_check(drops, reference, **how)
    _print_findings(report)
    typer.echo(summary_line(report, out))
    if report.errors:
        raise CheckFailed(f"check failed: {len(report.errors)} blocking finding(s); see {out / 'check.md'}")


def _print_findings(report) -> None:
    """Each error and warning on one line (and the live gate's estimate), names escaped."""
    colours = {"error": "red", "warning": "yellow", "info": "green"}
    for f in report.findings:
        if f.severity in colours and (f.severity != "info" or f.rule == "error_rise"):
            console.print(f"[{colours[f.severity]}]{f.severity}[/] \\[{f.rule}] {rich_text(f.message)}")
