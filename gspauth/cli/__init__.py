"""The ``gspauth`` command line.

Each sub-command lives in its own module under :mod:`gspauth.cli` and exposes
``register(subparsers) -> None``, which adds its parser(s) and sets
``func=handler`` where ``handler(args: argparse.Namespace) -> int``.
Modules are imported only when listed here, so ``gspauth --help`` stays fast.

Exit codes (:class:`Exit`; README "Exit codes"): an expected failure prints one line
``gspauth: error: …`` and a ``hint:`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from gspauth import __version__
from gspauth.errors import GSPAuthError, GSPError, OtpRequired, Unreachable

__all__ = ["Exit", "main"]


class Exit(enum.IntEnum):
    """``gspauth``'s exit codes (the sysexits.h values where one fits)."""

    OK = 0
    #: an error: a refused request, a failed check, bad configuration, damaged files …
    ERROR = 1
    #: the command line itself is wrong (unknown flag, missing argument)
    USAGE = 2
    #: GSTN or the GSP could not be reached (EX_UNAVAILABLE)
    UNREACHABLE = 69
    #: a bug in gspauth (EX_SOFTWARE): please report it
    INTERNAL = 70
    #: waiting for a person: an OTP is needed; run again once it is delivered (EX_TEMPFAIL)
    NEEDS_OTP = 75
    #: interrupted (Ctrl-C)
    INTERRUPTED = 130


# Module names under gspauth.cli, in the order their commands appear in --help.
_COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "file",
    "fetch",
    "journal",
    "login",
    "session",
    "consent",
    "db",
    "doctor",
    "plugins",
    "emulator",
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gspauth",
        description="Talk to GSTN through GSPs: sessions, OTP consent, filing, payload crypto, emulator.",
        epilog="exit codes: 0 ok, 1 error, 2 usage, 69 GSTN/GSP unreachable, 70 internal error, "
               "75 an OTP is needed (run again once it is delivered), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"gspauth {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log warnings (-v: retries, parked GSTINs) or progress details (-vv) to stderr "
                             "(env GSPAUTH_LOG_LEVEL=WARNING|INFO|DEBUG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gspauth.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gspauth.cli.{name}":
                raise
            continue  # command not shipped in this build
        module.register(sub)
    return parser


def _report_error(exc: GSPAuthError) -> None:
    """One line for the error and one for its hint, on stderr."""
    if isinstance(exc, GSPError):
        code = f"{exc.error_code}: " if exc.error_code else ""
        print(f"gspauth: error: {code}{exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return
    text = str(exc)
    if exc.hint:
        message, how = text, exc.hint
    else:  # the message carries its own "…; what to do"
        message, _, how = text.partition("; ")
    print(f"gspauth: error: {message}", file=sys.stderr)
    if how:
        print(f"  hint: {how}", file=sys.stderr)


def _quiet_broken_pipe() -> None:
    # The reader went away (`| head`): point stdout at /dev/null so the interpreter's final
    # flush does not raise again, and exit without a word.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor (tests)
        pass


def _configure_logging(verbose: int) -> None:
    # A command prints its result and, on failure, one error line with a hint; library log
    # records (retries, parked GSTINs …) show only when asked for.
    # Logging someone else configured (an embedding program, a test runner) is left alone.
    if logging.getLogger().handlers:
        return
    named = os.environ.get("GSPAUTH_LOG_LEVEL", "").strip().upper()
    level = {0: logging.ERROR, 1: logging.WARNING}.get(verbose, logging.INFO)
    if named in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = getattr(logging, named)
    logging.basicConfig(level=level, format="gspauth: %(levelname)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gspauth`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code (:class:`Exit`)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return Exit.USAGE
    try:
        return int(args.func(args) or 0)
    except OtpRequired as exc:
        _report_error(exc)
        return Exit.NEEDS_OTP
    except Unreachable as exc:
        _report_error(exc)
        return Exit.UNREACHABLE
    except GSPAuthError as exc:
        _report_error(exc)
        return Exit.ERROR
    except KeyboardInterrupt:
        print("gspauth: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return Exit.OK
    except Exception as exc:
        if os.environ.get("GSPAUTH_DEBUG"):
            raise
        # Only the type: the message of an unexpected exception could carry anything.
        print(f"gspauth: internal error ({type(exc).__name__})", file=sys.stderr)
        print("  hint: this is a bug in gspauth; run again with GSPAUTH_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return Exit.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
