"""Exceptions raised by shiftkit.

Every error a user can cause by bad input (a path, a value in params.yaml, a table, an image)
is a :class:`ShiftkitError`. The command line turns these into one line on stderr and exit
code 2; anything else escaping is a bug. The subclasses also derive from the matching builtin
(``ValueError``, ``OSError``, ``KeyError``) so that library users can catch what they expect.
"""

from __future__ import annotations

from shiftkit.core.reasons import QuarantineReason


class ShiftkitError(Exception):
    """Base class of every error caused by the user's input."""


class ConfigError(ShiftkitError, ValueError):
    """A value in params.yaml or a function argument is out of range or of the wrong type."""


class InputPathError(ShiftkitError, OSError):
    """A path given by the user is missing, of the wrong kind, or not writable."""


class DataError(ShiftkitError, ValueError):
    """A table or an image set does not hold what the stage needs (empty, missing split, ...)."""


class SchemaError(DataError):
    """A table lacks a required column or has a column of the wrong type."""


class RegistryError(ShiftkitError, ValueError):
    """A name is not registered, or is registered twice; the message lists the valid names."""


class ImageDecodeError(ShiftkitError, ValueError):
    """One image cannot be used. ``reason`` is a ``reasons.QuarantineReason`` member."""

    def __init__(self, reason: QuarantineReason, detail: str = "") -> None:
        if not isinstance(reason, QuarantineReason):
            raise TypeError(f"ImageDecodeError needs a QuarantineReason member. Got {reason!r} instead.")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)

    def __reduce__(self) -> tuple:  # sent back from a worker process as (reason, detail), not its text
        return type(self), (self.reason, self.detail)


class ModelError(ShiftkitError, ValueError):
    """A model name, checkpoint or set of pretrained weights cannot be used."""


class CheckFailed(ShiftkitError):
    """A data drop has blocking findings (``shiftkit check`` exits 1, not 2, for this)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. The command line raises it in the main thread (exit code 143) so that the
    same cleanup as for Ctrl-C runs: worker pools end, half-built output folders are removed."""
