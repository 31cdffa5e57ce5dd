"""The ``gspauth`` command line.

Each sub-command lives in its own module under :mod:`gspauth.cli` and exposes
``register(subparsers) -> None``, which adds its parser(s) and sets
``func=handler`` where ``handler(args: argparse.Namespace) -> int``.
Modules are imported only when listed here, so ``gspauth --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gspauth import __version__
from gspauth.errors import GSPAuthError

__all__ = ["main"]

# Module names under gspauth.cli, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "login",
    "session",
    "consent",
    "doctor",
    "plugins",
    "emulator",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gspauth",
        description="Talk to GSTN through GSPs: sessions, OTP consent, payload crypto, emulator.",
    )
    parser.add_argument("--version", action="version", version=f"gspauth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gspauth.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gspauth.cli.{name}":
                raise
            continue  # command not shipped in this build
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GSPAuthError as exc:
        print(f"gspauth: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gspauth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
