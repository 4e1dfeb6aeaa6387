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
from collections.abc import Mapping
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
                bad = next(v for v in value if not inner.item.accepts(v))
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


class Params:
    """All sections of params.yaml, each a frozen dataclass: ``params.split.seed``."""

    def __init__(self, sections: Mapping[str, Any], source: str | None = None) -> None:
        self._sections = dict(sections)
        self.source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            if name in _SECTIONS:
                return _SECTIONS[name]()
            raise AttributeError(f"params has no section {name!r}; sections: {', '.join(section_names())}") from None

    def replace(self, name: str, **changes: Any) -> Params:
        """A copy with fields of one section replaced (validated like params.yaml values)."""
        current = getattr(self, name)
        merged = {**dataclasses.asdict(current), **changes}
        new = dict(self._sections)
        new[name] = build(_SECTIONS[name], merged, name)
        return Params(new, self.source)

    def as_dict(self) -> dict[str, Any]:
        return {k: dataclasses.asdict(v) for k, v in sorted(self._sections.items())}


def params_from_mapping(data: Mapping[str, Any] | None, source: str | None = None) -> Params:
    """Validate a params mapping (as from params.yaml).

    Raises:
        ConfigError: on an unknown section or key, or a value out of range.
    """
    data = dict(data or {})
    _check_keys(data, source or "params", section_names(), section=True)
    sections = {}
    for name, cls in _SECTIONS.items():
        raw = data.get(name)
        if raw is not None and not isinstance(raw, Mapping):
            raise ConfigError(
                f"Section {name!r} of {source or 'params'} must be a mapping of parameters. Got {show(raw)} instead."
            )
        try:
            sections[name] = build(cls, raw, name)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
    return Params(sections, source)


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


def parse_params_text(text: str, source: str = "params") -> Params:
    """Validate the text of a params file.

    Raises:
        ConfigError: when it is not valid YAML, uses aliases or repeated keys, or holds bad values.
    """
    try:
        data = yaml.load(text, Loader=_ParamsLoader)  # a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"Params file {source} {exc}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Params file {source} is not valid YAML: {_yaml_problem(exc)}.") from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"Params file {source} must hold a mapping of sections. Got {type(data).__name__}.")
    return params_from_mapping(data, source)


def load_params(path: str | Path | None = "params.yaml") -> Params:
    """Read and validate params.yaml. ``None``, or a missing default file, gives the defaults.

    Raises:
        InputPathError: when a path other than the default is given and does not exist, or the
            path is not a regular file.
        ConfigError: when the file is not UTF-8 YAML or holds invalid values.
    """
    if path is None:
        return params_from_mapping({}, None)
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        if str(path) == "params.yaml":
            return params_from_mapping({}, None)
        raise InputPathError(f"Params file {p} does not exist.")
    if not p.is_file():
        raise InputPathError(f"Params file {p} is not a regular file.")
    return parse_params_text(_read_text(p), str(p))


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


# =============================================================================================
# Sections. Each stage owns one block below; keep blocks apart so that edits merge cleanly.
# Every default here equals the value in params.yaml (tests/test_config.py checks it).
# =============================================================================================


# --- example -----------------------------------------------------------------------------------


@section("example")
@frozen
class ExampleParams(ParamsSection):
    """The embedded example data set (MNIST as web, scikit-learn's load_digits as target)."""

    web_images: int = param(6000, COUNT)  # how many MNIST digits to write (at most the shipped subset)
    target_images: int = param(1797, Interval(int, 1, 1797))  # how many load_digits images (at most 1797)
    seed: int = param(0, SEED)


# --- ingest ------------------------------------------------------------------------------------


@section("ingest")
@frozen
class IngestParams(ParamsSection):
    """Decoding limits, duplicate detection and parallelism of ``shiftkit ingest``."""

    max_pixels: int = param(89_478_485, COUNT)  # above this (width x height from the header): decompression_bomb
    min_size: int = param(8, COUNT)  # images with a side smaller than this are quarantined as too_small
    # phash Hamming distance at or below which images are near copies (phash distances come in
    # even steps; at 4 the example chains 2,534 digits of several classes into one group through
    # near neighbours, at 2 the largest group is 547 ones)
    near_dup_radius: int = param(2, Interval(int, 0, 32))
    background: int = param(255, Interval(int, 0, 255))  # grey level that transparent pixels are composited on
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores


# --- split -------------------------------------------------------------------------------------


# a split size: a fraction of the images it is drawn from, or a count of images
SPLIT_SIZE = (Interval(float, 0, 1, "neither"), Interval(int, 1, None, noun="a count"))


# The names of splits.STRATEGIES (tests/test_splits.py checks that the two agree): a new strategy is
# one function and one entry there, and its name here.
SPLIT_STRATEGIES = ("target", "shuffle")

@section("split")
@frozen
class SplitParams(ParamsSection):
    """How ``shiftkit split`` builds train / bridge / dev / test."""

    strategy: Literal["target", "shuffle"] = param("target", Options(SPLIT_STRATEGIES))  # shuffle: naive mix
    target_domain: str = param("target", Text("a domain name"))  # the domain dev and test come from
    seed: int = param(0, SEED)  # with the group, decides membership; changing it reshuffles everything
    dev: int | float = param(0.25, *SPLIT_SIZE)  # fraction of the target (shuffle: of all images) or a count
    test: int | float = param(0.25, *SPLIT_SIZE)  # as dev
    bridge: int | float = param(0.05, *SPLIT_SIZE)  # fraction of the training pool or a count; never trained on
    min_per_label: int = param(3, COUNT)  # labels with fewer images where dev/test are drawn are pooled

    def check_together(self) -> None:
        if isinstance(self.dev, float) and isinstance(self.test, float) and self.dev + self.test >= 1:
            raise ConfigError(
                f"The 'split.dev' and 'split.test' fractions must sum to less than 1 so that some of "
                f"the target is left to train on. Got {self.dev} + {self.test} instead."
            )

    def settings(self) -> dict:
        """What decides membership: when any of it changes, previous splits are not honoured."""
        keys = ("strategy", "target_domain", "seed", "dev", "test", "bridge", "min_per_label")
        return {k: getattr(self, k) for k in keys}


# --- check -------------------------------------------------------------------------------------


@section("check")
@frozen
class CheckParams(ParamsSection):
    """Thresholds of ``shiftkit check``, the gate for a new data drop."""

    max_corrupt: float = param(0.01, Interval(float, 0, 1))  # share of a drop's files quarantined before it blocks
    class_share: float = param(0.05, Interval(float, 0, 1, "right"))  # a label's share moving more: warning
    drift_ks: float = param(0.2, Interval(float, 0, 1, "right"))  # KS statistic above which a property drifts ...
    drift_effect: float = param(0.5, Interval(float, 0, None, "neither"))  # ... and |Cohen's d| (both must hold)
    drift_min_images: int = param(20, COUNT)  # fewer images on either side: no drift test
    tiny_size: int = param(16, COUNT)  # an image whose smaller side is below this is tiny (warning)
    allow_new_labels: bool = param(False, BOOL)  # a label the reference lacks is an error unless true


# --- synth -------------------------------------------------------------------------------------


@section("synth")
@frozen
class SynthParams(ParamsSection):
    """Target-like synthesis: the recipe fit and the degraded copies of web images."""

    enabled: bool = param(True, BOOL)  # false: write an empty synth table so that later stages run unchanged
    seed: int = param(0, SEED)  # fit samples, per-image seeds and the choice of parents
    fraction: float = param(1.0, Interval(float, 0, 1, "right"))  # share of web train/bridge images degraded
    copies: int = param(1, COUNT)  # degraded copies per chosen image
    web_domain: str = param("web", Text("a domain name"))  # manifest domain whose images are degraded
    target_domain: str = param("target", Text("a domain name"))  # domain the recipe is fitted to (train only)
    fit_web: int = param(160, Interval(int, 6, None))  # web images sampled for the fit
    fit_target: int = param(160, Interval(int, 6, None))  # target train images sampled for the fit
    max_rounds: int = param(6, NONNEG)  # beam-search rounds (each may add or replace one step)
    beam: int = param(3, COUNT)  # recipes kept between rounds (each a different combination of steps)
    patience: int = param(1, NONNEG)  # rounds without gain the search tolerates before it stops
    refine: int = param(6, NONNEG)  # coordinate-search moves that nudge the chosen values after the search
    min_gain: float = param(0.03, Interval(float, 0, None))  # smallest score drop that justifies a step
    feature_size: int = param(8, Interval(int, 2, 64))  # side of the grey thumbnail in the fit's features
    widen: float = param(0.15, Interval(float, 0, None))  # chosen values widen to +-this when that costs little
    high_order: bool = param(False, BOOL)  # also try Real-ESRGAN's randomised two-pass chain
    # share copies by p_target/p_web of the degraded parent; "none": evenly
    weighting: str = param("density_ratio", Options(("density_ratio", "none")))
    weight_clip: float = param(10.0, Interval(float, 1, None))  # cap of a parent's weight (x the median weight)
    weight_sample: int = param(2000, Interval(int, 12, None))  # web and target train images for the weighting
    recipe: str = param("", Text("a path of a recipe.json, or empty", empty=True))  # reuse it (skips the fit)
    # parent/copy pairs in preview.png (0: none); not speed_only: it changes a file synth writes
    preview: int = param(16, NONNEG)
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores


# --- shift -------------------------------------------------------------------------------------


@section("shift")
@frozen
class ShiftParams(ParamsSection):
    """``shiftkit shift``: how far apart two image sets are."""

    max_images: int = param(500, NONNEG)  # images sampled per set (0: all)
    folds: int = param(5, Interval(int, 2, None))  # cross-validation folds of the domain classifier
    permutations: int = param(500, NONNEG)  # permutations of the MMD test
    alpha: float = param(0.05, Interval(float, 0, 1, "neither"))  # level at which the MMD test rejects
    feature_size: int = param(16, Interval(int, 2, 64))  # side of the grey thumbnail in the cheap features
    model: str = param("", Text("a timm model name, or empty", empty=True))  # its pooled output as features
    model_size: int = param(64, COUNT)  # input side for the timm model
    seed: int = param(0, SEED)
    workers: int = param(0, WORKERS, speed_only=True)  # processes; 0 means all cores


# --- train -------------------------------------------------------------------------------------


@section("train")
@frozen
class TrainParams(ParamsSection):
    """Transfer learning with a timm CNN (``shiftkit train``): model, phases, data pipeline, device."""

    model: str = param("resnet10t", Text("a timm model name"))  # any name in timm.list_models()
    # true: timm hub weights; a checkpoint path; false: from scratch
    pretrained: bool | str = param(False, BOOL, Text("a checkpoint path"))
    img_size: int = param(32, Interval(int, 8, 4096))  # square input size in pixels
    channels: int = param(3, Options((1, 3)))  # 1 (grey) or 3 (RGB)
    batch_size: int = param(64, COUNT)  # per process
    head_epochs: int = param(1, NONNEG)  # phase (a): frozen backbone, new head (skipped when not pretrained)
    finetune_epochs: int = param(3, NONNEG)  # phase (b): unfrozen layers at a low learning rate
    head_lr: float = param(1e-3, Interval(float, 0, None, "neither"))
    finetune_lr: float = param(1e-3, Interval(float, 0, None, "neither"))  # pretrained weights: lower (1e-4)
    unfreeze_stages: int = param(0, NONNEG)  # phase (b): 0 unfreezes everything, K the last K stages
    layer_decay: float = param(1.0, Interval(float, 0, 1, "right"))  # layer-wise lr decay in phase (b); 1.0: off
    weight_decay: float = param(0.05, Interval(float, 0, None))
    label_smoothing: float = param(0.0, Interval(float, 0, 1, "left"))
    augment: bool = param(True, BOOL)
    translate: float = param(0.08, Interval(float, 0, 1, "left"))  # augmentation: shift as a fraction of the side
    scale: float = param(0.1, Interval(float, 0, 1, "left"))  # augmentation: zoom in/out by up to this fraction
    rotate: float = param(10.0, Interval(float, 0, 180))  # augmentation: rotation in degrees, up to
    hflip: bool = param(False, BOOL)  # augmentation: horizontal flip (wrong for digits and text)
    seed: int = param(0, SEED)
    device: str = param("auto", DEVICE)  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N
    amp: bool = param(True, BOOL)  # mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler)
    channels_last: bool = param(True, BOOL)  # memory format on CUDA
    workers: int = param(0, WORKERS, speed_only=True)  # data-loader worker processes (0: the training process)
    threads: int = param(0, Interval(int, 0, 4096), speed_only=True)  # torch CPU threads; 0 keeps torch's default
    # cache and cache_mb pick the batch path (the device-side one needs the cache), whose
    # augmentation draws differ from the worker loader's: they change results, not only speed
    cache: bool = param(True, BOOL)  # keep decoded, resized images in memory (when they fit)
    cache_mb: int = param(2048, NONNEG)  # memory allowed for that cache
    eval_batches: int = param(0, NONNEG)  # dev batches evaluated after each epoch for the metrics; 0 = all

    def check_together(self) -> None:
        if self.head_epochs + self.finetune_epochs == 0:
            raise ConfigError(
                "The 'train.head_epochs' and 'train.finetune_epochs' parameters are both 0; nothing to train."
            )


# --- evaluate ----------------------------------------------------------------------------------


@section("evaluate")
@frozen
class EvaluateParams(ParamsSection):
    """Predictions over the splits (``shiftkit evaluate``)."""

    train_sample: int = param(5000, COUNT)  # at most this many train images (and as many synth children)
    batch_size: int = param(256, COUNT)
    seed: int = param(0, SEED)
    device: str = param("auto", DEVICE)  # auto, cpu, cuda, cuda:N
    workers: int = param(0, WORKERS, speed_only=True)  # data-loader worker processes


# --- curve -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BudgetValue:
    """A budget of labelled target images: an integer >= 0, or 'all' (every one)."""

    def accepts(self, value: Any) -> bool:
        return value == "all" or (_is_int(value) and 0 <= value < _INT64)

    def describe(self) -> str:
        return "an integer >= 0 or 'all'"


CURVE_ARMS = ("baseline", "synth", "finetune")


@section("curve")
@frozen
class CurveParams(ParamsSection):
    """Learning curves over the labelled-target budget (``pipelines/learning_curve.py``, shiftkit/curve/worth.py)."""

    # which arms train at every budget
    arms: tuple[str, ...] = param(("baseline", "synth"), Each(Options(CURVE_ARMS), max_items=3))
    # labelled target train images per point (nested, stratified); all: every one
    budgets: tuple[int | str, ...] = param((0, "all"), Each(BudgetValue(), max_items=32))
    seed: int = param(0, SEED)  # which target train images each budget keeps; the curve's resampling
    target_domain: str = param("target", Text("a domain name"))  # the domain whose train images are budgeted
    finetune_lr: float = param(1e-4, Interval(float, 0, None, "neither"))  # finetune arm: learning rate
    finetune_epochs: int = param(8, Interval(int, 1, None))  # finetune arm: epochs on the budget's target images
    head_epochs: int = param(1, Interval(int, 0, None))  # finetune arm: frozen-backbone epochs first (0: none)
    replicates: int = param(1000, Interval(int, 100, None))  # resamples of dev clusters for the intervals
    level: float = param(0.95, Interval(float, 0, 1, "neither"))  # confidence level of the intervals

    def check_together(self) -> None:
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError(
                f"The 'curve.arms' parameter must list distinct arms, at least one. "
                f"Got {show(list(self.arms))} instead."
            )
        if not self.budgets or len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(
                f"The 'curve.budgets' parameter must list distinct budgets, at least one. "
                f"Got {show(list(self.budgets))} instead."
            )


# --- report ------------------------------------------------------------------------------------


REPORT_PROPERTIES = ("blur", "brightness", "contrast", "effective_res", "noise", "extent", "width", "height")


@section("report")
@frozen
class ReportParams(ParamsSection):
    """The error decomposition, error analysis and rendering of ``shiftkit report``."""

    human_error: float = param(0.0, Interval(float, 0, 1, "left"))  # human-level (Bayes proxy) error, no interval
    replicates: int = param(1000, Interval(int, 100, None))  # bootstrap replicates per split
    level: float = param(0.95, Interval(float, 0, 1, "neither"))  # confidence level of every interval
    seed: int = param(0, SEED)  # seed of the bootstrap streams
    include_synth: bool = param(True, BOOL)  # count synthesised children (domain "synth") in train / bridge
    gallery: int = param(16, NONNEG)  # most confidently wrong dev images shown (0: no gallery)
    buckets: int = param(4, Interval(int, 1, 20))  # quantile buckets per image property in the error analysis
    # manifest columns whose buckets are analysed
    properties: tuple[str, ...] = param(("blur", "effective_res", "brightness"), Each(Options(REPORT_PROPERTIES)))
    min_count: int = param(5, COUNT)  # slices with fewer dev images are listed but never named in recommendations


# --- engine ------------------------------------------------------------------------------------


@section("engine")
@frozen
class EngineParams(ParamsSection):
    """Where the per-image work of ingest, check, synth and shift runs (``shiftkit/runtime/engine.py``)."""

    name: str = param("local", Options(("local", "ray")))  # local: this machine's processes; ray: a Ray cluster
    # Ray cluster to join ("" = the RAY_ADDRESS variable, else a Ray instance started here)
    address: str = param("", Text("a Ray address (host:port, ray://host:port, auto), or empty", empty=True))
