"""The one guard of every output path: what a stage may write where, decided before any work.

Every stage (the ``shiftkit`` commands in ``cli/app.py`` and the ``pipelines/*.py`` scripts) calls
:func:`guard` with the paths it reads and the paths it writes; the atomic writers of
:mod:`shiftkit.core.files` call :func:`file_target` and :func:`refuse_foreign` for every file and
folder they replace. The rules:

- **no output over an input**: an output that resolves to one of the stage's inputs, lies inside
  an input folder the stage reads, or is a folder (replaced as a whole) holding one of its inputs
  is refused (``evaluate --out M/manifest.parquet`` would replace the manifest it reads);
- **no two outputs of one stage at the same place**, nor one inside another;
- **devices and pipes are written through** (``--json /dev/stdout``, ``--out /dev/null``): the
  bytes are built in a temporary file and then copied into the device, never renamed over it;
- **symbolic links are refused** as the last part of an output path (a link to a file or a
  folder; links in the folders above are followed as usual), except the standard streams
  (``/dev/stdout`` and the like, links into ``/proc``): renaming over a link would silently drop
  it, writing through it would change a file elsewhere (a DVC cache file, another run);
- **nothing but a regular file is ever renamed over**; a block device or a socket is refused;
- **a folder holding files the stage did not write is refused** (:func:`refuse_foreign`), so a
  stage that replaces or cleans its folder never deletes a user's files.

Every refusal is an :class:`~shiftkit.core.errors.InputPathError` (exit 2, one line) raised
before anything is written. A full disk while writing is :func:`no_space` (one line naming the
folder and "no space left", exit 2), with the earlier output left as it was.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from shiftkit.core.errors import InputPathError

PathLike = str | os.PathLike[str]
#: an entry of ``reads``/``files``/``folders``: one path, several, or None (the option was not given)
Paths = PathLike | Iterable[PathLike] | None

#: what a dvclive folder of shiftkit holds (report=None, dvcyaml=None: no report, no dvc.yaml)
LIVE_OWNED = ("metrics.json", "params.yaml", "plots")


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _each(paths: Paths) -> list[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)] if os.fspath(paths) else []
    return [os.fspath(p) for p in paths if p is not None and os.fspath(p)]


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and child.is_relative_to(parent)


def _is_url(text: str) -> bool:
    return "://" in text


def guard(
    stage: str,
    *,
    reads: Mapping[str, Paths],
    files: Mapping[str, Paths] | None = None,
    folders: Mapping[str, Paths] | None = None,
    live: PathLike | None = None,
    owned: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Refuse, before any work, outputs of ``stage`` that would overwrite or sit inside its inputs.

    ``reads``: option name -> the paths the stage reads (files or folders; a missing path is
    left to the stage to report). ``files``: option -> single-file outputs. ``folders``:
    option -> output folders the stage builds or replaces as a whole. ``live``: a dvclive folder
    (an output folder that must hold only what dvclive writes, see :data:`LIVE_OWNED`). ``owned``:
    option -> the names the stage writes in that output folder (its ``replace_dir(owned=...)``),
    so that a folder holding anything else is refused now, not after the work.

    Raises:
        InputPathError: naming the output option and path and the input it collides with.
    """
    ins = [(opt, p, _real(p)) for opt, paths in reads.items() for p in _each(paths) if not _is_url(p)]
    outs = [(opt, p, _real(p), False) for opt, paths in (files or {}).items() for p in _each(paths)]
    outs += [(opt, p, _real(p), True) for opt, paths in (folders or {}).items() for p in _each(paths)
             if not _is_url(p)]
    if live is not None:
        outs.append(("--live", os.fspath(live), _real(live), True))
    for oopt, opath, oreal, is_folder in outs:
        if not is_folder:
            file_target(opath, option=oopt)  # a folder, a link or a block device there: refused before any work
        if _stream(oreal):
            continue
        for iopt, ipath, ireal in ins:
            if oreal == ireal:
                how = "is"
            elif _inside(oreal, ireal) and ireal.is_dir():
                how = "lies inside"
            elif is_folder and _inside(ireal, oreal):
                how = "would replace the folder holding"
            else:
                continue
            raise InputPathError(
                f"The output {oopt} {opath} {how} the input {iopt} {ipath} that {stage} reads: "
                "give an output path apart from every input (the input would be overwritten)."
            )
    for i, (aopt, apath, areal, _a) in enumerate(outs):
        for bopt, bpath, breal, _b in outs[i + 1:]:
            if not _stream(areal) and (areal == breal or _inside(areal, breal) or _inside(breal, areal)):
                raise InputPathError(
                    f"The outputs {aopt} {apath} and {bopt} {bpath} of {stage} overlap: give two separate paths."
                )
    if live is not None:
        refuse_foreign(live, LIVE_OWNED, what="dvclive folder --live", nested={"plots": ("metrics",)})
    for opt, names in (owned or {}).items():
        for path in _each((folders or {}).get(opt)):
            refuse_foreign(path, tuple(names), what=f"Output folder {opt}")


def _stream(real: Path) -> bool:
    """A character device, a pipe or a socket: written through, never renamed over."""
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def file_target(path: PathLike, option: str = "") -> str:
    """How a single-file output at ``path`` is written: ``"replace"`` (a new or regular file:
    a temporary sibling renamed over it) or ``"through"`` (a character device, a pipe or a
    standard stream: the bytes copied into it).

    Raises:
        InputPathError: for a folder, a symbolic link, a block device or anything else that is
            not a regular file.
    """
    p = Path(path)
    name = f"{option} {p}" if option else str(p)
    try:
        lmode = os.lstat(p).st_mode
    except FileNotFoundError:
        return "replace"
    except OSError as exc:
        raise InputPathError(f"Cannot write the file {name}: {exc.strerror or exc}.") from exc
    if stat.S_ISREG(lmode):
        return "replace"
    if stat.S_ISDIR(lmode):
        raise InputPathError(f"Cannot write the file {name}: a folder of that name exists (give a file path).")
    real = _real(p)
    if _stream(real):
        return "through"
    if stat.S_ISLNK(lmode):
        if str(real).startswith(("/proc/", "/dev/")):  # /dev/stdout redirected to a file
            return "through"
        raise InputPathError(
            f"Cannot write the file {name}: it is a symbolic link (to {os.readlink(p)}); shiftkit neither "
            "follows nor replaces links: give the real path, or remove the link."
        )
    raise InputPathError(f"Cannot write the file {name}: it is a special file (a block device?), not a regular file.")


def refuse_foreign(
    folder: PathLike,
    owned: Iterable[str],
    *,
    what: str = "Output folder",
    keep: Iterable[str] = (".gitignore",),
    nested: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Refuse ``folder`` when it holds a name that matches none of the ``owned`` (or ``keep``)
    glob patterns: the stage replaces or cleans the folder and would delete it. ``nested``: a
    sub-folder's name -> the names it may hold. A symbolic link as ``folder`` is refused.

    Raises:
        InputPathError: naming the folder and up to five foreign names.
    """
    target = Path(folder)
    if target.is_symlink():
        raise InputPathError(
            f"{what} {target} is a symbolic link (to {os.readlink(target)}); shiftkit neither follows nor "
            "replaces links: give the real folder, or remove the link."
        )
    if not target.is_dir():
        return
    patterns = (*owned, *keep)
    foreign = sorted(e.name for e in target.iterdir() if not any(fnmatch.fnmatch(e.name, p) for p in patterns))
    for sub, names in (nested or {}).items():
        if (target / sub).is_dir():
            allowed = tuple(names)
            foreign += sorted(f"{sub}/{e.name}" for e in (target / sub).iterdir() if e.name not in allowed)
        elif (target / sub).exists():
            foreign.append(sub)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise InputPathError(
            f"{what} {target} holds {shown}, which this stage does not write; "
            "give a new or empty folder (the stage replaces the whole folder)."
        )


def is_no_space(exc: BaseException, where: PathLike | None = None) -> bool:
    """A full disk or quota (errno 28/122), as an ``OSError`` or as a library's message ("os error 28");
    or any error of a writer into ``where`` while its file system has no block or inode left (polars
    reports a parquet footer cut short by a full disk as "Invalid thrift: transport error")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    if where is None:
        return False
    try:
        fs = os.statvfs(where)
    except OSError:
        return False
    return fs.f_bavail == 0 or (fs.f_files > 0 and fs.f_favail == 0)


def no_space(where: PathLike, exc: BaseException) -> InputPathError:
    """The one-line error of a full disk while writing into ``where``."""
    return InputPathError(
        f"No space left on the device of {where} (os error 28) while writing there: free some space "
        "or give another --out; the earlier output was left as it was."
    )
