"""DVC stage ``check``: gate the newest ingested drop before it is split and trained on.

Runs ``shiftkit check --latest``: the newest drop of the persisted manifest against the earlier
drops (and, from the second run on, the splits they were given). Exit 1 stops ``dvc repro``.
"""

from __future__ import annotations

import sys

from shiftkit.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["check", "--latest", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
