"""``python -m shiftkit`` and the ``shiftkit`` console script: the command line.

The command line's modules (typer, rich) take a moment to import; a Ctrl-C or SIGTERM in that
moment must end the same way as one during a command: one line, exit 130 or 143, no traceback.
So this entry point sets that up with nothing but the standard library before importing them.
"""

from __future__ import annotations

import os
import signal
import sys

from shiftkit.core.errors import Terminated


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    """Entry point: import the command line under the signal handling, then run it."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        from shiftkit.cli.run import run
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"shiftkit: {what}: nothing was written", file=sys.stderr)
        sys.stderr.flush()
        # os._exit, not sys.exit: an interrupt inside an import's exec() sets a sticky CPython flag
        # that would make the interpreter kill itself with SIGINT on the way out (exit code -2)
        os._exit(143 if isinstance(exc, Terminated) else 130)
    run()


if __name__ == "__main__":
    main()
