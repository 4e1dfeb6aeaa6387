"""The params.yaml section(s) of where per-image work runs: one frozen dataclass each, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    ParamsSection,
    Registered,
    Text,
    frozen,
    param,
    section,
)
from shiftkit.runtime.engine import engine_names

# --- engine ---------------------------------------------------------------------------------------


@section("engine")
@frozen
class EngineParams(ParamsSection):
    """Where the per-image work of ingest, check, synth and shift runs (``shiftkit/runtime/engine.py``)."""

    name: str = param("local", Registered(engine_names))  # local: this machine's processes; ray: a Ray cluster
    # Ray cluster to join ("" = the RAY_ADDRESS variable, else a Ray instance started here)
    address: str = param("", Text("a Ray address (host:port, ray://host:port, auto), or empty", empty=True))
