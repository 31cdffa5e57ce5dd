"""The SQLite consent ledger (the default): one file, WAL, mode 0600; see :mod:`gspauth.ledger`."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gspauth.errors import ConfigurationError, LedgerTampered
from gspauth.ledger._chain import COLUMNS, GENESIS, event_of, event_values, iso, row_hash, where

if TYPE_CHECKING:
    from gspauth.ledger import LedgerObserver
    from gspauth.types import SessionEvent

__all__ = ["SCHEMA_VERSION", "Ledger"]

#: Version of the SQLite ledger schema this module writes.
SCHEMA_VERSION = 1

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


class Ledger:
    """Append-only consent ledger in SQLite (WAL, mode 0600).

    :param path: database file; default :func:`default_ledger_path`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        from gspauth._sqlite import SQLiteFile
        from gspauth.ledger import default_ledger_path

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
        values = event_values(event)
        with self._tx() as conn:
            row = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            digest = row_hash(prev, values)
            cur = conn.execute(
                f"INSERT INTO events ({', '.join(COLUMNS)}, recorded_at, prev_hash, hash) "
                f"VALUES ({', '.join('?' * (len(COLUMNS) + 3))})",
                (*values, iso(_dt.datetime.now(_dt.timezone.utc)), prev, digest),
            )
            return int(cur.lastrowid or 0)

    def register(self, pm: Any, name: str = "gspauth.ledger") -> LedgerObserver:
        """Register a :class:`~gspauth.ledger.LedgerObserver` for this ledger on plugin manager ``pm``."""
        from gspauth.ledger import LedgerObserver

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
        clause, params = where(gstin, gsp, kind, since)
        sql = f"SELECT {', '.join(COLUMNS)} FROM events{clause} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._db.read(sql, params)
        return [event_of(tuple(r)) for r in reversed(rows)]

    def count(self, **filters: Any) -> int:
        clause, params = where(filters.get("gstin"), filters.get("gsp"), filters.get("kind"), filters.get("since"))
        return int(self._db.read(f"SELECT count(*) FROM events{clause}", params)[0][0])

    def verify(self) -> int:
        """Check the hash chain; return the number of rows. :raises LedgerTampered: naming the first bad row."""
        prev = GENESIS
        n = 0
        rows = self._db.read(f"SELECT seq, {', '.join(COLUMNS)}, prev_hash, hash FROM events ORDER BY seq")
        for row in rows:
            seq, values, stored_prev, stored = row[0], tuple(row[1:-2]), row[-2], row[-1]
            if stored_prev != prev or row_hash(prev, values) != stored:
                raise LedgerTampered(f"consent ledger {self.path}: row {seq} does not match the hash chain")
            prev = stored
            n += 1
        return n
