"""The rules of ``shiftkit check``: what a rule sees (``CheckContext``), what it finds, the registry.

Every registered rule looks at the drop against the reference and returns findings with a severity:

- ``error`` blocks (exit code 1): corrupt files above ``check.max_corrupt``, an exact or near copy
  of a dev or test image (leakage), a label the reference lacks (unless allowed), conflicting
  labels;
- ``warning`` informs the reviewer: copies of training images, a class whose share moves by more
  than ``check.class_share``, files quarantined for another reason than corruption (each named
  with its reason: a link outside the root, a name that is not UTF-8, ...), property drift
  against the same domain of the reference (two-sample
  KS statistic *and* an effect size, Cohen's d, both above thresholds; Wasserstein distance and
  the p-value are reported too), tiny images;
- ``info`` records what was measured.

A rule is one function decorated with ``@rule(name, needs_reference=...)``: ``needs_reference``
marks a rule that compares the drop with earlier data (meaningless for the very first drop, which
``run_latest_drop_check`` checks with the other rules only). The registry is strict (a duplicate
or unknown name raises ``RegistryError`` listing the valid ones). This module imports no torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from shiftkit.check.params import CheckParams
from shiftkit.core.errors import RegistryError
from shiftkit.core.files import image_paths
from shiftkit.core.reasons import QuarantineReason

Severity = Literal["error", "warning", "info"]
SEVERITIES = ("error", "warning", "info")
# quarantine reasons that mean a file of the drop is broken (not a policy decision like too_small)
CORRUPT_REASONS = tuple(r.value for r in QuarantineReason if r.corrupt)
DRIFT_PROPERTIES = ("blur", "brightness", "contrast", "size")


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: its severity, a sentence, the files involved and the figures."""

    rule: str
    severity: Severity
    message: str
    files: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = list(self.files)
        return d


@dataclass
class CheckContext:
    """What the rules look at. Paths are as the user can open them (relative to the cwd if inside)."""

    drop: pl.DataFrame  # manifest of the drop, with a ``file`` column
    quarantine: pl.DataFrame  # quarantine of the drop, with a ``file`` column
    reference: pl.DataFrame  # reference manifest
    reference_path: Path | None = None  # where it was read from (to name its files)
    splits: pl.DataFrame | None = None  # reference splits (image_id, split), if given
    params: CheckParams = field(default_factory=CheckParams)
    radius: int = 2  # near-duplicate Hamming radius; the run_* functions pass ingest.near_dup_radius
    allow_new_labels: bool = False
    live: dict[str, Any] | None = None  # the label-free estimate of the drop (check --model; check/live.py)
    _pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def copies(self) -> pl.DataFrame:
        """Pairs (drop row, reference row) that are exact (same image_id) or near copies."""
        if self._pairs is None:
            from shiftkit.images.dedup import hamming_pairs

            a = self.drop["phash"].to_numpy().astype(np.uint64)
            b = self.reference["phash"].to_numpy().astype(np.uint64)
            i, j = hamming_pairs(a, b, self.radius) if a.size and b.size else (np.zeros(0, np.int64),) * 2
            dist = np.bitwise_count(a[i] ^ b[j]).astype(np.int64) if i.size else np.zeros(0, np.int64)
            exact = (
                self.drop.select("image_id")
                .with_row_index("i")
                .join(self.reference.select("image_id").with_row_index("j"), on="image_id")
            )
            ei, ej = exact["i"].to_numpy().astype(np.int64), exact["j"].to_numpy().astype(np.int64)
            self._pairs = (np.r_[i, ei], np.r_[j, ej], np.r_[dist, np.full(ei.size, -1)])
        i, j, d = self._pairs
        pairs = pl.DataFrame({"i": i, "j": j, "bits": d}).sort("i", "j", "bits").unique(["i", "j"], keep="first")
        drop = (
            self.drop.select("file", "image_id", "label").with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
        )
        ref = (
            self.reference.select(
                pl.col("image_id").alias("ref_id"),
                pl.col("label").alias("ref_label"),
                pl.col("domain").alias("ref_domain"),
            )
            .with_row_index("j")
            .with_columns(pl.col("j").cast(pl.Int64))
        )
        out = pairs.join(drop, on="i").join(ref, on="j")
        # only matched reference images are named: a million-row reference costs nothing here
        matched = self.reference[out["j"].to_list()]
        out = out.with_columns(ref_file=pl.Series(self._reference_files(matched), dtype=pl.String))
        out = out.with_columns(exact=pl.col("image_id") == pl.col("ref_id"))
        out = _confirmed(out)
        if self.splits is not None:
            out = out.join(self.splits.select(pl.col("image_id").alias("ref_id"), "split"), on="ref_id", how="left")
        else:
            out = out.with_columns(split=pl.lit(None, pl.String))
        return out.sort("file", "ref_file")

    def _reference_files(self, rows: pl.DataFrame) -> list[str]:
        if rows.height == 0:
            return []
        if self.reference_path is None:
            return rows["path"].to_list()
        return display_paths(image_paths(rows, self.reference_path))


def _confirmed(pairs: pl.DataFrame) -> pl.DataFrame:
    """The exact pairs, and the near ones (phash within the radius) that their pixels confirm.

    A phash match says only that two images share their coarse layout, and a low-detail image (a
    blurry, upsampled 8x8 digit) shares it with many distinct pictures: each near pair is decoded
    and compared at the detail both have (``images.dedup.closeness``: the smaller image's size).
    The ``correlation`` and ``difference`` columns say how close it is; a pair whose files cannot
    be read stays in, unconfirmed (null closeness: the gate errs on the side of blocking).
    """
    from shiftkit.core.errors import ImageDecodeError
    from shiftkit.images.decode import decode
    from shiftkit.images.dedup import closeness, is_copy

    corr: list[float | None] = []
    diff: list[float | None] = []
    keep: list[bool] = []
    for f, rf, exact in pairs.select("file", "ref_file", "exact").iter_rows():
        c = d = None
        n = 0
        if not exact:
            try:
                c, d, n = closeness(decode(f).pixels, decode(rf).pixels)
            except (ImageDecodeError, OSError):
                pass
        corr.append(c)
        diff.append(d)
        keep.append(exact or c is None or is_copy(c, d, n))
    return pairs.with_columns(
        correlation=pl.Series(corr, dtype=pl.Float64), difference=pl.Series(diff, dtype=pl.Float64)
    ).filter(pl.Series(keep, dtype=pl.Boolean))


def _how_close(exact: bool, bits: int, corr: float | None, diff: float | None) -> str:
    if exact:
        return "exact"
    if corr is None:
        return f"near ({bits} bits; files unreadable, not confirmed)"
    return f"near ({bits} bits; correlation {corr:.3f}, mean difference {diff:.1%})"


Rule = Callable[[CheckContext], list[Finding]]
_RULES: dict[str, Rule] = {}
_NEEDS_REFERENCE: set[str] = set()


def rule(name: str, *, needs_reference: bool = False) -> Callable[[Rule], Rule]:
    """Register a check rule under ``name``; ``needs_reference``: it compares the drop with earlier data.

    Raises:
        RegistryError: when ``name`` is already registered (the message lists the names).
    """

    def deco(fn: Rule) -> Rule:
        if name in _RULES:
            raise RegistryError(
                f"Check rule {name!r} is registered twice; registered rules: {', '.join(sorted(_RULES))}."
            )
        _RULES[name] = fn
        if needs_reference:
            _NEEDS_REFERENCE.add(name)
        return fn

    return deco


def needs_reference(name: str) -> bool:
    """Whether the rule ``name`` compares the drop with a reference (skipped for the first drop)."""
    return name in _NEEDS_REFERENCE


def rule_names() -> list[str]:
    return sorted(_RULES)


def get_rule(name: str) -> Rule:
    """The rule registered as ``name``.

    Raises:
        RegistryError: for an unknown name, listing the valid ones.
    """
    try:
        return _RULES[name]
    except KeyError:
        raise RegistryError(f"Unknown check rule {name!r}; valid rules: {', '.join(rule_names())}.") from None


def _files(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(paths)))


# ---------------------------------------------------------------------------------------------
# rules


@rule("corrupt")
def corrupt_files(ctx: CheckContext) -> list[Finding]:
    """Broken files (truncated, not an image, ...): an error above the tolerated share."""
    q = ctx.quarantine.filter(pl.col("reason").is_in(CORRUPT_REASONS))
    total = ctx.drop.height + ctx.quarantine.height
    if q.height == 0:
        return []
    share = q.height / total if total else 1.0
    limit = ctx.params.max_corrupt
    severity: Severity = "error" if share > limit else "warning"
    reasons = dict(q.group_by("reason").len().sort("reason").iter_rows())
    detail = ", ".join(f"{k} {v}" for k, v in reasons.items())
    return [
        Finding(
            "corrupt",
            severity,
            f"{q.height} of {total} files ({share:.1%}) are corrupt ({detail}); the tolerance "
            f"(check.max_corrupt) is {limit:.1%}.",
            _files(f"{f} ({r})" for f, r in q.select("file", "reason").iter_rows()),
            {"corrupt": q.height, "files": total, "share": round(share, 6), "limit": limit, "reasons": reasons},
        )
    ]


# quarantine reasons that other rules report (corrupt files, conflicting labels, too small)
_REPORTED_ELSEWHERE = (*CORRUPT_REASONS, QuarantineReason.CONFLICTING_LABEL.value, QuarantineReason.TOO_SMALL.value)


@rule("quarantined")
def quarantined_files(ctx: CheckContext) -> list[Finding]:
    """Files left out for a reason that is not corruption (links outside the root, stray files,
    names that are not UTF-8, duplicates): each named with its reason, for the reviewer."""
    q = ctx.quarantine.filter(~pl.col("reason").is_in(_REPORTED_ELSEWHERE))
    if q.height == 0:
        return []
    reasons = dict(q.group_by("reason").len().sort("reason").iter_rows())
    return [
        Finding(
            "quarantined",
            "warning",
            f"{q.height} file(s) of the drop were quarantined ("
            + ", ".join(f"{k} {v}" for k, v in reasons.items())
            + "); they are not in the manifest.",
            _files(f"{f} ({r}: {d})" for f, r, d in q.select("file", "reason", "detail").iter_rows()),
            {"files": q.height, "reasons": reasons},
        )
    ]


@rule("leakage", needs_reference=True)
def dev_test_copies(ctx: CheckContext) -> list[Finding]:
    """Exact or near copies of dev or test images: they would leak the evaluation into training."""
    if ctx.splits is None:
        return [Finding("leakage", "info", "No --splits given: copies of dev/test images were not looked for.")]
    hits = ctx.copies().filter(pl.col("split").is_in(["dev", "test"]))
    if hits.height == 0:
        return []
    files = [
        f"{f} = {_how_close(ex, b, c, d)} copy of {rf} ({s})"
        for f, rf, s, ex, b, c, d in hits.select(
            "file", "ref_file", "split", "exact", "bits", "correlation", "difference"
        ).iter_rows()
    ]
    n = hits["file"].n_unique()
    return [
        Finding(
            "leakage",
            "error",
            f"{n} image(s) of the drop are exact or near copies of dev/test images: "
            + "; ".join(files[:5])
            + ("; ..." if len(files) > 5 else "")
            + ". Remove them from the drop.",
            _files(files),
            {"images": n, "pairs": hits.height},
        )
    ]


@rule("train_copies", needs_reference=True)
def training_copies(ctx: CheckContext) -> list[Finding]:
    """Copies of training (or, without splits, any reference) images: redundant data."""
    pairs = ctx.copies()
    pairs = pairs.filter(~pl.col("split").is_in(["dev", "test"]) | pl.col("split").is_null())
    if pairs.height == 0:
        return []
    exact = pairs.filter(pl.col("exact"))["file"].n_unique()
    n = pairs["file"].n_unique()
    where = "training images" if ctx.splits is not None else "reference images"
    files = [
        f"{f} ~ {rf} ({_how_close(ex, b, c, d)})"
        for f, rf, ex, b, c, d in pairs.select(
            "file", "ref_file", "exact", "bits", "correlation", "difference"
        ).iter_rows()
    ]
    return [
        Finding(
            "train_copies",
            "warning",
            f"{n} image(s) of the drop are copies of {where} ({exact} exact, {n - exact} near): "
            f"they add little and weigh those images twice.",
            _files(files),
            {"images": n, "exact": exact},
        )
    ]


@rule("new_labels", needs_reference=True)
def unknown_labels(ctx: CheckContext) -> list[Finding]:
    """A label the reference does not have: an error unless new labels are allowed."""
    known = set(ctx.reference["label"].drop_nulls().unique().to_list())  # an unlabelled pool has no label
    new = ctx.drop.filter(~pl.col("label").is_in(sorted(known)))
    if new.height == 0:
        return []
    labels = sorted(new["label"].unique().to_list())
    severity: Severity = "warning" if ctx.allow_new_labels else "error"
    hint = "" if ctx.allow_new_labels else " Pass --allow-new-labels if they are meant to be new classes."
    return [
        Finding(
            "new_labels",
            severity,
            f"{new.height} image(s) carry label(s) {', '.join(map(repr, labels))} that the reference "
            f"does not have (known: {', '.join(sorted(known))}).{hint}",
            _files(new["file"].to_list()),
            {"labels": labels},
        )
    ]


@rule("conflicting_labels")
def conflicting_labels(ctx: CheckContext) -> list[Finding]:
    """The same bytes under two labels, within the drop or against the reference."""
    out = []
    q = ctx.quarantine.filter(pl.col("reason") == QuarantineReason.CONFLICTING_LABEL.value)
    if q.height:
        out.append(
            Finding(
                "conflicting_labels",
                "error",
                f"{q.height} file(s) of the drop hold the same bytes under different labels.",
                _files(f"{f} ({lab})" for f, lab in q.select("file", "label").iter_rows()),
                {"files": q.height},
            )
        )
    pairs = ctx.copies().filter(pl.col("exact") & (pl.col("label") != pl.col("ref_label")))
    if pairs.height:
        out.append(
            Finding(
                "conflicting_labels",
                "error",
                f"{pairs['file'].n_unique()} image(s) of the drop are byte copies of reference images "
                f"with another label.",
                _files(
                    f"{f} ({lab}) = {rf} ({rl})"
                    for f, lab, rf, rl in pairs.select("file", "label", "ref_file", "ref_label").iter_rows()
                ),
                {"images": pairs["file"].n_unique()},
            )
        )
    return out


@rule("class_share", needs_reference=True)
def class_share(ctx: CheckContext) -> list[Finding]:
    """Labels whose share of their domain moves by more than ``check.class_share``."""
    out = []
    for domain in sorted(ctx.drop["domain"].unique().to_list()):
        # shares of the labelled images (an unlabelled pool, ingest --unlabelled, has no class to share)
        d = ctx.drop.filter((pl.col("domain") == domain) & pl.col("label").is_not_null())
        r = ctx.reference.filter((pl.col("domain") == domain) & pl.col("label").is_not_null())
        if d.height < ctx.params.drift_min_images or r.height == 0:
            continue
        ds = d.group_by("label").len().with_columns(drop=pl.col("len") / d.height).drop("len")
        rs = r.group_by("label").len().with_columns(ref=pl.col("len") / r.height).drop("len")
        both = ds.join(rs, on="label", how="full", coalesce=True).fill_null(0.0)
        both = both.with_columns(delta=pl.col("drop") - pl.col("ref")).sort("label")
        moved = both.filter(pl.col("delta").abs() > ctx.params.class_share)
        if moved.height:
            parts = [f"{lab}: {r_:.1%} -> {d_:.1%}" for lab, d_, r_ in moved.select("label", "drop", "ref").iter_rows()]
            out.append(
                Finding(
                    "class_share",
                    "warning",
                    f"Domain {domain!r}: the share of {moved.height} label(s) moves by more than "
                    f"{ctx.params.class_share:.0%} against the reference ({'; '.join(parts)}).",
                    (),
                    {"domain": domain, "shares": both.to_dicts()},
                )
            )
    return out


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference (a - b) with the pooled standard deviation."""
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return 0.0
    pooled = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    diff = float(a.mean() - b.mean())
    if pooled <= 1e-24:
        return 0.0 if abs(diff) < 1e-12 else math.copysign(math.inf, diff)
    return diff / math.sqrt(pooled)


def drift_table(drop: pl.DataFrame, reference: pl.DataFrame) -> list[dict[str, Any]]:
    """Two-sample statistics per property: KS statistic and p-value, Cohen's d, Wasserstein/sd."""
    from scipy.stats import ks_2samp, wasserstein_distance

    rows = []
    for prop in DRIFT_PROPERTIES:
        a = _values(drop, prop)
        b = _values(reference, prop)
        ks = ks_2samp(a, b)
        sd = float(b.std()) or 1.0
        d = cohens_d(a, b)
        rows.append(
            {
                "property": prop,
                "drop_mean": round(float(a.mean()), 6),
                "reference_mean": round(float(b.mean()), 6),
                "ks": round(float(ks.statistic), 6),
                "p_value": float(f"{float(ks.pvalue):.6g}"),
                "cohens_d": round(d, 6) if math.isfinite(d) else None,  # None: the reference is constant
                "wasserstein_sd": round(float(wasserstein_distance(a, b)) / sd, 6),
            }
        )
    return rows


def _values(df: pl.DataFrame, prop: str) -> np.ndarray:
    if prop == "size":  # geometric mean side: one number for width and height
        return np.sqrt(df["width"].to_numpy().astype(np.float64) * df["height"].to_numpy().astype(np.float64))
    return df[prop].to_numpy().astype(np.float64)


@rule("drift", needs_reference=True)
def property_drift(ctx: CheckContext) -> list[Finding]:
    """Blur, brightness, contrast and size of each domain against the same domain of the reference."""
    p = ctx.params
    out = []
    for domain in sorted(ctx.drop["domain"].unique().to_list()):
        d = ctx.drop.filter(pl.col("domain") == domain)
        r = ctx.reference.filter(pl.col("domain") == domain)
        if d.height < p.drift_min_images or r.height < p.drift_min_images:
            out.append(
                Finding(
                    "drift",
                    "info",
                    f"Domain {domain!r}: {d.height} drop and {r.height} reference images; drift is "
                    f"tested from {p.drift_min_images} on each side (check.drift_min_images).",
                    (),
                    {"domain": domain},
                )
            )
            continue
        table = drift_table(d, r)
        for row in table:
            effect = row["cohens_d"]
            big = effect is None or abs(effect) > p.drift_effect
            if row["ks"] > p.drift_ks and big:
                out.append(
                    Finding(
                        "drift",
                        "warning",
                        f"Domain {domain!r}: {row['property']} drifts (mean {row['reference_mean']:.4g} -> "
                        f"{row['drop_mean']:.4g}; KS {row['ks']:.2f} > {p.drift_ks}, Cohen's d "
                        f"{'inf' if effect is None else f'{effect:.2f}'}, Wasserstein {row['wasserstein_sd']:.2f} sd, "
                        f"p {row['p_value']:.2g}).",
                        (),
                        {"domain": domain, **row},
                    )
                )
        out.append(
            Finding("drift", "info", f"Domain {domain!r}: property statistics.", (), {"domain": domain, "table": table})
        )
    return out


@rule("tiny")
def tiny_images(ctx: CheckContext) -> list[Finding]:
    """Images whose smaller side is below ``check.tiny_size`` (kept, but nearly unusable)."""
    t = ctx.params.tiny_size
    small = ctx.drop.filter(pl.min_horizontal("width", "height") < t)
    too_small = ctx.quarantine.filter(pl.col("reason") == QuarantineReason.TOO_SMALL.value)
    out = []
    if small.height:
        out.append(
            Finding(
                "tiny",
                "warning",
                f"{small.height} image(s) have a side below {t} pixels (check.tiny_size).",
                _files(f"{f} ({w}x{h})" for f, w, h in small.select("file", "width", "height").iter_rows()),
                {"images": small.height},
            )
        )
    if too_small.height:
        out.append(
            Finding(
                "tiny",
                "warning",
                f"{too_small.height} file(s) were refused by ingest as too small (ingest.min_size).",
                _files(too_small["file"].to_list()),
                {"files": too_small.height},
            )
        )
    return out


def display_paths(paths: Iterable[Path]) -> list[str]:
    """Paths as the user typed them: relative to the cwd when inside it, else absolute."""
    cwd = Path.cwd().resolve()
    out = []
    for p in paths:
        if isinstance(p, str) and "://" in p:  # an object under a URL root (shiftkit/images/storage.py)
            out.append(p)
            continue
        p = Path(os.path.normpath(p))
        try:
            out.append(p.relative_to(cwd).as_posix())
        except ValueError:
            out.append(p.as_posix())
    return out
