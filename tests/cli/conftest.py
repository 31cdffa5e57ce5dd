"""Fixtures for the CLI tests: private GSPAUTH_HOME, a store key, a loopback emulator, a CLI runner."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.fixture(autouse=True)
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("GSPAUTH_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no stray user config
    for name in list(os.environ):
        if name.startswith(("GSPAUTH_STORE_KEY", "GSPAUTH_OTP", "GSPAUTH_CRED_", "GSPAUTH_PROFILE", "GSPAUTH_CONFIG")):
            monkeypatch.delenv(name)
        if name.startswith("GSPAUTH_") and name.endswith("_HOST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GSPAUTH_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    return home


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``gspauth ARGS`` in-process; returns exit code, stdout and stderr."""
    from gspauth.cli import main

    def run(*argv: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@dataclass
class Emu:
    server: Any
    url: str
    certificate: Path

    @property
    def emulator(self) -> Any:
        return self.server.emulator

    def otp(self, gstin: str) -> str | None:
        return self.emulator.outbox.latest_otp(gstin)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emu]:
    from gspauth.emulator import ThreadedEmulator
    from gspauth.emulator.config import EmulatorConfig

    server = ThreadedEmulator(config=EmulatorConfig(seed=11)).start()
    try:
        cert = tmp_path_factory.mktemp("cert") / "gstn-sandbox.pem"
        cert.write_bytes(httpx.get(f"{server.url}/_emulator/certificate.pem", timeout=10).content)
        yield Emu(server, server.url, cert)
    finally:
        server.stop()


@pytest.fixture
def subprocess_env() -> Any:
    """``subprocess_env(**extra)``: the current environment with the checkout on PYTHONPATH."""
    root = Path(__file__).resolve().parents[2]

    def make(**extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        env.update(extra)
        return env

    return make
