"""Lint: ``ruff check`` over the whole repository is clean.

The rules are configured in ``pyproject.toml`` (``[tool.ruff]``); ruff comes with the
``test`` extra, so the README's test command (and so ``.ci/run``) runs this.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # --no-cache: a test run writes nothing into the checkout
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_check_is_clean() -> None:
    proc = _ruff(str(ROOT))
    if proc.returncode != 0:
        pytest.fail(f"ruff check found problems (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_ruff_applies_the_project_configuration() -> None:
    """The clean run above means something: the same invocation flags a file under ``gspauth/``
    with the project's rules (an unused import, and a private name reached from outside)."""
    code = "from __future__ import annotations\n\nimport os\nimport gspauth\n\nX = gspauth._version\n"
    proc = _ruff("--stdin-filename", str(ROOT / "gspauth" / "lint_probe.py"), "-", stdin=code)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "F401" in proc.stdout and "SLF001" in proc.stdout, proc.stdout
