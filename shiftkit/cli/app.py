"""The ``shiftkit`` command line: every pipeline stage by hand, ``report`` and the ``check`` gate.

Commands are thin: parse, load params, call one library function, print a summary. Stage
modules are imported inside the commands, so ``shiftkit --help`` and ``shiftkit check`` never
pay for torch or albumentations. They are run, and their failures mapped to exit codes, by
:func:`shiftkit.cli.run.main`.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

import shiftkit
from shiftkit.cli.common import ENGINE_OPTION, PARAMS_OPTION, load_params, use_engine  # noqa: F401
from shiftkit.core.console import console
from shiftkit.core.outputs import guard

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


# =============================================================================================
# Commands. Each stage owns one block below; keep blocks apart so that edits merge cleanly.
# =============================================================================================


# --- example, ingest ---------------------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    domain: list[str] = typer.Option(
        [],
        "--domain",
        "-d",
        metavar="NAME=PATH",
        help="A domain and its ImageFolder root (PATH/<label>/<image>); repeat for each domain, "
        "e.g. --domain web=data/raw/web --domain target=data/raw/target.",
    ),
    listing: Path | None = typer.Option(
        None,
        "--listing",
        help="A CSV or parquet file with columns path, label, domain; paths are relative to the "
        "listing's folder, which is their data root.",
    ),
    unlabelled: list[str] = typer.Option(
        [],
        "--unlabelled",
        metavar="NAME=PATH",
        help="A flat folder of images without labels (PATH/<image>), or a CSV/parquet listing with a path "
        "column, for domain NAME, e.g. --unlabelled target=data/raw/photos: they enter the manifest with "
        "no label and go to the split 'unlabelled', "
        "which synthesis (its fit and parent weighting) and shift read and evaluate predicts (without labels, for "
        "the report's label-free estimates); never trained on.",
    ),
    out: Path = typer.Option(
        Path("data/manifest"),
        "--out",
        "-o",
        file_okay=False,
        help="Folder for manifest.parquet, quarantine.parquet and summary.json. Outputs of a "
        "previous run there make this run incremental (only new files are decoded).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-j", min=0, help="Worker processes (default: ingest.workers in params; 0 = all cores)."
    ),
    group_depth: int | None = typer.Option(
        None,
        "--group-depth",
        min=0,
        max=8,
        help="Folders between the label folder and the file that name an image's group (one object, one "
        "session): PATH/<label>/<group>/<image> at 1; split keeps a group in one split. A listing's optional "
        "group column does the same (default: ingest.group_depth in params, 0 = none).",
    ),
    engine: str | None = ENGINE_OPTION,
    params: Path = PARAMS_OPTION,
) -> None:
    """Decode, measure and hash every image of one or more domains into a manifest.

    Every file ends up exactly once in manifest.parquet or, with a reason, in
    quarantine.parquet (empty, truncated, not_an_image, decompression_bomb, too_small,
    outside_root, stray_file, duplicate, conflicting_label, ...).
    """
    import dataclasses

    from shiftkit.core.config import parse_assignments
    from shiftkit.ingest.stage import OWNED as OWNED_BY_INGEST
    from shiftkit.ingest.stage import ingest, summary_line

    p = load_params(params)
    use_engine(p, engine)
    roots = parse_assignments(domain, "--domain")
    guard("ingest", reads={"--domain": roots.values(), "--listing": listing, "--unlabelled":
                           parse_assignments(unlabelled, "--unlabelled").values(), "--params": params},
          folders={"--out": out}, owned={"--out": OWNED_BY_INGEST})
    result = ingest(
        roots,
        out,
        listing=listing,
        params=p.ingest if group_depth is None else dataclasses.replace(p.ingest, group_depth=group_depth),
        workers=workers,
        keep_domain=p.split.target_domain,
        unlabelled=parse_assignments(unlabelled, "--unlabelled"),
    )
    typer.echo(summary_line(result))


@app.command("example")
def example_command(
    name: str = typer.Argument(
        ..., metavar="NAME", help="Which example: 'digits', or 'photos' (real photos; ingest with --group-depth 1)."
    ),
    dest: Path = typer.Argument(
        ..., metavar="DEST", help="Folder to write DEST/web/<label>/*.png, DEST/target/<label>/*.png and "
        "DEST/unlabelled/*.png (target images without labels, for ingest --unlabelled target=DEST/unlabelled) into."
    ),
    params: Path = PARAMS_OPTION,
) -> None:
    """Write an example: digits (MNIST "web", load_digits "target") or photos (a phone-camera "target")."""
    from shiftkit.ingest.example import summary_line, write_example

    p = load_params(params)
    guard("example", reads={"--params": params}, folders={"DEST": [dest / d for d in ("web", "target", "unlabelled")]})
    counts = write_example(name, dest, p.example)
    console.print(summary_line(name, counts, dest))


# --- split, check ------------------------------------------------------------------------------


def _size(name: str, text: str | None) -> int | float | None:
    """A split size from the command line: an integer count or a fraction."""
    if text is None:
        return None
    from shiftkit.core.errors import ConfigError

    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigError(
            f"The '--{name}' option of split must be a fraction in (0, 1) or a count >= 1. Got {text!r} instead."
        ) from exc


@app.command("split")
def split_command(
    manifest: Path = typer.Option(
        Path("data/manifest/manifest.parquet"), "--manifest", "-m", help="Manifest to split (from `shiftkit ingest`)."
    ),
    out: Path = typer.Option(
        Path("data/splits"),
        "--out",
        "-o",
        file_okay=False,
        help="Folder for splits.parquet, composition.json and composition.md. Splits already there are honoured.",
    ),
    strategy: str | None = typer.Option(
        None,
        "--strategy",
        help="'target' (dev/test only from the target domain) or 'shuffle' (the naive mix, to compare).",
    ),
    target_domain: str | None = typer.Option(None, "--target-domain", help="Domain that dev and test come from."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the membership hash; changing it reshuffles."),
    dev: str | None = typer.Option(None, "--dev", help="Dev size: a fraction in (0, 1) of the target, or a count."),
    test: str | None = typer.Option(None, "--test", help="Test size: a fraction in (0, 1) of the target, or a count."),
    bridge: str | None = typer.Option(
        None, "--bridge", help="Bridge size: a fraction in (0, 1) of the training pool, or a count."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore the splits already in --out: assign every image afresh."),
    params: Path = PARAMS_OPTION,
) -> None:
    """Split a manifest into train / bridge / dev / test (dev and test from the target only)."""
    import warnings

    from shiftkit.splits.stage import OWNED as OWNED_BY_SPLIT
    from shiftkit.splits.stage import run_split

    p = load_params(params)
    guard("split", reads={"--manifest": manifest, "--params": params}, folders={"--out": out},
          owned={"--out": OWNED_BY_SPLIT})
    changes = {
        "strategy": strategy,
        "target_domain": target_domain,
        "seed": seed,
        "dev": _size("dev", dev),
        "test": _size("test", test),
        "bridge": _size("bridge", bridge),
    }
    p = p.replace("split", **{k: v for k, v in changes.items() if v is not None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # printed below from the result, once
        result = run_split(manifest, out, p.split, fresh=fresh)
    for note in result.warnings:
        console.print(f"[yellow]warning:[/] {note}")
    for statement in result.composition["statements"]:
        console.print(statement)
    typer.echo(result.summary())


# --- synth, shift ------------------------------------------------------------------------------


@app.command("synth")
def synth_command(
    manifest: Path = typer.Option(Path("data/manifest/manifest.parquet"), "--manifest", help="The manifest table."),
    splits: Path = typer.Option(Path("data/splits/splits.parquet"), "--splits", help="The splits table."),
    out: Path = typer.Option(
        Path("data/synth"), "--out", help="Output folder (synth.parquet, images/, recipe.json, fit.json)."
    ),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="Reuse a saved recipe.json (or fit.json) and skip the fit."
    ),
    preview: int | None = typer.Option(
        None, "--preview", help="Write preview.png: N parents beside their degraded copies, values under each."
    ),
    copies: int | None = typer.Option(None, "--copies", help="Degraded copies per image (overrides synth.copies)."),
    fraction: float | None = typer.Option(
        None, "--fraction", help="Share of web train/bridge images to degrade (overrides synth.fraction)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the fit and of every copy (overrides synth.seed)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes; 0 = all cores (overrides synth.workers)."),
    images_url: str | None = typer.Option(
        None, "--images-url", help="Write the images under this URL/<run id>/ (e.g. s3://bucket/synth), not in --out."
    ),
    engine: str | None = ENGINE_OPTION,
    params: Path = PARAMS_OPTION,
) -> None:
    """Fit degradations to the target's train images, then write target-like copies of web images.

    Children keep their parent's split (train or bridge, never dev or test) and dup group.
    """
    from shiftkit import synth
    from shiftkit.synth.stage import OWNED as OWNED_BY_SYNTH
    from shiftkit.synth.stage import summary_line

    p = load_params(params)
    use_engine(p, engine)
    guard("synth", reads={"--manifest": manifest, "--splits": splits, "--recipe": recipe, "--params": params},
          folders={"--out": out if images_url is None else None}, owned={"--out": OWNED_BY_SYNTH})
    # every override is validated like the same value in params.yaml (--preview -3 included)
    overrides = {k: v for k, v in {"copies": copies, "fraction": fraction, "seed": seed, "workers": workers,
                                   "preview": preview}.items() if v is not None}
    if overrides:
        p = p.replace("synth", **overrides)
    summary = synth.run_synth(manifest, splits, out, p.synth, recipe_path=recipe, images_url=images_url)
    console.print(summary_line(summary, out))


@app.command("shift")
def shift_command(
    a: Path | None = typer.Option(None, "--a", help="Folder of set A (instead of --manifest filters)."),
    b: Path | None = typer.Option(None, "--b", help="Folder of set B (instead of --manifest filters)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Manifest table to draw both sets from."),
    splits: Path | None = typer.Option(None, "--splits", help="Splits table (needed by --a-split/--b-split)."),
    a_split: list[str] = typer.Option([], "--a-split", help="Split(s) of set A (repeatable)."),
    a_domain: list[str] = typer.Option([], "--a-domain", help="Domain(s) of set A (repeatable)."),
    b_split: list[str] = typer.Option([], "--b-split", help="Split(s) of set B (repeatable)."),
    b_domain: list[str] = typer.Option([], "--b-domain", help="Domain(s) of set B (repeatable)."),
    model: str | None = typer.Option(
        None, "--model", help="timm model whose pooled output are the features (random init offline)."
    ),
    max_images: int | None = typer.Option(None, "--max-images", help="Images sampled per set (0: all)."),
    permutations: int | None = typer.Option(None, "--permutations", help="Permutations of the MMD test."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampling, the folds and the permutations."),
    json_out: Path | None = typer.Option(None, "--json", dir_okay=False, help="Write the result as json to this file."),
    engine: str | None = ENGINE_OPTION,
    params: Path = PARAMS_OPTION,
) -> None:
    """How far apart two image sets are: per-property KS and Wasserstein, domain AUC, MMD test.

    Give two folders (--a, --b) or a manifest with split/domain filters for each set.
    """
    import json

    from shiftkit.core import files as io
    from shiftkit.core.errors import ConfigError
    from shiftkit.shift import stage as shift

    p = load_params(params)
    use_engine(p, engine)
    overrides = {k: v for k, v in {"model": model, "max_images": max_images, "permutations": permutations,
                                    "seed": seed}.items() if v is not None}
    if overrides:
        p = p.replace("shift", **overrides)
    sp = p.shift
    guard("shift", reads={"--a": a, "--b": b, "--manifest": manifest, "--splits": splits, "--params": params},
          files={"--json": json_out})
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


@app.command("train")
def train_command(
    manifest: Path = typer.Option(
        Path("data/manifest/manifest.parquet"), "--manifest", help="Manifest table from ingest."
    ),
    splits: Path = typer.Option(
        Path("data/splits/splits.parquet"), "--splits", help="Splits table (train/bridge/dev/test)."
    ),
    synth: Path | None = typer.Option(
        None, "--synth", help="Synth table (synth.parquet); its train children join the training set."
    ),
    out: Path = typer.Option(
        Path("models"), "--out", help="Folder for model.safetensors, model.json and the resume point."
    ),
    live: Path = typer.Option(Path("dvclive"), "--live", help="dvclive folder for per-epoch metrics and plots."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last completed epoch in --out."),
    model: str | None = typer.Option(None, "--model", help="timm model name (overrides train.model)."),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="true (timm hub), false, or a checkpoint path (overrides train.pretrained)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Fine-tuning epochs (overrides train.finetune_epochs)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides train.device)."),
    workers: int | None = typer.Option(
        None, "--workers", help="Data-loader worker processes (overrides train.workers)."
    ),
    arm: str | None = typer.Option(None, "--arm", help="Train one learning-curve arm: baseline, synth, dann, coral, "
                                   "selftrain, weighted, synth+dann, ... (shiftkit/curve/arms.py)."),
    budget: str | None = typer.Option(None, "--budget", help="With --arm: labelled target train images, an integer "
                                      "or all (default); 0 = web only. The rest serve without labels."),
    unlabelled: Path | None = typer.Option(None, "--unlabelled", help="With --arm: a folder or listing of target "
                                           "images without labels, for the arms that adapt."),
    start: Path | None = typer.Option(None, "--start", help="With --arm: the web-only model (finetune starts there)."),
    params_path: Path = PARAMS_OPTION,
) -> None:
    """Transfer learning with a timm CNN: new head on a frozen backbone, then fine-tuning.

    Writes the model after every epoch (atomically); run with [bold]torchrun[/] for several
    GPUs or processes (rank 0 writes).
    """

    from shiftkit.training.train import summary_line, train

    params = load_params(params_path)
    guard("train", reads={"--manifest": manifest, "--splits": splits, "--synth": synth, "--params": params_path,
                          "--pretrained": pretrained if pretrained and Path(pretrained).exists() else None},
          folders={"--out": out}, live=live)
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
    if arm is not None or budget is not None or unlabelled is not None or start is not None:
        from shiftkit.cli.train_arms import train_arm_run

        console.print(train_arm_run(arm or "baseline", budget, manifest, splits, out, tp, params.curve, synth=synth,
                                    live=live, unlabelled=unlabelled, start=start))
        return
    result = train(manifest, splits, out, tp, synth=synth, live_dir=live, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(summary_line(result, tp))


@app.command("evaluate")
def evaluate_command(
    manifest: Path = typer.Option(
        Path("data/manifest/manifest.parquet"), "--manifest", help="Manifest table from ingest."
    ),
    splits: Path = typer.Option(
        Path("data/splits/splits.parquet"), "--splits", help="Splits table (train/bridge/dev/test)."
    ),
    synth: Path | None = typer.Option(
        None, "--synth", help="Synth table; its children are predicted as domain 'synth'."
    ),
    model_dir: Path = typer.Option(Path("models"), "--model", help="Model folder written by shiftkit train."),
    out: Path = typer.Option(
        Path("data/predictions/predictions.parquet"), "--out", dir_okay=False, help="Predictions table to write."
    ),
    train_sample: int | None = typer.Option(
        None, "--train-sample", help="At most this many train images (overrides evaluate.train_sample)."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides evaluate.device)."),
    images: Path | None = typer.Option(
        None, "--images", help="Instead: a folder or CSV/parquet listing of images without labels, predicted "
        "as split 'unlabelled' (label and correct null)."),
    name: str | None = typer.Option(None, "--name", help="With --images: the split is 'unlabelled:NAME'."),
    add_to: Path | None = typer.Option(
        None, "--add-to", help="With --images: add the rows to this predictions table (its dev and bridge "
        "calibrate the report's label-free estimates); written to --out."),
    params_path: Path = PARAMS_OPTION,
) -> None:
    """Predict train (eval mode, a seeded sample), bridge, dev and test (and the unlabelled pool)
    into predictions.parquet; or, with --images, a folder or listing of unlabelled images."""
    from shiftkit.training.evaluate import evaluate, summary_line

    params = load_params(params_path)
    guard("evaluate", reads={"--manifest": manifest, "--splits": splits, "--synth": synth, "--model": model_dir,
                             "--params": params_path, "--images": images, "--add-to": add_to}, files={"--out": out})
    changes = {k: v for k, v in (("train_sample", train_sample), ("device", device)) if v is not None}
    ep = params.replace("evaluate", **changes).evaluate if changes else params.evaluate
    if images is not None:
        from shiftkit.training.unlabelled import evaluate_images

        path, n, split = evaluate_images(images, model_dir, out, ep, name=name, add_to=add_to)
        console.print(f"predicted {n:,} unlabelled images as split {split!r} -> {path}")
        return
    result = evaluate(manifest, splits, model_dir, out, ep, synth=synth)
    console.print(summary_line(result))


# --- report ------------------------------------------------------------------------------------


@app.command("report")
def report_command(
    predictions: Path = typer.Argument(
        ..., help="predictions.parquet from `shiftkit evaluate`, or a run folder that holds one."
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Manifest (image properties and files): enables the blur/resolution/brightness "
        "analysis and the gallery's thumbnails."
    ),
    synth: Path | None = typer.Option(
        None, "--synth", help="Synth table: tells the report whether synthesis is on and what it changed."
    ),
    human_error: float | None = typer.Option(
        None, "--human-error", help="Human-level error in [0, 1) (overrides report.human_error in params)."
    ),
    compare: Path | None = typer.Option(
        None, "--compare", help="Another run's predictions (file or run folder): each gap's change, with an interval."
    ),
    out: Path = typer.Option(
        Path("reports"), "--out", file_okay=False, help="Folder for report.md, report.html, metrics.json, plots/."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the summary tables."),
    params: Path = PARAMS_OPTION,
) -> None:
    """Decompose the errors (avoidable bias, variance, data mismatch, dev overfitting) with bootstrap
    intervals, analyse the dev errors and say what to do next."""
    from rich.console import Console

    from shiftkit.core.console import current, output_to
    from shiftkit.report.stage import OUTPUTS as OWNED_BY_REPORT
    from shiftkit.report.stage import run_report, summary_line

    pp = load_params(params)
    p = pp.report
    guard("report", reads={"PREDICTIONS": predictions, "--manifest": manifest, "--synth": synth, "--compare": compare,
                           "--params": params}, folders={"--out": out}, owned={"--out": OWNED_BY_REPORT})
    with output_to(Console(quiet=True) if quiet else current()):
        data = run_report(
            predictions, out, manifest=manifest, synth=synth, compare_to=compare, params=p, human_error=human_error,
            model=pp.train.model, img_size=pp.train.img_size,
        )
    console.print(summary_line(data, out))
from shiftkit.cli.models import register as _register_models  # noqa: E402  (adds `shiftkit models`)

_register_models(app)
from shiftkit.cli.select import select_command  # noqa: E402  (issue 24; registered here: no import cycle)

app.command("select")(select_command)
from shiftkit.cli.gate import check_command  # noqa: E402  (registered here: no import cycle)

app.command("check")(check_command)
