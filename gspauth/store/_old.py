"""Session stores: where established sessions live between calls, threads and processes.

:class:`SessionStore` is the protocol the client uses; two implementations ship:

* :class:`MemoryStore` — one process, nothing on disk (tests, short scripts);
* :class:`SQLiteStore` — the persistent default: one SQLite file in WAL mode,
  mode 0600, secrets encrypted at rest, safe under many threads and processes.

Single flight
-------------
:meth:`SessionStore.lock` gives an exclusive lock per :class:`~gspauth.session.SessionKey`
that holds across threads *and* processes. Whoever needs to authenticate or
refresh takes it, **re-loads** the session (another worker may have refreshed it
while we waited), acts only if it is still needed, saves and releases::

    with store.lock(key):
        session = store.load(key)
        if session is None or session.needs_refresh(now):
            session = do_refresh_or_auth(session)     # one REFRESHTOKEN in flight per key
            store.save(session)
    # the others wake up, load the saved session and reuse it

The lock is re-entrant within a thread. A wait longer than ``timeout`` seconds
raises :class:`LockTimeout`.

On POSIX the cross-process lock is ``fcntl.flock`` on a per-key lock file in
``<db>.locks/`` (``flock`` locks belong to the open file, so they also exclude
other :class:`SQLiteStore` objects in the same process, and the OS releases them
when a process dies — no stale locks). On Windows ``msvcrt.locking`` on the same
files is used instead (same semantics, lock released when the handle closes).
Lock files are never deleted: removing a lock file while someone waits on it
would let two holders in.

Encryption at rest
------------------
``auth_token``, ``app_key`` and ``sek`` of each row are sealed together with
AES-256-GCM. The additional authenticated data is the row's session id and all
of its non-secret columns, so a row moved to another key or edited (say, a later
``expires_at``) fails to open with :class:`StoreCorrupted` instead of being used.
The 32-byte store key comes from, in order: the ``key=`` argument;
``GSPAUTH_STORE_KEY`` (Base64 of 32 bytes); ``GSPAUTH_STORE_KEY_FILE`` (a file
holding that Base64); the OS keyring (service ``gspauth``, entry ``store-key``)
when the optional ``keyring`` package is installed (``pip install
gspauth[keyring]``; a key is generated and saved there on first use). Without
any of them, opening a secret raises :class:`~gspauth.errors.ConfigurationError`
saying how to set one. A key-check value in the file tells a wrong key
(:class:`StoreKeyMismatch`) apart from a tampered row.

:meth:`SessionStore.list` and :meth:`SessionStore.delete` need no key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from gspauth.errors import ConfigurationError, LockTimeout, StoreCorrupted, StoreKeyMismatch
from gspauth.locks import KeyLocks, hold_file_lock
from gspauth.session import Session, SessionKey, effective_expiry, utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "SCHEMA_VERSION",
    "STORE_KEY_ENV",
    "LockTimeout",
    "MemoryStore",
    "SQLiteStore",
    "SessionStore",
    "SessionSummary",
    "StoreCorrupted",
    "StoreKeyMismatch",
    "default_store_path",
    "generate_store_key",
    "resolve_store_key",
    "store_key_source",
]

log = logging.getLogger(__name__)

#: Version of the SQLite schema this module writes.
SCHEMA_VERSION = 1
#: Environment variable holding the Base64 store key.
STORE_KEY_ENV = "GSPAUTH_STORE_KEY"
STORE_KEY_FILE_ENV = "GSPAUTH_STORE_KEY_FILE"
KEYRING_SERVICE = "gspauth"
KEYRING_ENTRY = "store-key"

_KEY_CHECK_AAD = b"gspauth/store/key-check/v1"
_KEY_CHECK_PLAIN = b"gspauth store key check"
_ROW_AAD_PREFIX = b"gspauth/store/session/v1\x00"

_HOW_TO_SET_KEY = (
    f"set {STORE_KEY_ENV} to the Base64 of 32 random bytes, e.g. "
    f"`export {STORE_KEY_ENV}=$(python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')` "
    f"(keep it in your secret manager; the same key must be used by every process sharing the store), "
    f"or point {STORE_KEY_FILE_ENV} at a file holding it, "
    "or `pip install gspauth[keyring]` to keep a generated key in the OS keyring"
)


# --------------------------------------------------------------------------------------------
# Summary and protocol


@dataclass(frozen=True)
class SessionSummary:
    """What :meth:`SessionStore.list` returns: everything about a session except its secrets."""

    key: SessionKey
    issued_at: _dt.datetime
    expires_at: _dt.datetime
    effective_expires_at: _dt.datetime
    consent_at: _dt.datetime
    refresh_count: int
    refreshable: bool
    observed_lifetime_minutes: int | None
    refreshed_at: _dt.datetime | None
    txn_of_consent: str | None
    updated_at: _dt.datetime | None = None

    @classmethod
    def of(cls, session: Session, updated_at: _dt.datetime | None = None) -> SessionSummary:
        return cls(
            key=session.key,
            issued_at=session.issued_at,
            expires_at=session.expires_at,
            effective_expires_at=session.effective_expires_at,
            consent_at=session.consent_at,
            refresh_count=session.refresh_count,
            refreshable=session.refreshable,
            observed_lifetime_minutes=session.observed_lifetime_minutes,
            refreshed_at=session.refreshed_at,
            txn_of_consent=session.txn_of_consent,
            updated_at=updated_at,
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (ISO-8601 times)."""

        def iso(v: _dt.datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {
            "id": self.key.id,
            "gsp": self.key.gsp,
            "environment": self.key.environment,
            "gstin": self.key.gstin,
            "username": self.key.username,
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at),
            "effective_expires_at": iso(self.effective_expires_at),
            "consent_at": iso(self.consent_at),
            "refreshed_at": iso(self.refreshed_at),
            "refresh_count": self.refresh_count,
            "refreshable": self.refreshable,
            "observed_lifetime_minutes": self.observed_lifetime_minutes,
            "txn_of_consent": self.txn_of_consent,
            "updated_at": iso(self.updated_at),
        }


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions are kept. Implementations must be safe to share between threads."""

    def load(self, key: SessionKey) -> Session | None:
        """The stored session for ``key``, or ``None``."""
        ...

    def save(self, session: Session) -> None:
        """Store ``session``, replacing any earlier one for the same key."""
        ...

    def delete(self, key: SessionKey) -> None:
        """Forget the session for ``key`` (no error when there is none)."""
        ...

    def list(self) -> list[SessionSummary]:
        """Every stored session, without secrets, ordered by session id."""
        ...

    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> contextlib.AbstractContextManager[None]:
        """Exclusive per-key lock across threads (and processes, for persistent stores).

        :param timeout: seconds to wait; ``None`` waits forever.
        :raises LockTimeout: when the wait is over.
        """
        ...


# --------------------------------------------------------------------------------------------
# Memory store


class MemoryStore:
    """A :class:`SessionStore` in a dict: one process, thread-safe, nothing on disk."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._sessions: dict[SessionKey, tuple[Session, _dt.datetime]] = {}
        self._locks = KeyLocks()

    def load(self, key: SessionKey) -> Session | None:
        with self._guard:
            item = self._sessions.get(key)
        return None if item is None else item[0]

    def save(self, session: Session) -> None:
        with self._guard:
            self._sessions[session.key] = (session, utcnow())

    def delete(self, key: SessionKey) -> None:
        with self._guard:
            self._sessions.pop(key, None)

    def list(self) -> list[SessionSummary]:
        with self._guard:
            items = sorted(self._sessions.values(), key=lambda it: it[0].key.id)
        return [SessionSummary.of(s, updated) for s, updated in items]

    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold(key.id, timeout, f"session {key.id}")

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._sessions)} sessions)"


# --------------------------------------------------------------------------------------------
# Store key


def generate_store_key() -> str:
    """A new random store key, Base64 text (what ``GSPAUTH_STORE_KEY`` expects)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode_key(text: str, where: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(cleaned)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{where} is not valid Base64; {_HOW_TO_SET_KEY}") from None
    if len(raw) != 32:
        raise ConfigurationError(f"{where} must be the Base64 of exactly 32 bytes (it decodes to {len(raw)}); {_HOW_TO_SET_KEY}")
    return raw


def _keyring_key(create: bool) -> bytes | None:
    import importlib

    try:
        keyring = importlib.import_module("keyring")  # optional: gspauth[keyring]
    except ImportError:
        return None
    try:
        text = keyring.get_password(KEYRING_SERVICE, KEYRING_ENTRY)
        if text is None and create:
            text = generate_store_key()
            keyring.set_password(KEYRING_SERVICE, KEYRING_ENTRY, text)
            log.info("generated a new gspauth store key and saved it in the OS keyring (%s/%s)", KEYRING_SERVICE, KEYRING_ENTRY)
    except Exception as exc:  # keyring backends raise many types (no backend, locked, D-Bus…)
        log.debug("OS keyring unavailable: %s", type(exc).__name__)
        return None
    if text is None:
        return None
    return _decode_key(text, f"the OS keyring entry {KEYRING_SERVICE}/{KEYRING_ENTRY}")


def resolve_store_key(explicit: bytes | str | None = None, *, create_in_keyring: bool = True) -> tuple[bytes, str]:
    """Find the store key; return ``(key bytes, source)`` where source names where it came from.

    :raises ConfigurationError: no key anywhere, or a malformed one (the message says how to fix it).
    """
    if explicit is not None:
        if isinstance(explicit, str):
            return _decode_key(explicit, "the store key argument"), "argument"
        if len(explicit) != 32:
            raise ConfigurationError(f"the store key must be 32 bytes, got {len(explicit)}")
        return bytes(explicit), "argument"
    text = os.environ.get(STORE_KEY_ENV)
    if text:
        return _decode_key(text, STORE_KEY_ENV), f"env:{STORE_KEY_ENV}"
    path = os.environ.get(STORE_KEY_FILE_ENV)
    if path:
        try:
            text = Path(path).expanduser().read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the store key file named by {STORE_KEY_FILE_ENV}: {exc}") from None
        return _decode_key(text, f"the file named by {STORE_KEY_FILE_ENV}"), f"file:{STORE_KEY_FILE_ENV}"
    raw = _keyring_key(create_in_keyring)
    if raw is not None:
        return raw, "keyring"
    raise ConfigurationError(f"no session store key: {_HOW_TO_SET_KEY}")


def store_key_source() -> str | None:
    """Where a store key would come from right now (``None`` if nowhere); never creates one."""
    try:
        return resolve_store_key(create_in_keyring=False)[1]
    except ConfigurationError:
        return None


# --------------------------------------------------------------------------------------------
# SQLite store


def default_store_path() -> Path:
    """``<gspauth home>/sessions.db`` (see :func:`gspauth.config.gspauth_home`)."""
    from gspauth.config import gspauth_home

    return gspauth_home() / "sessions.db"


def _iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(_dt.timezone.utc).isoformat()


def _dt_of(value: str | None) -> _dt.datetime | None:
    return None if value is None else _dt.datetime.fromisoformat(value)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    gsp TEXT NOT NULL,
    environment TEXT NOT NULL,
    gstin TEXT NOT NULL,
    username TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expiry_minutes INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    consent_at TEXT NOT NULL,
    refresh_count INTEGER NOT NULL,
    refreshable INTEGER NOT NULL,
    observed_lifetime_minutes INTEGER,
    txn_of_consent TEXT,
    refreshed_at TEXT,
    ip_usr TEXT,
    nonce BLOB NOT NULL,
    secrets BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_gstin ON sessions (gstin);
"""

_PUBLIC_COLUMNS = (
    "id", "gsp", "environment", "gstin", "username", "issued_at", "expiry_minutes", "expires_at",
    "consent_at", "refresh_count", "refreshable", "observed_lifetime_minutes", "txn_of_consent",
    "refreshed_at", "ip_usr",
)  # fmt: skip


class SQLiteStore:
    """The persistent :class:`SessionStore`: SQLite (WAL) with secrets sealed by AES-256-GCM.

    :param path: database file; default :func:`default_store_path`. Parent directories
        are created with mode 0700; the file (and SQLite's ``-wal``/``-shm``) with 0600.
    :param key: the 32-byte store key (bytes or Base64 text); default: see module docs.
        Resolved lazily, so :meth:`list` and :meth:`delete` work without one.
    :param busy_timeout: seconds SQLite waits for another writer before failing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, key: bytes | str | None = None, busy_timeout: float = 30.0) -> None:
        from gspauth._sqlite import SQLiteFile
        from gspauth.config import ensure_private_dir

        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._db = SQLiteFile(self.path, busy_timeout=busy_timeout,
                              pragmas=("PRAGMA secure_delete = ON", "PRAGMA foreign_keys = ON"))
        self.lock_dir = self.path.with_name(self.path.name + ".locks")
        ensure_private_dir(self.lock_dir)
        self._explicit_key = key
        self._aead: AESGCM | None = None
        self.key_source: str | None = None
        self._guard = self._db.guard
        self._connection = self._db.connection
        self._tx = self._db.transaction
        self._init_db()

    # -- connection ---------------------------------------------------------------------------

    def _init_db(self) -> None:
        with self._tx() as conn:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
            if version is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"session store {self.path} has schema version {version}, newer than this gspauth "
                    f"understands ({SCHEMA_VERSION}); upgrade gspauth or use another store path"
                )
        self._db.tighten()

    def close(self) -> None:
        """Close the database connection (the store reopens it if used again)."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def schema_version(self) -> int:
        with self._guard:
            row = self._connection().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0])

    # -- crypto -------------------------------------------------------------------------------

    def _cipher(self) -> AESGCM:
        if self._aead is not None:
            return self._aead
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        raw, source = resolve_store_key(self._explicit_key)
        aead = AESGCM(raw)
        with self._tx() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
            if row is None:
                nonce = secrets.token_bytes(12)
                check = nonce + aead.encrypt(nonce, _KEY_CHECK_PLAIN, _KEY_CHECK_AAD)
                conn.execute("INSERT INTO meta (name, value) VALUES ('key_check', ?)", (check,))
            else:
                blob = bytes(row[0])
                try:
                    ok = aead.decrypt(blob[:12], blob[12:], _KEY_CHECK_AAD) == _KEY_CHECK_PLAIN
                except InvalidTag:
                    ok = False
                if not ok:
                    raise StoreKeyMismatch(
                        f"the store key from {source} is not the key session store {self.path} was written with; "
                        f"use the original key, or delete the file to start over (every taxpayer will need a new OTP)"
                    )
        self._aead, self.key_source = aead, source
        return aead

    @staticmethod
    def _aad(values: tuple[object, ...]) -> bytes:
        return _ROW_AAD_PREFIX + json.dumps(list(values), separators=(",", ":"), ensure_ascii=True).encode("ascii")

    @staticmethod
    def _public_values(session: Session) -> tuple[object, ...]:
        k = session.key
        return (
            k.id, k.gsp, k.environment, k.gstin, k.username,
            _iso(session.issued_at), session.expiry_minutes, _iso(session.expires_at), _iso(session.consent_at),
            session.refresh_count, int(session.refreshable), session.observed_lifetime_minutes,
            session.txn_of_consent, _iso(session.refreshed_at), session.ip_usr,
        )  # fmt: skip

    # -- SessionStore -------------------------------------------------------------------------

    def save(self, session: Session) -> None:
        aead = self._cipher()
        public = self._public_values(session)
        plain = json.dumps(
            {
                "t": session.auth_token,
                "a": base64.b64encode(session.app_key).decode("ascii"),
                "s": base64.b64encode(session.sek).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        nonce = secrets.token_bytes(12)
        sealed = aead.encrypt(nonce, plain, self._aad(public))
        columns = ", ".join(_PUBLIC_COLUMNS) + ", nonce, secrets, updated_at"
        marks = ", ".join("?" * (len(_PUBLIC_COLUMNS) + 3))
        with self._tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO sessions ({columns}) VALUES ({marks})",
                (*public, nonce, sealed, _iso(utcnow())),
            )

    def load(self, key: SessionKey) -> Session | None:
        from cryptography.exceptions import InvalidTag

        with self._guard:
            row = self._connection().execute(
                f"SELECT {', '.join(_PUBLIC_COLUMNS)}, nonce, secrets FROM sessions WHERE id = ?", (key.id,)
            ).fetchone()
        if row is None:
            return None
        aead = self._cipher()
        public, nonce, sealed = tuple(row[: len(_PUBLIC_COLUMNS)]), bytes(row[-2]), bytes(row[-1])
        try:
            plain = json.loads(aead.decrypt(nonce, sealed, self._aad(public)))
            session = Session(
                key=SessionKey(*public[1:5]),
                auth_token=plain["t"],
                app_key=base64.b64decode(plain["a"]),
                sek=base64.b64decode(plain["s"]),
                issued_at=_dt.datetime.fromisoformat(public[5]),
                expiry_minutes=public[6],
                expires_at=_dt.datetime.fromisoformat(public[7]),
                consent_at=_dt.datetime.fromisoformat(public[8]),
                refresh_count=public[9],
                refreshable=bool(public[10]),
                observed_lifetime_minutes=public[11],
                txn_of_consent=public[12],
                refreshed_at=_dt_of(public[13]),
                ip_usr=public[14],
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise StoreCorrupted(
                f"stored session {key.id} in {self.path} failed its integrity check (edited, copied from another "
                f"row or damaged); it will not be used. Run `gspauth session logout --forget` for it and log in again"
            ) from None
        if session.key != key:  # the id matched but the columns disagree: treat as tampering
            raise StoreCorrupted(f"stored session {key.id} in {self.path} belongs to another key; it will not be used")
        return session

    def delete(self, key: SessionKey) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (key.id,))

    def list(self) -> list[SessionSummary]:
        with self._guard:
            rows = self._connection().execute(
                f"SELECT {', '.join(_PUBLIC_COLUMNS)}, updated_at FROM sessions ORDER BY id"
            ).fetchall()
        out = []
        for r in rows:
            key = SessionKey(r[1], r[2], r[3], r[4])
            issued, expires = _dt_of(r[5]), _dt_of(r[7])
            assert issued is not None and expires is not None
            observed = r[11]
            out.append(
                SessionSummary(
                    key=key,
                    issued_at=issued,
                    expires_at=expires,
                    effective_expires_at=effective_expiry(issued, expires, observed),
                    consent_at=_dt_of(r[8]),  # type: ignore[arg-type]
                    refresh_count=r[9],
                    refreshable=bool(r[10]),
                    observed_lifetime_minutes=observed,
                    refreshed_at=_dt_of(r[13]),
                    txn_of_consent=r[12],
                    updated_at=_dt_of(r[15]),
                )
            )
        return out

    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> contextlib.AbstractContextManager[None]:
        return hold_file_lock(self.lock_dir / f"{key.digest}.lock", timeout, f"session {key.id}")
