"""Folders of images (and CSV/parquet listings) -> the manifest and the quarantine.

Every regular file or link under a domain's root ends up exactly once in one of two tables:
``manifest.parquet`` (usable images, with header facts, properties and a perceptual hash) or
``quarantine.parquet`` (everything else, with a ``schema.QuarantineReason``).

How a run goes:

1. Enumerate (main process, cheap; ``shiftkit.ingest.walk``): ``ROOT/<label>/<file>`` is the
   ImageFolder layout; files at another depth are ``stray_file``; names that are not UTF-8
   ``name_not_utf8`` (shown escaped); links that resolve outside the root ``outside_root``;
   broken links and non-regular files ``unreadable``. Listing rows resolve against the
   listing's own folder, which is their root. An *unlabelled* domain is a flat folder
   (``ROOT/<file>``): its images enter the manifest with a null ``label`` (split puts them in the
   ``unlabelled`` pool, which only synthesis and ``shiftkit shift`` read).
2. Read, hash and decode (worker processes, ``shiftkit.runtime.imap``): workers get paths and send
   back small records. A file whose sha256 the previous run already decoded (good or bad) is
   only read and hashed, not decoded again: re-runs cost a read per known file.
3. Decide (main process): exact copies of the same bytes (``duplicate``, the kept file named in
   ``detail``; across domains the target domain's copy is kept), the same bytes under two labels
   (``conflicting_label``, every copy), copies across domains (in the summary), near duplicates
   (``dup_group``: phash pairs within ``ingest.near_dup_radius`` confirmed by an 8x8 thumbnail,
   see ``dedup.group_ids``), and data drops.

Incremental runs: the output folder's previous tables are the memory. An entry that was not
there before (a new path, or new bytes at an old path) belongs to a new ``drop``; a manifest
image keeps the drop in which its bytes first appeared. Files that vanished since the last run
are dropped from both tables: the manifest describes the folders as they are, so that every
row points to a loadable image (the previous versions live in DVC/git history); the printed
summary counts them. With nothing new, every output is byte-identical to the previous run's.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from shiftkit.core.console import console, make_progress, rate_text
from shiftkit.core.errors import ImageDecodeError, InputPathError
from shiftkit.core.files import ensure_dir, read_json, read_table, relative_root, replace_dir, write_json, write_table
from shiftkit.core.reasons import QuarantineReason
from shiftkit.core.schema import MANIFEST, QUARANTINE
from shiftkit.images import decode as images
from shiftkit.images import storage
from shiftkit.images.dedup import THUMB_SIZE, group_ids
from shiftkit.images.reading import read_capped, read_objects
from shiftkit.ingest.params import IngestParams
from shiftkit.ingest.walk import Entry, check_inputs, check_unlabelled, enumerate_files
from shiftkit.runtime.imap import imap, resolve_workers

Reason = QuarantineReason

MANIFEST_FILE = "manifest.parquet"
QUARANTINE_FILE = "quarantine.parquet"
SUMMARY_FILE = "summary.json"
OWNED = (MANIFEST_FILE, QUARANTINE_FILE, SUMMARY_FILE)  # what ingest writes in --out (core/outputs.py)
# Files per task sent to a worker: big batches amortise the pool's per-task cost (~0.1 ms),
# small ones keep every worker busy on small inputs and the progress bar moving.
_BATCH_MIN, _BATCH_MAX = 8, 256
_EXAMPLES = 50  # cross-domain copies listed by name in the summary

_HEADER_FIELDS = ("width", "height", "format", "mode", "jpeg_quality")
_PROP_FIELDS = ("phash", "blur", "brightness", "contrast", "effective_res", "noise", "extent")
_FIELDS = (*_HEADER_FIELDS, *_PROP_FIELDS, "thumb")  # what a decoded file's record holds, in order


@dataclass
class IngestResult:
    """What an ingest run wrote and counted (``summary`` is what summary.json holds)."""

    manifest_path: Path
    quarantine_path: Path
    summary_path: Path
    summary: dict
    files: int
    accepted: int
    quarantined: int
    drop: int
    new_files: int
    vanished: int
    decoded: int
    seconds: float
    by_reason: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# workers: read, hash, decode (small records back)

_KNOWN: frozenset[str] = frozenset()
_LIMITS: tuple[int, int, int, int] = (89_478_485, 8, 255, 536_870_912)


def _init_worker(known: frozenset[str], limits: tuple[int, int, int, int]) -> None:
    global _KNOWN, _LIMITS
    _KNOWN, _LIMITS = known, limits
    if multiprocessing.parent_process() is not None:
        # libpng prints its complaints about corrupt files straight to fd 2; in a worker
        # process they would only scribble over the progress bar (the quarantine names them)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


def _process(task: tuple[str, Sequence[str]]) -> list[tuple]:
    """(sha256, kind, payload) per path of (root, relative paths); kind is ok, bad, known or unreadable."""
    root, rels = task
    max_pixels, min_size, background, max_bytes = _LIMITS
    out: list[tuple] = []
    pending: list[int] = []
    works: list[np.ndarray] = []
    with images.quiet_pillow():
        for data in _read_files(root, rels, max_pixels, max_bytes):
            if isinstance(data, ImageDecodeError):  # a bomb or too_large, told before reading it all
                out.append((None, "bad", (data.reason, data.detail)))
                continue
            if isinstance(data, Exception):
                out.append((None, "unreadable", getattr(data, "strerror", None) or str(data)[:200]))
                continue
            sha = hashlib.sha256(data).hexdigest()
            if sha in _KNOWN:
                out.append((sha, "known", None))
                continue
            try:
                head, work = images.decode_working(
                    data, max_pixels=max_pixels, min_size=min_size, background=background
                )
            except ImageDecodeError as exc:
                out.append((sha, "bad", (exc.reason, exc.detail)))
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not stop the run
                out.append((sha, "bad", (Reason.UNSUPPORTED, f"{type(exc).__name__}: {str(exc)[:200]}")))
                continue
            pending.append(len(out))
            works.append(work)
            out.append((sha, "ok", (head.width, head.height, head.format, head.mode, head.jpeg_quality)))
    if works:
        for idx, work, props in zip(pending, works, images.measure_batch(np.stack(works)), strict=False):
            sha, kind, head = out[idx]
            out[idx] = (sha, kind, (*head, *(props[k] for k in _PROP_FIELDS), images.thumbnail(work, THUMB_SIZE)))
    return out


def _read_files(root: str, rels: Sequence[str], max_pixels: int, max_bytes: int) -> Iterable[bytes | Exception]:
    """The bytes of each file, or the error that stopped its read: from a folder, or a URL root's store.

    A file larger than ``max_bytes`` is an ``ImageDecodeError`` (too_large) in place of its bytes, never read.
    """
    if storage.is_url(root):
        yield from read_objects(root, rels, max_pixels, max_bytes)  # with the header bomb check
        return
    for rel in rels:
        try:
            yield read_capped(os.path.join(root, rel), max_bytes)
        except (OSError, ImageDecodeError) as exc:
            yield exc


def _batches(todo: Sequence[Entry], size: int) -> Iterable[tuple[str, list[str]]]:
    """Tasks of up to ``size`` files under one root: (root, relative paths), joined by the worker."""
    batch: list[str] = []
    root = None
    for e in todo:
        if batch and (e.root != root or len(batch) == size):
            yield str(root), batch
            batch = []
        root = e.root
        batch.append(e.path)
    if batch:
        yield str(root), batch


# ---------------------------------------------------------------------------------------------
# the previous run


@dataclass
class _Previous:
    values: dict[str, tuple] = field(default_factory=dict)  # image_id -> header + properties
    verdicts: dict[str, tuple[QuarantineReason, str]] = field(default_factory=dict)  # image_id -> decode failure
    drops: dict[tuple, int] = field(default_factory=dict)  # (domain, root, path, image_id) -> drop
    first_drop: dict[str, int] = field(default_factory=dict)  # image_id -> earliest drop
    keys: set[tuple] = field(default_factory=set)  # (domain, root, path)
    max_drop: int = 0


def _decode_settings(p: IngestParams) -> dict[str, int]:
    return {"max_pixels": p.max_pixels, "min_size": p.min_size, "background": p.background}


def _load_previous(out: Path, params: IngestParams) -> _Previous:
    prev = _Previous()
    man_path, q_path, s_path = out / MANIFEST_FILE, out / QUARANTINE_FILE, out / SUMMARY_FILE
    for p in (man_path, q_path, s_path):
        if p.exists() and not p.is_file():
            raise InputPathError(f"{p} is not a file: expected the {p.name} of an earlier ingest (or nothing).")
    if not man_path.is_file() or not q_path.is_file():
        return prev
    man = read_table(man_path, MANIFEST)
    qua = read_table(q_path, QUARANTINE)
    # decoded values are reused only under the same decoding limits (min_size decides too_small)
    reuse = s_path.is_file() and read_json(s_path).get("decode_params") == _decode_settings(params)
    if "thumb" not in man.columns:  # a manifest from before thumbnails: decode its files again
        man, reuse = man.with_columns(thumb=pl.lit(None, pl.Binary)), False
    cols = list(_FIELDS)
    for row in man.select(["image_id", "domain", "root", "path", "drop", *cols]).iter_rows():
        image_id, domain, root, path, drop = row[:5]
        if reuse:
            prev.values[image_id] = tuple(row[5:])
        prev.drops[(domain, root, path, image_id)] = drop
        prev.first_drop[image_id] = min(drop, prev.first_drop.get(image_id, drop))
        prev.keys.add((domain, root, path))
        prev.max_drop = max(prev.max_drop, drop)
    qcols = [c for c in ("image_id", "drop", "root") if c in qua.columns]
    if len(qcols) == 3:
        for domain, root, path, image_id, drop, reason, detail in qua.select(
            ["domain", "root", "path", "image_id", "drop", "reason", "detail"]
        ).iter_rows():
            prev.drops[(domain, root, path, image_id or reason)] = drop
            prev.keys.add((domain, root, path))
            prev.max_drop = max(prev.max_drop, drop or 0)
            if image_id:
                prev.first_drop[image_id] = min(drop, prev.first_drop.get(image_id, drop))
                if reuse and Reason(reason).from_bytes:
                    prev.verdicts[image_id] = (Reason(reason), detail)
    return prev


# ---------------------------------------------------------------------------------------------
# the run


def ingest(
    domains: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    listing: str | os.PathLike[str] | None = None,
    params: IngestParams | None = None,
    workers: int | None = None,
    keep_domain: str = "target",
    unlabelled: Mapping[str, str | os.PathLike[str]] | None = None,
) -> IngestResult:
    """Ingest domain folders (``{name: root}``, ImageFolder layout) and/or a listing into ``out``.

    Writes ``out/manifest.parquet``, ``out/quarantine.parquet`` and ``out/summary.json``; a
    previous run's outputs in ``out`` make this run incremental (see the module docstring).
    ``workers`` overrides ``params.workers`` (0 = every core). When the same bytes are in several
    domains, the copy in ``keep_domain`` (the target domain, whose images are the scarce ones)
    is kept and the others are quarantined as duplicates. The progress bar and the summary table
    go to ``shiftkit.core.console`` (quiet unless the caller turned output on). ``unlabelled``
    (``{name: root}``) adds flat folders of images without labels to those domains (``label``
    null in the manifest; split puts them in the ``unlabelled`` pool).

    Raises:
        ConfigError: on a bad domain name, no input at all, or an unlabelled domain that is not a local folder.
        InputPathError: when a domain folder or the listing is missing, or ``out`` is not writable.
        DataError: when the listing or the previous outputs cannot be read.
    """
    # Hundreds of thousands of small records and no reference cycles: the cyclic collector's
    # full passes over them were measured at a third of the time spent after decoding.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _ingest(
            domains,
            out,
            listing=listing,
            params=params or IngestParams(),
            workers=workers,
            keep=keep_domain,
            unlabelled=dict(unlabelled or {}),
        )
    finally:
        if was_enabled:
            gc.enable()


def _decode_all(todo: list[Entry], prev: _Previous, params: IngestParams, n_workers: int) -> int:
    """Read, hash and decode ``todo`` in worker processes, filling each entry; the count decoded."""
    known = frozenset(prev.values) | frozenset(prev.verdicts)
    decoded = 0
    started = time.perf_counter()
    # BLAS threads for 64x64 products only fight the worker processes (which inherit this)
    with make_progress() as progress, threadpool_limits(limits=1, user_api="blas"):
        task = progress.add_task("ingest", total=len(todo), rate="")
        records = imap(
            _process,
            _batches(todo, min(_BATCH_MAX, max(_BATCH_MIN, -(-len(todo) // (4 * n_workers))))),
            workers=n_workers,
            chunksize=1,
            initializer=_init_worker,
            initargs=(known, (params.max_pixels, params.min_size, params.background, params.max_bytes)),
        )
        pos = 0
        for batch in records:
            for sha, kind, payload in batch:
                e = todo[pos]
                pos += 1
                e.image_id = sha
                if kind in ("ok", "bad"):
                    decoded += 1
                if kind == "ok":
                    e.values = payload
                elif kind == "bad":
                    e.reason, e.detail = payload
                elif kind == "known":
                    if sha in prev.values:
                        e.values = prev.values[sha]
                    else:
                        e.reason, e.detail = prev.verdicts[sha]
                else:
                    e.reason, e.detail = Reason.UNREADABLE, payload
            progress.update(task, advance=len(batch), rate=rate_text(pos, time.perf_counter() - started))
    return decoded


def _ingest(
    domains: Mapping[str, str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    listing: str | os.PathLike[str] | None,
    params: IngestParams,
    workers: int | None,
    keep: str,
    unlabelled: dict[str, str | os.PathLike[str]],
) -> IngestResult:
    t0 = time.perf_counter()
    roots = check_inputs(domains, listing) if (domains or listing is not None or not unlabelled) else {}
    flat = check_unlabelled(unlabelled)
    out_dir = ensure_dir(out).resolve()
    n_workers = resolve_workers(params.workers if workers is None else workers)
    entries = enumerate_files(roots, listing, out_dir, flat, params.group_depth)
    rel_roots = {r: relative_root(r, out_dir) for r in {e.root for e in entries}}
    prev = _load_previous(out_dir, params)
    decoded = _decode_all([e for e in entries if e.reason is None], prev, params, n_workers)

    cross = _resolve_copies(entries, prev, rel_roots, keep)
    manifest, quarantine, drop, new_files = _tables(entries, prev, rel_roots, params)
    current_keys = {(e.domain, rel_roots[e.root], e.path) for e in entries}
    vanished = len(prev.keys - current_keys)

    summary = _summary(entries, manifest, cross, params)
    # the previous tables were read above (the memory of drops): now the three files are replaced as one set
    with replace_dir(out_dir, owned=(MANIFEST_FILE, QUARANTINE_FILE, SUMMARY_FILE)) as tmp:
        write_table(manifest, tmp / MANIFEST_FILE, MANIFEST)
        write_table(quarantine, tmp / QUARANTINE_FILE, QUARANTINE)
        write_json(tmp / SUMMARY_FILE, summary)
    result = IngestResult(
        manifest_path=out_dir / MANIFEST_FILE,
        quarantine_path=out_dir / QUARANTINE_FILE,
        summary_path=out_dir / SUMMARY_FILE,
        summary=summary,
        files=len(entries),
        accepted=manifest.height,
        quarantined=quarantine.height,
        drop=drop,
        new_files=new_files,
        vanished=vanished,
        decoded=decoded,
        seconds=time.perf_counter() - t0,
        by_reason=summary["by_reason"],
    )
    print_summary(result)
    return result


def _resolve_copies(entries: list[Entry], prev: _Previous, rel_roots: dict[Path, str], keep: str) -> list[dict]:
    """Quarantine exact copies among the accepted files; return the cross-domain copy groups.

    The copy kept is the one in the domain ``keep`` (the target's images are the scarce ones),
    then the one the previous run kept, then the earlier domain on the command line, then the path.
    """
    by_sha: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.reason is None and e.values is not None:
            by_sha[e.image_id].append(e)
    cross = []
    for sha, group in by_sha.items():
        if len(group) < 2:
            continue
        group.sort(
            key=lambda e: (
                e.domain != keep,
                e.label is None,  # a labelled copy is kept over an unlabelled one
                (e.domain, rel_roots[e.root], e.path, sha) not in prev.drops,
                e.order,
                e.domain,
                e.path,
                str(e.root),
            )
        )
        labels = sorted({e.label for e in group if e.label is not None})  # an unlabelled copy conflicts with none
        if len(labels) > 1:
            for e in group:
                others = [f"{o.domain}:{o.path} ({o.label})" for o in group if o is not e]
                e.reason = Reason.CONFLICTING_LABEL
                e.detail = f"the same bytes under labels {', '.join(labels)}: also {'; '.join(others[:5])}" + (
                    f" and {len(others) - 5} more" if len(others) > 5 else ""
                )
        else:
            kept = group[0]
            for e in group[1:]:
                e.reason = Reason.DUPLICATE
                e.detail = f"the same bytes as {kept.path} in domain {kept.domain}" + (
                    f" (the {keep} domain's copy is kept)" if kept.domain == keep and e.domain != keep else ""
                )
        if len({e.domain for e in group}) > 1:
            cross.append(
                {"image_id": sha, "files": [{"domain": e.domain, "path": e.path, "label": e.label} for e in group]}
            )
    cross.sort(key=lambda g: g["image_id"])
    return cross


def _tables(
    entries: list[Entry], prev: _Previous, rel_roots: dict[Path, str], params: IngestParams
) -> tuple[pl.DataFrame, pl.DataFrame, int, int]:
    def key(e: Entry) -> tuple:
        return (e.domain, rel_roots[e.root], e.path, e.image_id or e.reason)

    new_files = sum(1 for e in entries if key(e) not in prev.drops)
    drop = prev.max_drop + 1 if (new_files or prev.max_drop == 0) else prev.max_drop

    accepted = [e for e in entries if e.reason is None]
    rejected = [e for e in entries if e.reason is not None]
    fields = _FIELDS
    # transpose the records in C (zip) rather than appending field by field
    values = list(zip(*(e.values for e in accepted), strict=False)) if accepted else [()] * len(fields)
    cols: dict[str, list] = {
        "image_id": [e.image_id for e in accepted],
        "path": [e.path for e in accepted],
        "root": [rel_roots[e.root] for e in accepted],
        "domain": [e.domain for e in accepted],
        "label": [e.label for e in accepted],
        "group": [e.group for e in accepted],
        **{name: list(column) for name, column in zip(fields, values, strict=False)},
        "drop": [prev.first_drop.get(e.image_id, drop) for e in accepted],
    }
    schema = MANIFEST.all_columns()
    manifest = pl.DataFrame({c: v for c, v in cols.items()}, schema={c: schema[c] for c in cols})
    # near copies share the id of their earliest member, so old groups keep their names
    order = manifest.with_row_index("_row").sort(["drop", "image_id"])
    thumbs = np.frombuffer(b"".join(order["thumb"].to_list()), np.uint8).reshape(order.height, THUMB_SIZE**2)
    groups = group_ids(order["image_id"].to_list(), order["phash"].to_numpy(), params.near_dup_radius, thumbs=thumbs)
    manifest = (
        order.with_columns(pl.Series("dup_group", groups, dtype=pl.String))
        .sort(["domain", "root", "path"])
        .drop("_row")
    )

    q = {
        "path": [e.path for e in rejected],
        "domain": [e.domain for e in rejected],
        "label": [e.label for e in rejected],
        "reason": [e.reason.value for e in rejected],
        "detail": [e.detail for e in rejected],
        "image_id": [e.image_id for e in rejected],
        "drop": [prev.drops.get(key(e), drop) for e in rejected],
        "root": [rel_roots[e.root] for e in rejected],
    }
    quarantine = pl.DataFrame(q, schema=QUARANTINE.all_columns()).sort(["domain", "root", "path", "reason"])
    return manifest, quarantine, drop, new_files


def _summary(entries: list[Entry], manifest: pl.DataFrame, cross: list[dict], params: IngestParams) -> dict:
    by_reason = Counter(e.reason for e in entries if e.reason is not None)
    domains: dict[str, dict] = {}
    for e in entries:
        d = domains.setdefault(e.domain, {"files": 0, "manifest": 0, "quarantine": 0, "labels": Counter()})
        d["files"] += 1
        if e.reason is None:
            d["manifest"] += 1
            if e.label is None:
                d["unlabelled"] = d.get("unlabelled", 0) + 1
            else:
                d["labels"][e.label] += 1
        else:
            d["quarantine"] += 1
    sizes = manifest.group_by("dup_group").len().filter(pl.col("len") > 1)
    drops = manifest.group_by("drop").len().sort("drop")
    return {
        "files": len(entries),
        "manifest": manifest.height,
        "quarantine": int(sum(by_reason.values())),
        "by_reason": {r.value: int(by_reason.get(r, 0)) for r in QuarantineReason},
        "domains": {
            k: {
                **{f: v[f] for f in ("files", "manifest", "quarantine", "unlabelled") if f in v},
                "labels": dict(sorted(v["labels"].items())),
            }
            for k, v in sorted(domains.items())
        },
        "drops": {str(d): int(n) for d, n in drops.iter_rows()},
        "near_duplicates": {
            "radius": params.near_dup_radius,
            "groups": sizes.height,
            "images": int(sizes["len"].sum()) if sizes.height else 0,
        },
        "cross_domain_copies": {"groups": len(cross), "examples": cross[:_EXAMPLES]},
        "decode_params": _decode_settings(params),
    }


def print_summary(result: IngestResult) -> None:
    """The counts by reason on stderr; files = manifest + quarantine, and the reasons add up."""
    from rich.table import Table

    s = result.summary
    table = Table(
        title=f"ingest: {result.files:,} files -> {result.accepted:,} images + {result.quarantined:,} quarantined"
    )
    table.add_column("outcome")
    table.add_column("files", justify="right")
    table.add_row("manifest", f"{result.accepted:,}")
    for reason, n in s["by_reason"].items():
        if n:
            table.add_row(f"quarantine: {reason}", f"{n:,}")
    table.add_row("[bold]total", f"[bold]{result.files:,}")
    console.print(table)
    near = s["near_duplicates"]
    console.print(
        f"drop {result.drop}: {result.new_files:,} new file(s), {result.vanished:,} vanished, "
        f"{result.decoded:,} decoded in {result.seconds:.1f} s; "
        f"{near['groups']:,} near-duplicate group(s) ({near['images']:,} images, radius {near['radius']}); "
        f"{s['cross_domain_copies']['groups']:,} picture(s) copied across domains."
    )


def summary_line(result: IngestResult) -> str:
    """The one line the CLI command and the DVC stage print after an ingest."""
    return (
        f"ingest: {result.files} files -> {result.accepted} in the manifest, {result.quarantined} quarantined "
        f"(drop {result.drop})"
    )
