"""``shiftkit check``: the gate a new data drop passes before it joins the data (CI runs it).

The drop is ingested to a temporary folder (the reference manifest is only read), then every
rule registered in ``shiftkit.check.rules`` looks at the drop against the reference and returns
findings with a severity. The verdict is ``fail`` when any finding is an error (exit code 1).
``run_check`` checks drop folders, ``run_latest_drop_check`` the newest drop already ingested
(the pipeline's stage); both write ``check.json`` and ``check.md``. This module imports no torch
and takes the params sections it needs as arguments: ``shiftkit check`` starts fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

from shiftkit.check import live as _live  # registers the error_rise rule (check --model)
from shiftkit.check.params import CheckParams
from shiftkit.check.rules import (
    SEVERITIES,
    CheckContext,
    Finding,
    display_paths,
    get_rule,
    needs_reference,
    rule_names,
)
from shiftkit.core.console import output_to, recording_kept
from shiftkit.core.errors import CheckFailed, DataError, InputPathError
from shiftkit.core.files import image_paths, read_table, replace_dir, write_bytes, write_json, write_text
from shiftkit.core.schema import MANIFEST, QUARANTINE, SPLITS_TABLE
from shiftkit.core.text import md_code, md_text
from shiftkit.ingest.params import IngestParams

MAX_FILES = 20  # files named per finding in the markdown (the json has them all)
# check --model: (drop name -> its manifest rows with absolute ``file`` paths, reference manifest) ->
# the live estimate (check/live.py); built by the CLI, which may import the model code
Estimator = Callable[[dict[str, pl.DataFrame], pl.DataFrame], dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# report


@dataclass(frozen=True)
class CheckReport:
    """Findings and the verdict: ``fail`` when any finding is an error."""

    findings: tuple[Finding, ...]
    summary: dict[str, Any]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def verdict(self) -> str:
        return "fail" if self.errors else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
        }

    def markdown(self) -> str:
        """A summary fit for a pull-request comment."""
        mark = "❌ blocked" if self.errors else "✅ passed"
        s = self.summary
        lines = [
            f"## shiftkit check: {mark}",
            "",
            f"{s['images']} image(s) in the drop "
            f"({', '.join(f'{md_text(k)} {v}' for k, v in s['domains'].items()) or 'none'})"
            + (f", {s['unlabelled']} of them without labels" if s.get("unlabelled") else "")
            + f", {s['quarantined']} quarantined; reference {s['reference_images']} images"
            + (", splits given." if s["splits"] else ", no splits given."),
            "",
            f"**{len(self.errors)} error(s)**, {len(self.warnings)} warning(s).",
            "",
        ]
        shown = [f for f in self.findings if f.severity != "info"]
        if shown:
            lines += ["| severity | rule | finding |", "| --- | --- | --- |"]
            for f in shown:
                lines.append(f"| {f.severity} | `{f.rule}` | {md_text(f.message)} |")
            lines.append("")
        for f in shown:
            if f.files:
                lines.append(f"<details><summary>{f.rule}: {len(f.files)} file(s)</summary>\n")
                lines += [f"- {md_code(x)}" for x in f.files[:MAX_FILES]]
                if len(f.files) > MAX_FILES:
                    lines.append(f"- ... and {len(f.files) - MAX_FILES} more (see check.json)")
                lines.append("\n</details>\n")
        drift = [f for f in self.findings if f.rule == "drift" and "table" in f.data]
        for f in drift:
            lines += [
                f"### Properties of domain {md_code(f.data['domain'])} (drop vs reference)",
                "",
                "| property | reference mean | drop mean | KS | Cohen's d | Wasserstein (sd) | p |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for r in f.data["table"]:
                d = "inf" if r["cohens_d"] is None else f"{r['cohens_d']:.2f}"
                lines.append(
                    f"| {r['property']} | {r['reference_mean']:.4g} | {r['drop_mean']:.4g} | {r['ks']:.2f} | "
                    f"{d} | {r['wasserstein_sd']:.2f} | {r['p_value']:.2g} |"
                )
            lines.append("")
        lines += _live.markdown(self.findings)
        return "\n".join(lines).rstrip() + "\n"


def apply_rules(ctx: CheckContext, rules: Sequence[str] | None = None) -> CheckReport:
    """Run the rules (all registered ones by default) on a prepared context.

    Raises:
        RegistryError: for an unknown rule name.
    """
    names = rule_names() if rules is None else list(rules)
    fns = [(n, get_rule(n)) for n in names]
    findings: list[Finding] = []
    for _, fn in fns:
        findings.extend(fn(ctx))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.rule, f.message))
    summary = {
        "images": ctx.drop.height,
        "quarantined": ctx.quarantine.height,
        "domains": dict(ctx.drop.group_by("domain").len().sort("domain").iter_rows()),
        # an unlabelled pool's images have no label: counted apart (a None key cannot be written as JSON)
        "labels": dict(ctx.drop.drop_nulls("label").group_by("label").len().sort("label").iter_rows()),
        "unlabelled": ctx.drop["label"].null_count(),
        "reference_images": ctx.reference.height,
        "splits": ctx.splits is not None,
        "near_dup_radius": ctx.radius,
        "rules": names,
    }
    return CheckReport(tuple(findings), summary)


# ---------------------------------------------------------------------------------------------
# running on folders


def _with_files(df: pl.DataFrame, table_path: Path) -> pl.DataFrame:
    if df.height == 0:
        return df.with_columns(file=pl.lit(None, pl.String))
    return df.with_columns(file=pl.Series(display_paths(image_paths(df, table_path)), dtype=pl.String))


def drop_domains(drops: Sequence[str]) -> dict[str, Path]:
    """Domains of the drop arguments: ``DOMAIN=PATH`` (PATH/<label>/<file>), or a PATH whose
    sub-folders are domains (PATH/<domain>/<label>/<file>).

    Raises:
        InputPathError: a path is missing or holds no domain folder.
        ConfigError: a malformed ``DOMAIN=PATH`` or a domain named twice.
    """
    from shiftkit.core.config import parse_assignments
    from shiftkit.core.errors import ConfigError

    out: dict[str, Path] = {}
    for arg in drops:
        if "=" in arg:
            pairs = parse_assignments([arg], "DROP")
        else:
            root = Path(arg)
            if not root.is_dir():
                raise InputPathError(
                    f"Drop folder {root} does not exist (expected DOMAIN=PATH or a folder of domains)."
                )
            subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not subs:
                raise InputPathError(
                    f"Drop folder {root} holds no domain folder (expected {root}/<domain>/<label>/<file>)."
                )
            pairs = {p.name: str(p) for p in subs}
        for name, path in pairs.items():
            if name in out:
                raise ConfigError(f"The drop names domain {name!r} twice.")
            if "://" in path:  # DOMAIN=s3://bucket/prefix: ingest lists and checks it (shiftkit/images/storage.py)
                out[name] = path  # type: ignore[assignment]
                continue
            if not Path(path).is_dir():
                raise InputPathError(f"Drop folder {path} (domain {name!r}) does not exist.")
            out[name] = Path(path)
    return out


def _own_splits(table: pl.DataFrame, manifest: pl.DataFrame, splits: str | Path, ref: Path) -> pl.DataFrame:
    """The splits ``table`` when it belongs to the ``manifest`` (issue 25, finding 3): a table
    whose image ids are mostly unknown to it (another manifest's splits) would find no dev/test
    image and pass any copy; so would one without a dev or test image of the manifest.

    Raises:
        DataError: naming both files and the counts.
    """
    known = table.filter(pl.col("image_id").is_in(manifest["image_id"].implode()))
    if table.height and 2 * known.height < table.height:
        raise DataError(
            f"The splits table {splits} does not belong to the manifest {ref}: {table.height - known.height:,} "
            f"of its {table.height:,} image ids are not in the manifest (--splits expects the splits.parquet "
            "that `shiftkit split` wrote from that manifest)."
        )
    if known.filter(pl.col("split").is_in(["dev", "test"])).height == 0:
        raise DataError(
            f"The splits table {splits} gives no image of the manifest {ref} to dev or test: copies of "
            "dev/test images cannot be looked for (--splits expects the splits of that manifest)."
        )
    return table


def run_latest_drop_check(
    manifest: str | Path,
    *,
    splits: str | Path | None = None,
    out: str | Path | None = None,
    params: CheckParams | None = None,
    ingest_params: IngestParams | None = None,
    allow_new_labels: bool | None = None,
    raise_on_fail: bool = True,
    estimate: Estimator | None = None,
) -> CheckReport:
    """Check the newest drop already ingested into ``manifest`` against the earlier drops.

    This is the pipeline's gate (DVC stage ``check``): ingest appends a new drop to the persisted
    manifest, and this runs every rule on the rows of the newest ``drop`` (and its quarantined
    files, read from ``quarantine.parquet`` beside the manifest) with the earlier drops as the
    reference. With a single drop there is nothing to compare with, so only the rules that need
    no reference run (corrupt files, conflicting labels, tiny images). ``splits`` may name a
    splits table that does not exist yet (the first run): it is then ignored.

    Raises:
        CheckFailed: when a finding is an error (and ``raise_on_fail``).
        InputPathError, SchemaError, DataError: bad paths or tables.
    """
    cp = params or CheckParams()
    ip = ingest_params or IngestParams()
    allow = cp.allow_new_labels if allow_new_labels is None else allow_new_labels
    man_path = Path(manifest)
    if not man_path.is_file():
        raise InputPathError(f"The manifest {man_path} does not exist (--latest expects manifest.parquet from ingest).")
    man = read_table(man_path, MANIFEST)
    q_path = man_path.parent / "quarantine.parquet"
    quarantine = read_table(q_path, QUARANTINE) if q_path.is_file() else pl.DataFrame(schema=QUARANTINE.columns)
    if man.height == 0 and quarantine.height == 0:
        raise DataError(f"The manifest {man_path} is empty: there is no drop to check.")
    latest = int(man["drop"].max()) if man.height else 1
    drop = man.filter(pl.col("drop") == latest)
    reference = man.filter(pl.col("drop") < latest)
    if "drop" in quarantine.columns:
        quarantine = quarantine.filter(pl.col("drop").is_null() | (pl.col("drop") == latest))
    split_table = None
    if splits is not None and Path(splits).is_file():
        split_table = read_table(splits, SPLITS_TABLE)
        split_table = _own_splits(split_table, man, splits, man_path) if reference.height else split_table
        split_table = split_table.filter(pl.col("image_id").is_in(reference["image_id"].implode()))
    ctx = CheckContext(
        drop=_with_files(drop, man_path),
        quarantine=_with_files(quarantine, q_path),
        reference=reference,
        reference_path=man_path,
        splits=split_table,
        params=cp,
        radius=ip.near_dup_radius,
        allow_new_labels=allow,
        live=_estimate_window(estimate, man, man_path, latest, cp.window),
    )
    names = rule_names() if reference.height else [n for n in rule_names() if not needs_reference(n)]
    report = apply_rules(ctx, names)
    report.summary["drop"] = latest
    return _conclude(report, out, raise_on_fail, f" in drop {latest}")


def _estimate_window(estimate: Estimator | None, man: pl.DataFrame, man_path: Path, latest: int,
                     window: int) -> dict[str, Any] | None:
    """The live estimate of the last ``window`` drops of the manifest (the newest is gated), each
    against the drops before it as the reference."""
    if estimate is None:
        return None
    first = max(1, latest - window + 1)
    frames = {}
    for d in range(first, latest + 1):
        rows = man.filter(pl.col("drop") == d)
        if rows.height or d == latest:
            paths = [str(p) for p in image_paths(rows, man_path)] if rows.height else []
            frames[f"drop {d}"] = rows.with_columns(file=pl.Series(paths, dtype=pl.String))
    return estimate(frames, man.filter(pl.col("drop") < latest))


def _conclude(report: CheckReport, out: str | Path | None, raise_on_fail: bool, where: str = "") -> CheckReport:
    """Write check.json and check.md (before deciding, so CI can post a failing drop's summary).

    Raises:
        CheckFailed: when a finding is an error and ``raise_on_fail``.
    """
    if out is not None:
        with replace_dir(out, owned=("check.json", "check.md", _live.PLOT)) as tmp:  # the files as one set
            write_json(tmp / "check.json", report.to_dict())
            write_text(tmp / "check.md", report.markdown())
            png = _live.plot(report.findings)
            if png is not None:
                write_bytes(tmp / _live.PLOT, png)
    if raise_on_fail and report.errors:
        first = report.errors[0]
        raise CheckFailed(
            f"check failed: {len(report.errors)} blocking finding(s){where}; first: [{first.rule}] {first.message}"
        )
    return report


def run_check(
    drops: Sequence[str],
    reference: str | Path,
    *,
    splits: str | Path | None = None,
    out: str | Path | None = None,
    params: CheckParams | None = None,
    ingest_params: IngestParams | None = None,
    allow_new_labels: bool | None = None,
    raise_on_fail: bool = True,
    estimate: Estimator | None = None,
) -> CheckReport:
    """Ingest the drop(s) to a temporary folder, check them against the reference, write reports.

    ``estimate`` (``shiftkit check --model``): called on the drop's images while they exist, its
    result gates the drop through the ``error_rise`` rule (``check/live.py``).

    Writes ``check.json`` and ``check.md`` to ``out`` (when given) before deciding, so that CI
    can post the summary of a failing drop.

    Raises:
        CheckFailed: when a finding is an error (and ``raise_on_fail``).
        InputPathError, SchemaError, DataError, ConfigError: bad paths, tables or options.
    """
    from shiftkit.ingest import stage as ingest_mod

    cp = params or CheckParams()
    ip = ingest_params or IngestParams()
    allow = cp.allow_new_labels if allow_new_labels is None else allow_new_labels
    domains = drop_domains(drops)
    if not domains:
        raise InputPathError("No drop given: pass DOMAIN=PATH or a folder of domains.")
    ref_path = Path(reference)
    if not ref_path.is_file():
        raise InputPathError(
            f"The reference manifest {ref_path} does not exist (--reference expects manifest.parquet from ingest)."
        )
    if splits is not None and not Path(splits).is_file():
        raise InputPathError(f"The splits table {splits} does not exist (--splits expects splits.parquet from split).")
    ref = read_table(ref_path, MANIFEST)
    if ref.height == 0:
        raise DataError(f"The reference manifest {ref_path} is empty.")
    split_table = read_table(splits, SPLITS_TABLE) if splits is not None else None
    if split_table is not None:
        split_table = _own_splits(split_table, ref, splits, ref_path)
    with tempfile.TemporaryDirectory(prefix="shiftkit-check-") as tmp:
        # the drop's ingest is a step of check, not news; nor is its temporary folder kept (an
        # interrupt must not say it "kept" a folder that is deleted on the way out)
        with output_to(Console(quiet=True)), recording_kept():
            ingest_mod.ingest(domains, tmp, params=ip)
        manifest_path = Path(tmp) / "manifest.parquet"
        drop = read_table(manifest_path, MANIFEST)
        quarantine = read_table(Path(tmp) / "quarantine.parquet", QUARANTINE)
        drop = _with_files(drop, manifest_path)
        quarantine = _with_files(quarantine, Path(tmp) / "quarantine.parquet")
        abs_drop = drop.with_columns(file=pl.Series([str(p) for p in image_paths(drop, manifest_path)],
                                                    dtype=pl.String)) if drop.height else drop
        live = estimate({"the new drop": abs_drop}, ref) if estimate is not None else None
    ctx = CheckContext(
        drop=drop,
        quarantine=quarantine,
        reference=ref,
        reference_path=ref_path,
        splits=split_table,
        params=cp,
        radius=ip.near_dup_radius,
        allow_new_labels=allow,
        live=live,
    )
    return _conclude(apply_rules(ctx), out, raise_on_fail)


def summary_line(report: CheckReport, out: str | Path) -> str:
    """The one line the CLI command and the DVC stage print after a check."""
    return (
        f"check: {report.verdict} ({len(report.errors)} error(s), {len(report.warnings)} warning(s)); "
        f"report in {Path(out) / 'check.md'}"
    )
