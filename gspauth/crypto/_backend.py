"""Choose the crypto backend, once, here and nowhere else.

``GSPAUTH_BACKEND`` = ``auto`` (default: Rust when importable) | ``native`` | ``python``.
A forced ``native`` that cannot be imported is an error, never a silent fallback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from gspauth.errors import BackendUnavailable, ConfigurationError

__all__ = ["NAME", "REASON", "impl", "load"]

_CHOICES = ("auto", "native", "python")


def load(requested: str) -> tuple[ModuleType, str, str]:
    """Return ``(module, name, reason)`` for a requested backend name."""
    requested = (requested or "auto").strip().lower()
    if requested not in _CHOICES:
        raise ConfigurationError(f"GSPAUTH_BACKEND must be one of {', '.join(_CHOICES)}, not {requested!r}")
    if requested == "python":
        from gspauth.crypto import _python

        return _python, "python", "forced by GSPAUTH_BACKEND=python"
    try:
        from gspauth import _native
    except ImportError as exc:
        why = _missing_reason(exc)
        if requested == "native":
            raise BackendUnavailable(f"GSPAUTH_BACKEND=native, but the Rust extension cannot be used: {why}") from exc
        from gspauth.crypto import _python

        return _python, "python", why
    reason = "forced by GSPAUTH_BACKEND=native" if requested == "native" else "gspauth._native importable"
    return _native, "native", reason


def _has_extension(package_dir: Path) -> bool:
    return any((package_dir / f"_native{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


def _gspauth_dirs_on_path() -> Iterator[Path]:
    """Every ``gspauth`` package directory on ``sys.path``, in import order."""
    for entry in sys.path:
        candidate = Path(entry or os.getcwd()) / "gspauth"
        if (candidate / "__init__.py").is_file():
            yield candidate.resolve()


def _missing_reason(exc: ImportError) -> str:
    """Why ``gspauth._native`` did not import, worded for whoever has to fix it.

    Python's own message misleads in the commonest case: run from a checkout's root after a
    non-editable install, ``gspauth`` is imported from the source tree (the current directory
    comes first on ``sys.path``), which has no compiled module, and ``from gspauth import
    _native`` then reports a "partially initialized module (most likely due to a circular
    import)". So look at the files instead of repeating it.
    """
    package = sys.modules.get("gspauth")
    here = [Path(p).resolve() for p in getattr(package, "__path__", ())]
    if any(_has_extension(d) for d in here):
        # The file is there but did not load (wrong platform, missing symbol, blocked): the
        # loader's own message is the useful one.
        return f"gspauth._native not importable ({exc})"
    source = here[0] if here else Path("gspauth")
    installed = [d for d in _gspauth_dirs_on_path() if d not in here and _has_extension(d)]
    if installed:
        return (
            f"gspauth._native not importable: Python imported gspauth from the source tree {source}, which "
            f"has no compiled extension, and it shadows the installed gspauth in {installed[0]}, which has "
            "one (the current directory or PYTHONPATH comes first on sys.path). Run from another directory, "
            "or install this checkout with `pip install -e .` so that the source tree gets the extension"
        )
    return (
        f"gspauth._native not importable: the Rust extension is not built ({source} has no _native module); "
        "install a gspauth wheel, or build it in a checkout with `pip install -e .` or `maturin develop --release`"
    )


if TYPE_CHECKING:  # type checkers always see the reference implementation
    from gspauth.crypto import _python as impl

    NAME: str
    REASON: str
else:
    impl, NAME, REASON = load(os.environ.get("GSPAUTH_BACKEND", "auto"))
