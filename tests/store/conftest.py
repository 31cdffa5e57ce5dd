"""Fixtures for the session store, OTP and ledger tests: a private GSPAUTH_HOME and store key."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gspauth.session import Session, SessionKey
from gspauth.store import MemoryStore, SessionStore, SQLiteStore

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


# -- one suite, every backend ---------------------------------------------------------------------
# Tests that take ``stores`` run against each SessionStore; ``shared_stores`` only against the
# ones several processes (or machines) share. A backend's factory builds a *new* store object
# on the same data each time it is called (a second process, a restart); ``spec`` is what
# ``open_store`` takes in another process; ``execute`` changes the data behind the store's
# back (an attacker, an operator with a SQL shell).

BACKENDS = ("memory", "sqlite", "postgres")
SHARED_BACKENDS = ("sqlite", "postgres")


@dataclass
class StoreFactory:
    """Builds store objects of one backend over one place (file, schema)."""

    backend: str
    make: Callable[..., SessionStore]
    spec: str = ""
    opened: list[SessionStore] = field(default_factory=list)

    def __call__(self, **kwargs: Any) -> SessionStore:
        store = self.make(**kwargs)
        self.opened.append(store)
        return store

    def execute(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders, tables unqualified) on the backend's data directly."""
        if self.backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(self.spec)
            try:
                with conn:
                    return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        if self.backend == "postgres":
            import psycopg

            from gspauth._pg import parse_url

            url = parse_url(self.spec)
            with psycopg.connect(url.conninfo, autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{url.schema}"')
                cur = conn.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []
        raise AssertionError(f"{self.backend} has no data to change behind its back")


def _factory(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if backend == "memory":
        one = MemoryStore()
        return StoreFactory(backend, lambda **kw: one, "memory:")
    if backend == "sqlite":
        path = tmp_path / "sessions.db"
        return StoreFactory(backend, lambda **kw: SQLiteStore(path, **kw), str(path))
    if backend == "postgres":
        from gspauth.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")  # the cluster starts only if a test needs it
        return StoreFactory(backend, lambda **kw: PostgresStore(url, **kw), url)
    raise AssertionError(backend)


def _closing(factory: StoreFactory) -> Iterator[StoreFactory]:
    yield factory
    for store in factory.opened:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path, store_key: bytes) -> Iterator[StoreFactory]:
    """A factory of store objects sharing one backend's data (each backend in turn)."""
    yield from _closing(_factory(request.param, request, tmp_path))


@pytest.fixture(params=SHARED_BACKENDS)
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path, store_key: bytes) -> Iterator[StoreFactory]:
    """As :func:`stores`, for the backends that several processes share."""
    yield from _closing(_factory(request.param, request, tmp_path))


@dataclass
class LedgerFactory:
    """Builds ledger objects of one backend over one place, and changes its rows behind its back."""

    backend: str
    make: Callable[[], Any]
    spec: str
    opened: list[Any] = field(default_factory=list)

    def __call__(self) -> Any:
        ledger = self.make()
        self.opened.append(ledger)
        return ledger

    def execute(self, sql: str, *params: object) -> None:
        """Run ``sql`` on the ledger's table (named ``events`` here whatever the backend calls it)."""
        StoreFactory(self.backend, lambda **kw: None, self.spec).execute(  # type: ignore[arg-type,return-value]
            sql.replace("events", "events" if self.backend == "sqlite" else "ledger_events"), *params)


@pytest.fixture(params=SHARED_BACKENDS)
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerFactory]:
    """A factory of consent ledgers over one SQLite file or PostgreSQL schema (each in turn)."""
    if request.param == "sqlite":
        from gspauth.ledger import Ledger

        path = tmp_path / "ledger.db"
        factory = LedgerFactory("sqlite", lambda: Ledger(path), str(path))
    else:
        from gspauth.ledger.postgres import PostgresLedger

        url = request.getfixturevalue("postgres_url")
        factory = LedgerFactory("postgres", lambda: PostgresLedger(url), url)
    yield factory
    for ledger in factory.opened:
        ledger.close()
