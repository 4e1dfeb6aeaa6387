"""Real image data for tests: MNIST digits (web-like) and load_digits (target-like).

MNIST comes from ../shared/datasets/mnist (the IDX files, 60,000 digits) when that folder is
beside the checkout, else from the 12,000 digits shipped in shiftkit/ingest/data/mnist_subset.npz;
load_digits ships with scikit-learn. Nothing is fetched from the network.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "datasets" / "mnist"


@functools.lru_cache(maxsize=1)
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    """All MNIST digits at hand: the 60,000 of MNIST_DIR when present, else the shipped 12,000."""
    if mnist_source() == "shared":
        with gzip.open(MNIST_DIR / "train-images-idx3-ubyte.gz", "rb") as fh:
            images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(MNIST_DIR / "train-labels-idx1-ubyte.gz", "rb") as fh:
            labels = np.frombuffer(fh.read(), np.uint8, offset=8)
        return images, labels
    from shiftkit.ingest.example import mnist_subset

    print(f"tests.helpers: no MNIST files in {MNIST_DIR} (or SHIFTKIT_TEST_MNIST=shipped); "
          "using the 12,000 digits shipped in shiftkit/ingest/data/mnist_subset.npz", file=sys.stderr)
    return mnist_subset()


def mnist_source() -> str:
    """``"shared"`` when the full MNIST files are beside the checkout, else ``"shipped"``.

    ``SHIFTKIT_TEST_MNIST=shipped`` forces the shipped subset (how a fresh clone runs).
    """
    if os.environ.get("SHIFTKIT_TEST_MNIST") == "shipped":
        return "shipped"
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    return "shared" if all((MNIST_DIR / n).is_file() for n in names) else "shipped"


def mnist(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real MNIST digits (uint8, 28x28, white on black) and their labels 0..9.

    Indices past the end of the available set wrap around (the shipped subset has 12,000), so
    the same call works in a fresh clone; callers needing disjoint sets keep their ranges apart
    modulo 12,000.
    """
    images, labels = _mnist_all()
    if n > len(images):
        raise ValueError(f"only {len(images):,} MNIST digits available, {n:,} asked")
    idx = (np.arange(offset, offset + n) % len(images)) if offset + n > len(images) else slice(offset, offset + n)
    return images[idx].copy(), labels[idx].copy()


_VARIANTS = (
    lambda a: a,
    lambda a: a.transpose(0, 2, 1),
    lambda a: np.rot90(a, 1, axes=(1, 2)),
    lambda a: np.rot90(a, 2, axes=(1, 2)),
    lambda a: np.rot90(a, 3, axes=(1, 2)),
    lambda a: a[:, :, ::-1],
    lambda a: a[:, ::-1, :],
    lambda a: np.rot90(a, 2, axes=(1, 2)).transpose(0, 2, 1),
)


def mnist_many(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct MNIST pictures for benchmarks, however few digits are at hand.

    Index ``i`` is digit ``i % N`` (N: 60,000 shared or 12,000 shipped) as is for ``i < N``, then
    transposed, rotated or mirrored (8 variants: up to 8 N distinct pictures, no exact copies).
    With the shared files and ``offset + n <= 60,000`` this is exactly :func:`mnist`.
    """
    images, labels = _mnist_all()
    idx = np.arange(offset, offset + n)
    out = images[idx % len(images)].copy()
    variant = (idx // len(images)) % len(_VARIANTS)
    for k in range(1, len(_VARIANTS)):
        sel = variant == k
        if sel.any():
            out[sel] = _VARIANTS[k](out[sel])
    return np.ascontiguousarray(out), labels[idx % len(images)].copy()


@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target.astype(np.uint8)


def digits(n: int | None = None, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real 8x8 digits from scikit-learn's load_digits (17 grey levels scaled to 0..255)."""
    images, labels = _digits_all()
    end = None if n is None else offset + n
    return images[offset:end].copy(), labels[offset:end].copy()


def write_folder(
    root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    ext: str = "png",
    prefix: str = "img",
    size: int | None = None,
    **save_kwargs,
) -> list[Path]:
    """Write an ImageFolder ``root/<label>/<prefix>_<i>.<ext>``; optionally resized to ``size``."""
    paths = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        d = Path(root) / str(int(lab))
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if size is not None:
            im = im.resize((size, size), Image.BILINEAR)
        p = d / f"{prefix}_{i:05d}.{ext}"
        im.save(p, **save_kwargs)
        paths.append(p)
    return paths


# --- running the command line, for the hostile-input suite (tests/test_hostile.py) and others ---


class CliResult(NamedTuple):
    """What one run of the command line gave: exit code, stdout and stderr."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty lines of stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


@contextlib.contextmanager
def signals_as_in_a_terminal():
    """SIGINT and SIGTERM that this process ignores get their default action for the block (restored
    after it), so that a command started inside begins as one typed at a terminal does: hearing them.

    A test runner started in the background of a script (``pytest ... &`` in a shell without job
    control, POSIX) begins with SIGINT ignored, and every process it starts inherits that; a command
    that begins with SIGINT ignored rightly keeps ignoring it (``shiftkit.cli.run._SignalsRaise``,
    CPython itself), so a test's Ctrl-C would reach a process that was told never to hear one. Only
    in the main thread (the only one that may change a handler); the caught handler set meanwhile
    becomes the default action in an exec'd child.
    """
    import threading

    changed = {}
    if threading.current_thread() is threading.main_thread():
        for signum, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(signum) == signal.SIG_IGN:
                changed[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, previous in changed.items():
            signal.signal(signum, previous)


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    in_process: bool = True,
    timeout: float = 120,
) -> CliResult:
    """Run ``shiftkit ARGS`` and return ``(code, stdout, stderr)``.

    ``in_process=True`` (the default, fast) calls ``shiftkit.cli.run.main`` with stdout and stderr
    captured; an exception escaping ``main`` is turned into exit code 1 and its traceback into
    stderr, so tests see it as the user would. ``in_process=False`` runs ``python -m shiftkit``
    as a subprocess (with this checkout first on PYTHONPATH), for signals, exit paths and
    anything that must not share the test's process.
    """
    argv = [str(a) for a in args]
    if not in_process:
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "SHIFTKIT_PROGRESS": "0", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "shiftkit", *argv], cwd=cwd, env=full_env,
            capture_output=True, text=True, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    from shiftkit.cli.run import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(argv)
        except SystemExit as exc:  # main must return, not exit; keep the code to show it
            code = exc.code if isinstance(exc.code, int) else 1
            traceback.print_exc(file=err)
        except Exception:
            code = 1
            traceback.print_exc(file=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_bad_input(result: CliResult, *names: str, code: int = 2) -> None:
    """The quality bar for bad input: exit ``code``, ONE line on stderr, no traceback, naming ``names``.

    ``names`` are the option, file or value the message must mention (checked as substrings).
    """
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code == code, f"exit {result.code}, expected {code}; stderr: {result.stderr!r}"
    assert len(result.lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for name in names:
        assert str(name) in result.lines[0], f"{name!r} not named in: {result.lines[0]!r}"


def tree_hash(path: str | os.PathLike[str]) -> str:
    """A sha256 of a file or folder: every entry's relative name, kind, mode and bytes.

    Compare it before and after a failing command to prove the output was left untouched.
    A missing path hashes to ``"absent"``; symbolic links are hashed by their target text.
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        return "absent"
    h = hashlib.sha256()
    entries = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
    for p in entries:
        rel = p.relative_to(root).as_posix() if p != root else "."
        st = p.lstat()
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode("utf-8", "surrogateescape"))
        if p.is_symlink():
            h.update(os.readlink(p).encode("utf-8", "surrogateescape"))
        elif p.is_file():
            h.update(p.read_bytes())
        h.update(b"\1")
    return h.hexdigest()


def dvc_stages(folder: Path, overrides: list[str]) -> tuple[dict, dict]:
    """The repository's dvc.yaml and params.yaml copied to ``folder`` with ``overrides`` applied as
    `dvc exp run -S` applies them: (params.yaml as read, stage name -> DVC's stage)."""
    import shutil

    import yaml
    from dvc.repo import Repo
    from dvc.utils.hydra import apply_overrides

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, folder / name)
    Repo.init(str(folder), no_scm=True)
    apply_overrides(str(folder / "params.yaml"), overrides)
    repo = Repo(str(folder))
    try:
        stages = {s.name: s for s in repo.index.stages}
    finally:
        repo.close()
    return yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8")), stages
