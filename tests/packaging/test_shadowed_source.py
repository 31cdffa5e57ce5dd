"""A source tree without the compiled module, shadowing an installed gspauth that has it.

That is what a user gets running Python from a checkout's root after ``pip install .``: the
current directory comes first on ``sys.path``. The backend must say so, with the fix, instead of
Python's "partially initialized module ... (most likely due to a circular import)".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = "import gspauth.crypto as c; print(c.BACKEND); print(c.BACKEND_REASON)"
# The editable install of this checkout (a .pth entry) would be one more gspauth with the
# extension on sys.path; leave it out so that only the two trees built here are seen.
WITHOUT_CHECKOUT = (
    "import sys, pathlib; root = pathlib.Path(sys.argv[1]).resolve(); "
    "sys.path[:] = [p for p in sys.path if not p or pathlib.Path(p).resolve() != root]; "
)

pytestmark = pytest.mark.native  # the installed copy needs the real extension


@pytest.fixture(scope="module")
def trees(native: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(checkout, site)``: a source tree with no ``_native``, and an install that has it."""
    base = tmp_path_factory.mktemp("shadow")
    skip = shutil.ignore_patterns("__pycache__", "_native.*.so", "_native.so", "_native.*.pyd")
    checkout = base / "checkout"
    shutil.copytree(ROOT / "gspauth", checkout / "gspauth", ignore=skip)
    site = base / "site"
    shutil.copytree(ROOT / "gspauth", site / "gspauth", ignore=skip)
    assert native.__file__ is not None
    shutil.copy2(native.__file__, site / "gspauth" / Path(native.__file__).name)
    return checkout, site


def _python(code: str, cwd: Path, site: Path | None, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSPAUTH_") and k != "PYTHONPATH"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    env["GSPAUTH_HOME"] = str(cwd / ".gspauth-home")
    env.update(extra)
    return subprocess.run([sys.executable, "-c", WITHOUT_CHECKOUT + code, str(ROOT)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_shadowing_source_tree_is_named_with_the_fix(trees: tuple[Path, Path]) -> None:
    checkout, site = trees
    r = _python(REPORT, cwd=checkout, site=site)
    assert r.returncode == 0, r.stderr
    backend, reason = r.stdout.splitlines()
    assert backend == "python"
    assert f"source tree {checkout / 'gspauth'}" in reason and f"installed gspauth in {site / 'gspauth'}" in reason
    assert "Run from another directory" in reason and "pip install -e ." in reason
    assert "circular" not in reason


def test_doctor_shows_it(trees: tuple[Path, Path]) -> None:
    checkout, site = trees
    r = _python("from gspauth.cli import main; raise SystemExit(main(['doctor', '--json']))", cwd=checkout,
                site=site)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    backend = checks["crypto backend"]
    assert backend["status"] == "warn" and backend["detail"].startswith("python (reference): ")
    assert "shadows the installed gspauth" in backend["detail"] and "Run from another directory" in backend["detail"]


def test_forced_native_raises_with_the_same_reason(trees: tuple[Path, Path]) -> None:
    checkout, site = trees
    r = _python(REPORT, cwd=checkout, site=site, GSPAUTH_BACKEND="native")
    assert r.returncode != 0
    error = r.stderr.strip().splitlines()[-1]  # the chained ImportError above it is Python's own
    assert error.startswith("gspauth.errors.BackendUnavailable: GSPAUTH_BACKEND=native, but the Rust extension "
                            "cannot be used: gspauth._native not importable: Python imported gspauth from the "
                            "source tree")
    assert "shadows the installed gspauth" in error and "circular" not in error


def test_the_advice_works_from_another_directory(trees: tuple[Path, Path], tmp_path: Path) -> None:
    _, site = trees
    r = _python(REPORT + "; import gspauth._native as n; print(n.__file__)", cwd=tmp_path, site=site)
    assert r.returncode == 0, r.stderr
    backend, reason, where = r.stdout.splitlines()
    assert (backend, reason) == ("native", "gspauth._native importable")
    assert Path(where).parent == site / "gspauth"


def test_no_extension_anywhere_says_not_built(trees: tuple[Path, Path]) -> None:
    checkout, _ = trees
    r = _python(REPORT, cwd=checkout, site=None)
    assert r.returncode == 0, r.stderr
    backend, reason = r.stdout.splitlines()
    assert backend == "python"
    assert reason.startswith("gspauth._native not importable: the Rust extension is not built")
    assert "maturin develop --release" in reason and "circular" not in reason
