"""How every front-end runs and fails: the exception -> exit code mapping (:func:`exit_code_for`),
signals that raise so that outputs are cleaned up, the command line's :func:`main` and :func:`run`,
and the ``pipelines/*.py`` stage scripts' :func:`stage_parser` and :func:`run_stage`.

Exit codes:

- 0: done;
- 1: ``shiftkit check`` found blocking problems in a data drop (and for internal errors);
- 2: bad input (a missing path, a bad value, an unknown option): one line on stderr;
- 130: interrupted (SIGINT); 143: terminated (SIGTERM).

The typer commands (:mod:`shiftkit.cli.app`) are imported by :func:`main` only, so a stage
script that runs through :func:`run_stage` does not import them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

import typer

from shiftkit.core.errors import CheckFailed, ShiftkitError, Terminated
from shiftkit.core.outputs import is_no_space
from shiftkit.core.text import safe_name


def _usage_exceptions() -> tuple[type[BaseException], ...]:
    """Usage-error classes of whichever click the installed typer is built on."""
    found: list[type[BaseException]] = []
    for modname in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = __import__(modname, fromlist=["ClickException"])
        except ImportError:
            continue
        found.append(mod.ClickException)
    return tuple(found)


def _exit_exceptions() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [typer.Exit]
    for modname in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(modname, fromlist=["Exit"]).Exit)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


#: an error message quotes at most this many characters (a value can be megabytes long)
MAX_MESSAGE = 400


def _one_line(text: object) -> str:
    line = safe_name(" ".join(str(text).split()))  # a file name's escapes never reach the terminal
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 25] + f" ... ({len(line):,} characters)"


def _interrupted_line(prog: str, signum: int) -> str:
    what = "terminated" if signum == signal.SIGTERM else "interrupted"
    try:
        from shiftkit.core.console import kept_notes

        kept = kept_notes()
    except Exception:  # noqa: BLE001 -- interrupted while the console was first imported: nothing kept
        kept = []
    if kept:
        return f"{prog}: {what}: kept {'; '.join(kept)}; nothing else was written"
    return f"{prog}: {what}: nothing was written"


def exit_code_for(exc: BaseException, prog: str = "shiftkit") -> int:
    """THE mapping from an exception to an exit code, printing ONE line on stderr (never a traceback).

    Used by :func:`main` and :func:`run_stage` alike: 0 done (or ``--help``); 1 a blocked
    ``check`` (:class:`CheckFailed`) or an internal error; 2 bad input (any
    :class:`ShiftkitError`, a usage error, an ``OSError`` such as a folder where a file should
    be); 130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM). ``SHIFTKIT_DEBUG=1`` shows
    the traceback of an internal error.
    """
    if type(exc).__name__ == "PanicException" and "KeyboardInterrupt" in str(exc):
        # a Ctrl-C that landed in polars' start-up (Rust code calling Python) comes back as a panic
        exc = Terminated() if "Terminated'>" in str(exc) else KeyboardInterrupt()
    if isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        print(_interrupted_line(prog, signum), file=sys.stderr)
        return 128 + signum
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if isinstance(exc, _exit_exceptions()):
        return int(getattr(exc, "exit_code", 0) or 0)
    if isinstance(exc, CheckFailed):
        print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
        return 1
    if isinstance(exc, ShiftkitError):
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    if is_no_space(exc):  # a full disk outside the atomic writers (a library's "os error 28" included)
        where = f" of {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"{prog}: error: no space left on the device{where} (os error 28): free some space and run again",
              file=sys.stderr)
        return 2
    if isinstance(exc, _usage_exceptions()):
        cmd = getattr(getattr(exc, "ctx", None), "command_path", None) or prog
        print(f"{cmd}: error: {_one_line(exc.format_message())} (see '{cmd} --help')", file=sys.stderr)
        return 2
    if isinstance(exc, OSError):
        where = f" {exc.filename}:" if getattr(exc, "filename", None) else ""
        print(f"{prog}: error:{where} {_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 2
    if isinstance(exc, MemoryError):
        print(f"{prog}: error: out of memory (an input too large, or too deeply nested?)", file=sys.stderr)
        return 2
    if type(exc).__name__ == "Abort" and type(exc).__module__.startswith(("typer", "click")):
        print(f"{prog}: aborted.", file=sys.stderr)
        return 1
    if os.environ.get("SHIFTKIT_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} "
          "(a bug: please report it; SHIFTKIT_DEBUG=1 shows the traceback)", file=sys.stderr)
    return 1


class _SignalsRaise:
    """SIGTERM raises :class:`Terminated` (and SIGINT KeyboardInterrupt) in the main thread, so that
    ``finally`` blocks, worker pools and ``io.replace_dir`` clean up; the last signal is kept in
    ``received`` because typer turns an interrupt inside a command into a plain exit code 130."""

    def __init__(self, final: bool = False) -> None:
        self.received: int | None = None
        self.final = final  # the process exits right after: later signals change nothing
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def __enter__(self) -> _SignalsRaise:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) in (signal.SIG_IGN, None):
                    continue  # started with the signal ignored (nohup): keep it so
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            # in a process that is about to exit, the work is done (outputs complete): a signal
            # from now on must not turn a finished run into an interpreter killed by SIGINT (-2)
            signal.signal(signum, signal.SIG_IGN if self.final else previous)


def _guarded(prog: str, work: Callable[[], object], final: bool = False) -> tuple[int, object]:
    """Run ``work`` with output on and signals raising; (exit code, its result when it returned).

    The imports below (rich, the runtime) take a moment on a cold start: a Ctrl-C during them ends
    in the same one line and exit code as one during the work, never in a traceback.
    """
    try:
        from shiftkit.core.console import recording_kept

        recording = recording_kept()
    except BaseException as exc:  # noqa: BLE001 -- an interrupt during the import included
        return exit_code_for(exc, prog), None
    with recording:
        return _guarded_run(prog, work, final)


class _PolarsWithSignalsHeld:
    """A ``sys.meta_path`` finder that imports polars once with SIGINT and SIGTERM held back: its Rust
    start-up calls Python, and a KeyboardInterrupt raised there is a panic (a Rust message and a
    backtrace on stderr). The signal is delivered right after the import, as a plain interrupt."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name != "polars":
            return None
        import importlib.util

        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: object) -> None:
            held = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
            try:
                run_module(module)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this module's loader only
        return spec


def _guarded_run(prog: str, work: Callable[[], object], final: bool) -> tuple[int, object]:
    signals = _SignalsRaise(final)
    if "polars" not in sys.modules and threading.current_thread() is threading.main_thread():
        sys.meta_path.insert(0, _PolarsWithSignalsHeld())
    imap = None
    try:
        from shiftkit.core.console import output_to, stderr_console
        from shiftkit.runtime import imap

        with output_to(stderr_console()), signals:
            result = work()
    except BaseException as exc:  # noqa: BLE001 -- every exception ends in exit_code_for
        return exit_code_for(exc, prog), None
    finally:
        # workers of an imap generator that an exception left suspended (also one that typer caught
        # and turned into exit code 130): reaped here, before the process exits
        if imap is not None:
            imap.stop_all()
            if final:  # the process exits next: no child of it may outlive it
                imap.reap_children()
    if signals.received is not None and result == 130:
        # typer caught the KeyboardInterrupt (or Terminated) inside the command and returned 130
        print(_interrupted_line(prog, signals.received), file=sys.stderr)
        return 128 + signals.received, None
    return 0, result


def _invoke(args: list[str]) -> object:
    """The typer commands on ``args``; imported here, under the signal handling of :func:`_guarded`."""
    from shiftkit.cli.app import app

    return app(args=args, standalone_mode=False, prog_name="shiftkit")


def main(argv: list[str] | None = None, *, final: bool = False) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    ``final``: the process exits right after (the console script), so signals that arrive once
    the command has finished are ignored instead of killing the interpreter on its way out.
    """
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    code, result = _guarded("shiftkit", lambda: _invoke(args), final)
    if code:
        return code
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    code = main(final=True)
    if code in (130, 143):
        # CPython exits by SIGINT itself (code -2) when a KeyboardInterrupt once escaped code run
        # by exec() of a string (a sticky interpreter flag), even though main handled it: leave
        # with the code main chose. Workers and temporary folders were cleaned up already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a ``pipelines/*.py`` stage: a usage error is one line, exit 2."""
    return _StageParser(description=(doc or "").strip().splitlines()[0] if doc else None)


class _StageParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line (argparse prints the whole usage first)
        from shiftkit.core.errors import ConfigError

        raise ConfigError(f"{message} (see '{self.prog} --help')")


def run_stage(name: str, work: Callable[[], str]) -> int:
    """Run a DVC stage script's ``work`` and print the summary line it returns; the exit code.

    Every ``pipelines/*.py`` script is ``stage_parser`` + a ``work`` that parses its arguments,
    calls the library and returns one summary line + ``run_stage``: failures go through the
    same :func:`exit_code_for` as the command line (``<name>: error: ...``, exit 2; a blocked
    check 1; interrupted 130, terminated 143).
    """
    code, summary = _guarded(name, work)
    if code == 0 and summary is not None:
        print(summary)
    return code
