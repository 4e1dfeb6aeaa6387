"""Cluster tables and the cluster bootstrap of error rates, the resampling under ``decompose``.

**What is resampled: clusters.** An image, its near copies (the manifest's ``dup_group``) and
its synthesised children (the synth table's ``parent_id``) are one cluster: they are not
independent evidence (a copy of an image the model gets wrong is wrong too), so the bootstrap
draws whole clusters, with replacement, within each stratum of clusters that touch the same
splits. Resampling them image by image made the intervals too narrow: 66% to 78% coverage
instead of 95% in the simulations of ``tests/test_truth.py``.

**Why it stays fast.** Clusters with the same outcome pattern (images and errors per split) are
exchangeable, so drawing ``m`` clusters uniformly is the same as drawing how many fall in each
pattern: one multinomial over the (few) patterns per replicate. 1,000,000 predictions with 1,000
replicates cost a group-by and milliseconds of draws (``benchmarks/report.py``). For clusters of
one image this is exactly the binomial bootstrap of the error count.

**Pseudo-observations.** Each stratum gets one pseudo-cluster of one image per split, half
wrong and half right (the bootstrap analogue of the Jeffreys prior, Beta(1/2, 1/2)): a plain
percentile bootstrap collapses to a zero-width interval when a split has no errors and
under-covers when it has a handful. With it the 95% intervals held the true gap in 94% to 97%
of 1,000 simulated runs from 200 images per split and error rates from 1% to 30%
(``tests/test_decompose.py`` and ``tests/test_truth.py`` check it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError
from shiftkit.core.schema import SPLITS

SYNTH_DOMAIN = "synth"  # the domain of synthesised children in the predictions table
PSEUDO = 0.5  # pseudo wrong images (and as many right ones) per split of each stratum


@dataclass(frozen=True)
class SplitCount:
    """How many images a split has and how many of them the model got wrong."""

    n: int
    errors: int

    @property
    def error(self) -> float:
        return self.errors / self.n


def split_counts(predictions: pl.DataFrame, *, include_synth: bool = True) -> dict[str, SplitCount]:
    """Images and errors per split (only the splits present, in SPLITS order).

    ``include_synth=False`` leaves out the synthesised children (domain ``synth``) of train and
    bridge images; by default they count, because the model was trained on that distribution.

    Raises:
        DataError: when the table has no rows, or a split name outside SPLITS.
    """
    df = predictions
    if not include_synth and "domain" in df.columns:
        df = df.filter(pl.col("domain") != SYNTH_DOMAIN)
    if df.height == 0:
        raise DataError("The predictions table has no rows to report on.")
    agg = df.group_by("split").agg(pl.len().alias("n"), (~pl.col("correct")).sum().alias("errors"))
    unknown = sorted(set(agg["split"].to_list()) - set(SPLITS))
    if unknown:
        raise DataError(
            f"The predictions table has unknown split name(s) {', '.join(map(repr, unknown))}; "
            f"expected: {', '.join(SPLITS)}."
        )
    rows = {r["split"]: SplitCount(int(r["n"]), int(r["errors"])) for r in agg.iter_rows(named=True)}
    return {s: rows[s] for s in SPLITS if s in rows}


# ---------------------------------------------------------------------------------------------
# clusters: the unit of resampling


def cluster_ids(manifest: pl.DataFrame | None = None, synth: pl.DataFrame | None = None) -> pl.DataFrame:
    """``image_id -> cluster``: an image's near-copy group, and for a synthesised child its parent's.

    Images in neither table are their own cluster (see :func:`outcomes`).

    Raises:
        DataError: when the manifest lists an image id twice (byte-identical synthesised copies share
            one id and are kept once).
    """
    parts = []
    groups = None
    if manifest is not None and manifest.height:
        groups = manifest.select("image_id", cluster=pl.coalesce("dup_group", "image_id"))
    if synth is not None and synth.height:
        # byte-identical copies share an image_id (and, almost always, their parent): one row each,
        # the smallest parent id when two parents happened to give the same bytes
        kids = synth.select("image_id", "parent_id").sort("image_id", "parent_id")
        kids = kids.unique("image_id", keep="first", maintain_order=True)
        if groups is not None:
            kids = kids.join(groups.rename({"image_id": "parent_id"}), on="parent_id", how="left")
            kids = kids.select("image_id", cluster=pl.coalesce("cluster", "parent_id"))
            # a synthesised image listed in both tables follows its parent
            groups = groups.join(kids, on="image_id", how="anti")
        else:
            kids = kids.select("image_id", cluster=pl.col("parent_id"))
        parts.append(kids)
    if groups is not None:
        parts.append(groups)
    if not parts:
        return pl.DataFrame(schema={"image_id": pl.String, "cluster": pl.String})
    return pl.concat(parts)


def outcomes(
    predictions: pl.DataFrame,
    clusters: pl.DataFrame | None = None,
    *,
    include_synth: bool = True,
    prefix: str = "",
) -> pl.DataFrame:
    """One row per prediction: ``cluster``, ``column`` (``prefix`` + split) and ``wrong``.

    Raises:
        DataError: when ``clusters`` lists an image id twice.
    """
    df = predictions
    if not include_synth and "domain" in df.columns:
        df = df.filter(pl.col("domain") != SYNTH_DOMAIN)
    df = df.select("image_id", "split", "correct")
    if clusters is not None and clusters.height:
        try:
            df = df.join(clusters, on="image_id", how="left", validate="m:1")
        except pl.exceptions.ComputeError as exc:
            raise DataError("The manifest or synth table lists an image_id twice; expected one row per image.") from exc
    else:
        df = df.with_columns(cluster=pl.lit(None, pl.String))
    column = pl.col("split").replace({s: prefix + s for s in SPLITS}) if prefix else pl.col("split")
    return df.select(cluster=pl.coalesce("cluster", "image_id"), column=column, wrong=~pl.col("correct"))


@dataclass(frozen=True)
class Stratum:
    """Clusters that touch the same columns: their outcome patterns and how many clusters share each."""

    mask: int  # bit i set: the clusters touch column i
    n: np.ndarray  # (patterns, columns) images per column
    k: np.ndarray  # (patterns, columns) wrong images per column
    weight: np.ndarray  # (patterns,) clusters with this pattern


@dataclass(frozen=True)
class ClusterTable:
    """Per-cluster outcomes, compressed to patterns: what the bootstrap draws from."""

    columns: tuple[str, ...]
    strata: tuple[Stratum, ...]

    def counts(self) -> dict[str, SplitCount]:
        n = sum((st.weight @ st.n for st in self.strata), np.zeros(len(self.columns), np.int64))
        k = sum((st.weight @ st.k for st in self.strata), np.zeros(len(self.columns), np.int64))
        return {c: SplitCount(int(n[i]), int(k[i])) for i, c in enumerate(self.columns) if n[i] > 0}

    def clusters(self) -> dict[str, int]:
        """How many clusters touch each column."""
        out = dict.fromkeys(self.columns, 0)
        for st in self.strata:
            for i, c in enumerate(self.columns):
                if st.mask >> i & 1:
                    out[c] += int(st.weight.sum())
        return {c: v for c, v in out.items() if v}

    @classmethod
    def from_counts(cls, counts: dict[str, SplitCount]) -> ClusterTable:
        """Every image its own cluster (what a bare count of images and errors can tell)."""
        columns = tuple(counts)
        strata = []
        for i, c in enumerate(counts.values()):
            n = np.zeros((2, len(columns)), np.int64)
            n[:, i] = 1
            k = np.zeros_like(n)
            k[1, i] = 1
            strata.append(Stratum(1 << i, n, k, np.array([c.n - c.errors, c.errors], np.int64)))
        return cls(columns, tuple(strata))


def cluster_table(frame: pl.DataFrame, columns: Sequence[str]) -> ClusterTable:
    """Compress :func:`outcomes` rows (cluster, column, wrong) to strata of outcome patterns.

    Clusters become integer codes and each cluster's images and errors per column two bincounts,
    so that a million rows cost about as much as one group-by over the few distinct patterns.

    Raises:
        DataError: when a row's column is not one of ``columns``.
    """
    unknown = sorted(set(frame["column"].unique().to_list()) - set(columns))
    if unknown:
        raise DataError(
            f"Predictions in unknown split(s) {', '.join(map(repr, unknown))}; expected: {', '.join(columns)}."
        )
    width = len(columns)
    code = frame["cluster"].rank("dense").to_numpy().astype(np.int64) - 1  # clusters as 0..M-1
    col = frame["column"].replace_strict({c: i for i, c in enumerate(columns)}, return_dtype=pl.Int64).to_numpy()
    flat = code * width + col
    size = (int(code.max()) + 1) * width if code.size else 0
    n = np.bincount(flat, minlength=size).reshape(-1, width)
    k = np.bincount(flat, weights=frame["wrong"].to_numpy(), minlength=size).astype(np.int64).reshape(-1, width)
    pats, weight = _patterns(np.column_stack([n, k]))
    mask = ((pats[:, :width] > 0) * (1 << np.arange(width))).sum(axis=1)
    strata = [
        Stratum(int(m), pats[mask == m, :width], pats[mask == m, width:], weight[mask == m])
        for m in np.unique(mask)
    ]
    return ClusterTable(tuple(columns), tuple(strata))


def _patterns(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix (sorted) and how often each occurs."""
    base = int(rows.max(initial=0)) + 1
    if rows.shape[1] * math.log2(base) < 62:  # one int64 key per row: a 1-d unique is a fast sort
        key = np.zeros(len(rows), np.int64)
        for j in range(rows.shape[1]):
            key = key * base + rows[:, j]
        uniq, counts = np.unique(key, return_counts=True)
        out = np.zeros((len(uniq), rows.shape[1]), np.int64)
        for j in range(rows.shape[1] - 1, -1, -1):
            uniq, out[:, j] = np.divmod(uniq, base)
        return out, counts
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    return uniq.astype(np.int64), counts


def run_table(
    predictions: pl.DataFrame, clusters: pl.DataFrame | None = None, *, include_synth: bool = True
) -> ClusterTable:
    """The cluster table of one run, one column per split present (in SPLITS order).

    Raises:
        DataError: when the table has no rows, or a split name outside SPLITS.
    """
    counts = split_counts(predictions, include_synth=include_synth)
    return cluster_table(outcomes(predictions, clusters, include_synth=include_synth), list(counts))


def joint_table(
    other: pl.DataFrame, this: pl.DataFrame, clusters: pl.DataFrame | None = None, *, include_synth: bool = True
) -> ClusterTable:
    """Two runs in one table (columns ``a:<split>`` for ``other``, ``b:<split>`` for ``this``): a
    cluster present in both runs is drawn for both at once (paired), the rest independently."""
    ca = split_counts(other, include_synth=include_synth)
    cb = split_counts(this, include_synth=include_synth)
    frame = pl.concat([
        outcomes(other, clusters, include_synth=include_synth, prefix="a:"),
        outcomes(this, clusters, include_synth=include_synth, prefix="b:"),
    ])
    return cluster_table(frame, [f"a:{s}" for s in ca] + [f"b:{s}" for s in cb])


def _stream(seed: int, *key: int) -> np.random.Generator:
    # one stream per (purpose, stratum): adding or removing a stratum never moves another's draws
    return np.random.default_rng([int(seed), *key])


def _pseudo(st: Stratum, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stratum's pseudo-cluster: as many images per column as its average cluster, every
    wrong/right combination of its columns, total weight 2 * PSEUDO (for clusters of one image:
    half a wrong and half a right image)."""
    cols = [i for i in range(width) if st.mask >> i & 1]
    size = (st.weight @ st.n) / st.weight.sum()
    combos = np.array(list(product((0, 1), repeat=len(cols))), float)
    n = np.zeros((len(combos), width))
    n[:, cols] = size[cols]
    k = np.zeros_like(n)
    k[:, cols] = combos * size[cols]
    return n, k, np.full(len(combos), 2 * PSEUDO / len(combos))


def bootstrap(table: ClusterTable, replicates: int, seed: int, key: int = 0) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each column's error rate (float64 arrays of length ``replicates``).

    Each replicate draws, within each stratum, as many clusters as it holds, with replacement
    (as a multinomial over its outcome patterns and its pseudo-cluster; module docstring).
    """
    width = len(table.columns)
    n_tot = np.zeros((replicates, width))
    k_tot = np.zeros((replicates, width))
    for st in table.strata:
        pn, pk, pw = _pseudo(st, width)
        m = int(st.weight.sum())
        probs = np.concatenate([st.weight, pw]).astype(float)
        draws = _stream(seed, key, st.mask).multinomial(m, probs / probs.sum(), size=replicates).astype(float)
        n_tot += draws @ np.vstack([st.n, pn])
        k_tot += draws @ np.vstack([st.k, pk])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {c: k_tot[:, i] / n_tot[:, i] for i, c in enumerate(table.columns)}
