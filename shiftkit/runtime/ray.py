"""The ``ray`` engine: the same module-level functions as Ray tasks, one task per chunk of items.

It runs on an existing cluster (``engine.address`` in params.yaml, else the ``RAY_ADDRESS``
environment variable) or, when neither is given, on a Ray instance started here with this
machine's cores. Results come back in the order of the items (the chunks are collected in the
order they were sent, never in the order they finish), so the outputs are byte-identical to the
local engine's (tests/test_ray.py holds that).

Ray is an optional extra (``pip install -e '.[ray]'``): it is imported only when the ``ray``
engine is asked for, and its absence is then one ``ConfigError``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from shiftkit.core.errors import ConfigError
from shiftkit.runtime.engine import Engine, current, register_engine
from shiftkit.runtime.imap import resolve_workers

T = TypeVar("T")
R = TypeVar("R")

# Chunks in flight per CPU of the cluster: enough to keep every worker busy while the driver
# collects the oldest chunk, few enough that results do not pile up in the object store.
_IN_FLIGHT_PER_CPU = 2
_START_ATTEMPTS = 3  # tries to start a local Ray instance


def _ray_module():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "The ray engine needs Ray, which is not installed here: pip install -e '.[ray]' "
            "(or choose the local engine: engine.name: local / --engine local)."
        ) from exc
    return ray


def connect(engine: Engine | None = None, *, cpus: int | None = None):
    """The ``ray`` module, connected to ``engine``'s cluster (joined once per process).

    An address (the engine's, else ``RAY_ADDRESS``) joins that cluster; without one, a Ray
    instance is started here with ``cpus`` CPUs (default: every core this process may use).
    A process already connected (a test session, a notebook) keeps its connection.
    """
    ray = _ray_module()
    if ray.is_initialized():
        return ray
    engine = engine or current()
    address = engine.address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        options["num_cpus"] = resolve_workers(cpus or 0)
        # a local raylet waits for its agent processes (Python, heavy imports) for 15 s by default;
        # on a loaded machine they take longer and the start fails: give them two minutes
        os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return ray
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its raylet starts late
            # on a loaded machine a local raylet can miss Ray's fixed 30 s start-up window: try again
            ray.shutdown()
            if attempt == _START_ATTEMPTS or address is not None:
                where = address or "a local instance"
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise ConfigError(f"Cannot start or join the Ray cluster at {where}: {first}") from exc
    return ray


# Per Ray worker process: the initializer arguments it has already applied, by initializer.
_applied: dict[str, str] = {}


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any], init: list[Any] | None) -> list[Any]:
    """One Ray task: apply the pool initializer once per worker process, then ``fn`` to each item."""
    if init is not None:
        initializer, ref = init
        key = f"{initializer.__module__}.{initializer.__qualname__}"
        if _applied.get(key) != ref.hex():
            import ray

            initializer(*ray.get(ref))
            _applied[key] = ref.hex()
    return [fn(item) for item in chunk]


_remote: dict[str, Any] = {}


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ray_imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = 0,
    chunksize: int = 64,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """``map(fn, items)`` in order, as Ray tasks of ``chunksize`` items each
    (see :func:`shiftkit.runtime.imap.imap`).

    The initializer's arguments are put in the object store once; each worker process applies
    them before its first chunk. ``workers`` sizes a Ray instance started here (0: every core).
    """
    ray = connect(cpus=workers)
    if "run" not in _remote:
        _remote["run"] = ray.remote(num_cpus=1)(_run_chunk)
    run = _remote["run"]
    # nested in a list, the reference reaches the task unresolved: fetched once per worker
    init = None if initializer is None else [initializer, ray.put(tuple(initargs))]
    window = max(2, _IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    pending: deque = deque()
    try:
        for chunk in _chunks(items, max(1, chunksize)):
            pending.append(run.remote(fn, chunk, init))
            if len(pending) >= window:
                yield from ray.get(pending.popleft())
        while pending:
            yield from ray.get(pending.popleft())
    finally:
        for ref in pending:  # stopped early (an error, an interrupt): drop the rest of the work
            ray.cancel(ref)


@register_engine("ray")
@dataclass(frozen=True)
class RayEngine:
    """A Ray cluster: ``address`` joins one ('' = ``RAY_ADDRESS``, else a Ray instance started here)."""

    address: str = ""

    def prepare(self) -> None:
        _ray_module()  # Ray not installed: one ConfigError now, not in the middle of a stage

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
        return ray_imap(fn, items, workers=workers, chunksize=chunksize, initializer=initializer, initargs=initargs)
