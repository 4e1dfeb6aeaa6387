"""Column names and polars dtypes of every table shiftkit writes or reads.

Each table is a ``Table``: the required columns in their canonical order, plus optional
columns that a stage may add. ``validate`` checks a frame read from disk; ``conform`` casts and
orders a frame before it is written, so that the same data always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from shiftkit.core.errors import SchemaError

SPLITS = ("train", "bridge", "dev", "test")
# The status of an image of another domain that is a near copy of a dev or test image: it is in no
# split (never trained on, never evaluated). Readers of the splits table select splits by name.
HELD_OUT_COPY = "held_out_copy"
# The status of an image without a label (``shiftkit ingest --unlabelled``): in no split either; only
# synthesis (the recipe fit and the parent weighting) and ``shiftkit shift`` read this pool.
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class Table:
    """A table's name, its required columns (in order) and the optional ones it may carry."""

    name: str
    columns: dict[str, pl.DataType]
    optional: dict[str, pl.DataType] = field(default_factory=dict)

    def all_columns(self) -> dict[str, pl.DataType]:
        return {**self.columns, **self.optional}


MANIFEST = Table(
    "manifest",
    {
        "image_id": pl.String(),  # sha256 hex of the file bytes
        "path": pl.String(),  # POSIX path relative to the domain's data root (``root``)
        "root": pl.String(),  # the data root, as a POSIX path relative to the manifest's folder
        "domain": pl.String(),
        "label": pl.String(),
        "width": pl.Int32(),  # after EXIF orientation
        "height": pl.Int32(),
        "format": pl.String(),  # Pillow's format name: PNG, JPEG, ...
        "mode": pl.String(),  # the mode as stored, before normalisation
        "phash": pl.UInt64(),  # 64-bit DCT perceptual hash
        "blur": pl.Float64(),  # variance of the Laplacian at the working size (low = blurry)
        "brightness": pl.Float64(),  # mean grey level in [0, 1]
        "contrast": pl.Float64(),  # standard deviation of the grey level in [0, 1]
        "effective_res": pl.Float64(),  # smallest side (px) that a round trip keeps faithfully
        "noise": pl.Float64(),  # estimated noise sigma in [0, 1] grey units
        "extent": pl.Float64(),  # fraction of the frame filled by the content's bounding box
        "jpeg_quality": pl.Float64(),  # estimated from quantisation tables; null if not JPEG
        "drop": pl.Int32(),  # which ingest run (data drop) brought the image, from 1
        "dup_group": pl.String(),  # exact or near copies share it (image_id of the first)
    },
    optional={
        "thumb": pl.Binary(),  # 8x8 grey thumbnail (64 bytes) that confirms near copies
        "group": pl.String(),  # the user's group (one object, one session; null when not given): split keeps it whole
    },
)

QUARANTINE = Table(
    "quarantine",
    {
        "path": pl.String(),
        "domain": pl.String(),
        "label": pl.String(),
        "reason": pl.String(),  # a core.reasons.QuarantineReason value
        "detail": pl.String(),
    },
    optional={"image_id": pl.String(), "drop": pl.Int32(), "root": pl.String()},
)

SPLITS_TABLE = Table(
    "splits",
    {
        "image_id": pl.String(),
        "split": pl.String(),  # one of SPLITS, HELD_OUT_COPY or UNLABELLED
        "group": pl.String(),  # the group that decided the split: dup_group joined with the user's group
    },
    optional={"domain": pl.String(), "label": pl.String()},
)

SYNTH = Table(
    "synth",
    {
        "image_id": pl.String(),  # sha256 of the synthesised file's bytes
        "parent_id": pl.String(),  # image_id of the web image it was made from
        "split": pl.String(),  # the parent's split: train or bridge, never dev or test
        "path": pl.String(),  # relative to the synth output folder (or to root)
        "recipe": pl.String(),  # json: the exact parameters and seed
    },
    optional={
        "domain": pl.String(),
        "label": pl.String(),
        "dup_group": pl.String(),
        "copy": pl.Int32(),
        "root": pl.String(),  # a URL the paths are under (synth --images-url); absent: the table's folder
    },
)

PREDICTIONS = Table(
    "predictions",
    {
        "image_id": pl.String(),
        "split": pl.String(),
        "domain": pl.String(),
        "label": pl.String(),
        "pred": pl.String(),
        "confidence": pl.Float64(),  # probability of the predicted class
        "correct": pl.Boolean(),  # label and correct are null on the rows of an unlabelled split
    },
    # entropy: of the class probabilities in nats (label-free estimates); null or absent in older tables
    optional={"path": pl.String(), "source": pl.String(), "entropy": pl.Float64()},
)


def _dtype_ok(actual: pl.DataType, expected: pl.DataType) -> bool:
    if actual == expected:
        return True
    # an all-null column read back from an empty or sparse table is acceptable anywhere
    return actual == pl.Null()


def validate(df: pl.DataFrame, table: Table, source: str = "") -> pl.DataFrame:
    """Check that ``df`` has every required column of ``table`` with the right dtype.

    Raises:
        SchemaError: naming the table, the source file and the missing or mistyped columns.
    """
    where = f" in {source}" if source else ""
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"The {table.name} table{where} lacks column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(table.columns)}."
        )
    expected = table.all_columns()
    wrong = [
        f"{c} is {df.schema[c]}, expected {expected[c]}"
        for c in df.columns
        if c in expected and not _dtype_ok(df.schema[c], expected[c])
    ]
    if wrong:
        raise SchemaError(f"The {table.name} table{where} has mistyped column(s): {'; '.join(wrong)}.")
    return df


def conform(df: pl.DataFrame, table: Table) -> pl.DataFrame:
    """Cast ``df`` to the table's dtypes and order its columns: required, optional, then extra.

    Raises:
        SchemaError: when a required column is missing or cannot be cast.
    """
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise SchemaError(f"Cannot write the {table.name} table: missing column(s) {', '.join(missing)}.")
    expected = table.all_columns()
    try:
        df = df.with_columns([pl.col(c).cast(t) for c, t in expected.items() if c in df.columns])
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(f"Cannot cast the {table.name} table to its schema: {exc}") from exc
    order = [c for c in expected if c in df.columns] + [c for c in df.columns if c not in expected]
    return df.select(order)


def empty(table: Table, with_optional: bool = False) -> pl.DataFrame:
    """An empty frame with the table's columns (and dtypes)."""
    cols = table.all_columns() if with_optional else table.columns
    return pl.DataFrame(schema=cols)
