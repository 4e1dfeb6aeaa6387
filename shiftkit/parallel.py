"""Ordered parallel map over worker processes, for per-image work (ingest, synthesis).

Workers receive small arguments (paths, seeds) and return small records: nothing big is
pickled per task (the trap measured in perf-notes: shipping the dataset to every task).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None) -> int:
    """0 or None means every core this process may use."""
    if workers is None or workers <= 0:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return workers


def _context() -> mp.context.BaseContext:
    # fork starts workers in milliseconds and shares the imported modules; where fork is not
    # available (macOS, Windows) spawn is the safe default.
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = 0,
    chunksize: int = 64,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """``map(fn, items)`` in order, over ``workers`` processes (inline when 1).

    ``fn`` must be a module-level function; results stream back as they complete, in order,
    so memory does not grow with the number of items.
    """
    n = resolve_workers(workers)
    if n == 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    with _context().Pool(processes=n, initializer=initializer, initargs=initargs) as pool:
        yield from pool.imap(fn, items, chunksize=max(1, chunksize))
