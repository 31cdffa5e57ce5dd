"""Choose the crypto backend, once, here and nowhere else.

``GSPAUTH_BACKEND`` = ``auto`` (default: Rust when importable) | ``native`` | ``python``.
A forced ``native`` that cannot be imported is an error, never a silent fallback.
"""

from __future__ import annotations

import os
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
        if requested == "native":
            raise BackendUnavailable(
                "GSPAUTH_BACKEND=native, but the Rust extension gspauth._native is not built "
                "(install with `pip install .` or `maturin develop --release`)"
            ) from exc
        from gspauth.crypto import _python

        return _python, "python", f"gspauth._native not importable ({exc})"
    reason = "forced by GSPAUTH_BACKEND=native" if requested == "native" else "gspauth._native importable"
    return _native, "native", reason


if TYPE_CHECKING:  # type checkers always see the reference implementation
    from gspauth.crypto import _python as impl

    NAME: str
    REASON: str
else:
    impl, NAME, REASON = load(os.environ.get("GSPAUTH_BACKEND", "auto"))
