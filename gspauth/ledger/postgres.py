"""The consent ledger in PostgreSQL: one chain for every machine sharing the database.

:meth:`gspauth.store.postgres.PostgresStore.ledger` returns it (same URL and schema); it can
also be opened alone: ``PostgresLedger("postgresql://…")``.

* **Append-only** is enforced by the database: a trigger refuses ``UPDATE``, ``DELETE`` and
  ``TRUNCATE`` on ``ledger_events`` (a role that owns the table can still drop the trigger —
  the hash chain is what catches that).
* **One linear chain.** Appends are serialised by a transaction-level advisory lock: each
  reads the last row's hash and writes ``seq + 1`` in the same transaction, so two machines
  never chain onto the same row and sequence numbers have no gaps.
* The values and their hash are exactly the SQLite ledger's (:mod:`gspauth.ledger._chain`):
  :meth:`PostgresLedger.verify` and :class:`~gspauth.ledger.Ledger` agree on every row.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from gspauth._pg import Component, Database, MigrateMode, PgUrl, parse_url
from gspauth.errors import LedgerTampered
from gspauth.ledger._chain import COLUMNS, GENESIS, event_of, event_values, iso, row_hash, where

if TYPE_CHECKING:
    from gspauth.ledger import LedgerObserver
    from gspauth.types import SessionEvent

__all__ = ["LEDGER", "PostgresLedger"]

_TIMES = ("at", "expires_at")

#: The ledger's tables (``gspauth db status`` shows its version as ``ledger``).
LEDGER = Component("ledger", (
    (
        """CREATE TABLE {schema}.ledger_events (
            seq BIGINT PRIMARY KEY, kind TEXT NOT NULL, gsp TEXT NOT NULL, environment TEXT NOT NULL,
            gstin TEXT, username TEXT, at TIMESTAMPTZ NOT NULL, txn TEXT, ip_usr TEXT, outcome TEXT NOT NULL,
            detail TEXT, expires_at TIMESTAMPTZ, recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
        "CREATE INDEX ledger_events_gstin ON {schema}.ledger_events (gstin, seq)",
        """CREATE FUNCTION {schema}.ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               RAISE EXCEPTION 'the consent ledger is append-only' USING ERRCODE = 'restrict_violation';
           END $$""",
        """CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON {schema}.ledger_events
           FOR EACH ROW EXECUTE FUNCTION {schema}.ledger_refuse()""",
        """CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON {schema}.ledger_events
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.ledger_refuse()""",
    ),
), "consent ledger")  # fmt: skip


def _values_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A stored row's :data:`~gspauth.ledger._chain.COLUMNS` values as hashed (times as ISO text)."""
    return tuple(iso(v) if name in _TIMES else v for name, v in zip(COLUMNS, row, strict=True))


class PostgresLedger:
    """Append-only, hash-chained consent ledger in PostgreSQL.

    :param url: ``postgresql://`` URL (its ``schema`` as for the session store).
    :param migrate: ``auto`` / ``never`` (default: the URL's).
    """

    def __init__(self, url: str | PgUrl, *, migrate: MigrateMode | None = None) -> None:
        self.url = url if isinstance(url, PgUrl) else parse_url(url)
        self._db = Database(self.url, what="consent ledger")
        self._db.ensure(LEDGER, migrate=migrate)

    @property
    def path(self) -> str:
        """Where the ledger is, for messages (the redacted URL and schema)."""
        return f"{self.url.display} (schema {self.url.schema})"

    def close(self) -> None:
        """Close this process's connections (reopened if the ledger is used again)."""
        self._db.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresLedger({self.url.display!r}, schema={self.url.schema!r})"

    # -- writing ------------------------------------------------------------------------------

    def record(self, event: SessionEvent) -> int:
        """Append ``event``; return its sequence number. Free-text notes are scrubbed of token-like strings."""
        values = event_values(event)
        typed = tuple(event.at if name == "at" else event.expires_at if name == "expires_at" else v
                      for name, v in zip(COLUMNS, values, strict=True))
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._db.lock_key("ledger"),))
            last = conn.execute(self._db.sql("SELECT seq, hash FROM {schema}.ledger_events ORDER BY seq DESC LIMIT 1")
                                ).fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
            conn.execute(self._db.sql(
                f"INSERT INTO {{schema}}.ledger_events (seq, {', '.join(COLUMNS)}, prev_hash, hash) "
                f"VALUES ({', '.join(['%s'] * (len(COLUMNS) + 3))})"),
                (seq, *typed, prev, row_hash(prev, values)))
        return seq

    def register(self, pm: Any, name: str = "gspauth.ledger") -> LedgerObserver:
        """Register a :class:`~gspauth.ledger.LedgerObserver` for this ledger on plugin manager ``pm``."""
        from gspauth.ledger import LedgerObserver

        observer = LedgerObserver(self)
        pm.register(observer, name=name)
        return observer

    # -- reading ------------------------------------------------------------------------------

    def query(self, gstin: str | None = None, gsp: str | None = None, kind: str | None = None,
              since: _dt.datetime | None = None, limit: int | None = None) -> list[SessionEvent]:
        """Events matching every given filter, oldest first (``limit``: the most recent N)."""
        clause, params = where(gstin, gsp, kind, since, mark="%s")
        sql = f"SELECT {', '.join(COLUMNS)} FROM {{schema}}.ledger_events{clause} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        rows = self._db.read(sql, params)
        return [event_of(_values_of(r)) for r in reversed(rows)]

    def count(self, **filters: Any) -> int:
        clause, params = where(filters.get("gstin"), filters.get("gsp"), filters.get("kind"), filters.get("since"),
                               mark="%s")
        return int(self._db.read(f"SELECT count(*) FROM {{schema}}.ledger_events{clause}", params)[0][0])

    def verify(self) -> int:
        """Check the hash chain; return the number of rows. :raises LedgerTampered: naming the first bad row."""
        prev, n = GENESIS, 0
        with self._db.transaction() as conn, conn.cursor(name="gspauth_ledger_verify") as cur:
            cur.itersize = 5000  # streamed: a long ledger is never held in memory whole
            cur.execute(self._db.sql(f"SELECT seq, {', '.join(COLUMNS)}, prev_hash, hash "
                                     "FROM {schema}.ledger_events ORDER BY seq"))
            for row in cur:
                seq, values, stored_prev, stored = row[0], _values_of(tuple(row[1:-2])), row[-2], row[-1]
                if seq != n + 1 or stored_prev != prev or row_hash(prev, values) != stored:
                    raise LedgerTampered(f"consent ledger {self.path}: row {seq} does not match the hash chain")
                prev = stored
                n += 1
        return n
