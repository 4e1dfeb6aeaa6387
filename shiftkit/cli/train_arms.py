"""``shiftkit train --arm NAME --budget K``: one learning-curve arm trained as a user with their own
folders would, outside DVC (the options live on the train command in :mod:`shiftkit.cli.app`).

The budget is drawn from the splits table as the curve's budgets step draws it (nested,
label-stratified, ``curve.seed``); the target's other train images and the ``unlabelled`` split,
plus ``--unlabelled``, serve the arms that adapt, without their labels.
"""

from __future__ import annotations

from pathlib import Path

from shiftkit.core.console import console


def train_arm_run(arm: str, budget_text: str | None, manifest: Path, splits: Path, out: Path, tp, cparams, *,
                  synth: Path | None = None, live: Path | None = None, unlabelled: Path | None = None,
                  start: Path | None = None) -> str:
    """Draw the budget's table into ``out/budget.parquet`` and train ``arm`` on it; returns the summary line.

    Raises:
        RegistryError: on an unknown arm (or a combination that is not one).
        DataError: when the budget asks for more target train images than there are.
        ConfigError, InputPathError: on options that do not fit the arm (a missing --synth or --start).
    """
    from shiftkit.core import files as io
    from shiftkit.core import schema
    from shiftkit.curve import budgets, stage
    from shiftkit.curve.arms import get_arm

    a = get_arm(arm)
    budget = budgets.parse_budget(budget_text or "all")
    if unlabelled is not None and not a.adapt:  # a note, so that one command line serves every arm compared
        console.print(f"[yellow]--unlabelled {unlabelled}: the {arm} arm reads no unlabelled images; left unread.[/]")
        unlabelled = None
    man = io.read_table(manifest, schema.MANIFEST)
    spl = io.read_table(splits, schema.SPLITS_TABLE)
    order = budgets.draw_order(budgets.target_train(spl, man, cparams.target_domain), cparams.seed)
    budgets.budget_size(budget, order.height, "--budget")
    table = budgets.budget_splits(spl, order, budget)
    out = io.ensure_dir(out)
    io.write_table(table, out / "budget.parquet", schema.SPLITS_TABLE)
    return stage.train_arm(arm, budget, manifest, out / "budget.parquet", out, tp, cparams, synth=synth,
                           start=start, live_dir=live, unlabelled=unlabelled)
