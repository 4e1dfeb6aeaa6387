"""The synth stage: fit (or reuse) a recipe, then write degraded copies of web train/bridge images.

Every output (``synth.parquet``, ``recipe.json``, ``fit.json``, ``images/``, ``preview.png``) is
built in a temporary sibling of the output folder and swapped in as one set
(``shiftkit.core.files.replace_dir``): a failed or interrupted run leaves the previous run's folder
untouched, and a first run leaves nothing.

With ``images_url`` the copies are written by the workers as objects under
``<images_url>/<run id>/images/...`` instead (the tables stay in the local folder; the synth
table's ``root`` column names that prefix). The run id is a hash of the recipe and of every
planned copy (parent, seed, key), so the same inputs write the same keys and bytes as a local
run, below the same prefix; a run that fails part-way leaves its objects below its own prefix,
never mixed into another run's (they are not deleted: a rerun writes the same keys again).

An empty recipe (the fit found no degradation that brings the web images closer to the target)
writes no copies: the synth table is empty, as with ``synth.enabled: false``, and the later
stages run as without synthesis. ``recipe.json`` and ``fit.json`` still record why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftkit.synth.recipe import (
    Recipe,
    child_seed,
    describe,
    describe_record,
    load_recipe,
    load_weighting,
    recipe_file_dict,
)
from shiftkit.synth.tables import SYNTH_SPLITS, fit_from_tables

if TYPE_CHECKING:
    import polars as pl

    from shiftkit.synth.params import SynthParams
    from shiftkit.synth.weighting import Weighting

PathLike = str | os.PathLike[str]
# what the stage writes at the top of its folder; anything else there is refused (``--out .``)
OWNED = ("synth.parquet", "recipe.json", "fit.json", "images", "preview.png", ".images.partial", ".images.old")


@dataclasses.dataclass(frozen=True)
class _Chosen:
    """The recipe the stage applies, its parent weighting, and the fit.json record of how it came."""

    recipe: Recipe
    weighting: Weighting | None
    fit_info: dict[str, Any]
    note: str = ""  # why no copies are written (an empty recipe); empty otherwise


def run_synth(
    manifest: PathLike,
    splits: PathLike,
    out_dir: PathLike,
    params: SynthParams,
    *,
    recipe_path: PathLike | None = None,
    preview: int | None = None,
    images_url: str | None = None,
) -> dict[str, Any]:
    """The synth stage: fit (or load) a recipe and write degraded copies with the synth table.

    Writes ``synth.parquet`` (schema.SYNTH, paths relative to ``out_dir``), ``images/``,
    ``recipe.json``, ``fit.json`` and, when asked, ``preview.png``, replacing ``out_dir`` as
    one set. With ``params.enabled`` false, or an empty recipe, the synth table is empty.
    ``preview`` overrides ``params.preview`` (validated alike). ``images_url`` (an fsspec URL):
    write the images there (module docstring) and name it in the table's ``root`` column.

    Raises:
        InputPathError: when a table or the recipe file is missing, or ``out_dir`` holds files
            the stage does not write.
        DataError: when there are no web images to degrade or too few images to fit.
        ConfigError, RegistryError: when a saved recipe, ``preview`` or ``images_url`` is invalid.
    """
    from shiftkit.core import files as io
    from shiftkit.core import schema
    from shiftkit.core.errors import ConfigError
    from shiftkit.images import storage

    if images_url is not None:
        if not storage.is_url(images_url):
            raise ConfigError(f"--images-url {images_url!r} is not a URL (expected e.g. s3://bucket/prefix).")
        storage.filesystem(images_url)  # the protocol's fsspec package is installed

    if preview is not None:
        params = dataclasses.replace(params, preview=preview)  # the params section's own range check
    if not params.enabled:
        with io.replace_dir(out_dir, owned=OWNED) as tmp:
            io.write_table(schema.empty(schema.SYNTH, with_optional=True), tmp / "synth.parquet", schema.SYNTH)
        return {"enabled": False, "images": 0}
    mdf = io.read_table(manifest, schema.MANIFEST)
    sdf = io.read_table(splits, schema.SPLITS_TABLE)
    chosen = _choose_recipe(mdf, sdf, manifest, params, recipe_path or (params.recipe or None))
    web = _web_pool(mdf, sdf, params, manifest, splits)
    with io.replace_dir(out_dir, owned=OWNED) as tmp:
        io.write_json(tmp / "recipe.json", recipe_file_dict(chosen.recipe, chosen.weighting))
        io.write_json(tmp / "fit.json", chosen.fit_info)
        if not chosen.recipe.steps:
            io.write_table(schema.empty(schema.SYNTH, with_optional=True), tmp / "synth.parquet", schema.SYNTH)
            return _summary(chosen, [], 0, 0.0, None)
        parents, counts, weighted = _parents(web, manifest, chosen, params)
        src_paths = io.image_paths(parents, manifest)
        root = None if images_url is None else storage.join(images_url, _run_id(chosen.recipe, parents, counts,
                                                                                 params.seed))
        items, meta = _plan_children(parents, src_paths, counts, root or tmp, params.seed)
        rows, seconds = _write_children(items, chosen.recipe, params.workers)
        table = _synth_table(rows, meta, root)
        _note_identical_copies(table)
        io.write_table(table, tmp / "synth.parquet", schema.SYNTH)
        if params.preview:
            pairs = [(it[0], it[1], r[2]) for it, r in zip(items, rows, strict=True)][: params.preview]
            write_contact_sheet(tmp / "preview.png", pairs)
    return _summary(chosen, rows, parents.height, seconds, weighted)


def summary_line(summary: dict[str, Any], out_dir: PathLike) -> str:
    """The one line that ``shiftkit synth`` and ``pipelines/synth.py`` print about a :func:`run_synth` result."""
    table = Path(out_dir) / "synth.parquet"
    if not summary["enabled"]:
        return f"synth: disabled (synth.enabled: false); wrote an empty table to {table}"
    if not summary["images"]:
        return f"synth: {summary['note']}; wrote an empty table to {table}"
    return (f"synth: {summary['images']} images from {summary['parents']} parents in {summary['seconds']} s "
            f"({summary['rate']} img/s); {summary['recipe']} -> {out_dir}")


def _note_identical_copies(table: pl.DataFrame) -> None:
    """Say when copies came out byte-identical (a recipe without random parameters left): they are
    one image (one ``image_id``), which weights its parent in training and is evaluated once."""
    from shiftkit.core.console import console

    distinct = table["image_id"].n_unique()
    if distinct < table.height:
        console.print(
            f"synth: {table.height - distinct:,} of {table.height:,} copies are byte-identical to another copy "
            f"({distinct:,} distinct images): the fitted recipe has no random parameters left, so a parent's "
            "extra copies only weight it in training; evaluation counts each distinct image once."
        )


def _choose_recipe(mdf: pl.DataFrame, sdf: pl.DataFrame, manifest: PathLike, params: SynthParams,
                   recipe_path: PathLike | None) -> _Chosen:
    """Load the saved recipe (and its weighting), or fit one; say what was chosen."""
    from shiftkit.core.console import console

    if recipe_path:
        recipe = load_recipe(recipe_path)
        weighting = load_weighting(recipe_path) if params.weighting != "none" else None
        fit_info: dict[str, Any] = {"reused": str(recipe_path), "recipe": recipe_file_dict(recipe, weighting)}
        console.print(f"synth: reusing recipe {recipe_path}: {describe(recipe)}"
                      + (" with its parent weighting" if weighting is not None else ""))
        note = "" if recipe.steps else f"the recipe {recipe_path} has no steps: no copies written"
        return _Chosen(recipe, weighting, fit_info, note)
    result = fit_from_tables(mdf, sdf, manifest, params, workers=params.workers,
                             say=lambda m: console.print(f"synth fit: {m}"))
    console.print(f"synth: fitted recipe: {describe(result.recipe)} ({result.seconds:.1f} s)")
    console.print(
        f"synth: domain AUC {result.before['auc']:.3f} -> {result.after['auc']:.3f}; property distance "
        f"{result.before['property_distance']:.3f} -> {result.after['property_distance']:.3f} "
        f"(fit sample: {result.sizes['web']} web, {result.sizes['target']} target)"
    )
    check = result.weighting_check or {}
    if "held_out" in check:
        h, n = check["held_out"], check["sizes"]["target_held_out"]
        console.print(
            f"synth: on {n} held-out target train images: domain AUC {h['plain']['auc']:.3f} (web) -> "
            f"{h['recipe']['auc']:.3f} (recipe) -> {h['weighted']['auc']:.3f} (recipe + parent weighting, "
            f"{'kept' if check['used'] else 'not kept'}); property distance "
            f"{h['plain']['property_distance']:.2f} -> {h['recipe']['property_distance']:.2f} -> "
            f"{h['weighted']['property_distance']:.2f}"
        )
    note = ""
    if not result.recipe.steps:
        note = (f"no degradation brought the web images closer to the target (domain AUC {result.before['auc']:.3f}"
                f" without synthesis): no copies written; later stages run as without synthesis")
        console.print(f"synth: {note}")
    return _Chosen(result.recipe, result.weighting, result.to_dict(), note)


def _web_pool(mdf: pl.DataFrame, sdf: pl.DataFrame, params: SynthParams, manifest: PathLike,
              splits: PathLike) -> pl.DataFrame:
    """The web images of train and bridge: the parents synthesis may degrade.

    Raises:
        DataError: when there are none.
    """
    import polars as pl

    from shiftkit.core.errors import DataError

    web = (
        mdf.join(sdf.select("image_id", "split"), on="image_id", how="inner")
        .filter((pl.col("domain") == params.web_domain) & pl.col("split").is_in(list(SYNTH_SPLITS)))
        .sort("image_id")
    )
    if web.height == 0:
        raise DataError(
            f"There are no {params.web_domain!r} images in train or bridge to synthesise from "
            f"(manifest {manifest}, splits {splits})."
        )
    return web


def _parents(web: pl.DataFrame, manifest: PathLike, chosen: _Chosen,
             params: SynthParams) -> tuple[pl.DataFrame, list[int], dict[str, Any] | None]:
    """The parents, their numbers of copies and (with a weighting) a summary of the shares."""
    import polars as pl

    from shiftkit.core.console import console

    if chosen.weighting is None:
        parents = web.filter(pl.Series([_pick(params.seed, i, params.fraction) for i in web["image_id"]]))
        return parents, [params.copies] * parents.height, None
    parents, counts, weighted = _weighted_parents(web, manifest, chosen.recipe, chosen.weighting, params)
    console.print(
        f"synth: parent weighting: {weighted['copies']} copies over {weighted['parents']} of {web.height} "
        f"parents (at most {weighted['max_copies']} each; effective sample {weighted['effective_share']:.0%})"
    )
    return parents, counts, weighted


def _run_id(recipe: Recipe, parents: pl.DataFrame, counts: Sequence[int], seed: int) -> str:
    """The prefix of a run's objects under ``--images-url``: a hash of the recipe and every planned copy."""
    h = hashlib.sha256(recipe.to_json().encode())
    for row, n_copies in zip(parents.iter_rows(named=True), counts, strict=True):
        for c in range(n_copies):
            h.update(f"\n{row['image_id']}:{row['split']}:{row['label']}:{c}:{child_seed(seed, row['image_id'], c)}"
                     .encode())
    return h.hexdigest()[:16]


def _plan_children(parents: pl.DataFrame, src_paths: Sequence[Path], counts: Sequence[int], root: Path | str,
                   seed: int) -> tuple[list[tuple[str, str, str, int]], list[tuple[str, str, str, str, int]]]:
    """Worker items (source, destination, relative path, seed) and table metadata of every copy.

    Creates the destination folders under a local ``root``; a URL ``root`` (str) needs none.
    """
    items, meta = [], []
    for row, src, n_copies in zip(parents.iter_rows(named=True), src_paths, counts, strict=True):
        for c in range(n_copies):
            rel = f"images/{row['split']}/{row['label']}/{row['image_id'][:16]}_c{c}.png"
            dst = f"{root}/{rel}" if isinstance(root, str) else str(root / rel)
            items.append((str(src), dst, rel, child_seed(seed, row["image_id"], c)))
            meta.append((row["image_id"], row["split"], row["label"], row["dup_group"], c))
    for d in sorted({os.path.dirname(i[1]) for i in items} if not isinstance(root, str) else ()):
        os.makedirs(d, exist_ok=True)
    return items, meta


def _write_children(items: list[tuple[str, str, str, int]], recipe: Recipe,
                    workers: int) -> tuple[list[tuple[str, str, str]], float]:
    """Degrade and write every planned copy over the worker pool; its records and the seconds taken."""
    from shiftkit.core.console import make_progress, rate_text
    from shiftkit.runtime.imap import imap, resolve_workers
    from shiftkit.synth.workers import init_worker, synth_one

    rows = []
    t0 = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task("synth", total=len(items), rate="")
        # chunks small enough that no worker idles long at the end, large enough to amortise IPC
        n_workers = resolve_workers(workers)
        chunk = max(1, min(64, len(items) // (16 * n_workers)))
        for k, rec in enumerate(imap(synth_one, items, workers=n_workers, chunksize=chunk,
                                     initializer=init_worker, initargs=(recipe.to_json(),)), 1):
            rows.append(rec)
            if k % 64 == 0 or k == len(items):
                progress.update(task, completed=k, rate=rate_text(k, time.perf_counter() - t0))
    return rows, time.perf_counter() - t0


def _synth_table(rows: Sequence[tuple[str, str, str]], meta: Sequence[tuple[str, str, str, str, int]],
                 root: str | None = None) -> pl.DataFrame:
    """The synth table (schema.SYNTH with its optional columns; ``root`` only for a URL) of the written copies."""
    import polars as pl

    from shiftkit.core import schema

    table = pl.DataFrame(
        {
            "image_id": [r[1] for r in rows],
            "parent_id": [m[0] for m in meta],
            "split": [m[1] for m in meta],
            "path": [r[0] for r in rows],
            "recipe": [r[2] for r in rows],
            "domain": ["synth"] * len(rows),
            "label": [m[2] for m in meta],
            "dup_group": [m[3] for m in meta],
            "copy": [m[4] for m in meta],
        },
        schema={**schema.SYNTH.columns, **{k: v for k, v in schema.SYNTH.optional.items() if k != "root"}},
    )
    return table if root is None else table.with_columns(root=pl.lit(root, dtype=pl.String))


def _summary(chosen: _Chosen, rows: Sequence[tuple[str, str, str]], parents: int, seconds: float,
             weighted: dict[str, Any] | None) -> dict[str, Any]:
    fit_info = chosen.fit_info
    return {
        "enabled": True,
        "images": len(rows),
        "parents": parents,
        "seconds": round(seconds, 2),
        "rate": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "recipe": describe(chosen.recipe),
        "fit": {k: fit_info.get(k) for k in ("before", "after") if k in fit_info},
        "weighting": weighted,
        "note": chosen.note,
    }


def _pick(seed: int, image_id: str, fraction: float) -> bool:
    if fraction >= 1.0:
        return True
    h = int.from_bytes(hashlib.sha256(f"{seed}:pick:{image_id}".encode()).digest()[:8], "big")
    return h / 2.0**64 < fraction


def _weighted_parents(web: pl.DataFrame, manifest: PathLike, recipe: Recipe, weighting: Weighting,
                      params: SynthParams) -> tuple[pl.DataFrame, list[int], dict[str, Any]]:
    """Parents and their numbers of copies, shared out by the density-ratio weights.

    Every web train/bridge image is degraded once (its copy 0, the same image synthesis writes
    first) to weigh it; ``fraction x copies x`` the number of web images copies are then shared
    out by systematic resampling. Returns (parents with at least one copy, their copies, a
    summary).
    """
    import polars as pl

    from shiftkit.core import files as io
    from shiftkit.synth import weighting as wt
    from shiftkit.synth.workers import moved_features

    seeds = [child_seed(params.seed, i, 0) for i in web["image_id"]]
    feats = moved_features(recipe, io.image_paths(web, manifest), seeds, weighting.feature_size, params.workers,
                           label="weigh parents")
    weights = weighting.weights(feats)
    total = max(1, round(params.fraction * params.copies * web.height))
    counts = wt.allocate(weights, total, params.seed)
    keep = counts > 0
    summary = {
        "copies": int(total), "parents": int(keep.sum()), "max_copies": int(counts.max()),
        "effective_share": round(wt.effective_share(weights), 4),
    }
    return web.filter(pl.Series(keep)), counts[keep].tolist(), summary


def write_contact_sheet(path: PathLike, pairs: Sequence[tuple[PathLike, PathLike, str]], cell: int = 112,
                        columns: int = 4) -> None:
    """A PNG for a person: each parent beside its degraded copy, the exact values under them."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    from shiftkit.core import files as io
    from shiftkit.images.decode import decode

    font = ImageFont.load_default()
    text_h = 48
    w, h = 2 * cell + 8, cell + text_h
    n = len(pairs)
    rows = max(1, math.ceil(n / columns))
    sheet = Image.new("RGB", (columns * (w + 8) + 8, rows * (h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (src, dst, record) in enumerate(pairs):
        x0, y0 = 8 + (k % columns) * (w + 8), 8 + (k // columns) * (h + 8)
        for j, p in enumerate((src, dst)):
            px = decode(p).pixels
            im = Image.fromarray(px).convert("RGB").resize((cell, cell), Image.NEAREST)
            sheet.paste(im, (x0 + j * (cell + 8), y0))
        text = describe_record(json.loads(record))
        lines = textwrap.wrap(text, width=max(20, (2 * cell) // 6))[:4]
        draw.multiline_text((x0, y0 + cell + 2), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=1)
    with io.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
