"""The params.yaml section(s) of where per-image work runs: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (  # noqa: F401
    Options,
    ParamsSection,
    Text,
    frozen,
    param,
    section,
)


# --- engine ---------------------------------------------------------------------------------------
@section("engine")
@frozen
class EngineParams(ParamsSection):
    """Where the per-image work of ingest, check, synth and shift runs (``shiftkit/runtime/engine.py``)."""

    name: str = param("local", Options(("local", "ray")))  # local: this machine's processes; ray: a Ray cluster
    # Ray cluster to join ("" = the RAY_ADDRESS variable, else a Ray instance started here)
    address: str = param("", Text("a Ray address (host:port, ray://host:port, auto), or empty", empty=True))
