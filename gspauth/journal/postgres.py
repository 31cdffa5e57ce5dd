"""The filing journal in PostgreSQL: one journal shared by filers on many machines.

Selected by a URL (``gspauth file --journal postgresql://…``, :func:`gspauth.journal.open_journal`);
the URL forms, the schema setting, migrations and connection pooling are those of the session
store (see ``docs/postgres.md``). The semantics are :class:`~gspauth.journal.sqlite.SQLiteJournal`'s,
statement for statement; what differs is how filers exclude each other:

* **Claims** are PostgreSQL session-level advisory locks, one per GSTIN, held on one dedicated
  connection per journal object. A filer that dies — a killed process, a lost machine — loses its
  connection and with it its claims, so another filer can take the GSTIN over at once.
* **A lost claim stops the filer.** Before a chunk is marked sent, the claim's connection is
  checked; if it is gone (the server restarted, the network dropped it) the GSTIN's claim may
  belong to someone else now, and :meth:`PostgresJournal.mark_sent` raises
  :class:`~gspauth.errors.LockLost` instead of sending. (A chunk's ``txn`` is derived from its
  content and RETSAVE replaces invoices by number, so even two filers sending the same chunk
  would not file anything twice; the check keeps the journal's record of who sent what honest.)
* **Lock order.** Every statement touching many invoices touches them in key order, so two
  filers whose inputs overlap (a misconfiguration the claims normally prevent) wait for each
  other instead of deadlocking.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from gspauth._pg import Component
from gspauth.errors import LockLost
from gspauth.journal import ChunkRow, ChunkState, Classified, InvoiceRow, InvoiceState, RecordKey
from gspauth.journal._classify import Verdict

if TYPE_CHECKING:
    from gspauth._pg import Connection, Database, PgUrl

__all__ = ["JOURNAL", "PostgresJournal"]

_STATES = ", ".join(f"'{s.value}'" for s in InvoiceState)
_CHUNK_STATES = ", ".join(f"'{s.value}'" for s in ChunkState)

# migrations[i] takes the journal from version i to i + 1. Never edit a released one: append.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE {schema}.journal_runs (
            id BIGSERIAL PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), ended_at TIMESTAMPTZ,
            description JSONB NOT NULL, outcome TEXT)""",
        f"""CREATE TABLE {{schema}}.journal_invoices (
            gstin TEXT NOT NULL, fp TEXT NOT NULL, section TEXT NOT NULL, ident TEXT NOT NULL,
            sha256 TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ({_STATES})), chunk_txn TEXT,
            reference_id TEXT, error_code TEXT, error_message TEXT, source TEXT, line INTEGER,
            seen_run BIGINT, updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (gstin, fp, section, ident))""",
        "CREATE INDEX journal_invoices_by_chunk ON {schema}.journal_invoices (chunk_txn)",
        f"""CREATE TABLE {{schema}}.journal_chunks (
            txn TEXT PRIMARY KEY, gstin TEXT NOT NULL, fp TEXT NOT NULL, section TEXT NOT NULL,
            action TEXT NOT NULL, sha256 TEXT NOT NULL, count INTEGER NOT NULL, size INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({_CHUNK_STATES})), reference_id TEXT, status_cd TEXT, error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
        "CREATE INDEX journal_chunks_by_state ON {schema}.journal_chunks (state, gstin)",
        """CREATE TABLE {schema}.journal_parked (
            gstin TEXT PRIMARY KEY, reason TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())""",
    ),
)

# A record seen again keeps its state (and GSTN's error) when its content is unchanged and it is
# not a rejection being retried; anything else starts again as pending.
_SAME = "i.sha256 = EXCLUDED.sha256 AND NOT (i.state = 'rejected' AND %(retry)s)"
_UPSERT_SEEN = (
    "INSERT INTO {schema}.journal_invoices AS i (gstin, fp, section, ident, sha256, state, source, line, seen_run) "
    "SELECT gstin, fp, section, ident, sha256, 'pending', %(source)s, line, %(run)s FROM pg_temp.gspauth_batch "
    "WHERE NOT (idx = ANY(%(duplicates)s)) ORDER BY gstin, fp, section, ident "
    "ON CONFLICT (gstin, fp, section, ident) DO UPDATE SET "
    f"state = CASE WHEN {_SAME} THEN i.state ELSE 'pending' END, "
    f"error_code = CASE WHEN {_SAME} THEN i.error_code ELSE NULL END, "
    f"error_message = CASE WHEN {_SAME} THEN i.error_message ELSE NULL END, "
    "sha256 = EXCLUDED.sha256, source = EXCLUDED.source, line = EXCLUDED.line, "
    "seen_run = EXCLUDED.seen_run, updated_at = now()"
)
_INVOICE_COLUMNS = ("gstin", "fp", "section", "ident", "sha256", "state", "chunk_txn", "reference_id", "error_code",
                    "error_message", "source", "line")
_CHUNK_COLUMNS = ("txn", "gstin", "fp", "section", "action", "sha256", "count", "size", "state", "reference_id",
                  "status_cd", "error", "attempts", "updated_at")
_PAGE = 5000


#: The filing journal's tables (``gspauth db status`` shows its version as ``journal``).
JOURNAL = Component("journal", _MIGRATIONS, what="filing journal")


class PostgresJournal:
    """The :class:`~gspauth.journal.FilingJournal` in a PostgreSQL schema.

    :param url: a ``postgresql://`` URL (see :mod:`gspauth._pg` for gspauth's own parameters:
        ``schema``, ``migrate``, ``pool_max``, ``pool_timeout``).
    :raises ConfigurationError: the schema is newer than this gspauth, or older with migration off.
    :raises Unreachable: the server cannot be reached.
    """

    def __init__(self, url: str | PgUrl) -> None:
        from gspauth._pg import Database

        self._db: Database = Database(url, what="filing journal")
        self.schema_version = self._db.ensure(JOURNAL)
        self._claims: dict[str, int] = {}
        self._claim_conn: Connection | None = None
        self._claims_guard = threading.Lock()
        self._sql: dict[str, str] = {}

    @property
    def url(self) -> str:
        """The journal's URL without its password."""
        return self._db.url.display

    def __repr__(self) -> str:
        return f"PostgresJournal({self._db.url.display!r}, schema={self._db.schema!r})"

    def _q(self, text: str) -> str:
        sql = self._sql.get(text)
        if sql is None:
            sql = self._sql[text] = self._db.sql(text)
        return sql

    # -- claims and runs --------------------------------------------------------------------------

    def claim(self, gstin: str) -> bool:
        from gspauth._pg import translated

        with self._claims_guard:
            if gstin in self._claims:
                return True
            with translated(self._db.url):
                if self._claim_conn is None or self._claim_conn.closed:
                    self._claim_conn = self._db.connect()
                key = self._db.lock_key("journal-claim", gstin)
                row = self._claim_conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                return False
            self._claims[gstin] = key
            return True

    def release(self, gstin: str) -> None:
        from gspauth._pg import translated

        with self._claims_guard:
            key = self._claims.pop(gstin, None)
            if key is None or self._claim_conn is None or self._claim_conn.closed:
                return
            with translated(self._db.url):
                self._claim_conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _check_claim(self, gstin: str) -> None:
        """Raise :class:`LockLost` if this journal claimed ``gstin`` and its claim connection died."""
        with self._claims_guard:
            if gstin not in self._claims:
                return
            conn = self._claim_conn
            alive = conn is not None and not conn.closed
            if alive:
                assert conn is not None
                try:
                    conn.execute("SELECT 1")
                except Exception:  # noqa: BLE001 - any failure means the session (and its locks) may be gone
                    alive = False
            if not alive:
                lost = sorted(self._claims)
                self._claims.clear()
                if conn is not None:
                    conn.close()
                self._claim_conn = None
                raise LockLost(f"the filing claim on GSTIN {', '.join(lost)} was lost with its database connection; "
                               "another filer may hold it now, so this one stops sending for it",
                               hint="run `gspauth file` again: chunks already sent are re-sent with their txn")

    def begin_run(self, description: Mapping[str, object]) -> int:
        with self._db.transaction() as db:
            row = db.execute(self._q("INSERT INTO {schema}.journal_runs (description) VALUES (%s) RETURNING id"),
                             (json.dumps(description, default=str),)).fetchone()
        assert row is not None
        return int(row[0])

    def end_run(self, run_id: int, outcome: str) -> None:
        with self._db.transaction() as db:
            db.execute(self._q("UPDATE {schema}.journal_runs SET ended_at = now(), outcome = %s WHERE id = %s"),
                       (outcome, run_id))

    # -- classification -------------------------------------------------------------------------

    def classify(self, run_id: int, source: str, records: Sequence[RecordKey], *,
                 retry_rejected: bool = False, write: bool = True) -> Classified:
        n = len(records)
        if n == 0:
            return Classified(b"")
        verdict = Verdict(records, run_id, retry_rejected=retry_rejected)
        with self._db.transaction() as db:
            db.execute("CREATE TEMP TABLE gspauth_batch (idx INTEGER PRIMARY KEY, gstin TEXT, fp TEXT, section TEXT, "
                       "ident TEXT, sha256 TEXT, line INTEGER) ON COMMIT DROP")
            with db.cursor().copy("COPY pg_temp.gspauth_batch FROM STDIN") as copy:
                for i, r in enumerate(records):
                    copy.write_row((i, *r))
            verdict.known(db.execute(self._q(
                "SELECT b.idx, i.sha256, i.state, i.seen_run FROM pg_temp.gspauth_batch b "
                "JOIN {schema}.journal_invoices i USING (gstin, fp, section, ident)")).fetchall())
            if write:
                db.execute(self._q(_UPSERT_SEEN), {"source": source, "run": run_id, "retry": retry_rejected,
                                                   "duplicates": sorted(verdict.duplicates)})
        return verdict.result()

    # -- chunks ---------------------------------------------------------------------------------------

    def plan_chunk(self, txn: str, gstin: str, fp: str, section: str, action: str, sha256: str, size: int,
                   records: Sequence[tuple[str, str]]) -> ChunkState:
        with self._db.transaction() as db:
            row = db.execute(self._q("SELECT state FROM {schema}.journal_chunks WHERE txn = %s"), (txn,)).fetchone()
            if row is None:
                db.execute(self._q(
                    "INSERT INTO {schema}.journal_chunks (txn, gstin, fp, section, action, sha256, count, size, state) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'planned') ON CONFLICT (txn) DO NOTHING"),
                    (txn, gstin, fp, section, action, sha256, len(records), size))
            db.execute(self._q(
                "UPDATE {schema}.journal_invoices SET chunk_txn = %s, updated_at = now() "
                "WHERE gstin = %s AND fp = %s AND section = %s AND ident = ANY(%s)"),
                (txn, gstin, fp, section, sorted(ident for ident, _ in records)))
        return ChunkState.PLANNED if row is None else ChunkState(row[0])

    def _chunk_and_invoices(self, chunk_sql: str, chunk_args: Sequence[object], invoice_sql: str,
                            invoice_args: Sequence[object]) -> None:
        with self._db.transaction() as db:
            db.execute(self._q(chunk_sql), chunk_args)
            db.execute(self._q(invoice_sql), invoice_args)

    def mark_sent(self, txn: str) -> None:
        """The chunk is about to be sent (in doubt until acknowledged).

        :raises LockLost: this journal claimed the chunk's GSTIN and the claim is gone.
        """
        with self._db.transaction() as db:
            row = db.execute(self._q(
                "UPDATE {schema}.journal_chunks SET state = 'sent', attempts = attempts + 1, error = NULL, "
                "updated_at = now() WHERE txn = %s RETURNING gstin"), (txn,)).fetchone()
            if row is not None:
                self._check_claim(row[0])  # before the commit: a lost claim records nothing
            db.execute(self._q(
                "UPDATE {schema}.journal_invoices SET state = 'sent', updated_at = now() "
                "WHERE chunk_txn = %s AND state IN ('pending', 'sent')"), (txn,))

    def mark_saved(self, txn: str, reference_id: str) -> None:
        self._chunk_and_invoices(
            "UPDATE {schema}.journal_chunks SET state = 'saved', reference_id = %s, error = NULL, updated_at = now() "
            "WHERE txn = %s", (reference_id, txn),
            "UPDATE {schema}.journal_invoices SET state = 'saved', reference_id = %s, updated_at = now() "
            "WHERE chunk_txn = %s", (reference_id, txn))

    def mark_status(self, txn: str, status_cd: str, errors: Mapping[str, tuple[str, str]]) -> None:
        state = {"P": ChunkState.PROCESSED, "PE": ChunkState.PARTIAL}.get(status_cd, ChunkState.ERROR)
        with self._db.transaction() as db:
            db.execute(self._q("UPDATE {schema}.journal_chunks SET state = %s, status_cd = %s, updated_at = now() "
                               "WHERE txn = %s"), (state.value, status_cd, txn))
            db.execute(self._q("UPDATE {schema}.journal_invoices SET state = 'accepted', error_code = NULL, "
                               "error_message = NULL, updated_at = now() WHERE chunk_txn = %s"), (txn,))
            if errors:
                idents = sorted(errors)
                db.execute(self._q(
                    "UPDATE {schema}.journal_invoices AS i SET state = 'rejected', error_code = e.code, "
                    "error_message = e.message, updated_at = now() "
                    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS e(ident, code, message) "
                    "WHERE i.chunk_txn = %s AND i.ident = e.ident"),
                    (idents, [errors[k][0] for k in idents], [errors[k][1] for k in idents], txn))

    def mark_failed(self, txn: str, code: str, message: str) -> None:
        self._chunk_and_invoices(
            "UPDATE {schema}.journal_chunks SET state = 'failed', error = %s, updated_at = now() WHERE txn = %s",
            (code, txn),
            "UPDATE {schema}.journal_invoices SET state = 'rejected', error_code = %s, error_message = %s, "
            "updated_at = now() WHERE chunk_txn = %s", (code, message, txn))

    def mark_in_doubt(self, txn: str, code: str) -> None:
        with self._db.transaction() as db:
            db.execute(self._q("UPDATE {schema}.journal_chunks SET state = 'sent', error = %s, updated_at = now() "
                               "WHERE txn = %s"), (code, txn))

    # -- parked GSTINs ------------------------------------------------------------------------------

    def park(self, gstin: str, reason: str) -> None:
        with self._db.transaction() as db:
            db.execute(self._q("INSERT INTO {schema}.journal_parked (gstin, reason) VALUES (%s, %s) "
                               "ON CONFLICT (gstin) DO UPDATE SET reason = EXCLUDED.reason, at = now()"),
                       (gstin, reason))
            db.execute(self._q("UPDATE {schema}.journal_chunks SET state = 'parked', updated_at = now() "
                               "WHERE gstin = %s AND state = 'planned'"), (gstin,))

    def unpark(self, gstin: str) -> None:
        with self._db.transaction() as db:
            db.execute(self._q("DELETE FROM {schema}.journal_parked WHERE gstin = %s"), (gstin,))

    def parked(self) -> dict[str, str]:
        return {g: r for g, r in self._db.read("SELECT gstin, reason FROM {schema}.journal_parked ORDER BY gstin")}

    # -- reading ------------------------------------------------------------------------------------

    def chunks(self, *, states: Iterable[ChunkState] | None = None, gstin: str | None = None) -> list[ChunkRow]:
        where, args = _filters(None if states is None else [ChunkState(s).value for s in states], gstin, None)
        rows = self._db.read(f"SELECT {', '.join(_CHUNK_COLUMNS)} FROM {{schema}}.journal_chunks {where} "
                             "ORDER BY gstin, fp, section, created_at, txn", args)
        return [ChunkRow(txn=r[0], gstin=r[1], fp=r[2], section=r[3], action=r[4], sha256=r[5], count=r[6], size=r[7],
                         state=ChunkState(r[8]), reference_id=r[9], status_cd=r[10], error=r[11], attempts=r[12],
                         updated_at=r[13]) for r in rows]

    def invoices(self, *, states: Iterable[InvoiceState] | None = None, gstin: str | None = None,
                 fp: str | None = None) -> Iterator[InvoiceRow]:
        where, args = _filters(None if states is None else [InvoiceState(s).value for s in states], gstin, fp)
        base = f"SELECT {', '.join(_INVOICE_COLUMNS)} FROM {{schema}}.journal_invoices {where}"
        last: tuple[str, str, str, str] | None = None
        while True:  # keyset pages, so a million rows never sit in memory at once
            sql, page_args = base, list(args)
            if last is not None:
                sql += (" AND " if where else " WHERE ") + "(gstin, fp, section, ident) > (%s, %s, %s, %s)"
                page_args += list(last)
            rows = self._db.read(sql + f" ORDER BY gstin, fp, section, ident LIMIT {_PAGE}", page_args)
            for r in rows:
                yield InvoiceRow(r[0], r[1], r[2], r[3], r[4], InvoiceState(r[5]), *r[6:12])
            if len(rows) < _PAGE:
                return
            last = (rows[-1][0], rows[-1][1], rows[-1][2], rows[-1][3])

    def counts(self, *, gstin: str | None = None) -> dict[str, dict[str, int]]:
        where, args = _filters(None, gstin, None)
        with self._db.transaction() as db:  # one snapshot for both tables
            invoices = db.execute(self._q(f"SELECT state, count(*) FROM {{schema}}.journal_invoices {where} "
                                          "GROUP BY state"), args).fetchall()
            chunks = db.execute(self._q(f"SELECT state, count(*) FROM {{schema}}.journal_chunks {where} "
                                        "GROUP BY state"), args).fetchall()
        return {"invoices": {str(k): int(v) for k, v in invoices}, "chunks": {str(k): int(v) for k, v in chunks}}

    def reset_for_retry(self, *, gstin: str | None = None, rejected: bool = True) -> int:
        extra, args = ("AND gstin = %s", [gstin]) if gstin else ("", [])
        count = 0
        with self._db.transaction() as db:
            if rejected:
                cur = db.execute(self._q(
                    "UPDATE {schema}.journal_invoices SET state = 'pending', chunk_txn = NULL, error_code = NULL, "
                    f"error_message = NULL, updated_at = now() WHERE state = 'rejected' {extra}"), args)
                count = max(0, cur.rowcount)
            db.execute(self._q("UPDATE {schema}.journal_chunks SET state = 'planned', updated_at = now() "
                               f"WHERE state IN ('failed', 'parked') {extra}"), args)
            db.execute(self._q(f"DELETE FROM {{schema}}.journal_parked WHERE true {extra}"), args)
        return count

    def close(self) -> None:
        """Give back every claim and close this process's connections."""
        with self._claims_guard:
            conn, self._claim_conn = self._claim_conn, None
            self._claims.clear()
        if conn is not None and not conn.closed:
            conn.close()  # ends the session: its advisory locks go with it
        self._db.close()

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filters(states: list[str] | None, gstin: str | None, fp: str | None) -> tuple[str, list[object]]:
    where: list[str] = []
    args: list[object] = []
    if states is not None:
        where.append("state = ANY(%s)")
        args.append(states)
    for column, value in (("gstin", gstin), ("fp", fp)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    return ("WHERE " + " AND ".join(where) if where else ""), args
