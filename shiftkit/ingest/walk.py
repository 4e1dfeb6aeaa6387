"""Finding the files of an ingest: domain folders, object-store prefixes and listings, with the
verdicts the layout decides before any byte is read.

``ROOT/<label>/<file>`` is the ImageFolder layout; files at another depth are ``stray_file``; names
that are not UTF-8 ``name_not_utf8`` (shown escaped); links that resolve outside the root
``outside_root``; broken links and non-regular files ``unreadable``. Listing rows resolve against
the listing's own folder, which is their root. An *unlabelled* domain is a flat folder
(``ROOT/<file>``) whose images have a null ``label``. Domain names are checked here too.

**Groups** the user knows (several photos of one object, one session of an app): with
``group_depth`` N > 0 a folder domain is ``ROOT/<label>/<g1>/.../<gN>/<file>`` (unlabelled:
``ROOT/<g1>/.../<gN>/<file>``) and the image's ``group`` is ``g1/.../gN``; a listing may carry an
optional ``group`` column (empty: none). Split keeps a group in one split. The same group name in
two domains is one group (the same object seen by both).
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from shiftkit.core.errors import ConfigError, DataError, InputPathError
from shiftkit.core.reasons import QuarantineReason
from shiftkit.images import storage

Reason = QuarantineReason

LISTING_COLUMNS = ("path", "label", "domain")
MAX_DEPTH = 64  # folders below a domain root that are searched (an ImageFolder needs 2)
GROUP_COLUMN = "group"  # optional in a listing: the user's group of the image (an object, a session)
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(slots=True)
class Entry:
    """One file (or link, or listing row) found under a root, and what became of it."""

    domain: str
    root: Path  # absolute data root
    path: str  # POSIX path relative to root (as given, for listing rows outside the root)
    label: str | None
    order: int  # the domain's position on the command line (listing rows after the folders)
    reason: QuarantineReason | None = None
    detail: str = ""
    image_id: str | None = None
    values: tuple | None = None  # header fields, properties and thumbnail, in _FIELDS order
    group: str | None = None  # the user's group (folders below the label, or a listing's group column)


# ---------------------------------------------------------------------------------------------
# enumeration


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _is_utf8(name: str) -> bool:
    """False for a name that holds bytes which are not UTF-8 (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(name: str) -> str:
    """A printable UTF-8 form of a file name: its undecodable bytes as ``\\xff`` escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _link_verdict(path: str, real_root: str) -> tuple[QuarantineReason, str] | None:
    """Why a symbolic link cannot be ingested (None: it points at a regular file inside the root)."""
    target = os.path.realpath(path)
    if not _inside(target, real_root):
        return Reason.OUTSIDE_ROOT, f"a link to {target}, outside the data root {real_root}"
    if not os.path.exists(target):
        return Reason.UNREADABLE, f"a broken link to {target}"
    if os.path.isdir(target):
        return Reason.STRAY_FILE, "a link to a folder (links to folders are not followed)"
    try:
        st = os.stat(path)
    except OSError as exc:
        return Reason.UNREADABLE, exc.strerror or str(exc)
    return None if stat.S_ISREG(st.st_mode) else (Reason.UNREADABLE, "not a regular file")


def _walk_domain(
    domain: str, root: Path, order: int, skip: str | None = None, flat: bool = False, group_depth: int = 0
) -> list[Entry]:
    """Every file and link under ``root``, sorted, with its verdict when the layout decides it.

    ``skip`` is a folder left out (ingest's own output folder, when it lies under a root).
    ``flat``: an unlabelled domain, whose images lie directly in ``root`` (label None).
    ``group_depth``: that many folders between the label (or the root) and the file name the group.
    """
    depth = (1 if flat else 2) + group_depth
    real_root = os.path.realpath(root)
    out: list[Entry] = []

    def visit(folder: str, parts: tuple[str, ...]) -> None:
        try:
            with os.scandir(folder) as it:
                names = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            label = _escaped(parts[0]) if parts else ""
            detail = f"cannot list the folder: {exc.strerror or exc}"
            out.append(Entry(domain, root, _escaped("/".join(parts) or "."), label, order, Reason.UNREADABLE, detail))
            return
        for e in names:
            rel_parts = (*parts, e.name)
            rel = "/".join(rel_parts)
            label = rel_parts[0] if len(rel_parts) >= 2 else ""
            if not _is_utf8(rel) and not e.is_dir(follow_symlinks=False):
                detail = "the file name is not valid UTF-8: rename the file (its bytes are shown escaped)"
                out.append(Entry(domain, root, _escaped(rel), _escaped(label), order, Reason.NAME_NOT_UTF8, detail))
                continue
            entry = Entry(domain, root, rel, None if flat and len(rel_parts) == depth else label, order)
            if group_depth and len(rel_parts) == depth:
                entry.group = "/".join(rel_parts[depth - 1 - group_depth : depth - 1])
            if e.is_symlink():
                verdict = _link_verdict(e.path, real_root)
                if verdict is not None:
                    entry.reason, entry.detail = verdict
            elif e.is_dir(follow_symlinks=False):
                if len(rel_parts) > MAX_DEPTH:  # 1,100 folders deep would exhaust the recursion
                    detail = f"a folder {len(rel_parts)} levels deep (at most {MAX_DEPTH} are searched): not searched"
                    out.append(Entry(domain, root, rel, label, order, Reason.STRAY_FILE, detail))
                elif skip is None or os.path.realpath(e.path) != skip:
                    visit(e.path, rel_parts)
                continue
            elif not e.is_file(follow_symlinks=False):  # from the folder listing: no stat call
                entry.reason, entry.detail = Reason.UNREADABLE, "not a regular file"
            if entry.reason is None and entry.label is not None and len(rel_parts) == depth and not label.strip():
                blank = f"the label folder {label!r} is blank: name it after its label"
                entry.reason, entry.detail = Reason.STRAY_FILE, blank
            if entry.reason is None and len(rel_parts) != depth:
                deep = len(rel_parts) - depth
                where = "directly in the domain folder" if deep < 0 else f"{deep} folder(s) too deep"
                layout = "DOMAIN/FILE (an unlabelled domain)" if flat else "DOMAIN/LABEL/FILE"
                if group_depth:
                    layout = layout.replace("/FILE", "/" + "/".join(["GROUP"] * group_depth) + "/FILE")
                entry.reason, entry.detail = Reason.STRAY_FILE, f"expected {layout}; this file is {where}"
            out.append(entry)

    visit(str(root), ())
    return out


def _walk_url(domain: str, root: str, order: int) -> list[Entry]:
    """Every object under a URL root (``shiftkit.images.storage``), sorted, with its verdict when the key decides it."""
    out = []
    for obj in storage.list_objects(root, f"The folder of domain {domain!r}"):
        parts = obj.rel.split("/")
        label = parts[0] if len(parts) >= 2 and obj.reason is None else ""
        out.append(Entry(domain, root, obj.rel, label, order, obj.reason, obj.detail or ""))  # type: ignore[arg-type]
    return out


def read_listing(path: str | os.PathLike[str], unlabelled_domain: str | None = None) -> pl.DataFrame:
    """Read a CSV or parquet listing with string columns path, label, domain.

    With ``unlabelled_domain``, only a path column is needed: every row is an image of that domain
    without a label (``ingest --unlabelled NAME=LISTING``); any label or domain column is ignored.

    Raises:
        InputPathError: when the file is missing.
        DataError: when it cannot be read, lacks a column or has empty values.
    """
    p = Path(path)
    if not p.is_file():
        raise InputPathError(f"Listing {p} does not exist.")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pl.read_parquet(p)
        else:
            df = pl.read_csv(_csv_text(p), infer_schema_length=0)  # every column as text: labels like 007
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read listing {p}: {str(exc).splitlines()[0]}") from exc
    _check_listing_types(p, df)
    if unlabelled_domain is not None:
        return _unlabelled_listing(p, df, unlabelled_domain)
    missing = [c for c in LISTING_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"Listing {p} lacks column(s) {', '.join(missing)}; expected columns: {', '.join(LISTING_COLUMNS)}."
        )
    group = _group_column(df)
    df = df.select([pl.col(c).cast(pl.String) for c in LISTING_COLUMNS])
    bad = df.with_row_index("row").filter(
        pl.any_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in LISTING_COLUMNS])
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(f"Listing {p} has an empty path, label or domain on data row {row['row'] + 1}: {row}.")
    return df.with_columns(group)


def _group_column(df: pl.DataFrame) -> pl.Series:
    """A listing's optional ``group`` column as text, an empty value as null (no group)."""
    if GROUP_COLUMN not in df.columns:
        return pl.Series(GROUP_COLUMN, [None] * df.height, dtype=pl.String)
    g = pl.col(GROUP_COLUMN).cast(pl.String).str.strip_chars()
    return df.select(pl.when(g != "").then(g).alias(GROUP_COLUMN)).to_series()


def _csv_text(p: Path) -> io.BytesIO:
    """A CSV listing as UTF-8 bytes: a UTF-16 or UTF-32 file (by its byte-order mark, as Excel and
    PowerShell save) is decoded, a UTF-8 byte-order mark dropped; anything else is read as it is."""
    data = p.read_bytes()
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return io.BytesIO(data.decode(codec).encode("utf-8"))
    return io.BytesIO(data.removeprefix(codecs.BOM_UTF8))


def _check_listing_types(p: Path, df: pl.DataFrame) -> None:
    """path, label and domain must be plain values: a list or struct column is refused, not stringified."""
    for c in LISTING_COLUMNS:
        if c in df.columns and (df[c].dtype.is_nested() or df[c].dtype in (pl.Binary, pl.Object)):
            raise DataError(f"Listing {p}: column {c} holds {df[c].dtype} values; expected text (one {c} per row).")
    if "path" in df.columns:
        nul = df["path"].cast(pl.String).str.contains("\x00", literal=True).arg_true()
        if nul.len():
            row = int(nul[0]) + 1
            raise DataError(f"Listing {p} has a path with a NUL byte on data row {row}; a path cannot hold one.")


def _unlabelled_listing(p: Path, df: pl.DataFrame, domain: str) -> pl.DataFrame:
    """The rows of an unlabelled listing as (path, label None, domain) rows."""
    if "path" not in df.columns:
        raise DataError(f"Listing {p} lacks the column path; an unlabelled listing needs only that column.")
    paths = df["path"].cast(pl.String)
    empty = (paths.is_null() | (paths.str.strip_chars() == "")).arg_true()
    if empty.len():
        raise DataError(f"Listing {p} has an empty path on data row {int(empty[0]) + 1}.")
    nulls = pl.Series([None] * df.height, dtype=pl.String)
    return pl.DataFrame({"path": paths, "label": nulls, "domain": domain, GROUP_COLUMN: _group_column(df)})


def _listing_entries(path: Path, known_domains: Sequence[str], unlabelled_domain: str | None = None) -> list[Entry]:
    df = read_listing(path, unlabelled_domain)
    root = path.resolve().parent
    real_root = os.path.realpath(root)
    base_order = len(known_domains)
    order_of = {d: i for i, d in enumerate(known_domains)}
    out = []
    for given, label, domain, group in df.select(*LISTING_COLUMNS, GROUP_COLUMN).iter_rows():
        _check_domain_name(domain, f"the listing {path}")
        order = order_of.setdefault(domain, base_order + len(order_of))
        if storage.is_url(given):  # never normalised into a local path (https://x -> https:/x)
            detail = "a URL: a listing lists files below its own folder (give a store prefix as --domain NAME=URL)"
            out.append(Entry(domain, root, given, label, order, Reason.OUTSIDE_ROOT, detail))
            continue
        absolute = given if os.path.isabs(given) else os.path.join(root, given)
        norm = os.path.normpath(absolute)
        target = os.path.realpath(norm)
        if not _inside(norm, str(root)) or not _inside(target, real_root):
            out.append(
                Entry(
                    domain,
                    root,
                    Path(given).as_posix(),
                    label,
                    order,
                    Reason.OUTSIDE_ROOT,
                    f"resolves to {target}, outside the listing's folder {real_root}",
                )
            )
            continue
        rel = Path(os.path.relpath(norm, root)).as_posix()
        entry = Entry(domain, root, rel, label, order, group=group)
        if not os.path.lexists(norm):
            entry.reason, entry.detail = Reason.UNREADABLE, "the listed file does not exist"
        elif not os.path.exists(norm):
            entry.reason, entry.detail = Reason.UNREADABLE, f"a broken link to {target}"
        elif not os.path.isfile(norm):
            entry.reason, entry.detail = Reason.UNREADABLE, "not a regular file"
        out.append(entry)
    return out


def _check_domain_name(name: str, where: str) -> None:
    if not _DOMAIN_NAME.match(name or ""):
        raise ConfigError(
            f"The domain name {name!r} in {where} must start with a letter or digit and hold only "
            "letters, digits, '_', '.' or '-'."
        )
    from shiftkit.stats.bootstrap import SYNTH_DOMAIN  # evaluate and report reserve it (issue 25, 7)

    if name.casefold() == SYNTH_DOMAIN:
        raise ConfigError(
            f"The domain name {name!r} in {where} is reserved: evaluate and report give it to the synthesised "
            "copies (choose another name, e.g. 'synthetic')."
        )


def check_inputs(
    domains: Mapping[str, str | os.PathLike[str]], listing: str | os.PathLike[str] | None
) -> dict[str, Path]:
    if not domains and listing is None:
        raise ConfigError("ingest needs at least one --domain NAME=PATH or a --listing FILE.")
    roots: dict[str, Path] = {}
    for name, path in domains.items():
        _check_domain_name(name, "--domain")
        if storage.is_url(path):  # an object-store prefix (shiftkit/images/storage.py)
            roots[name] = storage.check_root(path, f"The folder of domain {name!r}")  # type: ignore[assignment]
            continue
        p = Path(path)
        if not p.exists():
            raise InputPathError(f"The folder of domain {name!r}, {p}, does not exist.")
        if not p.is_dir():
            raise InputPathError(f"The folder of domain {name!r}, {p}, is not a folder.")
        roots[name] = p.resolve()
    if listing is not None and not Path(listing).is_file():
        raise InputPathError(f"Listing {listing} does not exist.")
    return roots


def check_unlabelled(unlabelled: Mapping[str, str | os.PathLike[str]]) -> dict[str, Path]:
    """The unlabelled folders or listings (``{domain: path}``), checked: local folders or files that exist."""
    for name, path in unlabelled.items():
        if storage.is_url(path):
            raise ConfigError(f"--unlabelled {name}={path}: an unlabelled folder must be on the local disk.")
    listings = {n: Path(p).resolve() for n, p in unlabelled.items() if Path(p).is_file()}
    for name in listings:
        _check_domain_name(name, "--unlabelled")
    folders = {n: p for n, p in unlabelled.items() if n not in listings}
    checked = check_inputs(folders, None) if folders else {}
    return {n: listings.get(n) or checked[n] for n in unlabelled}


def enumerate_files(
    roots: dict[str, Path],
    listing: str | os.PathLike[str] | None,
    out_dir: Path,
    flat: dict[str, Path],
    group_depth: int = 0,
) -> list[Entry]:
    """Every file of the domain folders, of the listing and of the unlabelled folders, in command-line order.

    ``group_depth``: folders below the label (or an unlabelled root) that name each file's group.
    """
    entries: list[Entry] = []
    for order, (name, root) in enumerate(roots.items()):
        if storage.is_url(root):
            entries.extend(_walk_url(name, root, order))
        else:
            entries.extend(_walk_domain(name, root, order, os.path.realpath(out_dir), group_depth=group_depth))
    if listing is not None:
        entries.extend(_listing_entries(Path(listing), list(roots)))
    known = {e.domain: e.order for e in entries}
    for name, root in flat.items():
        if root.is_file():  # a listing of unlabelled images
            entries.extend(_listing_entries(root, [*roots, *(d for d in known if d not in roots)], name))
            continue
        order = list(roots).index(name) if name in roots else known.get(name, len(roots) + len(known))
        entries.extend(_walk_domain(name, root, order, os.path.realpath(out_dir), True, group_depth))
    return entries
