"""``shiftkit check --model``: the CLI builds the live estimator (it may import the model code, which
check/ may not) and hands it to the check stage (see ``shiftkit/check/live.py``)."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftkit.core.errors import ConfigError

MODEL_OPTION = typer.Option(None, "--model", help="Model folder: estimate the drop's error without labels; "
                            "block above check.max_error_rise points over dev's (needs --predictions).")
PREDICTIONS_OPTION = typer.Option(None, "--predictions", help="With --model: that model's predictions table "
                                  "(its labelled dev calibrates and audits the estimate).")


def estimator(model_dir: Path | None, predictions: Path | None, p):
    """The estimator of ``training.unlabelled.live_estimator`` from the CLI's options and params.

    Raises:
        ConfigError: when only one of --model and --predictions is given.
    """
    if model_dir is None or predictions is None:
        raise ConfigError("--model and --predictions go together: the model's predictions on dev calibrate "
                          "and audit the estimate of the drop's error.")
    from shiftkit.training.unlabelled import live_estimator

    return live_estimator(model_dir, predictions, p.evaluate, replicates=p.report.replicates,
                          level=p.report.level, seed=p.report.seed)
