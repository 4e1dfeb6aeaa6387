"""Split assignment: every labelled image of a manifest to train / bridge / dev / test.

Strategies (which groups dev and test are drawn from) are registered in ``shiftkit.splits.strategies``.

Sizes: ``dev`` and ``test`` are fractions of the images they are drawn from (the target domain
under ``target``, every image under ``shuffle``) or counts; ``bridge`` is a fraction of the
training pool or a count. Fractions are rounded half up.

Membership is decided per group (every copy of an image lands in the same split; the manifest's
optional ``group``, the user's groups of one object or session, joins near-copy groups that share
one: ``groups.union_groups``, so a user group is never cut either) by a
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

After every split, ``composition.check_leakage`` fails loudly if a duplicate straddles the sides.

The recipe's first rule holds as an invariant under ``target``: an image of another domain whose
group is in dev or test (a web near copy of a dev/test image, typically from a later drop) gets
the status ``held_out_copy``: it is in no split, never trained on, and ``composition.json``
names it with the dev/test image it copies. Readers of the splits select splits by name, so
they never see it. Images without a label (``shiftkit ingest --unlabelled``) take no part in the
draw: they get the status ``unlabelled`` (counted per domain in ``composition.json``), the pool
that only synthesis and ``shiftkit shift`` read.

The composition and the class-share warnings are ``shiftkit.splits.composition``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError
from shiftkit.core.schema import HELD_OUT_COPY, SPLITS, UNLABELLED
from shiftkit.splits.composition import (
    SplitResult,
    check_split_codes,
    class_shares,
    composition_markdown,
    share_warnings,
    summarize_codes,
)
from shiftkit.splits.groups import CODE, HELD_OUT, Groups, blake64, enum_codes, group_keys, mix64, union_groups
from shiftkit.splits.params import SplitParams
from shiftkit.splits.strategies import STRATEGIES

RARE = "(rare labels)"


class SplitWarning(UserWarning):
    """A split that works but deserves attention (fallback for rare labels, a reshuffle)."""


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
    if "group" in manifest.columns and manifest["group"].null_count() < manifest.height:
        # the user's groups (one object, one session) joined with the near copies: kept whole too
        rows = rows.with_columns(group=union_groups(rows["group"], manifest["group"]))
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


def _settings(params: SplitParams, manifest: pl.DataFrame) -> dict:
    """What decides membership: the params, and whether the user's groups were given (only then
    recorded, so that splits written before groups existed stay valid when none are given)."""
    given = "group" in manifest.columns and manifest["group"].null_count() < manifest.height
    return {**params.settings(), **({"user_groups": True} if given else {})}


def _previous(
    previous: pl.DataFrame | None, previous_settings: dict | None, now: dict, notes: list[str]
) -> tuple[pl.DataFrame | None, bool]:
    if previous is None or previous.height == 0:
        return None, False
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


def _group_labels(g: Groups, label: np.ndarray) -> np.ndarray:
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


@dataclass
class _Coded:
    """The manifest's rows as integer codes, grouped by dup_group, and each group's split so far."""

    rows: pl.DataFrame  # image_id, domain, label, group (strings)
    label: np.ndarray  # per row, an index into label_names
    domain: np.ndarray  # per row, an index into domain_names
    label_names: list[str]
    domain_names: list[str]
    g: Groups
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
    old_code = enum_codes(joined["old"], list(SPLITS))
    return np.where(joined["old"].is_null().to_numpy(), -1, old_code)


def _encode(rows: pl.DataFrame, params: SplitParams, old_code: np.ndarray) -> _Coded:
    label_names = sorted(rows["label"].unique().to_list())
    domain_names = sorted(rows["domain"].unique().to_list())
    label = enum_codes(rows["label"], label_names)
    domain = enum_codes(rows["domain"], domain_names)
    g = Groups.of(group_keys(rows["group"]))
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
    salt = np.uint64(blake64(f"shiftkit-split:{params.seed}:holdout"))
    _fill(c.assigned, eligible & (c.assigned < 0), stratum, mix64(c.g.keys ^ salt), c.n, wants)
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
    salt = np.uint64(blake64(f"shiftkit-split:{params.seed}:bridge"))
    _fill(
        c.assigned,
        in_pool & (c.assigned < 0),
        bstratum,
        mix64(c.g.keys ^ salt),
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
                f"some labels is in groups (near copies, and the user's groups) too large to fit (the largest "
                f"has {int(c.n.max()):,} images), which stay in train. A smaller ingest.near_dup_radius makes "
                f"smaller groups."
            )
        if got == 0:
            raise DataError(
                f"The {name} set is empty: every group (near copies, or the user's groups) it could take is "
                f"larger than its label's share of the {asked[name]} image(s) asked for; ask for more."
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
    settings = _settings(params, manifest)
    old, reshuffled = _previous(previous, previous_settings, settings, notes)
    c = _encode(rows, params, _old_codes(rows, old, notes))
    dev_n, test_n = _draw_holdout(c, params, notes)
    bridge_n = _draw_bridge(c, params)
    c.assigned[c.assigned < 0] = CODE["train"]
    _check_filled(c, {"dev": dev_n, "test": test_n, "bridge": bridge_n}, notes)
    result = _result(c, params, notes, reshuffled)
    result.composition["settings"] = settings  # (adding or removing the user's groups reshuffles)
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
    check_split_codes(c.rows, split_code, c.g)  # a held-out copy counts on its group's side here
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
