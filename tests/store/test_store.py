from __future__ import annotations

import base64
import datetime as dt
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from gspauth.errors import ConfigurationError, StoreCorrupted, StoreKeyMismatch
from gspauth.session import Session, SessionKey
from gspauth.store import (
    MemoryStore,
    SessionStore,
    SQLiteStore,
    default_store_path,
    generate_store_key,
    resolve_store_key,
)
from gspauth.store.sqlite import SCHEMA_VERSION


def _secret_forms(s: Session) -> list[bytes]:
    forms = [s.auth_token.encode(), s.app_key, s.sek]
    for raw in (s.app_key, s.sek, s.auth_token.encode()):
        forms += [base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]
    return forms


def _files(store: SQLiteStore) -> list[Path]:
    return [p for p in (Path(str(store.path) + sfx) for sfx in ("", "-wal", "-shm")) if p.exists()]


@pytest.mark.parametrize("factory", [MemoryStore, SQLiteStore])
def test_protocol_round_trip(factory, store_key: bytes, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store = factory()
    assert isinstance(store, SessionStore)
    assert store.load(key) is None and store.list() == []
    s1 = make_session(key)
    store.save(s1)
    assert store.load(key) == s1
    s2 = s1.refreshed(auth_token="new-token", sek=os.urandom(32), expiry_minutes=360, now=s1.issued_at + dt.timedelta(hours=5))
    store.save(s2)
    assert store.load(key) == s2
    other = SessionKey("vayana", "sandbox", "29AAAAA0000A1Z3", "acme.ka")
    store.save(make_session(other))
    listed = store.list()
    assert [x.key for x in listed] == sorted([key, other], key=lambda k: k.id)
    mine = next(x for x in listed if x.key == key)
    assert mine.refresh_count == 1 and mine.expires_at == s2.expires_at and mine.consent_at == s1.consent_at
    assert "new-token" not in repr(listed) and "new-token" not in str(mine.to_dict())
    store.delete(key)
    store.delete(key)  # idempotent
    assert store.load(key) is None and [x.key for x in store.list()] == [other]


def test_default_path_is_under_gspauth_home(gspauth_home: Path, store_key: bytes) -> None:
    assert default_store_path() == gspauth_home / "sessions.db"
    store = SQLiteStore()
    assert store.path == gspauth_home / "sessions.db" and store.path.exists()


def test_persists_across_restarts(tmp_path: Path, store_key: bytes, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.db"
    s = make_session(key).with_observed_lifetime(200).not_refreshable()
    first = SQLiteStore(path)
    first.save(s)
    first.close()
    del first
    again = SQLiteStore(path)
    loaded = again.load(key)
    assert loaded == s
    assert loaded is not None and loaded.observed_lifetime_minutes == 200 and loaded.refreshable is False
    assert loaded.issued_at.tzinfo is not None and loaded.txn_of_consent == "LAPN24235325555"
    assert again.schema_version == SCHEMA_VERSION


def test_no_secret_in_plaintext_files(tmp_path: Path, store_key: bytes, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store = SQLiteStore(tmp_path / "s.db")
    sessions = [make_session(key), make_session(SessionKey("vayana", "sandbox", "27AAAAA0000A1Z5", "u2"))]
    for s in sessions:
        store.save(s)
    # while open, the rows live in the -wal file; scan every file, then again after a checkpoint
    files = _files(store)
    assert any(p.name.endswith("-wal") and p.stat().st_size > 0 for p in files), files
    for phase in ("open", "closed"):
        blob = b"".join(p.read_bytes() for p in _files(store))
        assert b"acme.mh" in blob  # sanity: the scan does see the row
        for s in sessions:
            for form in _secret_forms(s):
                assert form not in blob, (phase, form[:4])
        assert store_key not in blob and base64.b64encode(store_key) not in blob
        store.close()
        sqlite3.connect(store.path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_file_modes(tmp_path: Path, store_key: bytes, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(0o022)  # a permissive umask must not leak into the files
    try:
        store = SQLiteStore(tmp_path / "new" / "dir" / "s.db")
        store.save(make_session(key))
        with store.lock(key):
            pass
    finally:
        os.umask(old)
    files = _files(store)
    assert {p.name for p in files} >= {"s.db", "s.db-wal", "s.db-shm"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.lock_dir.stat().st_mode) == 0o700
    for p in store.lock_dir.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_existing_world_readable_file_is_tightened(tmp_path: Path, store_key: bytes) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    os.chmod(path, 0o644)
    SQLiteStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_key_is_a_clear_configuration_error(tmp_path: Path, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import builtins

    real_import = builtins.__import__

    def no_keyring(name, *a, **kw):  # type: ignore[no-untyped-def]
        if name == "keyring" or name.startswith("keyring."):
            raise ImportError("no keyring in this test")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_keyring)
    store = SQLiteStore(tmp_path / "s.db")
    assert store.list() == []  # listing needs no key
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY") as info:
        store.save(make_session(key))
    assert "gspauth[keyring]" in str(info.value)


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode()])
def test_malformed_key_is_reported_without_echoing_it(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_STORE_KEY", bad)
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY") as info:
        resolve_store_key()
    assert bad not in str(info.value)


def test_key_file_and_generated_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = generate_store_key()
    assert len(base64.b64decode(text)) == 32
    f = tmp_path / "k"
    f.write_text(text + "\n")
    monkeypatch.setenv("GSPAUTH_STORE_KEY_FILE", str(f))
    raw, source = resolve_store_key()
    assert raw == base64.b64decode(text) and source.startswith("file:")


def test_wrong_key_is_a_clear_error(tmp_path: Path, store_key: bytes, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.db"
    SQLiteStore(path).save(make_session(key))
    other = generate_store_key()
    monkeypatch.setenv("GSPAUTH_STORE_KEY", other)
    store = SQLiteStore(path)
    with pytest.raises(StoreKeyMismatch, match="not the key") as info:
        store.load(key)
    assert other not in str(info.value)
    with pytest.raises(StoreKeyMismatch):  # refuses to write under the wrong key too
        store.save(make_session(key))
    assert [x.key for x in store.list()] == [key]  # metadata still readable


def _exec(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def test_tampered_row_is_refused(tmp_path: Path, store_key: bytes, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store.save(make_session(key))
    store.close()
    later = (dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)).isoformat()
    _exec(path, "UPDATE sessions SET expires_at = ? WHERE id = ?", later, key.id)
    with pytest.raises(StoreCorrupted, match="integrity"):
        SQLiteStore(path).load(key)


def test_swapped_rows_are_refused(tmp_path: Path, store_key: bytes, make_session) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.db"
    a = SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "a")
    b = SessionKey("cleartax", "sandbox", "29AAAAA0000A1Z3", "b")
    store = SQLiteStore(path)
    store.save(make_session(a))
    store.save(make_session(b))
    store.close()
    conn = sqlite3.connect(path)
    (na, sa), (nb, sb) = (conn.execute("SELECT nonce, secrets FROM sessions WHERE id = ?", (k.id,)).fetchone() for k in (a, b))
    with conn:
        conn.execute("UPDATE sessions SET nonce = ?, secrets = ? WHERE id = ?", (nb, sb, a.id))
        conn.execute("UPDATE sessions SET nonce = ?, secrets = ? WHERE id = ?", (na, sa, b.id))
    conn.close()
    again = SQLiteStore(path)
    for k in (a, b):
        with pytest.raises(StoreCorrupted):
            again.load(k)


def test_newer_schema_is_refused(tmp_path: Path, store_key: bytes) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    _exec(path, "INSERT INTO schema_version (version) VALUES (?)", SCHEMA_VERSION + 1)
    with pytest.raises(ConfigurationError, match="newer"):
        SQLiteStore(path)


def test_many_threads_share_one_store(tmp_path: Path, store_key: bytes, make_session) -> None:  # type: ignore[no-untyped-def]
    store = SQLiteStore(tmp_path / "s.db")
    keys = [SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", f"user{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(k: SessionKey) -> None:
        try:
            for _ in range(15):
                s = make_session(k)
                store.save(s)
                got = store.load(k)
                assert got is not None and got.key == k
                store.list()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(store.list()) == 8


def test_keyring_is_used_when_installed(tmp_path: Path, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    import logging
    import sys
    import types

    vault: dict[tuple[str, str], str] = {}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda service, entry: vault.get((service, entry))  # type: ignore[attr-defined]
    fake.set_password = lambda service, entry, value: vault.__setitem__((service, entry), value)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    caplog.set_level(logging.DEBUG, logger="gspauth")
    from gspauth.store import store_key_source

    assert store_key_source() is None  # looking never creates a key
    store = SQLiteStore(tmp_path / "s.db")
    s = make_session(key)
    store.save(s)  # first use: a key is generated into the keyring
    assert list(vault) == [("gspauth", "store-key")] and store.key_source == "keyring"
    assert vault[("gspauth", "store-key")] not in caplog.text
    assert SQLiteStore(tmp_path / "s.db").load(key) == s  # a restart finds the same key
    assert store_key_source() == "keyring"
    assert repr(store) == f"SQLiteStore({str(store.path)!r})"
