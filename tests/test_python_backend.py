"""The call sites of the crypto, on the pure-Python backend too.

``tests/crypto`` and ``tests/ingest`` already run every function on both backends in-process
(the ``backend`` fixture). The client, filing, emulator, CLI and plugin tests exercise the
*call sites* — request building, token grants, payload envelopes, the emulator's server side,
FILEDET decryption, the filer — through the backend ``gspauth.crypto`` chose at import. This
test runs that subset once more in a fresh interpreter with ``GSPAUTH_BACKEND=python``, so a
regression that only the Python backend shows at a call site fails CI as well.

The subset (every directory that reaches a crypto call site outside tests/crypto):
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Test paths re-run on the Python backend (documented in the module docstring).
SUBSET = ("tests/client", "tests/emulator", "tests/cli", "tests/filer", "plugins/cleartax/tests",
          "plugins/vayana/tests", "plugins/taxpro-example/tests")
__doc__ = (__doc__ or "") + "\n".join(f"* ``{p}``" for p in SUBSET) + "\n"


@pytest.mark.slow
def test_call_sites_pass_on_the_python_backend(tmp_path: Path) -> None:
    missing = [p for p in SUBSET if not (ROOT / p).exists()]
    assert not missing, f"the subset names paths that are gone (update SUBSET): {missing}"
    env = dict(os.environ, GSPAUTH_BACKEND="python", GSPAUTH_REQUIRE_NATIVE="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--backend-banner",
         *SUBSET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert "gspauth crypto backend: python" in proc.stdout, tail  # the run really used the reference
    assert proc.returncode == 0, tail
