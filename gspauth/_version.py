"""The version of gspauth, from its one source: ``[workspace.package] version`` in ``Cargo.toml``.

maturin writes that version into the wheel's metadata (``dynamic = ["version"]`` in
``pyproject.toml``) and the Rust extension reports it as ``gspauth._native.__version__``, so an
installed copy reads it from its metadata. A plain source checkout that was never installed has
no metadata; it reads the workspace file beside the package instead.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["VERSION"]

_UNKNOWN = "0+unknown"


def _from_checkout(root: Path) -> str:
    """``[workspace.package] version`` of ``root/Cargo.toml``, or ``0+unknown``."""
    try:
        text = (root / "Cargo.toml").read_text(encoding="utf-8")
    except OSError:
        return _UNKNOWN
    # A regex, not tomllib: this runs on 3.10 too, before any dependency is installed.
    table = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = re.search(r'^version\s*=\s*"([^"]+)"', table.group(1), re.MULTILINE) if table else None
    return found.group(1) if found else _UNKNOWN


def _version() -> str:
    try:
        return metadata.version("gspauth")
    except metadata.PackageNotFoundError:
        return _from_checkout(Path(__file__).resolve().parent.parent)


#: This gspauth's version, e.g. ``"0.2.0"``.
VERSION: str = _version()
