"""``shiftkit split``: read the manifest (and the splits an earlier run wrote), assign, write.

Writes ``splits.parquet``, ``composition.json`` (with the settings, used to detect a reshuffle
next time) and ``composition.md``, replaced as one set. The assignment itself is
``shiftkit.splits.assignment``; what it holds, ``shiftkit.splits.composition``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shiftkit.core.errors import DataError, InputPathError
from shiftkit.core.files import read_json, read_table, replace_dir, write_json, write_table, write_text
from shiftkit.core.schema import MANIFEST, SPLITS_TABLE, validate
from shiftkit.splits.assignment import assign
from shiftkit.splits.composition import SplitResult
from shiftkit.splits.params import SplitParams

SPLITS_FILE = "splits.parquet"
COMPOSITION_JSON = "composition.json"
COMPOSITION_MD = "composition.md"
OWNED = (SPLITS_FILE, COMPOSITION_JSON, COMPOSITION_MD)  # what split writes in --out (core/outputs.py)


def read_previous(out_dir: str | Path) -> tuple[pl.DataFrame | None, dict | None]:
    """The splits table and settings an earlier run wrote to ``out_dir`` (None, None if none)."""
    out = Path(out_dir)
    table_path, meta_path = out / SPLITS_FILE, out / COMPOSITION_JSON
    for p in (table_path, meta_path):
        if p.exists() and not p.is_file():
            raise InputPathError(f"{p} is not a file: expected the {p.name} of an earlier split (or nothing).")
    if not table_path.is_file():
        return None, None
    previous = read_table(table_path, SPLITS_TABLE)
    settings = read_json(meta_path).get("settings") if meta_path.is_file() else None
    return previous, settings


def read_manifest_columns(path: str | Path, columns: list[str]) -> pl.DataFrame:
    """Read only ``columns`` of a manifest, after checking its whole schema.

    The split needs four of the manifest's twenty columns; reading only those halves the read
    of a million-row manifest.

    Raises:
        InputPathError: the file is missing.
        DataError: it cannot be read.
        SchemaError: a required column is missing or mistyped.
    """
    p = Path(path)
    if p.suffix.lower() != ".parquet" or not p.is_file() or p.stat().st_size == 0:
        table = read_table(p, MANIFEST)  # its errors name the problem
        return table.select([c for c in columns if c in table.columns or c in MANIFEST.columns])
    try:
        schema = pl.read_parquet_schema(p)
        validate(pl.DataFrame(schema=schema), MANIFEST, source=str(p))
        return pl.read_parquet(p, columns=[c for c in columns if c in schema or c in MANIFEST.columns])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"Cannot read the manifest table {p}: {str(exc).splitlines()[0]}") from exc


def write_splits(table: pl.DataFrame, path: str | Path) -> Path:
    """Write a splits table atomically, schema-checked and byte-stable (``io.write_table``).

    With zstd level 1 and no column statistics: two columns of random sha256 hex do not
    compress and their min/max statistics are useless, and on a million rows this takes the
    write from about 0.6 s to 0.2 s (benchmarks/split.py).

    Raises:
        SchemaError: when a required column is missing.
        InputPathError: when the folder cannot be written.
    """
    return write_table(table, path, SPLITS_TABLE, level=1, statistics=False)


def run_split(
    manifest_path: str | Path, out_dir: str | Path, params: SplitParams | None = None, *, fresh: bool = False
) -> SplitResult:
    """Read a manifest, split it (honouring the splits already in ``out_dir``), write the outputs.

    Writes ``splits.parquet``, ``composition.json`` (with the settings, used to detect a
    reshuffle next time) and ``composition.md`` to ``out_dir``, replaced as one set.

    Raises:
        InputPathError: the manifest is missing or the folder cannot be written.
        SchemaError: the manifest lacks a column.
        DataError: see :func:`assign`.
    """
    params = params or SplitParams()
    # group: the user's groups, optional (absent from manifests written before it)
    manifest = read_manifest_columns(manifest_path, ["image_id", "domain", "label", "dup_group", "group"])
    previous, settings = (None, None) if fresh else read_previous(out_dir)
    result = assign(manifest, params, previous, settings)
    # the previous splits were read above: now the folder is replaced as one set
    with replace_dir(out_dir, owned=(SPLITS_FILE, COMPOSITION_JSON, COMPOSITION_MD)) as tmp:
        write_splits(result.table, tmp / SPLITS_FILE)
        write_json(tmp / COMPOSITION_JSON, result.composition)
        write_text(tmp / COMPOSITION_MD, result.markdown)
    return result
