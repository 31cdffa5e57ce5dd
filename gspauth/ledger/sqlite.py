"""The consent ledger: an append-only local record of every session event.

Each OTP request, consent, refresh, logout, revocation and failure a client
reports (:class:`~gspauth.types.SessionEvent`) becomes one row: GSTIN, GSP,
environment, username, time, ``txn``, ``ip-usr``, outcome and a short note.
Never a token, key or OTP.

Append-only is enforced by the database: triggers abort any ``UPDATE`` or
``DELETE``. Each row also carries a SHA-256 hash chained to the previous row,
so :meth:`Ledger.verify` detects rows edited or removed by someone who bypassed
SQLite (the triggers only bind honest writers).

Feed it from clients directly (``Client(..., ledger=Ledger())``) or from the
observer hook: ``ledger.register(pm)`` adds :class:`LedgerObserver`, which
implements ``gspauth_on_session_event``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gspauth.errors import ConfigurationError, LedgerTampered
from gspauth.hookspecs import hookimpl
from gspauth.types import SessionEvent

__all__ = ["NO_LEDGER", "ConsentLedger", "Ledger", "LedgerObserver", "NullLedger", "default_ledger_path"]

SCHEMA_VERSION = 1
_GENESIS = "0" * 64
# Long runs of Base64/hex look like tokens or keys: a ledger note must never carry one.
_SECRETISH = re.compile(r"[A-Za-z0-9+/=_-]{24,}")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        gsp TEXT NOT NULL,
        environment TEXT NOT NULL,
        gstin TEXT,
        username TEXT,
        at TEXT NOT NULL,
        txn TEXT,
        ip_usr TEXT,
        outcome TEXT NOT NULL,
        detail TEXT,
        expires_at TEXT,
        recorded_at TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_gstin ON events (gstin, seq)",
    """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END""",
)

_COLUMNS = ("kind", "gsp", "environment", "gstin", "username", "at", "txn", "ip_usr", "outcome", "detail", "expires_at")


@runtime_checkable
class ConsentLedger(Protocol):
    """Where a client writes its session events (:class:`Ledger` is the default)."""

    def record(self, event: SessionEvent, /) -> object:
        """Append ``event``. May block; an exception is logged by the client, never raised."""
        ...


class NullLedger:
    """A ledger that records nothing: for callers whose own system keeps the audit trail."""

    def record(self, event: SessionEvent, /) -> None:
        return None

    def __repr__(self) -> str:
        return "NO_LEDGER"


#: Pass as ``Client(ledger=NO_LEDGER)`` to record no session events.
NO_LEDGER = NullLedger()


def default_ledger_path() -> Path:
    """``<gspauth home>/ledger.db``, beside the default session store."""
    from gspauth.config import gspauth_home

    return gspauth_home() / "ledger.db"


def _iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(_dt.timezone.utc).isoformat()


def _scrub(text: str | None) -> str | None:
    if text is None:
        return None
    return _SECRETISH.sub("[secure]", str(text))[:500]


def _row_hash(prev: str, values: tuple[Any, ...]) -> str:
    body = json.dumps([prev, *values], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode("ascii")).hexdigest()


class Ledger:
    """Append-only consent ledger in SQLite (WAL, mode 0600).

    :param path: database file; default :func:`default_ledger_path`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        from gspauth._sqlite import SQLiteFile

        self.path = Path(path).expanduser() if path is not None else default_ledger_path()
        self._db = SQLiteFile(self.path, what="consent ledger", expect=("schema_version", "events"),
                              schema=(*_SCHEMA, f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION})"))
        self._tx = self._db.transaction
        with self._tx() as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"schema_version", "events"} <= tables:
                raise self._db.damaged("it is an SQLite database, but not a gspauth consent ledger")
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            if version is None:
                raise self._db.damaged("its schema version is missing")
            if version > SCHEMA_VERSION:
                raise ConfigurationError(f"consent ledger {self.path} is from a newer gspauth (schema {version}); "
                                         "upgrade gspauth")

    def close(self) -> None:
        """Close the database connection (reopened if the ledger is used again)."""
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # -- writing ------------------------------------------------------------------------------

    def record(self, event: SessionEvent) -> int:
        """Append ``event``; return its sequence number. Free-text notes are scrubbed of token-like strings."""
        values = (
            event.kind, event.gsp, str(getattr(event.environment, "value", event.environment)),
            event.gstin, event.username, _iso(event.at), event.txn, event.ip_usr,
            str(event.outcome), _scrub(event.detail), _iso(event.expires_at),
        )  # fmt: skip
        with self._tx() as conn:
            row = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            prev = row[0] if row else _GENESIS
            digest = _row_hash(prev, values)
            cur = conn.execute(
                f"INSERT INTO events ({', '.join(_COLUMNS)}, recorded_at, prev_hash, hash) "
                f"VALUES ({', '.join('?' * (len(_COLUMNS) + 3))})",
                (*values, _iso(_dt.datetime.now(_dt.timezone.utc)), prev, digest),
            )
            return int(cur.lastrowid or 0)

    def register(self, pm: Any, name: str = "gspauth.ledger") -> LedgerObserver:
        """Register a :class:`LedgerObserver` for this ledger on plugin manager ``pm``."""
        observer = LedgerObserver(self)
        pm.register(observer, name=name)
        return observer

    # -- reading ------------------------------------------------------------------------------

    def query(
        self,
        gstin: str | None = None,
        gsp: str | None = None,
        kind: str | None = None,
        since: _dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[SessionEvent]:
        """Events matching every given filter, oldest first (``limit``: the most recent N)."""
        where, params = self._where(gstin, gsp, kind, since)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM events{where} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._db.read(sql, params)
        return [self._event(r) for r in reversed(rows)]

    def count(self, **filters: Any) -> int:
        where, params = self._where(filters.get("gstin"), filters.get("gsp"), filters.get("kind"), filters.get("since"))
        return int(self._db.read(f"SELECT count(*) FROM events{where}", params)[0][0])

    @staticmethod
    def _where(
        gstin: str | None, gsp: str | None, kind: str | None, since: _dt.datetime | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if gstin:
            clauses.append("gstin = ?")
            params.append(gstin.strip().upper())
        if gsp:
            clauses.append("gsp = ?")
            params.append(gsp)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware")
            clauses.append("at >= ?")
            params.append(_iso(since))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    @staticmethod
    def _event(r: tuple[Any, ...]) -> SessionEvent:
        kwargs = dict(zip(_COLUMNS, r, strict=True))
        kwargs["at"] = _dt.datetime.fromisoformat(kwargs["at"])
        if kwargs["expires_at"] is not None:
            kwargs["expires_at"] = _dt.datetime.fromisoformat(kwargs["expires_at"])
        return SessionEvent(**kwargs)

    def verify(self) -> int:
        """Check the hash chain; return the number of rows. :raises LedgerTampered: naming the first bad row."""
        prev = _GENESIS
        n = 0
        rows = self._db.read(f"SELECT seq, {', '.join(_COLUMNS)}, prev_hash, hash FROM events ORDER BY seq")
        for row in rows:
            seq, values, stored_prev, stored = row[0], tuple(row[1:-2]), row[-2], row[-1]
            if stored_prev != prev or _row_hash(prev, values) != stored:
                raise LedgerTampered(f"consent ledger {self.path}: row {seq} does not match the hash chain")
            prev = stored
            n += 1
        return n


class LedgerObserver:
    """A pluggy plugin that writes every ``gspauth_on_session_event`` into a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @hookimpl
    def gspauth_on_session_event(self, event: SessionEvent) -> None:
        self.ledger.record(event)
