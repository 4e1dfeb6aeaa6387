"""The one seam of per-image work (ingest, check, synthesis, shift): :func:`imap`, an ordered map
on the current engine (``shiftkit/runtime/engine.py``), and the worker processes of the local engine.

Workers receive small arguments (paths, seeds) and return small records: nothing big is
pickled per task (the trap measured in perf-notes: shipping the dataset to every task).

Why not ``multiprocessing.Pool``: its workers share one task queue guarded by one lock, and an
idle worker holds that lock while it waits for work. When Ctrl-C or SIGTERM reaches the whole
process group, a worker dies holding it and ``Pool.terminate`` (also run at exit) waits for the
lock forever: the tool hangs. Here every worker has its own pipe, so a dead worker blocks
nothing; workers ignore SIGINT (the parent decides), and the parent, on any exception
(``KeyboardInterrupt`` and :class:`shiftkit.core.errors.Terminated` included) or an early stop of the
consumer, kills the workers (SIGKILL: their results are discarded and whatever they wrote lies in
an output folder that is thrown away) and reaps them before the exception goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any, TypeVar

from shiftkit.runtime.engine import current

T = TypeVar("T")
R = TypeVar("R")

#: seconds a worker gets to exit after a clean run's "no more work" before it is killed
JOIN_TIMEOUT = 2.0
#: chunks sent ahead to each worker, so that none waits for the parent between chunks
_AHEAD = 2


def resolve_workers(workers: int | None) -> int:
    """0 or None means every core this process may use; more than that is capped to it (``-j 256``
    on two cores would only fork processes that fight for them)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    if workers is None or workers <= 0:
        return cores
    return min(workers, cores)


def _context() -> mp.context.BaseContext:
    # fork starts workers in milliseconds and shares the imported modules; where fork is not
    # available (macOS, Windows) spawn is the safe default.
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


class WorkerError(RuntimeError):
    """A worker process died, or raised an exception that could not be sent back."""


def _worker(conn: Any, fn: Callable[[Any], Any], initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """A worker's life: run ``fn`` over each chunk received, send the results back, until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a handler inherited by fork must not run here
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # blocked across the fork by _born_deaf
    try:
        if initializer is not None:
            initializer(*initargs)
        while True:
            chunk = conn.recv()
            if chunk is None:
                return
            try:
                conn.send(("ok", [fn(item) for item in chunk]))
            except Exception as exc:  # sent to the parent, which raises it there
                try:
                    conn.send(("error", exc))
                except Exception:  # not picklable: send its text
                    conn.send(("error", WorkerError("".join(traceback.format_exception(exc)).strip())))
    except (EOFError, BrokenPipeError):
        return  # the parent is gone


_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _born_deaf() -> Iterator[None]:
    """Start workers with SIGINT and SIGTERM blocked, so that the parent's handlers, which a forked
    child inherits, never run in one (it runs fork hooks first); ``_worker`` makes SIGINT ignored
    and SIGTERM's action the default before it unblocks them. A signal sent to the parent in this
    moment is noted, and raised again once every worker started is in ``procs``: it reaches the
    parent's own handler then, which stops them all.

    Never SIG_IGN in the parent meanwhile: a disposition is the whole process's, the other threads
    (polars', tokio's, OpenBLAS') do not block these signals, and the kernel hands a process-directed
    SIGINT to one of them; ignored there, a Ctrl-C landing while workers started was discarded and
    the command ran to its end (3 of 3 runs with the SIGINT sent in that moment: exit 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # the signals reach the main thread's handlers anyway; _worker sets its own
        return
    noted: list[int] = []
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    old = {s: signal.signal(s, lambda signum, frame: noted.append(signum)) for s in sorted(_SIGNALS)}
    try:
        yield
    finally:
        try:
            for s, handler in old.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s in dict.fromkeys(noted):
            signal.raise_signal(s)  # to this thread, which now hears it: the parent's handler runs


# Worker sets still running. A consumer interrupted while it handles a result leaves ``imap``'s
# generator suspended: its ``finally`` would only run when the generator is collected, too late
# for a process that is exiting. The command line's runner calls :func:`stop_all` instead.
_LIVE: list[tuple[list[Any], list[Any]]] = []


def stop_all() -> None:
    """Terminate and reap every worker that an unfinished :func:`imap` still holds."""
    while _LIVE:
        procs, conns = _LIVE.pop()
        _stop(procs, conns, clean=False)


def reap_children() -> None:
    """Kill and reap every child process this process still has from multiprocessing: for a
    process about to exit (the command line), so that no worker outlives it, not even as a zombie
    that an init which does not reap would keep in the process group."""
    for proc in mp.active_children():  # also waits for those already dead
        proc.kill()
        proc.join(JOIN_TIMEOUT)


def _stop(procs: list[Any], conns: list[Any], clean: bool) -> None:
    """End every worker: ask politely after a clean run, else kill at once; kill what outlives the timeout.

    Not SIGTERM on an interrupt: a worker forked a moment ago may not have unblocked SIGTERM yet
    (see :func:`_born_deaf`), and waiting out the timeout for each such worker made a Ctrl-C
    take 5 s instead of a tenth of one (seen once in CI).
    """
    for conn, proc in zip(conns, procs, strict=True):
        if clean:
            try:
                conn.send(None)
            except OSError:
                pass
        elif proc.is_alive():
            proc.kill()
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
        if proc.is_alive():
            proc.kill()
            proc.join(JOIN_TIMEOUT)
    for conn in conns:
        conn.close()


def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = 0,
    chunksize: int = 64,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """``map(fn, items)`` in order, on the current engine (:func:`shiftkit.runtime.engine.current`).

    ``fn`` must be a module-level function; results stream back as they complete, in order,
    so memory does not grow with the number of items. On the local engine: over ``workers``
    processes (inline when 1), see :func:`process_map`.
    """
    yield from current().imap(fn, items, workers=workers, chunksize=chunksize, initializer=initializer,
                              initargs=initargs)


def process_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = 0,
    chunksize: int = 64,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """``map(fn, items)`` in order, over ``workers`` processes of this machine (inline when 1).

    Chunk ``k`` goes to worker ``k % n``. An exception raised by ``fn`` is raised here; a worker
    that dies raises :class:`WorkerError`.
    """
    n = resolve_workers(workers)
    if n == 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    source = iter(items)
    chunks = iter(lambda: list(islice(source, max(1, chunksize))), [])
    first = list(islice(chunks, n))  # never more workers than chunks: 3 files fork one process
    n = len(first)
    if n <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, (x for chunk in first for x in chunk))
        return
    chunks = chain(first, chunks)
    ctx = _context()
    procs: list[Any] = []
    conns: list[Any] = []
    clean = False
    live = (procs, conns)
    _LIVE.append(live)
    try:
        with _born_deaf():
            for _ in range(n):
                parent_end, child_end = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=_worker, args=(child_end, fn, initializer, initargs), daemon=True)
                proc.start()
                child_end.close()
                procs.append(proc)
                conns.append(parent_end)
        yield from _ordered(chunks, procs, conns)
        clean = True
    finally:
        if live in _LIVE:
            _LIVE.remove(live)
            _stop(procs, conns, clean)


def _ordered(chunks: Iterator[list[Any]], procs: list[Any], conns: list[Any]) -> Iterator[Any]:
    """Send chunks round-robin (``_AHEAD`` per worker in flight) and yield their results in order."""
    n = len(conns)
    sent = 0
    for _ in range(_AHEAD * n):
        chunk = next(chunks, None)
        if chunk is None:
            break
        conns[sent % n].send(chunk)
        sent += 1
    received = 0
    while received < sent:
        w = received % n
        try:
            kind, payload = conns[w].recv()
        except EOFError:
            raise WorkerError(
                f"worker process {procs[w].pid} died (exit code {procs[w].exitcode}); no output was written"
            ) from None
        received += 1
        chunk = next(chunks, None)
        if chunk is not None:
            conns[sent % n].send(chunk)  # sent % n == w: the worker that just finished a chunk
            sent += 1
        if kind == "error":
            raise payload
        yield from payload
