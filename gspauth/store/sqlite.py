"""The persistent session store: one SQLite file (WAL, mode 0600) shared by threads and processes.

Secrets are sealed with AES-256-GCM under the store key (:mod:`gspauth.store._sealing`,
:mod:`gspauth.store._keys`); :meth:`SQLiteStore.list` and :meth:`SQLiteStore.delete` need no key.

The cross-process single-flight lock of each session key is a lock file in ``<db>.locks/``
(:func:`gspauth.locks.hold_file_lock`); lock files are never deleted.

Schema versions (``schema_version`` table): 1 — sessions and the key check (gspauth 0.1);
2 — pending OTP requests, session targets, refresh intents (0.2). An older file is migrated in
place when opened; a newer one is refused with a clear error.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gspauth.errors import ConfigurationError, StoreCorrupted, StoreKeyMismatch
from gspauth.locks import hold_file_lock
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget, effective_expiry, utcnow
from gspauth.store import SessionSummary, default_store_path
from gspauth.store._keys import resolve_store_key
from gspauth.store._sealing import PENDING_AAD, SESSION_AAD, Sealer, iso, pending_public, session_public

if TYPE_CHECKING:
    import sqlite3

    from gspauth.ledger import ConsentLedger, Ledger

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

#: Version of the SQLite schema this module writes.
SCHEMA_VERSION = 2

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
        username TEXT NOT NULL, issued_at TEXT NOT NULL, expiry_minutes INTEGER NOT NULL,
        expires_at TEXT NOT NULL, consent_at TEXT NOT NULL, refresh_count INTEGER NOT NULL,
        refreshable INTEGER NOT NULL, observed_lifetime_minutes INTEGER, txn_of_consent TEXT,
        refreshed_at TEXT, ip_usr TEXT, nonce BLOB NOT NULL, secrets BLOB NOT NULL, updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_gstin ON sessions (gstin)",
)
# Version 2: the two-step OTP, session targets and refresh intents.
_SCHEMA_V2 = (
    """CREATE TABLE IF NOT EXISTS pending_otps (
        id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
        username TEXT NOT NULL, txn TEXT NOT NULL, requested_at TEXT NOT NULL, expires_at TEXT NOT NULL,
        requested_wall REAL NOT NULL, attempts_used INTEGER NOT NULL, nonce BLOB NOT NULL,
        secrets BLOB NOT NULL, updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS targets (
        id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
        username TEXT NOT NULL, host TEXT NOT NULL, certificate TEXT, certificate_sha256 TEXT NOT NULL,
        ip_usr TEXT NOT NULL, auth_version TEXT, updated_at TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS refreshing (id TEXT PRIMARY KEY, txn TEXT NOT NULL, started_at TEXT NOT NULL)",
)

_PUBLIC_COLUMNS = (
    "id", "gsp", "environment", "gstin", "username", "issued_at", "expiry_minutes", "expires_at",
    "consent_at", "refresh_count", "refreshable", "observed_lifetime_minutes", "txn_of_consent",
    "refreshed_at", "ip_usr",
)  # fmt: skip
_PENDING_COLUMNS = ("id", "gsp", "environment", "gstin", "username", "txn", "requested_at", "expires_at",
                    "requested_wall", "attempts_used")
_TARGET_COLUMNS = ("id", "gsp", "environment", "gstin", "username", "host", "certificate", "certificate_sha256",
                   "ip_usr", "auth_version")


def _dt_of(value: str | None) -> _dt.datetime | None:
    return None if value is None else _dt.datetime.fromisoformat(value)


def _when(value: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(value)


class SQLiteStore:
    """The persistent :class:`~gspauth.store.SessionStore`: SQLite (WAL) with secrets sealed by AES-256-GCM.

    :param path: database file; default :func:`~gspauth.store.default_store_path`. Parent
        directories are created with mode 0700; the file (and SQLite's ``-wal``/``-shm``) with 0600.
    :param key: the 32-byte store key (bytes or Base64 text); default: ``GSPAUTH_STORE_KEY``,
        ``GSPAUTH_STORE_KEY_FILE`` or the OS keyring. Resolved lazily, so :meth:`list` and
        :meth:`delete` work without one.
    :param busy_timeout: seconds SQLite waits for another writer before failing.
    :raises DamagedFile: the file exists but is not a usable store (nothing is overwritten).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, key: bytes | str | None = None,
                 busy_timeout: float = 30.0) -> None:
        from gspauth._sqlite import SQLiteFile
        from gspauth.config import ensure_private_dir

        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._db = SQLiteFile(self.path, what="session store", busy_timeout=busy_timeout,
                              expect=("schema_version", "sessions"),
                              schema=(*_SCHEMA, *_SCHEMA_V2, f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION})"),
                              pragmas=("PRAGMA secure_delete = ON",))
        self.lock_dir = self.path.with_name(self.path.name + ".locks")
        ensure_private_dir(self.lock_dir)
        self._explicit_key = key
        self._sealer: Sealer | None = None
        self._ledger: Ledger | None = None
        self.key_source: str | None = None
        self._migrate()

    # -- schema ---------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._db.transaction() as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" not in tables or "sessions" not in tables:
                raise self._db.damaged("it is an SQLite database, but not a gspauth session store")
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            if version is None:
                raise self._db.damaged("its schema version is missing")
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"session store {self.path} has schema version {version}, newer than this gspauth "
                    f"understands ({SCHEMA_VERSION}); upgrade gspauth or use another store path")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA_V2:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        self._db.tighten()

    @property
    def schema_version(self) -> int:
        return int(self._db.read("SELECT max(version) FROM schema_version")[0][0])

    def close(self) -> None:
        """Close the database connections (the store reopens them if used again)."""
        self._db.close()
        if self._ledger is not None:
            self._ledger.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- the key ----------------------------------------------------------------------------------

    def _secrets_held(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM pending_otps)")
                   .fetchone()[0])

    def sealer(self) -> Sealer:
        """The sealer under the store key, after checking it is the key this file was written with.

        :raises ConfigurationError: no key configured (the message says how to set one).
        :raises StoreKeyMismatch: a different key, or the key check was removed from a store
            that still holds secrets.
        """
        if self._sealer is not None:
            return self._sealer
        raw, source = resolve_store_key(self._explicit_key)
        sealer = Sealer(raw)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
            if row is None:
                held = self._secrets_held(conn)
                if held:
                    raise StoreKeyMismatch(
                        f"session store {self.path} holds {held} sealed secret(s) but its key check is missing "
                        "(removed out of band?): refusing to stamp a new key on it; restore the file from a "
                        "backup, or move it aside to start over (every taxpayer will need a new OTP)")
                conn.execute("INSERT INTO meta (name, value) VALUES ('key_check', ?)", (sealer.key_check(),))
            elif not sealer.opens_key_check(bytes(row[0])):
                raise StoreKeyMismatch(
                    f"the store key from {source} is not the key session store {self.path} was written with; "
                    "use the original key, or move the file aside to start over (every taxpayer will need a "
                    "new OTP)")
        self._sealer, self.key_source = sealer, source
        return sealer

    def preflight(self) -> None:
        self.sealer()
        try:
            with self._db.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('preflight', ?)", (iso(utcnow()),))
        except OSError as exc:  # pragma: no cover - the filesystem refused outright
            raise ConfigurationError(f"session store {self.path} is not writable: {exc.strerror}") from None
        except Exception as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise ConfigurationError(f"session store {self.path} is read-only here; check its permissions "
                                         "and the filesystem") from None
            raise

    # -- sessions ---------------------------------------------------------------------------------

    def save(self, session: Session) -> None:
        sealer = self.sealer()
        public = session_public(session)
        nonce, sealed = sealer.seal(SESSION_AAD, public, sealer.session_secrets(session))
        columns = ", ".join(_PUBLIC_COLUMNS) + ", nonce, secrets, updated_at"
        marks = ", ".join("?" * (len(_PUBLIC_COLUMNS) + 3))
        with self._db.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO sessions ({columns}) VALUES ({marks})",
                         (*public, nonce, sealed, iso(utcnow())))
            conn.execute("DELETE FROM refreshing WHERE id = ?", (session.key.id,))

    def load(self, key: SessionKey) -> Session | None:
        from cryptography.exceptions import InvalidTag

        rows = self._db.read(f"SELECT {', '.join(_PUBLIC_COLUMNS)}, nonce, secrets FROM sessions WHERE id = ?",
                             (key.id,))
        if not rows:
            return None
        row = rows[0]
        sealer = self.sealer()
        public, nonce, sealed = tuple(row[: len(_PUBLIC_COLUMNS)]), bytes(row[-2]), bytes(row[-1])
        try:
            token, app_key, sek = sealer.read_session_secrets(sealer.open(SESSION_AAD, public, nonce, sealed))
            session = Session(
                key=SessionKey(*public[1:5]), auth_token=token, app_key=app_key, sek=sek,
                issued_at=_when(public[5]), expiry_minutes=public[6], expires_at=_when(public[7]),
                consent_at=_when(public[8]), refresh_count=public[9], refreshable=bool(public[10]),
                observed_lifetime_minutes=public[11], txn_of_consent=public[12], refreshed_at=_dt_of(public[13]),
                ip_usr=public[14],
            )  # fmt: skip
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise StoreCorrupted(
                f"stored session {key.id} in {self.path} failed its integrity check (edited, copied from another "
                "row or damaged); it will not be used. Run `gspauth session logout --forget` for it and log in again"
            ) from None
        if session.key != key:  # the id matched but the columns disagree: treat as tampering
            raise StoreCorrupted(f"stored session {key.id} in {self.path} belongs to another key; it will not be used")
        return session

    def delete(self, key: SessionKey) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (key.id,))
            conn.execute("DELETE FROM refreshing WHERE id = ?", (key.id,))

    def list(self) -> list[SessionSummary]:
        rows = self._db.read(
            f"SELECT {', '.join('s.' + c for c in _PUBLIC_COLUMNS)}, s.updated_at, t.host "
            "FROM sessions s LEFT JOIN targets t ON t.id = s.id ORDER BY s.id")
        out = []
        for r in rows:
            issued, expires, observed = _when(r[5]), _when(r[7]), r[11]
            out.append(SessionSummary(
                key=SessionKey(r[1], r[2], r[3], r[4]), issued_at=issued, expires_at=expires,
                effective_expires_at=effective_expiry(issued, expires, observed), consent_at=_when(r[8]),
                refresh_count=r[9], refreshable=bool(r[10]), observed_lifetime_minutes=observed,
                refreshed_at=_dt_of(r[13]), txn_of_consent=r[12], updated_at=_dt_of(r[15]), host=r[16],
            ))  # fmt: skip
        return out

    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> contextlib.AbstractContextManager[None]:
        return hold_file_lock(self.lock_dir / f"{key.digest}.lock", timeout, f"session {key.id}")

    # -- the two-step OTP -------------------------------------------------------------------------

    def save_pending_otp(self, pending: PendingOtp) -> None:
        sealer = self.sealer()
        public = pending_public(pending)
        nonce, sealed = sealer.seal(PENDING_AAD, public, sealer.pending_secrets(pending))
        columns = ", ".join(_PENDING_COLUMNS) + ", nonce, secrets, updated_at"
        marks = ", ".join("?" * (len(_PENDING_COLUMNS) + 3))
        with self._db.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO pending_otps ({columns}) VALUES ({marks})",
                         (*public, nonce, sealed, iso(utcnow())))

    def load_pending_otp(self, key: SessionKey) -> PendingOtp | None:
        from cryptography.exceptions import InvalidTag

        rows = self._db.read(f"SELECT {', '.join(_PENDING_COLUMNS)}, nonce, secrets FROM pending_otps WHERE id = ?",
                             (key.id,))
        if not rows:
            return None
        row = rows[0]
        public = tuple(row[: len(_PENDING_COLUMNS)])
        try:
            app_key = self.sealer().open(PENDING_AAD, public, bytes(row[-2]), bytes(row[-1]))
            return PendingOtp(key=SessionKey(*public[1:5]), txn=public[5], requested_at=_when(public[6]),
                              expires_at=_when(public[7]), app_key=app_key, requested_wall=float(public[8]),
                              attempts_used=int(public[9]))
        except (InvalidTag, ValueError, TypeError):
            raise StoreCorrupted(f"the pending OTP request of {key.id} in {self.path} failed its integrity check; "
                                 "request a new OTP (`gspauth login --resend`)") from None

    def delete_pending_otp(self, key: SessionKey) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM pending_otps WHERE id = ?", (key.id,))

    # -- targets and refresh intents ----------------------------------------------------------------

    def save_target(self, target: SessionTarget) -> None:
        k = target.key
        values = (k.id, k.gsp, k.environment, k.gstin, k.username, target.host, target.certificate,
                  target.certificate_sha256, target.ip_usr, target.auth_version)
        with self._db.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO targets ({', '.join(_TARGET_COLUMNS)}, updated_at) "
                         f"VALUES ({', '.join('?' * (len(_TARGET_COLUMNS) + 1))})", (*values, iso(utcnow())))

    def load_target(self, key: SessionKey) -> SessionTarget | None:
        rows = self._db.read(f"SELECT {', '.join(_TARGET_COLUMNS)} FROM targets WHERE id = ?", (key.id,))
        if not rows:
            return None
        r = rows[0]
        return SessionTarget(key=SessionKey(r[1], r[2], r[3], r[4]), host=r[5], certificate=r[6],
                             certificate_sha256=r[7], ip_usr=r[8], auth_version=r[9])

    def ledger(self) -> ConsentLedger:
        """``ledger.db`` beside the store file (opened once per store object)."""
        from gspauth.ledger import Ledger

        if self._ledger is None:
            self._ledger = Ledger(self.path.with_name("ledger.db"))
        return self._ledger

    def begin_refresh(self, key: SessionKey, intent: RefreshIntent) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO refreshing (id, txn, started_at) VALUES (?, ?, ?)",
                         (key.id, intent.txn, iso(intent.started_at)))

    def refresh_intent(self, key: SessionKey) -> RefreshIntent | None:
        rows = self._db.read("SELECT txn, started_at FROM refreshing WHERE id = ?", (key.id,))
        return RefreshIntent(rows[0][0], _when(rows[0][1])) if rows else None

    def wait_for_session(self, key: SessionKey, *, after: Session | None, timeout: float) -> Session | None:
        """See :meth:`~gspauth.store.SessionStore.wait_for_session`. SQLite cannot notify another
        process, so this polls: a cheap read of the row's token-independent ``updated_at`` every
        20 ms at first, backing off to 250 ms; the row is opened only when it changed."""
        deadline = time.monotonic() + timeout
        delay, seen = 0.02, None
        while True:
            rows = self._db.read("SELECT updated_at, nonce FROM sessions WHERE id = ?", (key.id,))
            stamp = (rows[0][0], bytes(rows[0][1])) if rows else None
            if stamp is not None and stamp != seen:
                seen = stamp
                session = self.load(key)
                if session is not None and (after is None or session.auth_token != after.auth_token):
                    return session
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.25)
