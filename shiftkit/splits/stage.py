"""Split assignment (train / bridge / dev / test), composition summary and leakage check.

Strategies (the ``STRATEGIES`` table: a new one is a function and an entry there):

- ``target`` (the default, the recipe): dev and test come only from the target domain; the rest of
  the target and every other domain form the training pool; the bridge is carved from that pool,
  stratified by (domain, label), so it has the training mixture of domains and is never trained on.
- ``shuffle``: the naive mix of everything, kept to show why it is wrong; its summary states how
  many dev and test images come from the target.

Sizes: ``dev`` and ``test`` are fractions of the images they are drawn from (the target domain
under ``target``, every image under ``shuffle``) or counts; ``bridge`` is a fraction of the
training pool or a count. Fractions are rounded half up.

Membership is decided per ``dup_group`` (every copy of an image lands in the same split) by a
64-bit hash of (group, seed, purpose): groups are taken in hash order within each stratum, each
one only if it fits in what the stratum still wants, so a giant cluster of near copies stays in
train instead of swamping a small split. The quota of each stratum is its share of the requested
size by the largest-remainder method, so a split holds exactly the requested number of images
when the groups allow it. **Tolerance**: a split never holds more than requested; it holds fewer
only when every remaining group of a stratum is larger than the gap, by at most
``strata x (largest group - 1)`` images (a group is never cut in two). A group's stratum is its
members' most common label.

Stability: when previous splits are given with the same settings (strategy, target domain, seed,
sizes, min_per_label), every image that had a split keeps it; a new image whose group already
has a split joins it; only new groups are drawn, to fill what the sizes now ask for. When the
settings changed, everything is reshuffled and the result says so.

Labels with fewer than ``min_per_label`` images where dev and test are drawn cannot be stratified:
they are pooled into one stratum, ``(rare labels)``, sampled without regard to label, and a
warning names them (the documented fallback).

After every split, :func:`check_leakage` fails loudly (``DataError`` naming the images) if an
exact or near duplicate (same ``image_id`` or ``dup_group``) straddles train/bridge and dev/test,
or dev and test.

The recipe's first rule holds as an invariant under ``target``: an image of another domain whose
group is in dev or test (a web near copy of a dev/test image, typically from a later drop) gets
the status ``held_out_copy``: it is in no split, never trained on, and ``composition.json``
names it with the dev/test image it copies. Readers of the splits select splits by name, so
they never see it. Images without a label (``shiftkit ingest --unlabelled``) take no part in the
draw: they get the status ``unlabelled`` (counted per domain in ``composition.json``), the pool
that only synthesis and ``shiftkit shift`` read.

Representativeness: dev and test are stratified by label; the composition then compares each
class's count in dev and test with its share of the target (the central 99% band of a
hypergeometric draw of that size) and warns about a class outside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError, InputPathError
from shiftkit.core.files import read_json, read_table, replace_dir, write_json, write_table, write_text
from shiftkit.core.schema import HELD_OUT_COPY, MANIFEST, SPLITS, SPLITS_TABLE, UNLABELLED, validate
from shiftkit.splits.params import SplitParams

HELD_OUT = ("dev", "test")
RARE = "(rare labels)"
SPLITS_FILE = "splits.parquet"
COMPOSITION_JSON = "composition.json"
COMPOSITION_MD = "composition.md"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class SplitWarning(UserWarning):
    """A split that works but deserves attention (fallback for rare labels, a reshuffle)."""


# ---------------------------------------------------------------------------------------------
# stable hashing


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective, well-avalanching scramble of uint64 values."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def _blake64(text: str) -> int:
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
        keys[other] = np.array([_blake64(n) for n in names], dtype=np.uint64)
    return keys


def membership_hash(groups: pl.Series, seed: int, purpose: str) -> np.ndarray:
    """uint64 hash of (group, seed, purpose): the order in which groups are drawn for a split."""
    salt = np.uint64(_blake64(f"shiftkit-split:{seed}:{purpose}"))
    return _mix(group_keys(groups) ^ salt)


# ---------------------------------------------------------------------------------------------
# sizes


def requested_size(value: int | float, available: int) -> int:
    """A count as given, or a fraction of ``available`` rounded half up."""
    if isinstance(value, float):
        return int(math.floor(value * available + 0.5))
    return int(value)


def allocate(sizes: dict[str, int], total: int, caps: dict[str, int] | None = None) -> dict[str, int]:
    """Share ``total`` among strata in proportion to ``sizes`` (largest remainder, capped).

    Ties in the remainders go to the stratum that sorts first, so the result is deterministic.
    """
    caps = dict(sizes) if caps is None else caps
    n = sum(sizes.values())
    if n == 0 or total <= 0:
        return {k: 0 for k in sizes}
    exact = {k: total * v / n for k, v in sizes.items()}
    out = {k: min(int(math.floor(x)), caps[k]) for k, x in exact.items()}
    left = total - sum(out.values())
    while left > 0:
        open_ = [k for k in sizes if out[k] < caps[k]]
        if not open_:
            break
        open_.sort(key=lambda k: (-(exact[k] - out[k]), k))
        for k in open_[:left]:
            out[k] += 1
        left = total - sum(out.values())
    return out


# ---------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class SplitResult:
    """The splits table (image_id, split, group, domain, label) and what to say about it."""

    table: pl.DataFrame
    composition: dict[str, Any]
    markdown: str
    warnings: tuple[str, ...] = ()
    kept: int = 0  # images that kept a previous split
    assigned: int = 0  # images assigned now
    reshuffled: bool = False

    def summary(self) -> str:
        """One line for the command line."""
        t = self.composition["totals"]
        sizes = ", ".join(f"{s} {t.get(s, {}).get('images', 0):,}" for s in SPLITS)
        how = "reshuffled" if self.reshuffled else f"kept {self.kept:,}, assigned {self.assigned:,}"
        held = len(self.composition.get("held_out_copies", []))
        copies = f"; {held:,} image(s) of other domains held out as near copies of dev/test images" if held else ""
        return f"split ({self.composition['settings']['strategy']}): {sizes} ({how}){copies}"


# ---------------------------------------------------------------------------------------------
# the split


def _prepare(manifest: pl.DataFrame, params: SplitParams) -> pl.DataFrame:
    needed = ["image_id", "domain", "label", "dup_group"]
    missing = [c for c in needed if c not in manifest.columns]
    if missing:
        raise DataError(f"The manifest lacks column(s) {', '.join(missing)} that split needs.")
    if manifest.height == 0:
        raise DataError("The manifest is empty: there is nothing to split.")
    rows = manifest.select(
        pl.col("image_id").cast(pl.String),
        pl.col("domain").cast(pl.String),
        pl.col("label").cast(pl.String),
        pl.col("dup_group").cast(pl.String).alias("group"),
    )
    if rows["group"].null_count():  # an image without a group is a group of its own
        rows = rows.with_columns(group=pl.coalesce("group", "image_id"))
    for col in ("image_id", "domain", "label"):
        if rows[col].null_count():
            raise DataError(f"The manifest has {rows[col].null_count()} row(s) without a {col}; every image needs one.")
    twice = rows.filter(pl.col("image_id").is_duplicated())
    if twice.height:
        ids = twice["image_id"].unique(maintain_order=True)
        raise DataError(
            f"The manifest lists {ids.len()} image_id(s) more than once (e.g. {ids[0][:16]}, {twice.height} rows): "
            f"every image must appear once; re-run shiftkit ingest to rebuild it."
        )
    domains = sorted(rows["domain"].unique().to_list())
    if params.target_domain not in domains:
        raise DataError(
            f"The target domain {params.target_domain!r} (split.target_domain) is not in the manifest, "
            f"or has no images; its domains are: {', '.join(domains)}."
        )
    return rows


def _previous(
    previous: pl.DataFrame | None, previous_settings: dict | None, params: SplitParams, notes: list[str]
) -> tuple[pl.DataFrame | None, bool]:
    if previous is None or previous.height == 0:
        return None, False
    now = params.settings()
    if previous_settings != now:
        before = previous_settings or {}
        changed = sorted(k for k in set(now) | set(before) if before.get(k) != now.get(k))
        what = ", ".join(f"{k} {before.get(k)!r} -> {now.get(k)!r}" for k in changed) or "unknown settings"
        notes.append(
            f"The split settings changed ({what}): previous splits are not honoured and every image is assigned afresh."
        )
        return None, True
    bad = previous.filter(~pl.col("split").is_in([*SPLITS, HELD_OUT_COPY, UNLABELLED]))
    if bad.height:
        raise DataError(
            f"The previous splits table gives image {bad['image_id'][0]} the split {bad['split'][0]!r}; "
            f"expected one of {', '.join(SPLITS)}, {HELD_OUT_COPY} or {UNLABELLED}."
        )
    # a held-out copy had no split: it is judged afresh (its group may have left dev/test)
    kept = previous.filter(pl.col("split").is_in(SPLITS))
    return kept.select("image_id", pl.col("split").alias("old")).unique("image_id", keep="first"), False


def _codes(values: pl.Series, names: list[str]) -> np.ndarray:
    """Integer codes of strings in the order of ``names`` (an Enum cast: fast on a million rows)."""
    return values.cast(pl.Enum(names)).to_physical().fill_null(0).to_numpy().astype(np.int64)


@dataclass
class _Groups:
    """Rows grouped by a 64-bit group key: the sort order, group starts and each row's group."""

    order: np.ndarray
    starts: np.ndarray
    inverse: np.ndarray
    keys: np.ndarray  # the key of each group

    @classmethod
    def of(cls, keys: np.ndarray) -> _Groups:
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


def _greedy(sizes: list[int], suffix_min: list[int], wants: list[int]) -> tuple[list[int], list[int]]:
    """Fill each want in turn from groups in the given (hash) order, taking a group only if it fits.

    Returns the want index per group (-1: none) and how many images each want got. A group
    larger than the gap left is skipped, so a giant cluster of near copies never swamps a split.
    """
    out = [-1] * len(sizes)
    got = [0] * len(wants)
    for w_i, want in enumerate(wants):
        taken = 0
        if want <= 0:
            continue
        for k, nk in enumerate(sizes):
            if out[k] >= 0:
                continue
            if want - taken < suffix_min[k]:
                break  # nothing left is small enough to fit
            if taken + nk <= want:
                out[k] = w_i
                taken += nk
                if taken == want:
                    break
        got[w_i] = taken
    return out, got


def _fill(
    assigned: np.ndarray,
    candidates: np.ndarray,
    stratum: np.ndarray,
    u: np.ndarray,
    n: np.ndarray,
    wants: list[tuple[int, np.ndarray]],
) -> None:
    """Fill splits in turn with candidate groups in hash order per stratum, in place.

    ``wants`` holds (split code, images still wanted per stratum). A group is taken when it
    fits in what its stratum still wants, so a split never exceeds its request; it falls short
    only when every remaining group of the stratum is larger than the gap.
    """
    idx_all = np.flatnonzero(candidates)
    if idx_all.size == 0:
        return
    nstrata = wants[0][1].size
    want_table = np.stack([w for _, w in wants], axis=1)  # (strata, splits)
    total_want = want_table.sum(axis=1)
    # Only the lowest hashes of a stratum can be taken: sort those, not the whole pool (about
    # twice what is wanted). A stratum that the short list cannot fill is redone in full below,
    # so the result is the same as sorting everything.
    have = np.bincount(stratum[idx_all], weights=n[idx_all], minlength=nstrata)
    share = np.minimum(1.0, (2.0 * total_want + 64.0) / np.maximum(have, 1))
    uf = u[idx_all].astype(np.float64) * (1.0 / 18446744073709551616.0)
    short = idx_all[uf < share[stratum[idx_all]]]
    todo: set[int] = set()
    for idx, full in ((short, False), (idx_all, True)):
        o = idx[np.lexsort((u[idx], stratum[idx]))]
        s = stratum[o]
        bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
        redo = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            st = int(s[lo])
            if total_want[st] <= 0 or (full and st not in todo):
                continue
            seq = o[lo:hi]
            sizes = n[seq]
            suffix_min = np.minimum.accumulate(sizes[::-1])[::-1]
            picks, got = _greedy(sizes.tolist(), suffix_min.tolist(), want_table[st].tolist())
            if not full and got != want_table[st].tolist() and share[st] < 1.0:
                redo.append(st)
                continue
            picks_arr = np.asarray(picks)
            for w_i, (code, _) in enumerate(wants):
                assigned[seq[picks_arr == w_i]] = code
        if full:
            break
        todo = set(redo)
        if not todo:
            break


def _group_labels(g: _Groups, label: np.ndarray) -> np.ndarray:
    """The label of each group: its members' most common label (ties: the first in sort order)."""
    glabel = label[g.order[g.starts]].copy()
    sizes = g.sizes
    multi = sizes[g.inverse] > 1
    if multi.any():
        sub = pl.DataFrame({"g": g.inverse[multi], "label": label[multi]})
        top = (
            sub.group_by("g", "label")
            .len()
            .sort(["g", "len", "label"], descending=[False, True, False])
            .unique("g", keep="first")
        )
        glabel[top["g"].to_numpy()] = top["label"].to_numpy()
    return glabel


def _quota(names: list[str], sizes: np.ndarray, total: int, caps: np.ndarray | None = None) -> np.ndarray:
    cap = None if caps is None else dict(zip(names, caps.tolist(), strict=False))
    got = allocate(dict(zip(names, sizes.tolist(), strict=False)), total, cap)
    return np.array([got[k] for k in names], np.int64)


CODE = {s: i for i, s in enumerate(SPLITS)}


@dataclass
class _Coded:
    """The manifest's rows as integer codes, grouped by dup_group, and each group's split so far."""

    rows: pl.DataFrame  # image_id, domain, label, group (strings)
    label: np.ndarray  # per row, an index into label_names
    domain: np.ndarray  # per row, an index into domain_names
    label_names: list[str]
    domain_names: list[str]
    g: _Groups
    n: np.ndarray  # images per group
    glabel: np.ndarray  # each group's most common label
    gdomain: np.ndarray  # each group's lowest domain code
    target_only: np.ndarray  # groups whose every image is of the target domain
    old_code: np.ndarray  # per row, the previous split's code or -1
    assigned: np.ndarray  # per group, the split code decided so far or -1

    def have(self, row_mask: np.ndarray, code: int, row_strat: np.ndarray, size: int) -> np.ndarray:
        """Images per stratum of the rows in ``row_mask`` whose group already holds split ``code``."""
        m = row_mask & (self.assigned[self.g.inverse] == code)
        return np.bincount(row_strat[m], minlength=size).astype(np.int64)


def _old_codes(rows: pl.DataFrame, old: pl.DataFrame | None, notes: list[str]) -> np.ndarray:
    """Each row's split in the previous table (its code), -1 where it had none."""
    if old is None:
        return np.full(rows.height, -1, np.int64)
    gone = old.join(rows.select("image_id"), on="image_id", how="anti").height
    if gone:
        notes.append(f"{gone:,} image(s) of the previous splits are no longer in the manifest and were dropped.")
    joined = rows.select("image_id").join(old, on="image_id", how="left", maintain_order="left")
    old_code = _codes(joined["old"], list(SPLITS))
    return np.where(joined["old"].is_null().to_numpy(), -1, old_code)


def _encode(rows: pl.DataFrame, params: SplitParams, old_code: np.ndarray) -> _Coded:
    label_names = sorted(rows["label"].unique().to_list())
    domain_names = sorted(rows["domain"].unique().to_list())
    label = _codes(rows["label"], label_names)
    domain = _codes(rows["domain"], domain_names)
    g = _Groups.of(group_keys(rows["group"]))
    is_target = (domain == domain_names.index(params.target_domain)).astype(np.int8)
    return _Coded(
        rows=rows,
        label=label,
        domain=domain,
        label_names=label_names,
        domain_names=domain_names,
        g=g,
        n=g.sizes.astype(np.int64),
        glabel=_group_labels(g, label),
        gdomain=g.reduce(np.minimum, domain),
        target_only=g.reduce(np.minimum, is_target).astype(bool),
        old_code=old_code,
        assigned=g.reduce(np.maximum, old_code),  # a group with a previous split keeps it
    )


# ---------------------------------------------------------------------------------------------
# strategies: which groups dev and test may be drawn from


def _target_pool(c: _Coded, params: SplitParams) -> tuple[np.ndarray, str]:
    """The recipe: dev and test only from groups that hold nothing but target images."""
    return c.target_only, f"the target domain {params.target_domain!r}"


def _shuffle_pool(c: _Coded, params: SplitParams) -> tuple[np.ndarray, str]:
    """The naive mix, kept to show why it is wrong: dev and test from every group."""
    return np.ones_like(c.target_only), "the manifest"


@dataclass(frozen=True)
class Strategy:
    """Which groups dev and test are drawn from, and whether dev and test must be target-only
    (then an image of another domain in a dev/test group becomes a ``held_out_copy``)."""

    pool: Callable[[_Coded, SplitParams], tuple[np.ndarray, str]]
    target_only: bool


# A new strategy is one function (the groups eligible for dev/test) and one entry here.
STRATEGIES: dict[str, Strategy] = {
    "target": Strategy(_target_pool, target_only=True),
    "shuffle": Strategy(_shuffle_pool, target_only=False),
}


def _holdout_sizes(params: SplitParams, available: int, source: str) -> tuple[int, int]:
    """The dev and test sizes asked for, checked against what ``source`` holds."""
    if available == 0:
        raise DataError(
            f"The target domain {params.target_domain!r} has no image that can go to dev or test: every one is a "
            f"near copy of an image of another domain."
        )
    dev_n = requested_size(params.dev, available)
    test_n = requested_size(params.test, available)
    for name, k in (("dev", dev_n), ("test", test_n)):
        if k < 1:
            raise DataError(
                f"The 'split.{name}' size {getattr(params, name)!r} of {available} images in {source} "
                f"gives an empty {name} set; ask for a larger fraction or a count >= 1."
            )
    if dev_n + test_n > available:
        raise DataError(
            f"dev ({dev_n}) + test ({test_n}) = {dev_n + test_n} images were asked for, but {source} "
            f"holds only {available} usable images; lower split.dev / split.test."
        )
    return dev_n, test_n


def _draw_holdout(c: _Coded, params: SplitParams, notes: list[str]) -> tuple[int, int]:
    """Fill dev and test from the strategy's groups, stratified by label; the sizes asked for."""
    eligible, source = STRATEGIES[params.strategy].pool(c, params)
    dev_n, test_n = _holdout_sizes(params, int(c.n[eligible].sum()), source)
    # Quotas follow the images' own labels (a group of near copies may mix labels); groups are
    # then drawn into the stratum of their most common label.
    row_elig = eligible[c.g.inverse]
    per_label = np.bincount(c.label[row_elig], minlength=len(c.label_names)).astype(np.int64)
    rare = [lab for lab, k in zip(c.label_names, per_label.tolist(), strict=False) if 0 < k < params.min_per_label]
    if rare:
        notes.append(
            f"Label(s) {', '.join(map(repr, rare))} have fewer than {params.min_per_label} images in {source} "
            f"(split.min_per_label): too few to stratify, so they are pooled into one stratum "
            f"'{RARE}' and sampled without regard to label."
        )
    strata_names = c.label_names + [RARE]
    rare_codes = [c.label_names.index(r) for r in rare]
    stratum = np.where(np.isin(c.glabel, rare_codes), len(c.label_names), c.glabel)
    row_stratum = np.where(np.isin(c.label, rare_codes), len(c.label_names), c.label)
    sizes = np.bincount(row_stratum[row_elig], minlength=len(strata_names)).astype(np.int64)
    dev_q = _quota(strata_names, sizes, dev_n)
    test_q = _quota(strata_names, sizes, test_n, sizes - dev_q)
    k = len(strata_names)
    wants = [
        (CODE["dev"], np.maximum(0, dev_q - c.have(row_elig, CODE["dev"], row_stratum, k))),
        (CODE["test"], np.maximum(0, test_q - c.have(row_elig, CODE["test"], row_stratum, k))),
    ]
    salt = np.uint64(_blake64(f"shiftkit-split:{params.seed}:holdout"))
    _fill(c.assigned, eligible & (c.assigned < 0), stratum, _mix(c.g.keys ^ salt), c.n, wants)
    return dev_n, test_n


def _draw_bridge(c: _Coded, params: SplitParams) -> int:
    """Carve the bridge from the training pool, stratified by (domain, label); the size asked for."""
    in_pool = c.assigned <= CODE["bridge"]  # unassigned (-1), train or bridge
    pool_n = int(c.n[in_pool].sum())
    bridge_n = requested_size(params.bridge, pool_n)
    if bridge_n >= pool_n:
        raise DataError(
            f"The bridge ({bridge_n} images, split.bridge = {params.bridge!r}) would take the whole "
            f"training pool of {pool_n} images; lower split.bridge."
        )
    if bridge_n < 1:
        raise DataError(
            f"The 'split.bridge' size {params.bridge!r} of a training pool of {pool_n} images gives an "
            f"empty bridge; ask for a larger fraction or a count >= 1."
        )
    nl = len(c.label_names)
    bstratum = c.gdomain * nl + c.glabel
    row_bstratum = c.domain * nl + c.label
    row_pool = in_pool[c.g.inverse]
    bnames = [f"{d}\x00{lab}" for d in c.domain_names for lab in c.label_names]
    bsizes = np.bincount(row_bstratum[row_pool], minlength=len(bnames)).astype(np.int64)
    bridge_q = _quota(bnames, bsizes, bridge_n)
    have = c.have(row_pool, CODE["bridge"], row_bstratum, len(bnames))
    salt = np.uint64(_blake64(f"shiftkit-split:{params.seed}:bridge"))
    _fill(
        c.assigned,
        in_pool & (c.assigned < 0),
        bstratum,
        _mix(c.g.keys ^ salt),
        c.n,
        [(CODE["bridge"], np.maximum(0, bridge_q - have))],
    )
    return bridge_n


def _check_filled(c: _Coded, asked: dict[str, int], notes: list[str]) -> None:
    """Note a split that holds fewer images than asked for; fail on an empty one."""
    filled = np.bincount(c.assigned, weights=c.n, minlength=len(SPLITS)).astype(np.int64)
    for name in ("dev", "test", "bridge"):
        got = int(filled[CODE[name]])
        if 0 < got < asked[name]:
            notes.append(
                f"{name} holds {got:,} of the {asked[name]:,} images asked for: the rest of "
                f"some labels is in groups of near copies too large to fit (the largest has {int(c.n.max()):,} "
                f"images), which stay in train. A smaller ingest.near_dup_radius makes smaller groups."
            )
        if got == 0:
            raise DataError(
                f"The {name} set is empty: every group of near copies it could take is larger than the "
                f"{asked[name]} image(s) asked for; ask for more."
            )


def assign(
    manifest: pl.DataFrame,
    params: SplitParams | None = None,
    previous: pl.DataFrame | None = None,
    previous_settings: dict | None = None,
) -> SplitResult:
    """Assign every image of ``manifest`` to train, bridge, dev or test.

    Args:
        manifest: a manifest table (``image_id``, ``domain``, ``label``, ``dup_group``).
        params: the ``split`` params section (defaults if None).
        previous: an earlier splits table; its images keep their split when ``previous_settings``
            equal ``params.settings()``.
        previous_settings: the settings the earlier table was made with.

    Raises:
        DataError: the target domain is missing or empty, the requested sizes exceed what is
            available, the manifest is malformed, or an exact or near duplicate straddles the
            training splits and dev/test (leakage).
    """
    params = params or SplitParams()
    notes: list[str] = []
    pool = _unlabelled(manifest)
    if pool.height:
        manifest = manifest.filter(pl.col("label").is_not_null())
    rows = _prepare(manifest, params)
    old, reshuffled = _previous(previous, previous_settings, params, notes)
    c = _encode(rows, params, _old_codes(rows, old, notes))
    dev_n, test_n = _draw_holdout(c, params, notes)
    bridge_n = _draw_bridge(c, params)
    c.assigned[c.assigned < 0] = CODE["train"]
    _check_filled(c, {"dev": dev_n, "test": test_n, "bridge": bridge_n}, notes)
    result = _result(c, params, notes, reshuffled)
    return _with_unlabelled(result, pool) if pool.height else result


def _unlabelled(manifest: pl.DataFrame) -> pl.DataFrame:
    """The rows of images without a label, as splits-table rows of status ``unlabelled``."""
    if "label" not in manifest.columns or not manifest["label"].null_count():
        return pl.DataFrame()
    pool = manifest.filter(pl.col("label").is_null())
    return pool.select(
        pl.col("image_id").cast(pl.String),
        pl.lit(UNLABELLED).alias("split"),
        pl.coalesce(pl.col("dup_group").cast(pl.String), pl.col("image_id").cast(pl.String)).alias("group"),
        pl.col("domain").cast(pl.String),
        pl.col("label").cast(pl.String),
    )


def _with_unlabelled(result: SplitResult, pool: pl.DataFrame) -> SplitResult:
    """``result`` with the unlabelled pool appended to its table and counted in its composition."""
    counts = dict(sorted(Counter(pool["domain"].to_list()).items()))
    composition = {**result.composition, "unlabelled": counts}
    return dataclasses.replace(
        result,
        table=pl.concat([result.table, pool.select(result.table.columns)], how="vertical"),
        composition=composition,
        markdown=composition_markdown(composition),
        assigned=result.assigned + pool.height,
    )


def _held_out_copies(c: _Coded, params: SplitParams, split_code: np.ndarray) -> np.ndarray:
    """Rows of another domain whose group is in dev or test: the recipe's first rule excludes them."""
    if not STRATEGIES[params.strategy].target_only:
        return np.zeros(split_code.size, bool)
    other = c.domain != c.domain_names.index(params.target_domain)
    return other & ((split_code == CODE["dev"]) | (split_code == CODE["test"]))


def _copied(table: pl.DataFrame, params: SplitParams) -> list[dict[str, Any]]:
    """Each held-out copy with the dev/test image of its group that it copies (the first by id)."""
    held = table.filter(pl.col("split") == HELD_OUT_COPY)
    if held.height == 0:
        return []
    originals = (
        table.filter(pl.col("split").is_in(HELD_OUT) & (pl.col("domain") == params.target_domain))
        .sort("image_id")
        .group_by("group", maintain_order=True)
        .agg(pl.col("image_id").first().alias("copies"), pl.col("split").first().alias("copies_split"))
    )
    out = held.join(originals, on="group", how="left").sort("image_id")
    return out.select("image_id", "domain", "label", "group", "copies", "copies_split").to_dicts()


def _result(c: _Coded, params: SplitParams, notes: list[str], reshuffled: bool) -> SplitResult:
    """The splits table (checked for leakage), its composition and the notes, as warnings too."""
    split_code = np.where(c.old_code >= 0, c.old_code, c.assigned[c.g.inverse])
    held = _held_out_copies(c, params, split_code)
    _check_codes(c.rows, split_code, c.g)  # a held-out copy counts on its group's side here
    names = pl.Series("split", split_code).replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String)
    table = c.rows.select(
        "image_id",
        pl.when(pl.Series(held)).then(pl.lit(HELD_OUT_COPY)).otherwise(names).alias("split"),
        "group",
        "domain",
        "label",
    )
    copies = _copied(table, params)
    if copies:
        notes.append(
            f"{len(copies):,} image(s) of other domains are near copies of dev/test images and are held out of "
            f"every split ({HELD_OUT_COPY}): they are listed in composition.json."
        )
    inside = ~held
    shares = class_shares(split_code[inside], c.domain[inside], c.label[inside], c.domain_names, c.label_names, params)
    notes.extend(share_warnings(shares))
    kept = int((c.old_code >= 0).sum())
    for note in notes:
        warnings.warn(note, SplitWarning, stacklevel=3)
    composition = summarize_codes(
        split_code[inside],
        c.domain[inside],
        c.label[inside],
        c.domain_names,
        c.label_names,
        params,
        notes,
        kept=kept,
        reshuffled=reshuffled,
    )
    composition.update(held_out_copies=copies, class_shares=shares)
    return SplitResult(
        table=table,
        composition=composition,
        markdown=composition_markdown(composition),
        warnings=tuple(notes),
        kept=kept,
        assigned=table.height - kept,
        reshuffled=reshuffled,
    )


SHARE_LEVEL = 0.99  # the band a class's dev/test count is expected in, were they drawn at random


def class_shares(
    split: np.ndarray,
    domain: np.ndarray,
    label: np.ndarray,
    domain_names: list[str],
    label_names: list[str],
    params: SplitParams,
) -> list[dict[str, Any]]:
    """Each class's share of the target images in dev and in test against its share of the target.

    The band is the central ``SHARE_LEVEL`` interval of the hypergeometric count: what a simple
    random draw of that many images from the target would give. A stratified draw lands far
    inside it; a count outside says that groups of near copies kept a class out.
    """
    from scipy.stats import hypergeom

    if params.target_domain not in domain_names:
        return []
    is_t = domain == domain_names.index(params.target_domain)
    pool = np.bincount(label[is_t], minlength=len(label_names))
    big_n = int(pool.sum())
    rows = []
    for name in HELD_OUT:
        counts = np.bincount(label[is_t & (split == CODE[name])], minlength=len(label_names))
        n = int(counts.sum())
        if n == 0 or big_n == 0:
            continue
        lo = hypergeom.ppf((1 - SHARE_LEVEL) / 2, big_n, pool, n)
        hi = hypergeom.ppf((1 + SHARE_LEVEL) / 2, big_n, pool, n)
        for k, lab in enumerate(label_names):
            if pool[k] == 0:
                continue
            rows.append(
                {
                    "split": name,
                    "label": lab,
                    "images": int(counts[k]),
                    "share": round(float(counts[k]) / n, 4),
                    "target_share": round(float(pool[k]) / big_n, 4),
                    "low": int(lo[k]),
                    "high": int(hi[k]),
                    "within": bool(lo[k] <= counts[k] <= hi[k]),
                }
            )
    return rows


def share_warnings(shares: list[dict[str, Any]]) -> list[str]:
    """One warning per split whose class shares leave their band (see ``class_shares``)."""
    out = []
    for name in HELD_OUT:
        off = [r for r in shares if r["split"] == name and not r["within"]]
        if off:
            parts = "; ".join(
                f"{r['label']!r} {r['images']} ({r['share']:.1%} vs {r['target_share']:.1%}, expected "
                f"{r['low']}-{r['high']})"
                for r in off[:10]
            )
            out.append(
                f"{name} does not represent the target: {len(off)} class(es) outside the {SHARE_LEVEL:.0%} band "
                f"of a random draw ({parts}). Large groups of near copies keep images out of {name}."
            )
    return out


# ---------------------------------------------------------------------------------------------
# leakage

_SIDE = np.array([0, 0, 1, 2], np.int8)  # train and bridge are one side; dev and test one each


def _check_codes(rows: pl.DataFrame, split_code: np.ndarray, g: _Groups | None = None, limit: int = 10) -> None:
    side = _SIDE[split_code]
    for key in ("image_id", "group"):
        if key == "image_id":
            if g is not None and (rows["image_id"] == rows["group"]).all():
                continue  # each image is its own group: the group check below covers it
            ids = pl.Series(group_keys(rows[key]), dtype=pl.UInt64).sort().to_numpy()
            if not (ids[1:] == ids[:-1]).any():
                continue  # every image listed once: nothing can straddle
        grp = g if (key == "group" and g is not None) else _Groups.of(group_keys(rows[key]))
        lo, hi = grp.reduce(np.minimum, side), grp.reduce(np.maximum, side)
        bad = np.flatnonzero(lo != hi)
        if bad.size == 0:
            continue
        # 64-bit keys stand for the names; confirm on the names themselves before failing
        cand = np.isin(grp.inverse, bad)
        sub = rows.filter(pl.Series(cand)).with_columns(
            split=pl.Series(split_code[cand]).replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String),
            code=pl.Series(split_code[cand]),
            side=pl.Series(side[cand]),
        )
        straddle = sub.group_by(key).agg(pl.col("side").n_unique().alias("sides")).filter(pl.col("sides") > 1)
        if straddle.height == 0:
            continue
        members = sub.join(straddle.select(key), on=key).sort(key, "code", "image_id").head(limit)
        found = [
            f"{i[:12]} ({s}, group {gr[:12]})" for i, s, gr in members.select("image_id", "split", "group").iter_rows()
        ]
        what = "the same image" if key == "image_id" else "exact or near duplicates"
        raise DataError(
            f"Leakage: {straddle.height} {'image(s)' if key == 'image_id' else 'group(s)'} of {what} "
            f"straddle the training splits and dev/test (or dev and test): {', '.join(found)}. "
            f"Remove the copies or change split.seed to reshuffle."
        )


def check_leakage(table: pl.DataFrame, *, limit: int = 10) -> None:
    """Fail if an exact or near duplicate straddles train/bridge and dev/test, or dev and test.

    ``table`` has ``image_id``, ``split`` and ``group`` (the dup_group). A group or an image_id
    found on more than one side is leakage: a model would be scored on what it trained on.

    Raises:
        DataError: naming up to ``limit`` of the images involved and their splits.
    """
    codes = _codes(table["split"], list(SPLITS))
    _check_codes(table.select("image_id", "group", "split"), codes, None, limit)


# ---------------------------------------------------------------------------------------------
# composition


def summarize_codes(
    split: np.ndarray,
    domain: np.ndarray,
    label: np.ndarray,
    domain_names: list[str],
    label_names: list[str],
    params: SplitParams,
    notes=(),
    *,
    kept: int = 0,
    reshuffled: bool = False,
) -> dict[str, Any]:
    """Counts per split x domain x label, totals, and the statement of where dev/test come from."""
    target = params.target_domain
    nd, nl = len(domain_names), len(label_names)
    cube = np.bincount((split * nd + domain) * nl + label, minlength=len(SPLITS) * nd * nl).reshape(len(SPLITS), nd, nl)
    counts = [
        {"split": s, "domain": d, "label": lab, "images": int(cube[i, j, k])}
        for i, s in enumerate(SPLITS)
        for j, d in enumerate(domain_names)
        for k, lab in enumerate(label_names)
        if cube[i, j, k]
    ]
    ti = domain_names.index(target) if target in domain_names else None
    totals: dict[str, Any] = {}
    for i, s in enumerate(SPLITS):
        per_domain = cube[i].sum(axis=1)
        total = int(per_domain.sum())
        t = int(per_domain[ti]) if ti is not None else 0
        totals[s] = {
            "images": total,
            "domains": {d: int(v) for d, v in zip(domain_names, per_domain.tolist(), strict=False) if v},
            "target_images": t,
            "target_share": round(t / total, 4) if total else 0.0,
        }
    pool = totals["train"]["images"] + totals["bridge"]["images"]
    pool_t = totals["train"]["target_images"] + totals["bridge"]["target_images"]
    pool_share = round(pool_t / pool, 4) if pool else 0.0
    dev, test, bridge = totals["dev"], totals["test"], totals["bridge"]
    statements = []
    if params.strategy == "shuffle":
        statements.append(
            f"Strategy 'shuffle' (for comparison only): {dev['images'] - dev['target_images']:,} of "
            f"{dev['images']:,} dev images ({1 - dev['target_share']:.1%}) and "
            f"{test['images'] - test['target_images']:,} of {test['images']:,} test images "
            f"({1 - test['target_share']:.1%}) are not from the target domain {target!r}; only "
            f"{dev['target_images']:,} dev and {test['target_images']:,} test images are. Dev and test "
            f"should come from the target: use strategy 'target'."
        )
    else:
        statements.append(
            f"Strategy 'target': dev ({dev['images']:,}) and test ({test['images']:,}) hold only images "
            f"of the target domain {target!r}."
        )
    statements.append(
        f"The bridge holds {bridge['target_share']:.1%} target images; the training pool "
        f"(train + bridge) holds {pool_share:.1%}."
    )
    return {
        "settings": params.settings(),
        "counts": counts,
        "totals": totals,
        "training_pool_target_share": pool_share,
        "statements": statements,
        "warnings": list(notes),
        "kept": kept,
        "assigned": int(split.size) - kept,
        "reshuffled": reshuffled,
    }


def composition_markdown(composition: dict[str, Any]) -> str:
    """The composition as a markdown table: one row per split and domain, one column per label."""
    counts = composition["counts"]
    labels = sorted({c["label"] for c in counts}, key=lambda s: (len(s), s))
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for c in counts:
        cells.setdefault((c["split"], c["domain"]), {})[c["label"]] = c["images"]
    s = composition["settings"]
    lines = [
        "# Split composition",
        "",
        f"Strategy `{s['strategy']}`, target domain `{s['target_domain']}`, seed {s['seed']}, "
        f"dev {s['dev']}, test {s['test']}, bridge {s['bridge']}.",
        "",
        "| split | domain | " + " | ".join(labels) + " | total |",
        "| --- | --- | " + " | ".join("---:" for _ in labels) + " | ---: |",
    ]
    for (split, domain), row in cells.items():
        vals = [str(row.get(lab, 0)) for lab in labels]
        lines.append(f"| {split} | {domain} | " + " | ".join(vals) + f" | {sum(row.values())} |")
    lines.append("")
    lines += [f"- {t}" for t in composition["statements"]]
    lines += _shares_markdown(composition.get("class_shares", []))
    pool = composition.get("unlabelled", {})
    if pool:
        where = ", ".join(f"{n} of domain `{d}`" for d, n in pool.items())
        lines += ["", f"Unlabelled pool (in no split; read by synthesis and shift only): {where}."]
    held = composition.get("held_out_copies", [])
    if held:
        lines += ["", f"## Held out: {len(held)} near copies of dev/test images", ""]
        lines += [
            f"- `{h['image_id'][:16]}` ({h['domain']}, label {h['label']}) copies `{(h['copies'] or '?')[:16]}` "
            f"({h['copies_split']})"
            for h in held[:50]
        ]
        if len(held) > 50:
            lines.append(f"- ... and {len(held) - 50} more (composition.json lists them all)")
    if composition["warnings"]:
        lines.append("")
        lines += [f"- **warning**: {w}" for w in composition["warnings"]]
    return "\n".join(lines) + "\n"


def _shares_markdown(shares: list[dict[str, Any]]) -> list[str]:
    if not shares:
        return []
    lines = [
        "",
        f"## Class shares of dev and test against the target ({SHARE_LEVEL:.0%} band of a random draw)",
        "",
        "| split | label | images | share | target share | band (images) | |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in shares:
        mark = "ok" if r["within"] else "**outside**"
        lines.append(
            f"| {r['split']} | {r['label']} | {r['images']} | {r['share']:.1%} | {r['target_share']:.1%} | "
            f"{r['low']}-{r['high']} | {mark} |"
        )
    return lines


# ---------------------------------------------------------------------------------------------
# files


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
        return read_table(p, MANIFEST).select(columns)  # its errors name the problem
    try:
        schema = pl.read_parquet_schema(p)
        validate(pl.DataFrame(schema=schema), MANIFEST, source=str(p))
        return pl.read_parquet(p, columns=columns)
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
    manifest = read_manifest_columns(manifest_path, ["image_id", "domain", "label", "dup_group"])
    previous, settings = (None, None) if fresh else read_previous(out_dir)
    result = assign(manifest, params, previous, settings)
    # the previous splits were read above: now the folder is replaced as one set
    with replace_dir(out_dir, owned=(SPLITS_FILE, COMPOSITION_JSON, COMPOSITION_MD)) as tmp:
        write_splits(result.table, tmp / SPLITS_FILE)
        write_json(tmp / COMPOSITION_JSON, result.composition)
        write_text(tmp / COMPOSITION_MD, result.markdown)
    return result
