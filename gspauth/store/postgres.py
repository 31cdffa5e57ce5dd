"""The shared session store: PostgreSQL, for workers on many machines.

``open_store("postgresql://app@db.internal:5432/gst?sslmode=verify-full")`` (or ``--store``,
``GSPAUTH_STORE``, ``store =`` in config.toml) gives a :class:`PostgresStore`. Everything
about URLs, pools, migrations and errors is in :mod:`gspauth._pg`; ``docs/postgres.md`` is the
operator's guide.

* **Secrets** are sealed exactly as in :class:`~gspauth.store.sqlite.SQLiteStore`
  (:mod:`gspauth.store._sealing`: AES-256-GCM under the store key, bound to the row's public
  values; a key-check row tells a wrong key apart). The database never sees a clear token,
  app key or SEK.
* **Single flight across machines.** :meth:`PostgresStore.lock` takes a session-level
  advisory lock on a connection of its own (after this process's thread lock, so a process
  holds at most one connection per locked key). It is released on exit, or by the server the
  moment that connection dies — a killed worker never leaves a stale lock.
* **Fencing.** Each acquisition bumps the key's fence token (``fences`` table). While this
  store object holds a key's lock, every write to that key — :meth:`save`, :meth:`delete`,
  :meth:`begin_refresh`, the pending OTP, the target — first reads the token ``FOR SHARE`` in
  the same transaction and is refused with :class:`~gspauth.errors.LockLost` (nothing
  written) if a newer holder bumped it: a worker whose lock connection was lost can never
  overwrite the session its successor saved. Writes outside any lock behave as in SQLite.
* **Waiting** (:meth:`wait_for_session`) is ``LISTEN``/``NOTIFY``: every save notifies in its
  own transaction (payload: the session id, never a secret); a waiter listens first, then
  re-reads, then sleeps on the socket until a notification or its timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gspauth._pg import AdvisoryLock, Component, Database, MigrateMode, PgUrl, parse_url, translated
from gspauth.errors import GSPAuthError, LockLost, LockTimeout, StoreCorrupted, StoreKeyMismatch
from gspauth.locks import KeyLocks
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget, effective_expiry
from gspauth.store import SessionSummary
from gspauth.store._keys import resolve_store_key
from gspauth.store._sealing import PENDING_AAD, SESSION_AAD, Sealer, iso, pending_public, session_public

if TYPE_CHECKING:
    import datetime as _dt

    from gspauth._pg import Connection
    from gspauth.ledger import ConsentLedger

__all__ = ["STORE", "PostgresStore"]

_log = logging.getLogger("gspauth.store")

_SESSION_COLUMNS = (
    "id", "gsp", "environment", "gstin", "username", "issued_at", "expiry_minutes", "expires_at", "consent_at",
    "refresh_count", "refreshable", "observed_lifetime_minutes", "txn_of_consent", "refreshed_at", "ip_usr",
)  # fmt: skip
_PENDING_COLUMNS = ("id", "gsp", "environment", "gstin", "username", "txn", "requested_at", "expires_at",
                    "requested_wall", "attempts_used")
_TARGET_COLUMNS = ("id", "gsp", "environment", "gstin", "username", "host", "certificate", "certificate_sha256",
                   "ip_usr", "auth_version")

#: The session store's tables (``gspauth db status`` shows its version as ``store``).
STORE = Component("store", (
    (
        "CREATE TABLE {schema}.store_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
        """CREATE TABLE {schema}.sessions (
            id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
            username TEXT NOT NULL, issued_at TIMESTAMPTZ NOT NULL, expiry_minutes INTEGER NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL, consent_at TIMESTAMPTZ NOT NULL, refresh_count INTEGER NOT NULL,
            refreshable BOOLEAN NOT NULL, observed_lifetime_minutes INTEGER, txn_of_consent TEXT,
            refreshed_at TIMESTAMPTZ, ip_usr TEXT, nonce BYTEA NOT NULL, secrets BYTEA NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        "CREATE INDEX sessions_gstin ON {schema}.sessions (gstin)",
        "CREATE INDEX sessions_expires_at ON {schema}.sessions (expires_at)",
        """CREATE TABLE {schema}.pending_otps (
            id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
            username TEXT NOT NULL, txn TEXT NOT NULL, requested_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL, requested_wall DOUBLE PRECISION NOT NULL,
            attempts_used INTEGER NOT NULL, nonce BYTEA NOT NULL, secrets BYTEA NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        """CREATE TABLE {schema}.targets (
            id TEXT PRIMARY KEY, gsp TEXT NOT NULL, environment TEXT NOT NULL, gstin TEXT NOT NULL,
            username TEXT NOT NULL, host TEXT NOT NULL, certificate TEXT, certificate_sha256 TEXT NOT NULL,
            ip_usr TEXT NOT NULL, auth_version TEXT, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        """CREATE TABLE {schema}.refreshing (id TEXT PRIMARY KEY, txn TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE {schema}.fences (id TEXT PRIMARY KEY, token BIGINT NOT NULL, holder TEXT NOT NULL,
            acquired_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
    ),
), "session store")  # fmt: skip


@dataclass
class _Held:
    """A key's lock as this store object holds it."""

    advisory: AdvisoryLock
    token: int
    depth: int = 1


# Lock connections a forked child inherited: kept, never used or closed (see gspauth._pg).
_INHERITED: list[object] = []


def _holder() -> str:
    """Who takes a lock, as the fences table records it (for operators): ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _close_idle(idle: list[Connection], pid: int) -> None:
    if os.getpid() != pid:
        return  # inherited: closing would end the parent's server sessions
    while idle:
        with contextlib.suppress(Exception):
            idle.pop().close()


class PostgresStore:
    """A :class:`~gspauth.store.SessionStore` in PostgreSQL, shared by threads, processes and machines.

    :param url: ``postgresql://`` / ``postgres://`` URL (see :mod:`gspauth._pg` for the
        parameters gspauth reads: ``schema``, ``migrate``, ``pool_max``, ``pool_timeout``).
    :param key: the 32-byte store key (bytes or Base64 text); default ``GSPAUTH_STORE_KEY``,
        ``GSPAUTH_STORE_KEY_FILE`` or the OS keyring — the same key on every machine.
    :param migrate: ``auto`` / ``never`` (default: the URL's ``migrate``, else
        ``GSPAUTH_DB_MIGRATE``, else ``auto``).
    :raises ConfigurationError: bad URL, wrong password, missing database or privilege, a schema
        too new (or too old with migration off).
    :raises Unreachable: the server cannot be reached.
    """

    def __init__(self, url: str | PgUrl, *, key: bytes | str | None = None,
                 migrate: MigrateMode | None = None) -> None:
        parsed = url if isinstance(url, PgUrl) else parse_url(url)
        self._db = Database(parsed, what="session store")
        self.url = parsed
        self._db.ensure(STORE, migrate=migrate)
        self._explicit_key = key
        self._sealer: Sealer | None = None
        self.key_source: str | None = None
        self._ledger: ConsentLedger | None = None
        self._channel = "gspauth_" + hashlib.sha256(f"{parsed.schema}/sessions".encode()).hexdigest()[:24]
        self._reset_locks()

    def _reset_locks(self) -> None:
        self._pid = os.getpid()
        self._locks = KeyLocks()
        self._held: dict[str, _Held] = {}
        self._held_guard = threading.Lock()
        self._idle: list[Connection] = []  # lock connections kept for the next acquisition
        weakref.finalize(self, _close_idle, self._idle, self._pid)  # a store dropped unclosed closes them too

    def _check_fork(self) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's locks and connections are not ours
            _INHERITED.extend(held.advisory.conn for held in self._held.values())
            _INHERITED.extend(self._idle)
            self._reset_locks()

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def schema(self) -> str:
        return self.url.schema

    def __repr__(self) -> str:
        return f"PostgresStore({self.url.display!r}, schema={self.schema!r})"

    def close(self) -> None:
        """Close this process's connections (reopened if the store is used again)."""
        self._check_fork()
        with self._held_guard:
            _close_idle(self._idle, self._pid)
        self._db.close()
        ledger = self._ledger
        if ledger is not None and hasattr(ledger, "close"):
            ledger.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, text: str) -> str:
        return self._db.sql(text)

    @contextlib.contextmanager
    def _write(self, key: SessionKey) -> Iterator[Connection]:
        """A transaction for a write to ``key``: fenced while this store holds the key's lock."""
        self._check_fork()
        with self._held_guard:
            held = self._held.get(key.id)
            token = held.token if held is not None else None
        with self._db.transaction() as conn:
            if token is not None:
                row = conn.execute(self._sql("SELECT token FROM {schema}.fences WHERE id = %s FOR SHARE"),
                                   (key.id,)).fetchone()
                if row is None or int(row[0]) != token:
                    newer = "none" if row is None else str(row[0])
                    raise LockLost(f"the lock on session {key.id} was lost (our fence token {token}, the newest "
                                   f"{newer}): another worker holds it now; nothing was written")
            yield conn

    # -- the key ------------------------------------------------------------------------------------

    def sealer(self) -> Sealer:
        """The sealer under the store key, after checking it against the store's key check.

        :raises ConfigurationError: no key configured.
        :raises StoreKeyMismatch: a different key, or the key check vanished from a store that
            holds secrets.
        """
        if self._sealer is not None:
            return self._sealer
        raw, source = resolve_store_key(self._explicit_key)
        sealer = Sealer(raw)
        with self._db.transaction() as conn:
            meta = self._sql("{schema}.store_meta")
            row = conn.execute(f"SELECT value FROM {meta} WHERE name = 'key_check'").fetchone()
            if row is None:
                held = conn.execute(self._sql("SELECT (SELECT count(*) FROM {schema}.sessions) + "
                                              "(SELECT count(*) FROM {schema}.pending_otps)")).fetchone()
                if held and held[0]:
                    raise StoreKeyMismatch(
                        f"session store {self.url.display} (schema {self.schema}) holds {held[0]} sealed secret(s) "
                        "but its key check is missing (removed out of band?): refusing to stamp a new key on it; "
                        "restore the schema from a backup (every taxpayer will otherwise need a new OTP)")
                # Two processes meeting an empty store: the first key check wins, the other is compared with it.
                conn.execute(f"INSERT INTO {meta} (name, value) VALUES ('key_check', %s) ON CONFLICT DO NOTHING",
                             (sealer.key_check(),))
                row = conn.execute(f"SELECT value FROM {meta} WHERE name = 'key_check'").fetchone()
            if row is None or not sealer.opens_key_check(bytes(row[0])):
                raise StoreKeyMismatch(
                    f"the store key from {source} is not the key session store {self.url.display} (schema "
                    f"{self.schema}) was written with; use the original key on every machine sharing it")
        self._sealer, self.key_source = sealer, source
        return sealer

    def preflight(self) -> None:
        self.sealer()
        with self._db.transaction() as conn:  # a read-only replica or a missing privilege shows here
            conn.execute(self._sql("INSERT INTO {schema}.store_meta (name, value) VALUES ('preflight', %s) "
                                   "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"),
                         (str(iso(_now())).encode(),))

    # -- sessions -------------------------------------------------------------------------------------

    @staticmethod
    def _session_row(session: Session) -> tuple[Any, ...]:
        # The public values as typed columns; the sealed data binds their text forms.
        k = session.key
        return (k.id, k.gsp, k.environment, k.gstin, k.username, session.issued_at, session.expiry_minutes,
                session.expires_at, session.consent_at, session.refresh_count, session.refreshable,
                session.observed_lifetime_minutes, session.txn_of_consent, session.refreshed_at, session.ip_usr)

    @staticmethod
    def _public_of_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A stored row's public values as :func:`session_public` makes them (text times, int flag)."""
        return (*row[:5], iso(row[5]), row[6], iso(row[7]), iso(row[8]), row[9], int(row[10]), row[11], row[12],
                iso(row[13]), row[14])

    def save(self, session: Session) -> None:
        sealer = self.sealer()
        nonce, sealed = sealer.seal(SESSION_AAD, session_public(session), sealer.session_secrets(session))
        columns = ", ".join(_SESSION_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_SESSION_COLUMNS[1:], "nonce", "secrets"))
        with self._write(session.key) as conn:
            conn.execute(self._sql(f"INSERT INTO {{schema}}.sessions ({columns}, nonce, secrets) "
                                   f"VALUES ({', '.join(['%s'] * (len(_SESSION_COLUMNS) + 2))}) "
                                   f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()"),
                         (*self._session_row(session), nonce, sealed))
            conn.execute(self._sql("DELETE FROM {schema}.refreshing WHERE id = %s"), (session.key.id,))
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, session.key.id))

    def load(self, key: SessionKey) -> Session | None:
        from cryptography.exceptions import InvalidTag

        rows = self._db.read(f"SELECT {', '.join(_SESSION_COLUMNS)}, nonce, secrets FROM {{schema}}.sessions "
                             "WHERE id = %s", (key.id,))
        if not rows:
            return None
        row = rows[0]
        sealer = self.sealer()
        public = self._public_of_row(row[: len(_SESSION_COLUMNS)])
        try:
            token, app_key, sek = sealer.read_session_secrets(sealer.open(SESSION_AAD, public, bytes(row[-2]),
                                                                          bytes(row[-1])))
            session = Session(
                key=SessionKey(*row[1:5]), auth_token=token, app_key=app_key, sek=sek, issued_at=row[5],
                expiry_minutes=row[6], expires_at=row[7], consent_at=row[8], refresh_count=row[9],
                refreshable=bool(row[10]), observed_lifetime_minutes=row[11], txn_of_consent=row[12],
                refreshed_at=row[13], ip_usr=row[14],
            )  # fmt: skip
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise StoreCorrupted(
                f"stored session {key.id} in {self.url.display} (schema {self.schema}) failed its integrity check "
                "(edited, copied from another row or damaged); it will not be used. Run `gspauth session logout "
                "--forget` for it and log in again") from None
        if session.key != key:
            raise StoreCorrupted(f"stored session {key.id} in {self.url.display} belongs to another key; "
                                 "it will not be used")
        return session

    def delete(self, key: SessionKey) -> None:
        with self._write(key) as conn:
            conn.execute(self._sql("DELETE FROM {schema}.sessions WHERE id = %s"), (key.id,))
            conn.execute(self._sql("DELETE FROM {schema}.refreshing WHERE id = %s"), (key.id,))

    def list(self) -> list[SessionSummary]:
        rows = self._db.read(
            f"SELECT {', '.join('s.' + c for c in _SESSION_COLUMNS)}, s.updated_at, t.host "
            "FROM {schema}.sessions s LEFT JOIN {schema}.targets t ON t.id = s.id ORDER BY s.id")
        return [SessionSummary(
            key=SessionKey(r[1], r[2], r[3], r[4]), issued_at=r[5], expires_at=r[7],
            effective_expires_at=effective_expiry(r[5], r[7], r[11]), consent_at=r[8], refresh_count=r[9],
            refreshable=bool(r[10]), observed_lifetime_minutes=r[11], refreshed_at=r[13], txn_of_consent=r[12],
            updated_at=r[15], host=r[16],
        ) for r in rows]  # fmt: skip

    def wait_for_session(self, key: SessionKey, *, after: Session | None, timeout: float) -> Session | None:
        """See :meth:`~gspauth.store.SessionStore.wait_for_session`: ``LISTEN`` on a connection of
        its own, then a re-read (a save between our last look and the ``LISTEN`` is not missed),
        then the socket until a notification for ``key`` or the timeout — no polling."""
        deadline = time.monotonic() + timeout
        conn = self._db.connect(autocommit=True)
        try:
            with translated(self.url):
                conn.execute(f'LISTEN "{self._channel}"')
            while True:
                session = self.load(key)
                if session is not None and (after is None or session.auth_token != after.auth_token):
                    return session
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                with translated(self.url):
                    for note in conn.notifies(timeout=remaining):
                        if note.payload == key.id:
                            break
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    # -- single flight --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> Iterator[None]:
        """Exclusive per-key lock across threads, processes and machines (re-entrant within a
        thread). See the module docs for fencing.

        :raises LockTimeout: not acquired within ``timeout`` seconds.
        """
        self._check_fork()
        deadline = None if timeout is None else time.monotonic() + timeout
        what = f"session {key.id}"
        with self._locks.hold(key.id, timeout, what):
            with self._held_guard:
                held = self._held.get(key.id)
            if held is not None:  # this thread already holds it (the thread lock is re-entrant)
                held.depth += 1
                try:
                    yield
                finally:
                    held.depth -= 1
                return
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            held = self._acquire(key, remaining, timeout)
            with self._held_guard:
                self._held[key.id] = held
            try:
                yield
            finally:
                with self._held_guard:
                    self._held.pop(key.id, None)
                self._release(key, held)

    def _lock_connection(self) -> Connection:
        with self._held_guard:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        return self._db.connect(autocommit=True)

    def _acquire(self, key: SessionKey, remaining: float | None, timeout: float | None) -> _Held:
        for attempt in (1, 2):
            conn = self._lock_connection()
            advisory = AdvisoryLock(conn, self._db.lock_key("session", key.id))
            try:
                with translated(self.url):
                    got = advisory.acquire(remaining)
                    row = None
                    if got:
                        row = conn.execute(self._sql(
                            "INSERT INTO {schema}.fences (id, token, holder) VALUES (%s, 1, %s) ON CONFLICT (id) DO "
                            "UPDATE SET token = {schema}.fences.token + 1, holder = EXCLUDED.holder, "
                            "acquired_at = now() RETURNING token"), (key.id, _holder())).fetchone()
            except GSPAuthError:
                broken = conn.broken
                with contextlib.suppress(Exception):
                    conn.close()
                if attempt == 1 and broken:  # an idle connection the server dropped meanwhile: a fresh one
                    continue
                raise
            except BaseException:
                # Interrupted while waiting (Ctrl-C): the lock may have been granted meanwhile;
                # closing the connection is what surely gives it back.
                with contextlib.suppress(Exception):
                    conn.close()
                raise
            if not got:
                self._give_back(conn)
                raise LockTimeout(f"waited {timeout or 0:.1f}s for the lock on session {key.id}; another worker "
                                  "(this or another machine) is authenticating or refreshing it")
            assert row is not None
            return _Held(advisory, int(row[0]))
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_back(self, conn: Connection) -> None:
        with self._held_guard:
            if not conn.closed and not conn.broken and len(self._idle) < 4:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.close()

    def _release(self, key: SessionKey, held: _Held) -> None:
        if held.advisory.release():
            self._give_back(held.advisory.conn)
            return
        # The connection died while we held the lock: the server released it then, and any
        # write made after a successor took it was refused by its fence token.
        _log.warning("the lock on session %s was lost while held (its connection to %s ended); writes after "
                    "that were fenced", key.id, self.url.display)
        with contextlib.suppress(Exception):
            held.advisory.conn.close()

    # -- the two-step OTP -----------------------------------------------------------------------------

    def save_pending_otp(self, pending: PendingOtp) -> None:
        sealer = self.sealer()
        nonce, sealed = sealer.seal(PENDING_AAD, pending_public(pending), sealer.pending_secrets(pending))
        k = pending.key
        values = (k.id, k.gsp, k.environment, k.gstin, k.username, pending.txn, pending.requested_at,
                  pending.expires_at, pending.requested_wall, pending.attempts_used, nonce, sealed)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_PENDING_COLUMNS[1:], "nonce", "secrets"))
        with self._write(k) as conn:
            conn.execute(self._sql(f"INSERT INTO {{schema}}.pending_otps ({', '.join(_PENDING_COLUMNS)}, nonce, "
                                   f"secrets) VALUES ({', '.join(['%s'] * len(values))}) "
                                   f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()"), values)

    def load_pending_otp(self, key: SessionKey) -> PendingOtp | None:
        from cryptography.exceptions import InvalidTag

        rows = self._db.read(f"SELECT {', '.join(_PENDING_COLUMNS)}, nonce, secrets FROM {{schema}}.pending_otps "
                             "WHERE id = %s", (key.id,))
        if not rows:
            return None
        r = rows[0]
        public = (*r[:6], iso(r[6]), iso(r[7]), float(r[8]), int(r[9]))
        try:
            app_key = self.sealer().open(PENDING_AAD, public, bytes(r[-2]), bytes(r[-1]))
            return PendingOtp(key=SessionKey(*r[1:5]), txn=r[5], requested_at=r[6], expires_at=r[7], app_key=app_key,
                              requested_wall=float(r[8]), attempts_used=int(r[9]))
        except (InvalidTag, ValueError, TypeError):
            raise StoreCorrupted(f"the pending OTP request of {key.id} in {self.url.display} failed its integrity "
                                 "check; request a new OTP (`gspauth login --resend`)") from None

    def delete_pending_otp(self, key: SessionKey) -> None:
        with self._write(key) as conn:
            conn.execute(self._sql("DELETE FROM {schema}.pending_otps WHERE id = %s"), (key.id,))

    # -- targets and refresh intents ------------------------------------------------------------------

    def save_target(self, target: SessionTarget) -> None:
        k = target.key
        values = (k.id, k.gsp, k.environment, k.gstin, k.username, target.host, target.certificate,
                  target.certificate_sha256, target.ip_usr, target.auth_version)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _TARGET_COLUMNS[1:])
        with self._write(k) as conn:
            conn.execute(self._sql(f"INSERT INTO {{schema}}.targets ({', '.join(_TARGET_COLUMNS)}) "
                                   f"VALUES ({', '.join(['%s'] * len(values))}) "
                                   f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()"), values)

    def load_target(self, key: SessionKey) -> SessionTarget | None:
        rows = self._db.read(f"SELECT {', '.join(_TARGET_COLUMNS)} FROM {{schema}}.targets WHERE id = %s", (key.id,))
        if not rows:
            return None
        r = rows[0]
        return SessionTarget(key=SessionKey(r[1], r[2], r[3], r[4]), host=r[5], certificate=r[6],
                             certificate_sha256=r[7], ip_usr=r[8], auth_version=r[9])

    def begin_refresh(self, key: SessionKey, intent: RefreshIntent) -> None:
        with self._write(key) as conn:
            conn.execute(self._sql("INSERT INTO {schema}.refreshing (id, txn, started_at) VALUES (%s, %s, %s) ON "
                                   "CONFLICT (id) DO UPDATE SET txn = EXCLUDED.txn, started_at = EXCLUDED.started_at"),
                         (key.id, intent.txn, intent.started_at))

    def refresh_intent(self, key: SessionKey) -> RefreshIntent | None:
        rows = self._db.read("SELECT txn, started_at FROM {schema}.refreshing WHERE id = %s", (key.id,))
        return RefreshIntent(rows[0][0], rows[0][1]) if rows else None

    def ledger(self) -> ConsentLedger:
        """The consent ledger in the same database and schema (:class:`~gspauth.ledger.postgres.PostgresLedger`)."""
        if self._ledger is None:
            from gspauth.ledger.postgres import PostgresLedger

            self._ledger = PostgresLedger(self.url)
        return self._ledger


def _now() -> _dt.datetime:
    from gspauth.session import utcnow

    return utcnow()
