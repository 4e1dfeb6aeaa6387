"""The ``local`` engine (the default): this machine's worker processes (:func:`shiftkit.runtime.imap.process_map`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from shiftkit.runtime.engine import register_engine
from shiftkit.runtime.imap import process_map

T = TypeVar("T")
R = TypeVar("R")


@register_engine("local")
@dataclass(frozen=True)
class LocalEngine:
    """Worker processes on this machine; ``address`` is ignored (kept for the params' shape)."""

    address: str = ""

    def prepare(self) -> None:
        """Nothing to check: the local engine runs wherever shiftkit does."""

    def imap(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        workers: int | None,
        chunksize: int,
        initializer: Callable[..., None] | None,
        initargs: tuple,
    ) -> Iterator[R]:
        return process_map(fn, items, workers=workers, chunksize=chunksize, initializer=initializer,
                           initargs=initargs)
