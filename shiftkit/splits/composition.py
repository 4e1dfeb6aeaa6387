"""What a split holds: class shares of dev and test, the leakage check, the composition and its markdown.

Representativeness: dev and test are stratified by label; the composition then compares each
class's count in dev and test with its share of the target (the central 99% band of a
hypergeometric draw of that size) and warns about a class outside it.

After every split, :func:`check_leakage` fails loudly (``DataError`` naming the images) if an
exact or near duplicate (same ``image_id`` or ``dup_group``) straddles train/bridge and dev/test,
or dev and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shiftkit.core.errors import DataError
from shiftkit.core.schema import SPLITS
from shiftkit.splits.groups import CODE, HELD_OUT, Groups, enum_codes, group_keys
from shiftkit.splits.params import SplitParams
from shiftkit.splits.strategies import STRATEGIES

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


def check_split_codes(rows: pl.DataFrame, split_code: np.ndarray, g: Groups | None = None, limit: int = 10) -> None:
    side = _SIDE[split_code]
    for key in ("image_id", "group"):
        if key == "image_id":
            if g is not None and (rows["image_id"] == rows["group"]).all():
                continue  # each image is its own group: the group check below covers it
            ids = pl.Series(group_keys(rows[key]), dtype=pl.UInt64).sort().to_numpy()
            if not (ids[1:] == ids[:-1]).any():
                continue  # every image listed once: nothing can straddle
        grp = g if (key == "group" and g is not None) else Groups.of(group_keys(rows[key]))
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
    codes = enum_codes(table["split"], list(SPLITS))
    check_split_codes(table.select("image_id", "group", "split"), codes, None, limit)


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
    if not STRATEGIES[params.strategy].target_only:  # what the strategy declared, not its name
        statements.append(
            f"Strategy {params.strategy!r} (for comparison only): {dev['images'] - dev['target_images']:,} of "
            f"{dev['images']:,} dev images ({1 - dev['target_share']:.1%}) and "
            f"{test['images'] - test['target_images']:,} of {test['images']:,} test images "
            f"({1 - test['target_share']:.1%}) are not from the target domain {target!r}; only "
            f"{dev['target_images']:,} dev and {test['target_images']:,} test images are. Dev and test "
            f"should come from the target: use strategy 'target'."
        )
    else:
        statements.append(
            f"Strategy {params.strategy!r}: dev ({dev['images']:,}) and test ({test['images']:,}) hold only images "
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
        lines += ["", f"Unlabelled pool (in no split; its images are read without labels by synthesis, shift, the "
                      f"adapting arms and selection, and predicted for the label-free estimates): {where}."]
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
