"""Package-level meta tests: the public surface, typing, and the CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gspauth

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_resolves() -> None:
    assert gspauth.__all__ == sorted(gspauth.__all__)
    missing = [name for name in gspauth.__all__ if not hasattr(gspauth, name)]
    assert missing == []


def test_public_names_are_documented() -> None:
    undocumented = [
        name
        for name in gspauth.__all__
        if isinstance(getattr(gspauth, name), type) and not (getattr(gspauth, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """`mypy --strict` over gspauth/ and both plugins' src (configured in pyproject.toml)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_help_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gspauth", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "login", "session", "consent", "doctor", "plugins", "plugin", "emulator"):
        assert command in proc.stdout, command
