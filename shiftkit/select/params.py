"""The params.yaml section of ``shiftkit select``: one frozen dataclass, defaults equal to params.yaml."""

from __future__ import annotations

from shiftkit.core.config import COUNT, SEED, WORKERS, ParamsSection, Text, frozen, param, section


@section("select")
@frozen
class SelectParams(ParamsSection):
    """``shiftkit select``: which pool images to label next (shiftkit/select/)."""

    seed: int = param(0, SEED)  # random's draw, coreset's first centre, clue's k-means start
    target_domain: str = param("target", Text("a domain name"))  # whose unused train images join the pool
    batch_size: int = param(256, COUNT, speed_only=True)  # images per forward pass
    workers: int = param(0, WORKERS, speed_only=True)  # data-loader decoding processes (0: the main process)
