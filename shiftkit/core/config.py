"""params.yaml -> frozen dataclasses. The only module that reads a settings file.

Each top-level section of params.yaml maps to one frozen dataclass registered with
``@section("name")``. Every field is declared with :func:`param`: its default (the same value
params.yaml lists, which ``tests/test_config.py`` checks key by key) and the constraints its values
must meet (scikit-learn's ``_parameter_constraints`` idea: ``Interval``, ``Options``, ``Text``...).
One function, :func:`check_params`, checks them all and writes every error in one form::

    The 'train.seed' parameter must be an integer in [0, 4294967295]. Got -1 instead.

A field marked ``speed_only`` changes how fast a stage runs, never what it writes: dvc.yaml leaves it
out of the stage's params so that changing it never invalidates results (``tests/test_dvc_deps.py``).
The params file itself is read defensively: UTF-8 only, at most 1 MiB, no YAML aliases, string
keys, no repeated keys. Library functions take these dataclasses (or plain arguments), never a
path to params.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from shiftkit.core.errors import ConfigError, InputPathError

_SECTIONS: dict[str, type] = {}
MAX_PARAMS_BYTES = 1 << 20  # a params file is a page of settings; anything bigger is a mistake
_SHOW_CHARS = 60  # error messages quote at most this many characters of a value
_INT64 = 2**63
SEED_MAX = 2**32 - 1  # numpy's legacy seeding and torch both accept [0, 2**32 - 1]


def section(name: str):
    """Register a frozen dataclass as the schema of params.yaml section ``name``.

    Every field must be declared with :func:`param` (its constraints), so that no value escapes
    :func:`check_params`.
    """

    def deco(cls: type) -> type:
        if name in _SECTIONS:
            raise ConfigError(f"Params section {name!r} is registered twice.")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a params section")
        bare = [f.name for f in dataclasses.fields(cls) if f.init and not f.metadata.get("constraints")]
        if bare:
            raise TypeError(f"{cls.__name__}: declare {', '.join(bare)} with config.param(default, *constraints)")
        cls.section_name = name
        _SECTIONS[name] = cls
        return cls

    return deco


def section_names() -> list[str]:
    return sorted(_SECTIONS)


def section_class(name: str) -> type:
    """The dataclass of params section ``name``."""
    return _SECTIONS[name]


def speed_only_keys(name: str) -> tuple[str, ...]:
    """Keys of section ``name`` that change only speed (workers, threads, caches): results never."""
    return tuple(f.name for f in dataclasses.fields(_SECTIONS[name]) if f.metadata.get("speed_only"))


def show(value: Any) -> str:
    """``repr(value)`` cut to a short prefix, for error messages (one line, never megabytes)."""
    try:
        text = repr(value)
    except Exception:  # an object whose repr fails must not turn a clear error into another one
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + "..."


def _name(key: Any) -> str:
    """A key as written in a message: plain when it is a short printable string, else quoted."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= _SHOW_CHARS:
        return key
    return show(key)


# ---------------------------------------------------------------------------------------------
# constraints: each field declares its allowed values once; check_params checks them all


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A number of type ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded).

    Floats must be finite; ints must fit in 64 bits (numpy and torch take nothing larger).
    ``closed`` says which ends belong to the interval: "both", "left", "right" or "neither".
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"
    noun: str = ""  # how the value is called in messages ("a count"); default: "an integer" for ints

    def accepts(self, value: Any) -> bool:
        if self.kind is int:
            if not _is_int(value) or not -_INT64 <= value < _INT64:
                return False
        elif not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed not in ("both", "left")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed not in ("both", "right")):
                return False
        return True

    def describe(self) -> str:
        lo = "[" if self.closed in ("both", "left") else "("
        hi = "]" if self.closed in ("both", "right") else ")"
        if self.low is not None and self.high is not None:
            if self.kind is float and (self.low, self.high) == (0, 1):
                return f"a fraction in {lo}0, 1{hi}"
            bounds = f"in {lo}{self.low}, {self.high}{hi}"
        elif self.low is not None:
            bounds = f"{'>=' if lo == '[' else '>'} {self.low}"
        elif self.high is not None:
            bounds = f"{'<=' if hi == ']' else '<'} {self.high}"
        else:
            bounds = ""
        noun = self.noun or ("an integer" if self.kind is int else "a finite number" if not bounds else "")
        return " ".join(part for part in (noun, bounds) if part)


@dataclasses.dataclass(frozen=True)
class Options:
    """One of a fixed set of values (compared with their type: ``True`` is not ``1``)."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        return f"one of {', '.join(map(repr, self.values))}"


@dataclasses.dataclass(frozen=True)
class Registered:
    """A name in a registry, looked up when a value is checked: ``names`` returns the registered
    names (an arm, an engine, a split strategy). The vocabulary of a parameter is then the registry
    itself, never a copy, and a name registered from any module is accepted from then on."""

    names: Callable[[], Iterable[str]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in tuple(self.names())

    def describe(self) -> str:
        return Options(tuple(self.names())).describe()


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A string matching the regular expression ``regex`` as a whole, described as ``text``."""

    regex: str
    text: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def describe(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class Text:
    """A one-line string of printable characters (a name or a path); ``empty``: "" allowed."""

    what: str
    empty: bool = False
    max_len: int = 4096

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str) or len(value) > self.max_len or not value.isprintable():
            return False
        return self.empty or bool(value.strip())

    def describe(self) -> str:
        return self.what


@dataclasses.dataclass(frozen=True)
class Boolean:
    """true or false (YAML booleans only: 0, 1 and "yes" strings are not booleans here)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Each:
    """A list whose every item meets ``item`` (at most ``max_items`` items)."""

    item: Any
    max_items: int = 64

    def accepts(self, value: Any) -> bool:
        return isinstance(value, tuple) and len(value) <= self.max_items and all(self.item.accepts(v) for v in value)

    def describe(self) -> str:
        return f"a list (at most {self.max_items} items) of: {self.item.describe()}"


SEED = Interval(int, 0, SEED_MAX)
DEVICE = Pattern(r"auto|cpu|cuda(:[0-9]{1,3})?", "'auto', 'cpu', 'cuda' or 'cuda:N'")
BOOL = Boolean()


def param(default: Any, *constraints: Any, speed_only: bool = False) -> Any:
    """A params field: its default, the constraints a value must meet (any one of them), and
    whether it changes only speed (then dvc.yaml leaves it out of the stage's params)."""
    if not constraints:
        raise TypeError("a params field needs at least one constraint")
    return dataclasses.field(default=default, metadata={"constraints": constraints, "speed_only": speed_only})


def check_params(obj: Any) -> None:
    """Check every field of a params section against its declared constraints.

    Raises:
        ConfigError: "The 'section.key' parameter must be ... Got ... instead." for the first
            field whose value meets none of its constraints.
    """
    where = getattr(type(obj), "section_name", type(obj).__name__)
    for f in dataclasses.fields(obj):
        constraints = f.metadata.get("constraints", ())
        value = getattr(obj, f.name)
        if not constraints or any(c.accepts(value) for c in constraints):
            continue
        if isinstance(constraints[0], Each) and isinstance(value, tuple) and len(constraints) == 1:
            inner = constraints[0]
            if len(value) <= inner.max_items:  # name the offending item, not the whole list
                bad = next((v for v in value if not inner.item.accepts(v)), None)
                if bad is not None:  # else the list as a whole is wrong (an item twice, see report.params)
                    raise ConfigError(
                        f"The '{where}.{f.name}' parameter must be {inner.item.describe()}. Got {show(bad)} instead."
                    )
        wanted = " or ".join(c.describe() for c in constraints)
        if isinstance(value, float) and not math.isfinite(value):
            wanted += " (a finite number)"
        elif _is_int(value) and not -_INT64 <= value < _INT64:
            if all(getattr(c, "high", 0) is None for c in constraints):
                wanted += " (that fits in 64 bits)"
        raise ConfigError(f"The '{where}.{f.name}' parameter must be {wanted}. Got {show(value)} instead.")


class ParamsSection:
    """Base of the section dataclasses: every instance is checked when it is made."""

    def __post_init__(self) -> None:
        check_params(self)
        self.check_together()

    def check_together(self) -> None:
        """Checks that involve several fields (none by default)."""


# ---------------------------------------------------------------------------------------------
# building dataclasses from plain mappings


def _normalize(value: Any, tp: Any) -> Any:
    """YAML's value as the field's type wants it (int -> float, list -> tuple); no checking."""
    origin = typing.get_origin(tp)
    if tp is float and _is_int(value):
        return float(value) if abs(value) < 2**1023 else math.inf
    if (origin is tuple or tp is tuple) and isinstance(value, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        item_tp = args[0] if args else Any
        return tuple(_normalize(v, item_tp) for v in value)
    return value


def _check_keys(values: Mapping, where: str, valid: list[str], section: bool = False) -> None:
    """Keys must be strings and known (``section``: the keys are section names).

    Raises:
        ConfigError: naming the first non-string key, or the unknown ones, and the valid names.
    """
    what = "section" if section else "parameter"
    for key in values:
        if not isinstance(key, str):
            raise ConfigError(
                f"The {what} name {show(key)} in {where} is not a string (YAML read it as "
                f"{type(key).__name__}); valid {what}s: {', '.join(valid)}."
            )
    unknown = sorted(set(values) - set(valid))
    if not unknown:
        return
    names = ", ".join(_name(u) if section else f"{where}.{_name(u)}" for u in unknown[:5])
    names += " ..." if len(unknown) > 5 else ""
    if section:
        raise ConfigError(f"Unknown section(s) {names} in {where}; valid sections: {', '.join(valid)}.")
    raise ConfigError(f"Unknown parameter(s) {names}; valid ones in {where}: {', '.join(valid)}.")


def build(cls: type, values: Mapping[str, Any] | None, where: str = ""):
    """Build dataclass ``cls`` from a mapping, checking names, types and ranges.

    Raises:
        ConfigError: on a key that is not a string, an unknown key, or a value its field refuses.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    _check_keys(values, where or cls.__name__, fields)
    return cls(**{name: _normalize(values[name], hints[name]) for name in fields if name in values})


# ---------------------------------------------------------------------------------------------
# reading params.yaml


class _Refused(yaml.YAMLError):
    """A construct params files do not allow (aliases, repeated keys)."""


class _ParamsLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (a 300-byte file of nested aliases expands to gigabytes),
    without deep nesting (it exhausts Python's recursion) and without silently repeated keys (YAML
    keeps the last one)."""

    max_depth = 20  # sections hold values, a few lists: deeper nesting is not a params file

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise _Refused(f"uses a YAML alias at line {mark.line + 1}; aliases are not allowed in params files")
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > self.max_depth:
                raise _Refused(f"nests values deeper than {self.max_depth} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if repeated:
                raise _Refused(f"has the key {show(key)} twice in one mapping (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One short line for a YAML error (PyYAML's own text spans several lines)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        text = f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    else:
        text = str(exc)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "..."


def _read_text(p: Path) -> str:
    """The file's text: UTF-8 (a BOM is allowed), at most MAX_PARAMS_BYTES.

    Raises:
        InputPathError: when the file cannot be read.
        ConfigError: when it is too large or not UTF-8.
    """
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_PARAMS_BYTES + 1)
    except OSError as exc:
        raise InputPathError(f"Params file {p} cannot be read: {exc.strerror or exc}.") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise ConfigError(f"Params file {p} is larger than {MAX_PARAMS_BYTES // 2**20} MiB; a params file is a page.")
    if b"\x00" in raw:
        raise ConfigError(f"Params file {p} is not UTF-8 text (it holds NUL bytes: UTF-16?); save it as UTF-8.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Params file {p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8."
        ) from None


def parse_assignments(pairs: typing.Iterable[str], what: str = "--domain") -> dict[str, str]:
    """Parse ``NAME=VALUE`` strings (as in ``--domain web=data/web``).

    Raises:
        ConfigError: on a pair without ``=``, an empty name or value, or a repeated name.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"{what} must be NAME=PATH (for example web=data/web). Got {show(pair)} instead.")
        if name in out:
            raise ConfigError(f"{what} names {show(name)} twice.")
        out[name] = value
    return out


frozen = dataclasses.dataclass(frozen=True)
COUNT = Interval(int, 1, None)  # a positive count
NONNEG = Interval(int, 0, None)  # a count where 0 means none (or "all", as the field says)
WORKERS = Interval(int, 0, 4096)  # processes; 0 means all cores
