"""The session store suite: every test runs against each backend it applies to (memory,
SQLite, PostgreSQL: see ``stores`` / ``shared_stores`` in conftest.py); the SQLite file's own
properties (paths, modes, WAL files, the keyring) at the end."""

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
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget
from gspauth.store import (
    SessionStore,
    SQLiteStore,
    default_store_path,
    generate_store_key,
    resolve_store_key,
)
from gspauth.store.sqlite import SCHEMA_VERSION
from tests.store.conftest import NOW, StoreFactory


def _secret_forms(s: Session) -> list[bytes]:
    forms = [s.auth_token.encode(), s.app_key, s.sek]
    for raw in (s.app_key, s.sek, s.auth_token.encode()):
        forms += [base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]
    return forms


def _files(store: SQLiteStore) -> list[Path]:
    return [p for p in (Path(str(store.path) + sfx) for sfx in ("", "-wal", "-shm")) if p.exists()]


def test_protocol_round_trip(stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store = stores()
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


def test_pending_otp_target_and_refresh_intent_round_trip(stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store, again = stores(), stores()
    pending = PendingOtp(key, "LAPN24235325556", requested_at=NOW, expires_at=NOW + dt.timedelta(minutes=10),
                         app_key=os.urandom(32), requested_wall=1751360400.125, attempts_used=1)
    store.save_pending_otp(pending)
    got = again.load_pending_otp(key)
    assert got == pending and got is not None and got.app_key == pending.app_key
    store.save_pending_otp(pending.tried())
    assert again.load_pending_otp(key) == pending.tried()
    store.delete_pending_otp(key)
    store.delete_pending_otp(key)
    assert again.load_pending_otp(key) is None
    target = SessionTarget(key, "https://gsp.example/cleartax", "/etc/gstn.cer", "ab" * 32, "203.0.113.7", "v0.2")
    store.save_target(target)
    assert again.load_target(key) == target and again.load_target(SessionKey.from_id(key.id + "x")) is None
    intent = RefreshIntent("LAPN24235325557", NOW)
    store.begin_refresh(key, intent)
    assert again.refresh_intent(key) == intent
    store.save(make_session(key))  # the answer is saved: the intent is forgotten
    assert again.refresh_intent(key) is None
    store.begin_refresh(key, intent)
    store.delete(key)
    assert again.refresh_intent(key) is None
    listed = again.list()
    assert listed == [] or listed[0].host == target.host


def test_persists_across_restarts(shared_stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    s = make_session(key).with_observed_lifetime(200).not_refreshable()
    first = shared_stores()
    first.save(s)
    first.close()  # type: ignore[attr-defined]
    del first
    again = shared_stores()
    loaded = again.load(key)
    assert loaded == s
    assert loaded is not None and loaded.observed_lifetime_minutes == 200 and loaded.refreshable is False
    assert loaded.issued_at.tzinfo is not None and loaded.txn_of_consent == "LAPN24235325555"


def test_missing_key_is_a_clear_configuration_error(shared_stores: StoreFactory, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import builtins

    real_import = builtins.__import__

    def no_keyring(name, *a, **kw):  # type: ignore[no-untyped-def]
        if name == "keyring" or name.startswith("keyring."):
            raise ImportError("no keyring in this test")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_keyring)
    monkeypatch.delenv("GSPAUTH_STORE_KEY")
    store = shared_stores()
    assert store.list() == []  # listing needs no key
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY") as info:
        store.save(make_session(key))
    assert "gspauth[keyring]" in str(info.value)
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY"):
        store.preflight()


def test_wrong_key_is_a_clear_error(shared_stores: StoreFactory, key: SessionKey, make_session, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    shared_stores().save(make_session(key))
    other = generate_store_key()
    monkeypatch.setenv("GSPAUTH_STORE_KEY", other)
    store = shared_stores()
    with pytest.raises(StoreKeyMismatch, match="not the key") as info:
        store.load(key)
    assert other not in str(info.value)
    with pytest.raises(StoreKeyMismatch):  # refuses to write under the wrong key too
        store.save(make_session(key))
    with pytest.raises(StoreKeyMismatch):
        store.preflight()
    assert [x.key for x in store.list()] == [key]  # metadata still readable


def test_a_removed_key_check_is_not_replaced_while_secrets_are_held(shared_stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    shared_stores().save(make_session(key))
    meta = "meta" if shared_stores.backend == "sqlite" else "store_meta"
    shared_stores.execute(f"DELETE FROM {meta} WHERE name = 'key_check'")
    with pytest.raises(StoreKeyMismatch, match="key check is missing"):
        shared_stores().load(key)


def test_tampered_row_is_refused(shared_stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    shared_stores().save(make_session(key))
    later = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc).isoformat()
    shared_stores.execute("UPDATE sessions SET expires_at = ? WHERE id = ?", later, key.id)
    with pytest.raises(StoreCorrupted, match="integrity"):
        shared_stores().load(key)


def test_swapped_rows_are_refused(shared_stores: StoreFactory, make_session) -> None:  # type: ignore[no-untyped-def]
    a = SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "a")
    b = SessionKey("cleartax", "sandbox", "29AAAAA0000A1Z3", "b")
    store = shared_stores()
    store.save(make_session(a))
    store.save(make_session(b))
    (na, sa), (nb, sb) = (shared_stores.execute("SELECT nonce, secrets FROM sessions WHERE id = ?", k.id)[0] for k in (a, b))
    shared_stores.execute("UPDATE sessions SET nonce = ?, secrets = ? WHERE id = ?", nb, sb, a.id)
    shared_stores.execute("UPDATE sessions SET nonce = ?, secrets = ? WHERE id = ?", na, sa, b.id)
    again = shared_stores()
    for k in (a, b):
        with pytest.raises(StoreCorrupted):
            again.load(k)


def test_tampered_pending_otp_is_refused(shared_stores: StoreFactory, key: SessionKey) -> None:
    pending = PendingOtp(key, "LAPN24235325556", requested_at=NOW, expires_at=NOW + dt.timedelta(minutes=10),
                         app_key=os.urandom(32))
    shared_stores().save_pending_otp(pending)
    shared_stores.execute("UPDATE pending_otps SET attempts_used = 0, txn = 'LAPN00000000000' WHERE id = ?", key.id)
    with pytest.raises(StoreCorrupted, match="--resend"):
        shared_stores().load_pending_otp(key)


def test_newer_schema_is_refused(shared_stores: StoreFactory) -> None:
    shared_stores().close()  # type: ignore[attr-defined]
    if shared_stores.backend == "sqlite":
        shared_stores.execute("INSERT INTO schema_version (version) VALUES (?)", SCHEMA_VERSION + 1)
    else:
        shared_stores.execute("UPDATE gspauth_schema SET version = version + 1 WHERE component = 'store'")
    with pytest.raises(ConfigurationError, match="newer"):
        shared_stores()


def test_many_threads_share_one_store(stores: StoreFactory, make_session) -> None:  # type: ignore[no-untyped-def]
    store = stores()
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


# -- the SQLite file itself ---------------------------------------------------------------------------


def test_default_path_is_under_gspauth_home(gspauth_home: Path, store_key: bytes) -> None:
    assert default_store_path() == gspauth_home / "sessions.db"
    store = SQLiteStore()
    assert store.path == gspauth_home / "sessions.db" and store.path.exists()


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
