"""Atomic writes and schema-checked reads of the tables and json files shiftkit exchanges.

Nothing is written in place: every file goes to a temporary sibling first and is renamed over
the target, so an interrupted or failed run never leaves a half-written table behind. What may be
written where (inputs, devices, links, foreign files, a full disk) is decided by ``core/outputs.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from shiftkit.core.errors import DataError, InputPathError
from shiftkit.core.outputs import file_target, is_no_space, no_space, refuse_foreign
from shiftkit.core.schema import Table, conform, validate


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and check that it is a writable folder.

    Raises:
        InputPathError: when it exists as a file or cannot be created or written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputPathError(f"Output folder {p} exists and is not a folder.")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputPathError(f"Cannot create output folder {p}: {exc.strerror or exc}.") from exc
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputPathError(f"Output folder {p} is not writable.")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. A character
    device, a pipe or a standard stream (``/dev/null``, ``/dev/stdout``) is written through: the
    bytes are built in a temporary file elsewhere and copied into it (see ``core/outputs.py``).

    Raises:
        InputPathError: when the folder cannot be created or written, ``path`` is a folder, a
            symbolic link or another special file, or the disk is full.
    """
    target = Path(path)
    through = file_target(target) == "through"
    if not through:
        ensure_dir(target.parent if str(target.parent) else Path("."))
    try:
        if through:
            fd, tmp = tempfile.mkstemp(prefix=".shiftkit.", suffix=".tmp")
        else:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(target.parent, exc) from exc
        raise InputPathError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if through:
            with open(tmp_path, "rb") as src, open(target, "ab") as dst:
                shutil.copyfileobj(src, dst)
            return
        os.chmod(tmp_path, 0o644)
        file_target(target)  # a link or a folder put there meanwhile is refused, not replaced
        try:
            os.replace(tmp_path, target)
        except OSError as exc:  # a folder created meanwhile, a read-only target folder, ...
            if is_no_space(exc):
                raise
            raise InputPathError(f"Cannot write the file {target}: {exc.strerror or exc}.") from exc
    except Exception as exc:
        # the writer's own error (polars: "os error 28", or a cut footer on a full disk): one line, the folder
        if is_no_space(exc, target.parent if not through else None):
            raise no_space(target.parent, exc) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


@contextlib.contextmanager
def replace_dir(
    dest: str | os.PathLike[str],
    *,
    owned: tuple[str, ...] | None = None,
    keep: tuple[str, ...] = (".gitignore",),
) -> Iterator[Path]:
    """Build a stage's whole output folder beside ``dest``, then swap it in as one set.

    Yields an empty temporary sibling folder; the stage writes every output there. When the
    block ends without an exception the old ``dest`` is renamed away, the new folder renamed
    to ``dest`` and the old one removed, so ``dest`` always holds one consistent run. On an
    exception (Ctrl-C included) the temporary folder is removed and ``dest`` is untouched.

    ``owned``: glob patterns of the names the stage writes at the top of ``dest``. When given,
    a ``dest`` holding anything else (``--out .`` by mistake, say) is refused before any work.
    ``keep``: names carried over from the old folder when the new set lacks them (DVC's
    ``.gitignore``).

    Raises:
        InputPathError: when ``dest`` is a file, holds names the stage does not own, or its
            parent cannot be written.
    """
    target = Path(dest)
    if target.exists() and not target.is_dir():
        raise InputPathError(f"Output folder {target} exists and is not a folder.")
    refuse_foreign(target, owned if owned is not None else ("*",), keep=keep)
    parent = ensure_dir(target.parent if str(target.parent) else Path("."))
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=parent))
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(parent, exc) from exc
        raise InputPathError(f"Cannot write into {parent}: {exc.strerror or exc}.") from exc
    old: Path | None = None
    try:
        yield tmp
        with signals_held():  # the swap and the old folder's removal finish, then a Ctrl-C counts
            if target.is_dir():
                for name in keep:
                    src = target / name
                    if src.exists() and not (tmp / name).exists():
                        shutil.copy2(src, tmp / name)
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
                os.replace(target, old / "dir")
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
            from shiftkit.core.console import note_kept

            note_kept(str(target))  # an interrupt from now on says the folder was kept, complete
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
                old = None
    except BaseException as exc:
        if old is not None and (old / "dir").exists() and not target.exists():
            os.replace(old / "dir", target)  # put the previous run back
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_no_space(exc, parent):
            raise no_space(target, exc) from exc
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back in the main thread for the block, delivered when it ends (a
    Ctrl-C in the middle of a swap left a ``.NAME.*.old`` folder beside the output: 1 in about
    a hundred of the interrupt trials). Every swap of a complete output holds them with this
    (``replace_dir``, the example's folders)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented json with sorted keys (stable bytes for stable content)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a json file.

    Raises:
        InputPathError: when the file is missing.
        DataError: when it is not valid json.
    """
    p = Path(path)
    if not p.is_file():
        raise InputPathError(f"File {p} does not exist.")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"File {p} is not valid json: {exc}.") from exc


def write_table(
    df: pl.DataFrame, path: str | os.PathLike[str], table: Table, *, level: int = 3, statistics: bool = True
) -> Path:
    """Cast ``df`` to ``table``'s schema and write it as parquet, atomically.

    The same rows in the same order always give byte-identical files (no timestamps, fixed
    zstd ``level``, column ``statistics`` on unless turned off).

    Raises:
        SchemaError: when a required column is missing.
        InputPathError: when the folder cannot be written.
    """
    out = conform(df, table)
    with atomic_path(path) as tmp:
        out.write_parquet(tmp, compression="zstd", compression_level=level, statistics=statistics)
    return Path(path)


def read_table(path: str | os.PathLike[str], table: Table) -> pl.DataFrame:
    """Read a parquet (or CSV, by extension) table and validate it against ``table``.

    Raises:
        InputPathError: when the file is missing.
        DataError: when it is empty or not a readable table.
        SchemaError: when a required column is missing or mistyped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputPathError(f"The {table.name} table {p} does not exist.")
    if p.stat().st_size == 0:
        raise DataError(f"The {table.name} table {p} is an empty file.")
    try:
        if p.suffix.lower() == ".csv":
            df = pl.read_csv(p, infer_schema_length=10000)
            df = df.with_columns(
                [pl.col(c).cast(t, strict=False) for c, t in table.all_columns().items() if c in df.columns]
            )
        else:
            df = pl.read_parquet(p)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"Cannot read the {table.name} table {p}: {str(exc).splitlines()[0]}") from exc
    return validate(df, table, source=str(p))


def relative_root(root: str | os.PathLike[str], table_dir: str | os.PathLike[str]) -> str:
    """``root`` as a POSIX path relative to ``table_dir`` (the folder the table is written to).

    Tables store data roots this way so that a repository can be cloned anywhere. A URL root
    (``s3://bucket/prefix``, see shiftkit/images/storage.py) is stored as it is.
    """
    if "://" in str(root):
        return str(root)
    rel = os.path.relpath(Path(root).resolve(), Path(table_dir).resolve())
    return Path(rel).as_posix()


def image_paths(df: pl.DataFrame, table_path: str | os.PathLike[str]) -> list[Path]:
    """Absolute paths of the images listed in a manifest-like table (``root`` + ``path``).

    ``root`` is relative to the table file's folder; a table without ``root`` has paths
    relative to its own folder. Images under a URL root come back as URL strings.
    """
    base = Path(table_path).resolve().parent
    if "root" in df.columns:
        return [f"{r}/{p}" if "://" in r else (base / r / p)  # type: ignore[misc]
                for r, p in zip(df["root"].to_list(), df["path"].to_list(), strict=True)]
    return [base / p for p in df["path"].to_list()]
