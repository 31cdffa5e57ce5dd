"""Fixtures for the session store, OTP and ledger tests: a private GSPAUTH_HOME and store key."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gspauth.session import Session, SessionKey

NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def gspauth_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own GSPAUTH_HOME and no inherited store key / OTP settings."""
    home = tmp_path / "home"
    monkeypatch.setenv("GSPAUTH_HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("GSPAUTH_STORE_KEY", "GSPAUTH_OTP")):
            monkeypatch.delenv(name)
    return home


@pytest.fixture
def store_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    raw = os.urandom(32)
    monkeypatch.setenv("GSPAUTH_STORE_KEY", base64.b64encode(raw).decode())
    return raw


@pytest.fixture
def key() -> SessionKey:
    return SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "acme.mh")


def _make_session(key: SessionKey, *, token: str | None = None, now: dt.datetime = NOW, expiry: int = 360) -> Session:
    return Session.new(
        key,
        auth_token=token or os.urandom(16).hex(),
        app_key=os.urandom(32),
        sek=os.urandom(32),
        expiry_minutes=expiry,
        now=now,
        txn="LAPN24235325555",
    )


@pytest.fixture
def make_session():  # type: ignore[no-untyped-def]
    """Factory: ``make_session(key, token=None, now=NOW, expiry=360)`` with random keys."""
    return _make_session


@pytest.fixture
def session(key: SessionKey) -> Iterator[Session]:
    yield _make_session(key)
