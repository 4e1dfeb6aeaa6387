"""Every params.yaml section assembled: ``load_params`` and the ``Params`` it returns.

Each package declares its own section in its ``params.py`` (``@section("name")`` from
``shiftkit.core.config``, the constraints beside the registry they name); this module imports them
all, so that a params file is checked against every section at once. It sits above every package,
with the entry points (``shiftkit.cli``, ``pipelines/``) and the tests: no package imports it (the
import order test, tests/test_layers.py). Library functions take the section dataclasses instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shiftkit.check.params import CheckParams
from shiftkit.core.config import (
    _SECTIONS,
    MAX_PARAMS_BYTES,
    _check_keys,
    _ParamsLoader,
    _read_text,
    _Refused,
    _yaml_problem,
    build,
    parse_assignments,
    section_class,
    section_names,
    show,
    speed_only_keys,
)
from shiftkit.core.errors import ConfigError, InputPathError
from shiftkit.curve.params import CurveParams
from shiftkit.ingest.params import ExampleParams, IngestParams
from shiftkit.report.params import ReportParams
from shiftkit.runtime.params import EngineParams
from shiftkit.select.params import SelectParams
from shiftkit.shift.params import ShiftParams
from shiftkit.splits.params import SplitParams
from shiftkit.synth.params import SynthParams
from shiftkit.training.params import EvaluateParams, TrainParams

__all__ = [
    "MAX_PARAMS_BYTES", "CheckParams", "CurveParams", "EngineParams", "EvaluateParams", "ExampleParams",
    "IngestParams", "Params", "ReportParams", "SelectParams",
    "ShiftParams", "SplitParams", "SynthParams", "TrainParams",
    "load_params", "params_from_mapping", "parse_assignments", "parse_params_text", "section_class",
    "section_names", "speed_only_keys",
]


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
