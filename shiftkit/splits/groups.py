"""Stable hashing and grouping of split rows: 64-bit keys per group, the group index, split codes.

Membership is decided per ``dup_group`` by a 64-bit hash of (group, seed, purpose): stable across
runs and machines, and a giant cluster of near copies is one group. ``Groups`` indexes rows by
such a key (sort order, group starts, each row's group) for fast per-group reductions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from shiftkit.core.schema import SPLITS

HELD_OUT = ("dev", "test")
CODE = {s: i for i, s in enumerate(SPLITS)}  # a split's integer code (train 0, bridge 1, dev 2, test 3)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


# ---------------------------------------------------------------------------------------------
# stable hashing


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective, well-avalanching scramble of uint64 values."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def blake64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def group_keys(groups: pl.Series) -> np.ndarray:
    """A stable 64-bit key per group name.

    Groups are normally an ``image_id`` (sha256 hex, already a uniform hash of the file bytes):
    for a 64-character name that starts with 16 hex digits, those digits are the key, parsed by
    polars in bulk. Any other name is keyed by blake2b. Neither depends on the polars version
    (``pl.hash`` does, so it is never used).
    """
    groups = groups.cast(pl.String)
    frame = pl.DataFrame({"g": groups}).with_columns(
        is_sha=pl.col("g").str.len_bytes() == 64,
        key=pl.col("g").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False),
    )
    keys = frame["key"].fill_null(0).to_numpy().astype(np.uint64, copy=True)
    other = np.flatnonzero(~(frame["is_sha"] & frame["key"].is_not_null()).to_numpy())
    if other.size:
        names = groups.gather(other).to_list()
        keys[other] = np.array([blake64(n) for n in names], dtype=np.uint64)
    return keys


def membership_hash(groups: pl.Series, seed: int, purpose: str) -> np.ndarray:
    """uint64 hash of (group, seed, purpose): the order in which groups are drawn for a split."""
    salt = np.uint64(blake64(f"shiftkit-split:{seed}:{purpose}"))
    return mix64(group_keys(groups) ^ salt)


def enum_codes(values: pl.Series, names: list[str]) -> np.ndarray:
    """Integer codes of strings in the order of ``names`` (an Enum cast: fast on a million rows)."""
    return values.cast(pl.Enum(names)).to_physical().fill_null(0).to_numpy().astype(np.int64)


@dataclass
@dataclass
class Groups:
    """Rows grouped by a 64-bit group key: the sort order, group starts and each row's group."""

    order: np.ndarray
    starts: np.ndarray
    inverse: np.ndarray
    keys: np.ndarray  # the key of each group

    @classmethod
    def of(cls, keys: np.ndarray) -> Groups:
        # polars' sort is parallel; the order within a group does not matter (min/max reductions)
        order = pl.Series(keys, dtype=pl.UInt64).arg_sort().to_numpy().astype(np.int64)
        sk = keys[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if sk.size else np.zeros(0, np.int64)
        sizes = np.diff(np.r_[starts, sk.size])
        inverse = np.empty(sk.size, np.int64)
        inverse[order] = np.repeat(np.arange(starts.size), sizes)
        return cls(order, starts, inverse, sk[starts])

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(np.r_[self.starts, self.order.size])

    def reduce(self, ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        return ufunc.reduceat(values[self.order], self.starts) if self.starts.size else values[:0]


# ---------------------------------------------------------------------------------------------
# the user's groups joined with the near-copy groups


def union_groups(dup_group: pl.Series, user_group: pl.Series) -> pl.Series:
    """Each row's group when near copies (``dup_group``) and the user's groups (``group``) are one
    relation: the connected components of "same dup_group or same user group", named by the
    smallest ``dup_group`` they hold (a null user group joins nothing).

    Two photos of one object (one user group) whose second has a near copy elsewhere are all one
    group, so none of them can straddle two splits.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    dup = dup_group.cast(pl.String)
    if user_group.null_count() == user_group.len():
        return dup.alias("group")
    frame = pl.DataFrame({"d": dup, "u": user_group.cast(pl.String)}).with_columns(
        dc=pl.col("d").rank("dense").cast(pl.Int64) - 1,
        uc=pl.col("u").rank("dense").cast(pl.Int64) - 1,
    )
    n_d = int(frame["dc"].max()) + 1
    n_u = int(frame["uc"].max()) + 1
    edges = frame.filter(pl.col("uc").is_not_null())
    rows = edges["dc"].to_numpy()
    cols = edges["uc"].to_numpy() + n_d
    graph = coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(n_d + n_u, n_d + n_u))
    _, comp = connected_components(graph, directed=False)
    frame = frame.with_columns(comp=pl.Series(comp[frame["dc"].to_numpy()], dtype=pl.Int64))
    names = frame.group_by("comp").agg(pl.col("d").min().alias("group"))
    return frame.join(names, on="comp", how="left", maintain_order="left")["group"]
