"""Session stores: where sessions, pending OTP requests and session targets live between
calls, threads, processes and machines.

:class:`SessionStore` is the protocol the clients, the keeper and the filer use. Shipped:

* :class:`MemoryStore` — one process, nothing on disk (tests, short scripts);
* :class:`~gspauth.store.sqlite.SQLiteStore` — the persistent default: one SQLite file in WAL
  mode, mode 0600, secrets encrypted at rest, safe under many threads and processes;
* :class:`~gspauth.store.postgres.PostgresStore` — shared by workers on many machines:
  secrets sealed the same way, single flight with fencing, waits woken by ``NOTIFY``.

:func:`open_store` turns a setting (a path, ``memory:``, a ``postgresql://`` URL) into a store.

What a store keeps, per :class:`~gspauth.session.SessionKey`:

* the :class:`~gspauth.session.Session` (token, app key and SEK sealed at rest);
* a :class:`~gspauth.session.PendingOtp` — an OTPREQUEST GSTN accepted and no AUTHTOKEN has
  used yet — so that the process that finishes a two-step consent need not be the one that
  started it (its app key sealed like a session's secrets; never the OTP);
* the :class:`~gspauth.session.SessionTarget` — GSP host and certificate it was made with —
  so session commands and the keeper need only the session id;
* a :class:`~gspauth.session.RefreshIntent` while a REFRESHTOKEN's answer is not yet saved.

Single flight
-------------
:meth:`SessionStore.lock` gives an exclusive lock per session key that holds across threads
*and* processes. Whoever needs to authenticate or refresh takes it, **re-loads** the session
(another worker may have refreshed it while we waited), acts only if it is still needed,
saves and releases. The lock is re-entrant within a thread; a wait longer than ``timeout``
seconds raises :class:`~gspauth.errors.LockTimeout`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from gspauth.locks import KeyLocks
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget, utcnow

if TYPE_CHECKING:
    from gspauth.ledger import ConsentLedger

from gspauth.store._keys import (
    STORE_KEY_ENV,
    STORE_KEY_FILE_ENV,
    generate_store_key,
    resolve_store_key,
    store_key_source,
)

__all__ = [
    "STORE_KEY_ENV",
    "STORE_KEY_FILE_ENV",
    "MemoryStore",
    "SQLiteStore",
    "SessionStore",
    "SessionSummary",
    "default_store_path",
    "generate_store_key",
    "open_store",
    "resolve_store_key",
    "store_key_source",
]


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
    host: str | None = None

    @classmethod
    def of(cls, session: Session, updated_at: _dt.datetime | None = None, host: str | None = None) -> SessionSummary:
        return cls(
            key=session.key, issued_at=session.issued_at, expires_at=session.expires_at,
            effective_expires_at=session.effective_expires_at, consent_at=session.consent_at,
            refresh_count=session.refresh_count, refreshable=session.refreshable,
            observed_lifetime_minutes=session.observed_lifetime_minutes, refreshed_at=session.refreshed_at,
            txn_of_consent=session.txn_of_consent, updated_at=updated_at, host=host,
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (ISO-8601 times)."""

        def iso(v: _dt.datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {
            "id": self.key.id, "gsp": self.key.gsp, "environment": self.key.environment,
            "gstin": self.key.gstin, "username": self.key.username, "host": self.host,
            "issued_at": iso(self.issued_at), "expires_at": iso(self.expires_at),
            "effective_expires_at": iso(self.effective_expires_at), "consent_at": iso(self.consent_at),
            "refreshed_at": iso(self.refreshed_at), "refresh_count": self.refresh_count,
            "refreshable": self.refreshable, "observed_lifetime_minutes": self.observed_lifetime_minutes,
            "txn_of_consent": self.txn_of_consent, "updated_at": iso(self.updated_at),
        }  # fmt: skip


@runtime_checkable
class SessionStore(Protocol):
    """Where sessions are kept. Implementations must be safe to share between threads."""

    def load(self, key: SessionKey) -> Session | None:
        """The stored session for ``key``, or ``None``."""
        ...

    def save(self, session: Session) -> None:
        """Store ``session``, replacing any earlier one for the same key, and forget the key's
        :class:`~gspauth.session.RefreshIntent` (its answer is now saved)."""
        ...

    def delete(self, key: SessionKey) -> None:
        """Forget the session for ``key`` and its refresh intent (no error when there is none)."""
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

    def preflight(self) -> None:
        """Check that secrets can be saved *now* (key present and right, store writable).

        Called before asking GSTN for anything a failed save would waste (an OTP, a session).

        :raises ConfigurationError: with the fix (no key, wrong key, read-only).
        :raises DamagedFile: the store cannot be read.
        """
        ...

    def save_pending_otp(self, pending: PendingOtp) -> None:
        """Record an accepted OTPREQUEST (replacing an earlier one for the key)."""
        ...

    def load_pending_otp(self, key: SessionKey) -> PendingOtp | None:
        """The key's pending OTP request, or ``None``."""
        ...

    def delete_pending_otp(self, key: SessionKey) -> None:
        """Forget the key's pending OTP request (no error when there is none)."""
        ...

    def save_target(self, target: SessionTarget) -> None:
        """Remember where the key's session was made."""
        ...

    def load_target(self, key: SessionKey) -> SessionTarget | None:
        """Where the key's session was made, or ``None`` if never recorded."""
        ...

    def begin_refresh(self, key: SessionKey, intent: RefreshIntent) -> None:
        """Record that a REFRESHTOKEN is about to be sent (cleared by :meth:`save`)."""
        ...

    def refresh_intent(self, key: SessionKey) -> RefreshIntent | None:
        """An unsaved refresh of the key, if one was begun and never saved."""
        ...

    def ledger(self) -> ConsentLedger:
        """The consent ledger that belongs with this store (a client's default ledger)."""
        ...

    def wait_for_session(self, key: SessionKey, *, after: Session | None, timeout: float) -> Session | None:
        """Block until the store holds a session for ``key`` whose auth token differs from
        ``after``'s (any session when ``after`` is ``None``) and return it; ``None`` once
        ``timeout`` seconds have passed without one.

        For workers waiting on someone else's consent or refresh (a two-step OTP finished by
        another process or machine). :class:`MemoryStore` wakes on a condition variable,
        :class:`~gspauth.store.sqlite.SQLiteStore` polls with a short backoff, and the
        PostgreSQL store wakes on ``LISTEN``/``NOTIFY``.

        .. versionadded:: 0.3
        """
        ...


class MemoryStore:
    """A :class:`SessionStore` in dicts: one process, thread-safe, nothing on disk."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._changed = threading.Condition(self._guard)  # notified on every save
        self._sessions: dict[SessionKey, tuple[Session, _dt.datetime]] = {}
        self._pending: dict[SessionKey, PendingOtp] = {}
        self._targets: dict[SessionKey, SessionTarget] = {}
        self._intents: dict[SessionKey, RefreshIntent] = {}
        self._locks = KeyLocks()
        self._ledger: ConsentLedger | None = None

    def load(self, key: SessionKey) -> Session | None:
        with self._guard:
            item = self._sessions.get(key)
        return None if item is None else item[0]

    def save(self, session: Session) -> None:
        with self._guard:
            self._sessions[session.key] = (session, utcnow())
            self._intents.pop(session.key, None)
            self._changed.notify_all()

    def delete(self, key: SessionKey) -> None:
        with self._guard:
            self._sessions.pop(key, None)
            self._intents.pop(key, None)

    def list(self) -> list[SessionSummary]:
        with self._guard:
            items = sorted(self._sessions.values(), key=lambda it: it[0].key.id)
            hosts = {k: t.host for k, t in self._targets.items()}
        return [SessionSummary.of(s, updated, hosts.get(s.key)) for s, updated in items]

    def lock(self, key: SessionKey, timeout: float | None = 60.0) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold(key.id, timeout, f"session {key.id}")

    def preflight(self) -> None:
        return None  # nothing can stop a dict from keeping a value

    def save_pending_otp(self, pending: PendingOtp) -> None:
        with self._guard:
            self._pending[pending.key] = pending

    def load_pending_otp(self, key: SessionKey) -> PendingOtp | None:
        with self._guard:
            return self._pending.get(key)

    def delete_pending_otp(self, key: SessionKey) -> None:
        with self._guard:
            self._pending.pop(key, None)

    def save_target(self, target: SessionTarget) -> None:
        with self._guard:
            self._targets[target.key] = target

    def load_target(self, key: SessionKey) -> SessionTarget | None:
        with self._guard:
            return self._targets.get(key)

    def begin_refresh(self, key: SessionKey, intent: RefreshIntent) -> None:
        with self._guard:
            self._intents[key] = intent

    def refresh_intent(self, key: SessionKey) -> RefreshIntent | None:
        with self._guard:
            return self._intents.get(key)

    def ledger(self) -> ConsentLedger:
        # Sessions are gone with the process, consent is not: the default ledger file.
        from gspauth.ledger import Ledger

        with self._guard:
            if self._ledger is None:
                self._ledger = Ledger()
            return self._ledger

    def wait_for_session(self, key: SessionKey, *, after: Session | None, timeout: float) -> Session | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                item = self._sessions.get(key)
                if item is not None and (after is None or item[0].auth_token != after.auth_token):
                    return item[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._sessions)} sessions)"


def default_store_path() -> Path:
    """``<gspauth home>/sessions.db`` (see :func:`gspauth.config.gspauth_home`)."""
    from gspauth.config import gspauth_home

    return gspauth_home() / "sessions.db"


def open_store(spec: str | os.PathLike[str] | None = None, *, key: bytes | str | None = None) -> SessionStore:
    """The store a setting names: ``None`` → the default SQLite file; ``"memory:"`` → a new
    :class:`MemoryStore`; a path (or ``sqlite:///path``) → a :class:`SQLiteStore` there; a
    ``postgresql://`` or ``postgres://`` URL → a :class:`~gspauth.store.postgres.PostgresStore`
    (``pip install 'gspauth[postgres]'``; see ``docs/postgres.md``).

    :param key: the store key (default: ``GSPAUTH_STORE_KEY`` and friends, see
        :func:`resolve_store_key`).
    """
    if spec is None:
        return SQLiteStore(key=key)
    text = os.fspath(spec)
    if text == "memory:":
        return MemoryStore()
    if text.lower().startswith(("postgresql://", "postgres://")):
        from gspauth.store.postgres import PostgresStore

        return PostgresStore(text, key=key)
    if text.startswith("sqlite://"):
        text = text[len("sqlite://"):]
    return SQLiteStore(text, key=key)



# The SQLite store builds on the definitions above.
from gspauth.store.sqlite import SQLiteStore  # noqa: E402 - it imports the definitions above
