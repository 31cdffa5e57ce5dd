"""What only the PostgreSQL store has to prove: nothing clear in the database, fencing of a
stale lock holder, fork safety, connections that die, and no password anywhere."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gspauth.errors import ConfigurationError, GSPAuthError, LockLost, LockTimeout, Unreachable
from gspauth.ledger.postgres import PostgresLedger
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget
from gspauth.store import open_store
from gspauth.store.postgres import PostgresStore
from gspauth.testing.postgres import Cluster
from gspauth.types import SessionEvent

NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone.utc)
KEY = SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "acme.mh")


@pytest.fixture(autouse=True)
def store_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    raw = os.urandom(32)
    monkeypatch.setenv("GSPAUTH_STORE_KEY", base64.b64encode(raw).decode())
    return raw


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    s = open_store(postgres_url)
    assert isinstance(s, PostgresStore)
    yield s
    s.close()


def session(key: SessionKey = KEY, token: str | None = None) -> Session:
    return Session.new(key, auth_token=token or os.urandom(16).hex(), app_key=os.urandom(32), sek=os.urandom(32),
                       expiry_minutes=360, now=NOW, txn="LAPN24235325555")


def _forms(*secrets: bytes) -> list[bytes]:
    out = []
    for raw in secrets:
        out += [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode(),
                raw.hex().upper().encode()]
    return out


def test_no_clear_secret_anywhere_in_the_database(store: PostgresStore, postgres_cluster: Cluster,
                                                  store_key: bytes) -> None:
    sessions = [session(), session(SessionKey("vayana", "sandbox", "27AAAAA0000A1Z5", "u2"))]
    for s in sessions:
        store.save(s)
    pending = PendingOtp(KEY, "LAPN24235325556", NOW, NOW + dt.timedelta(minutes=10), app_key=os.urandom(32))
    store.save_pending_otp(pending)
    store.save_target(SessionTarget(KEY, "https://h/cleartax", None, "ab" * 32, "203.0.113.7"))
    store.ledger().record(SessionEvent(kind="consent", gsp="cleartax", environment="sandbox", gstin=KEY.gstin,
                                       username=KEY.username, at=NOW, txn="T1", ip_usr="203.0.113.7"))
    secrets = [s.auth_token.encode() for s in sessions] + [x for s in sessions for x in (s.app_key, s.sek)]
    forbidden = _forms(*secrets, pending.app_key, store_key)
    # 1. every column of every table in the schema, as the server hands it out
    with postgres_cluster.connect() as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                             (store.schema,))]
        assert {"sessions", "pending_otps", "targets", "fences", "store_meta", "ledger_events"} <= set(tables)
        seen = b""
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{store.schema}"."{table}"'):
                for value in row:
                    seen += bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    seen += b"\x00"
        conn.execute("CHECKPOINT")
    assert KEY.gstin.encode() in seen  # the scan does see the rows
    for form in forbidden:
        assert form not in seen, form[:6]
    # 2. every byte the server wrote to disk: heap files, WAL, everything in its data directory
    data = postgres_cluster.directory / "data"
    found = []
    for root, _dirs, files in os.walk(data):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blob = f.read()
            found += [(name, form[:6]) for form in forbidden if form in blob]
    assert not found, found


def _terminate_lock_connection(store: PostgresStore, cluster: Cluster, key: SessionKey) -> None:
    """What a network partition or a killed backend does to the holder's lock connection."""
    pid = store._held[key.id].advisory.conn.info.backend_pid
    with cluster.connect() as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        for _ in range(100):  # the server drops the session (and its advisory lock) asynchronously
            if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (0,):
                return
            time.sleep(0.02)
    raise AssertionError("the backend did not end")


def test_a_stale_lock_holder_is_fenced_and_the_newer_session_survives(postgres_url: str, postgres_cluster: Cluster,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    stale, fresh = PostgresStore(postgres_url), PostgresStore(postgres_url)  # two machines, in effect
    try:
        original = session(token="original-token-0000")
        stale.save(original)
        newer = original.refreshed(auth_token="newer-token-1111", sek=os.urandom(32), expiry_minutes=360,
                                   now=NOW + dt.timedelta(hours=5))
        late = original.refreshed(auth_token="stale-token-2222", sek=os.urandom(32), expiry_minutes=360,
                                  now=NOW + dt.timedelta(hours=5))
        with stale.lock(KEY, timeout=5):
            with pytest.raises(LockTimeout):  # while the stale holder's lock lives, nobody else gets it
                with fresh.lock(KEY, timeout=0.2):
                    pass
            _terminate_lock_connection(stale, postgres_cluster, KEY)
            # the lock went with the connection: another worker takes it and saves a newer session
            start = time.monotonic()
            with fresh.lock(KEY, timeout=5):
                assert time.monotonic() - start < 2
                assert fresh.load(KEY) == original
                fresh.begin_refresh(KEY, RefreshIntent("LAPN00000000001", NOW))
                fresh.save(newer)
            # the stale holder still thinks it holds the lock: every write it tries is refused
            for attempt in (lambda: stale.save(late), lambda: stale.delete(KEY),
                            lambda: stale.begin_refresh(KEY, RefreshIntent("LAPN00000000002", NOW)),
                            lambda: stale.save_pending_otp(PendingOtp(KEY, "LAPN1", NOW, NOW, os.urandom(32))),
                            lambda: stale.delete_pending_otp(KEY)):
                with pytest.raises(LockLost) as info:
                    attempt()
                assert info.value.hint and "nothing was written" in str(info.value)
            assert stale.load(KEY) == newer and stale.refresh_intent(KEY) is None
        assert fresh.load(KEY) == newer and fresh.load_pending_otp(KEY) is None
        assert "was lost while held" in caplog.text
        # once released, the stale store's next lock is a new, valid acquisition
        with stale.lock(KEY, timeout=5):
            stale.save(late)
        assert fresh.load(KEY) == late
        # and writes outside any lock are not fenced (as in SQLite)
        fresh.save(newer)
        assert stale.load(KEY) == newer
    finally:
        stale.close()
        fresh.close()


def test_lock_is_fenced_per_acquisition_and_reentrant(store: PostgresStore) -> None:
    with store.lock(KEY):
        first = store._held[KEY.id].token
        with store.lock(KEY, timeout=0.1):  # re-entrant: no new acquisition
            assert store._held[KEY.id].token == first
            store.save(session())
    assert KEY.id not in store._held
    with store.lock(KEY):
        assert store._held[KEY.id].token == first + 1


def test_a_dead_pooled_connection_is_replaced(store: PostgresStore, postgres_cluster: Cluster) -> None:
    store.save(session())
    with postgres_cluster.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                      "'gspauth session store' AND pid <> pg_backend_pid()")
    time.sleep(0.1)
    assert store.load(KEY) is not None  # the pool checks a connection before handing it out


def test_a_forked_child_uses_connections_of_its_own(store: PostgresStore) -> None:
    import multiprocessing

    store.save(session(token="before-fork-token"))
    with store.lock(KEY):
        pass  # leaves an idle lock connection behind, inherited by the child
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child() -> None:
        try:
            got = store.load(KEY)
            with store.lock(KEY, timeout=5):
                store.save(session(token="from-the-child"))
            results.put(("ok", got.auth_token if got else None))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            results.put(("error", repr(exc)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads running
        p = ctx.Process(target=child)
        p.start()
    assert results.get(timeout=30) == ("ok", "before-fork-token")
    p.join(30)
    assert p.exitcode == 0
    # the parent's own connections were not closed or confused by the child
    loaded = store.load(KEY)
    assert loaded is not None and loaded.auth_token == "from-the-child"
    with store.lock(KEY, timeout=5):
        store.save(session(token="parent-again"))


def test_the_url_password_never_shows(postgres_cluster: Cluster, caplog: pytest.LogCaptureFixture,
                                      capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    password = postgres_cluster.password
    url = postgres_cluster.url(schema="t_password_never_shows")
    texts: list[str] = []
    store = PostgresStore(url)
    try:
        store.save(session())
        with store.lock(KEY):
            pass
        assert store.wait_for_session(KEY, after=None, timeout=1) is not None
        texts += [repr(store), str(store.url), repr(store.url), repr(store.ledger()), repr(store._db)]
        for bad in (url.replace(password, "wrong-password-1"), url.replace("/gspauth_test", "/missing_db"),
                    url.replace(str(postgres_cluster.port), "1"), url + "&migrate=sometimes"):
            with pytest.raises(GSPAuthError) as info:
                PostgresStore(bad)
            texts += [str(info.value), repr(info.value), str(info.value.hint)]
            assert isinstance(info.value, (ConfigurationError, Unreachable)), info.value
    finally:
        store.close()
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    for text in texts:
        assert password not in text and "wrong-password-1" not in text


def test_ledger_of_the_store_is_in_the_same_schema(store: PostgresStore) -> None:
    ledger = store.ledger()
    assert isinstance(ledger, PostgresLedger) and ledger.url.schema == store.schema
    assert store.ledger() is ledger


def test_wait_for_session_is_woken_not_polling(store: PostgresStore, postgres_url: str) -> None:
    writer = PostgresStore(postgres_url)
    got: list[Any] = []
    try:
        def wait() -> None:
            got.append((store.wait_for_session(KEY, after=None, timeout=20), time.monotonic()))

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.5)
        # while it waits, no connection of ours runs a query: it sleeps on the LISTEN socket
        activity = ("SELECT max(query_start), bool_or(query LIKE 'LISTEN%%') FROM pg_stat_activity "
                    "WHERE application_name = 'gspauth session store'")
        with psycopg.connect(writer.url.conninfo, autocommit=True) as conn:
            before = conn.execute(activity).fetchone()
            time.sleep(0.6)
            after = conn.execute(activity).fetchone()
        assert before == after and after is not None and after[1] is True
        s = session()
        saved = time.monotonic()
        writer.save(s)
        t.join(10)
        assert got and got[0][0] == s and got[0][1] - saved < 1.0
    finally:
        writer.close()
