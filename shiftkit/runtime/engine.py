"""Where the per-image work of the data stages runs: the ``Engine`` protocol, the ``ENGINES``
registry, and the engine that is current.

The stages never choose: they call :func:`shiftkit.runtime.imap.imap`, which sends the work to
the engine that is current (:func:`current`). An engine is a class registered at its definition
with ``@register_engine("name")`` (``local.py``: this machine's processes, the default;
``ray.py``: a Ray cluster). The params' ``engine.name`` and the command line's ``--engine``
accept exactly the registered names.

Every engine returns the results in the order of the items, and every random choice in a task
comes from the item's own seed, so the outputs are byte-identical whichever engine ran them
(tests/test_ray.py holds that).

Adding an engine: one class in one new module of this package, decorated with
``@register_engine("name")``, with an ``address`` field, ``prepare()`` and ``imap(...)`` as in
:class:`Engine`, and that module imported by ``shiftkit/runtime/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, TypeVar

from shiftkit.core.errors import ConfigError, RegistryError

E = TypeVar("E")


class Engine(Protocol):
    """What an engine is. Instances are immutable; ``name`` is set by :func:`register_engine`."""

    name: ClassVar[str]
    address: str  # where it runs ('' = the engine's default); the local engine ignores it

    def prepare(self) -> None:
        """Fail now (a ``ConfigError``), before any output is touched, if this engine cannot run here."""

    def imap(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        workers: int | None,
        chunksize: int,
        initializer: Callable[..., None] | None,
        initargs: tuple,
    ) -> Iterator[Any]:
        """``map(fn, items)``, results in the order of the items (see :func:`shiftkit.runtime.imap.imap`)."""
        ...


# name -> engine class, in registration order (the order the params' error message lists them)
ENGINES: dict[str, type[Engine]] = {}


def register_engine(name: str) -> Callable[[type[E]], type[E]]:
    """Class decorator: register an engine class under ``name`` (its ``address`` is its one argument)."""

    def register(cls: type[E]) -> type[E]:
        if name in ENGINES:
            raise RegistryError(f"The engine {name!r} is registered already (by {ENGINES[name].__qualname__}).")
        cls.name = name  # type: ignore[attr-defined]
        ENGINES[name] = cls  # type: ignore[assignment]
        return cls

    return register


def unregister_engine(name: str) -> None:
    """Remove a registered engine (a test's, or a plugin's); unknown names are ignored."""
    ENGINES.pop(name, None)


def engine_names() -> tuple[str, ...]:
    """The registered engine names, in registration order."""
    return tuple(ENGINES)


def make(name: str = "local", address: str = "") -> Engine:
    """The engine registered as ``name``, at ``address``.

    Raises:
        ConfigError: when no engine is registered under ``name``.
    """
    if name not in ENGINES:
        raise ConfigError(f"The engine must be one of {', '.join(ENGINES)}. Got {name!r} instead.")
    return ENGINES[name](address)  # type: ignore[call-arg]


# The engine set by activate() (None: the default, local), then those pushed by use().
_current: list[Engine | None] = [None]


def current() -> Engine:
    """The engine that :func:`shiftkit.runtime.imap.imap` uses now."""
    return _current[-1] or make()


def activate(settings: Any = None, *, name: str | None = None, address: str | None = None) -> Engine:
    """Make an engine current for the rest of this process (a command line run, a stage script).

    ``settings`` is the params' ``engine`` section (anything with ``name`` and ``address``);
    ``name`` / ``address`` (command-line options) override it. Returns the engine now current.
    """
    base_name, base_address = ("local", "") if settings is None else (settings.name, settings.address)
    engine = make(name or base_name, base_address if address is None else address)
    engine.prepare()  # a missing extra fails here, before any output is touched
    _current[0] = engine
    return engine


@contextmanager
def use(engine: Engine | str) -> Iterator[Engine]:
    """Run a block on ``engine`` (an engine or a registered name), then restore the previous one."""
    engine = make(engine) if isinstance(engine, str) else engine
    _current.append(engine)
    try:
        yield engine
    finally:
        _current.pop()
