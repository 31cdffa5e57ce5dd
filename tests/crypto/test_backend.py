"""Backend selection, the native module's surface (signatures, stub), and the Rust test suite."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import gspauth.crypto
from gspauth.crypto import _python

ROOT = Path(__file__).resolve().parents[2]

# Hides gspauth._native from the import system, as if the extension were not built.
BLOCK_NATIVE = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "gspauth._native":
                raise ImportError("gspauth._native hidden by the test")
            return None
    sys.meta_path.insert(0, _Block())
    """
)

REPORT = "import gspauth.crypto as c; print(c.BACKEND); print(c.BACKEND_REASON)"


def _run(code: str, backend: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GSPAUTH_BACKEND"}
    if backend is not None:
        env["GSPAUTH_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )


def test_backend_is_visible() -> None:
    assert gspauth.crypto.BACKEND in ("native", "python")
    assert isinstance(gspauth.crypto.BACKEND_REASON, str) and gspauth.crypto.BACKEND_REASON


def test_forced_python() -> None:
    r = _run(REPORT, "python")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["python", "forced by GSPAUTH_BACKEND=python"]


@pytest.mark.native
@pytest.mark.parametrize(("requested", "reason"), [
    ("native", "forced by GSPAUTH_BACKEND=native"),
    ("auto", "gspauth._native importable"),
    (None, "gspauth._native importable"),
    (" Native ", "forced by GSPAUTH_BACKEND=native"),
])
def test_native_when_built(native: ModuleType, requested: str | None, reason: str) -> None:
    r = _run(REPORT + "; import gspauth.crypto._backend as b; print(b.impl.__name__)", requested)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["native", reason, "gspauth._native"]


def test_bogus_value_is_a_configuration_error() -> None:
    r = _run(REPORT, "bogus")
    assert r.returncode != 0
    assert "ConfigurationError" in r.stderr and "GSPAUTH_BACKEND must be one of" in r.stderr


def test_forced_native_without_extension_is_an_error_not_a_fallback() -> None:
    code = BLOCK_NATIVE + textwrap.dedent(
        """
        try:
            import gspauth.crypto  # `import gspauth` may already import the crypto package
        except ImportError as exc:
            from gspauth.errors import BackendUnavailable
            assert type(exc) is BackendUnavailable, type(exc)
            assert isinstance(exc.__cause__, ImportError)
            print("BackendUnavailable:", exc)
        else:
            print("loaded", gspauth.crypto.BACKEND)
        """
    )
    r = _run(code, "native")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("BackendUnavailable: GSPAUTH_BACKEND=native, but the Rust extension")


def test_auto_without_extension_falls_back_to_python() -> None:
    r = _run(BLOCK_NATIVE + REPORT, "auto")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "python"
    assert lines[1].startswith("gspauth._native not importable") and "hidden by the test" in lines[1]


def _public_functions() -> list[str]:
    return [n for n in _python.__all__ if callable(getattr(_python, n))]


@pytest.mark.native
def test_same_names_and_constants(native: ModuleType) -> None:
    # The Ingest* classes are gspauth.ingest's native backend (checked in tests/ingest).
    crypto_names = [n for n in native.__all__ if not n.startswith("Ingest")]
    assert crypto_names == list(_python.__all__)
    assert native.MAX_PAYLOAD_BYTES == _python.MAX_PAYLOAD_BYTES
    assert native.MAX_WIRE_CHARS == _python.MAX_WIRE_CHARS
    assert isinstance(native.__version__, str) and native.__version__


@pytest.mark.native
@pytest.mark.parametrize("name", _public_functions())
def test_signatures_are_equal(native: ModuleType, name: str) -> None:
    def shape(fn: object) -> list[tuple[str, object, object]]:
        sig = inspect.signature(fn)  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    want = shape(getattr(_python, name))
    assert all(kind is inspect.Parameter.POSITIONAL_ONLY for _, kind, _ in want)
    assert shape(getattr(native, name)) == want
    assert getattr(native, name).__doc__


@pytest.mark.native
def test_stub_matches_the_extension(native: ModuleType) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "gspauth._native"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_rust_core_tests_pass() -> None:
    """CI runs the Rust unit and vector tests through pytest."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is not on PATH: the Rust toolchain is needed to test gspauth-core")
    r = subprocess.run(
        [cargo, "test", "--locked", "-p", "gspauth-core"],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "test gspauth_kat ... ok" in out and "test nist_sp800_38a_ecb_aes256 ... ok" in out
    assert " 0 failed" in out and "FAILED" not in out
