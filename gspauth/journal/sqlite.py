"""The default filing journal: one SQLite file (WAL, mode 0600) shared by threads and processes.

Each GSTIN is filed by one process at a time: :meth:`SQLiteJournal.claim` takes a lock file in
``<journal>.locks/`` (released by the OS if the process dies), so several filer processes may
share one journal as long as they file different GSTINs.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from gspauth.journal import ChunkRow, ChunkState, Classified, InvoiceRow, InvoiceState, RecordKey
from gspauth.journal._classify import Verdict
from gspauth.locks import ExclusiveFile

__all__ = ["SCHEMA_VERSION", "SQLiteJournal"]

#: The journal file's schema version (a file of another version is refused, never rewritten).
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION})",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, ended_at TEXT,
        description TEXT NOT NULL, outcome TEXT)""",
    """CREATE TABLE invoices (
        gstin TEXT NOT NULL, fp TEXT NOT NULL, section TEXT NOT NULL, ident TEXT NOT NULL,
        sha256 TEXT NOT NULL, state TEXT NOT NULL, chunk_txn TEXT, reference_id TEXT, error_code TEXT,
        error_message TEXT, source TEXT, line INTEGER, seen_run INTEGER, updated_at TEXT NOT NULL,
        PRIMARY KEY (gstin, fp, section, ident)) WITHOUT ROWID""",
    "CREATE INDEX invoices_by_chunk ON invoices (chunk_txn)",
    # No index on state: every invoice changes state three or four times (a quarter of the
    # journal's write cost), while per-GSTIN counts use the primary key's prefix and the
    # all-GSTIN views (status, export) scan once.
    """CREATE TABLE chunks (
        txn TEXT PRIMARY KEY, gstin TEXT NOT NULL, fp TEXT NOT NULL, section TEXT NOT NULL,
        action TEXT NOT NULL, sha256 TEXT NOT NULL, count INTEGER NOT NULL, size INTEGER NOT NULL,
        state TEXT NOT NULL, reference_id TEXT, status_cd TEXT, error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX chunks_by_state ON chunks (state, gstin)",
    "CREATE TABLE parked (gstin TEXT PRIMARY KEY, reason TEXT NOT NULL, at TEXT NOT NULL)",
)
_INVOICE_COLUMNS = ("gstin", "fp", "section", "ident", "sha256", "state", "chunk_txn", "reference_id", "error_code",
                    "error_message", "source", "line")
_CHUNK_COLUMNS = ("txn", "gstin", "fp", "section", "action", "sha256", "count", "size", "state", "reference_id",
                  "status_cd", "error", "attempts", "updated_at")
# A record seen again keeps its state (and GSTN's error) when its content is unchanged and it is
# not a rejection being retried (the three ``?`` after the values: retry_rejected).
_SAME = "invoices.sha256 = excluded.sha256 AND NOT (invoices.state = 'rejected' AND ?)"
_UPSERT_SEEN = (
    "INSERT INTO invoices (gstin, fp, section, ident, sha256, state, source, line, seen_run, updated_at) "
    "SELECT gstin, fp, section, ident, sha256, 'pending', ?, line, ?, ? FROM temp.batch WHERE true "
    "ON CONFLICT (gstin, fp, section, ident) DO UPDATE SET "
    f"state = CASE WHEN {_SAME} THEN invoices.state ELSE 'pending' END, "
    f"error_code = CASE WHEN {_SAME} THEN invoices.error_code ELSE NULL END, "
    f"error_message = CASE WHEN {_SAME} THEN invoices.error_message ELSE NULL END, "
    "sha256 = excluded.sha256, source = excluded.source, line = excluded.line, "
    "seen_run = excluded.seen_run, updated_at = excluded.updated_at"
)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


class SQLiteJournal:
    """The :class:`~gspauth.journal.FilingJournal` in one SQLite file.

    :param path: the journal file (created 0600 if missing). Keep it for the life of the
        returns it records: it is what makes a re-run safe.
    :raises DamagedFile: the file exists but is not a usable journal (nothing is overwritten).
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0) -> None:
        from gspauth._sqlite import SQLiteFile
        from gspauth.config import ensure_private_dir

        self.path = Path(path).expanduser()
        # synchronous=FULL: an acknowledged chunk survives a power cut (an unrecorded one would
        # only be re-sent with its txn, but its status would be polled for nothing).
        self._db = SQLiteFile(self.path, what="filing journal", schema=_SCHEMA,
                              expect=("schema_version", "invoices", "chunks"), busy_timeout=busy_timeout,
                              pragmas=("PRAGMA synchronous = FULL",))
        self.lock_dir = self.path.with_name(self.path.name + ".locks")
        ensure_private_dir(self.lock_dir)
        self._claims: dict[str, ExclusiveFile] = {}
        self._claims_guard = threading.Lock()
        version = self._db.read("SELECT max(version) FROM schema_version")[0][0]
        if version != SCHEMA_VERSION:
            from gspauth.errors import ConfigurationError

            raise ConfigurationError(f"filing journal {self.path} has schema version {version}; this gspauth writes "
                                     f"{SCHEMA_VERSION}: use the gspauth that wrote it, or a new journal")

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"

    # -- claims and runs --------------------------------------------------------------------------

    def claim(self, gstin: str) -> bool:
        with self._claims_guard:
            lock = self._claims.get(gstin)
            if lock is None:
                lock = self._claims[gstin] = ExclusiveFile(self.lock_dir / f"{gstin}.lock")
            return lock.acquire()

    def release(self, gstin: str) -> None:
        with self._claims_guard:
            lock = self._claims.pop(gstin, None)
        if lock is not None:
            lock.release()

    def begin_run(self, description: Mapping[str, object]) -> int:
        with self._db.transaction() as db:
            cur = db.execute("INSERT INTO runs (started_at, description) VALUES (?, ?)",
                             (_now(), json.dumps(description, default=str)))
            return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, outcome: str) -> None:
        with self._db.transaction() as db:
            db.execute("UPDATE runs SET ended_at = ?, outcome = ? WHERE id = ?", (_now(), outcome, run_id))

    # -- classification -------------------------------------------------------------------------

    def classify(self, run_id: int, source: str, records: Sequence[RecordKey], *,
                 retry_rejected: bool = False, write: bool = True) -> Classified:
        n = len(records)
        if n == 0:
            return Classified(b"")
        verdict = Verdict(records, run_id, retry_rejected=retry_rejected)
        with self._db.transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS batch (idx INTEGER PRIMARY KEY, gstin TEXT, fp TEXT, "
                       "section TEXT, ident TEXT, sha256 TEXT, line INTEGER)")
            db.execute("DELETE FROM temp.batch")
            db.executemany("INSERT INTO temp.batch VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ((i, *r) for i, r in enumerate(records)))
            verdict.known(db.execute(
                "SELECT b.idx, i.sha256, i.state, i.seen_run FROM temp.batch b JOIN invoices i "
                "ON i.gstin = b.gstin AND i.fp = b.fp AND i.section = b.section AND i.ident = b.ident").fetchall())
            if write:
                db.execute("DELETE FROM temp.batch WHERE idx IN (SELECT value FROM json_each(?))",
                           (json.dumps(sorted(verdict.duplicates)),))
                # New content (or a retried rejection) starts again as pending; the same content
                # keeps its state (in doubt stays in doubt: it is re-sent).
                db.execute(_UPSERT_SEEN, (source, run_id, _now(), retry_rejected, retry_rejected, retry_rejected))
            db.execute("DELETE FROM temp.batch")
        return verdict.result()

    # -- chunks ---------------------------------------------------------------------------------------

    def plan_chunk(self, txn: str, gstin: str, fp: str, section: str, action: str, sha256: str, size: int,
                   records: Sequence[tuple[str, str]]) -> ChunkState:
        now = _now()
        with self._db.transaction() as db:
            row = db.execute("SELECT state FROM chunks WHERE txn = ?", (txn,)).fetchone()
            if row is None:
                db.execute("INSERT INTO chunks (txn, gstin, fp, section, action, sha256, count, size, state, "
                           "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                           (txn, gstin, fp, section, action, sha256, len(records), size, now, now))
            db.executemany("UPDATE invoices SET chunk_txn = ?, updated_at = ? "
                           "WHERE gstin = ? AND fp = ? AND section = ? AND ident = ?",
                           ((txn, now, gstin, fp, section, ident) for ident, _ in records))
        return ChunkState.PLANNED if row is None else ChunkState(row[0])

    def _chunk_and_invoices(self, chunk_sql: str, chunk_args: tuple[object, ...], invoice_sql: str,
                            invoice_args: tuple[object, ...]) -> None:
        with self._db.transaction() as db:
            db.execute(chunk_sql, chunk_args)
            db.execute(invoice_sql, invoice_args)

    def mark_sent(self, txn: str) -> None:
        now = _now()
        self._chunk_and_invoices(
            "UPDATE chunks SET state = 'sent', attempts = attempts + 1, error = NULL, updated_at = ? WHERE txn = ?",
            (now, txn),
            "UPDATE invoices SET state = 'sent', updated_at = ? WHERE chunk_txn = ? AND state IN ('pending', 'sent')",
            (now, txn))

    def mark_saved(self, txn: str, reference_id: str) -> None:
        now = _now()
        self._chunk_and_invoices(
            "UPDATE chunks SET state = 'saved', reference_id = ?, error = NULL, updated_at = ? WHERE txn = ?",
            (reference_id, now, txn),
            "UPDATE invoices SET state = 'saved', reference_id = ?, updated_at = ? WHERE chunk_txn = ?",
            (reference_id, now, txn))

    def mark_status(self, txn: str, status_cd: str, errors: Mapping[str, tuple[str, str]]) -> None:
        now = _now()
        state = {"P": ChunkState.PROCESSED, "PE": ChunkState.PARTIAL}.get(status_cd, ChunkState.ERROR)
        with self._db.transaction() as db:
            db.execute("UPDATE chunks SET state = ?, status_cd = ?, updated_at = ? WHERE txn = ?",
                       (state.value, status_cd, now, txn))
            db.execute("UPDATE invoices SET state = 'accepted', error_code = NULL, error_message = NULL, "
                       "updated_at = ? WHERE chunk_txn = ?", (now, txn))
            db.executemany("UPDATE invoices SET state = 'rejected', error_code = ?, error_message = ?, updated_at = ? "
                           "WHERE chunk_txn = ? AND ident = ?",
                           ((code, message, now, txn, ident) for ident, (code, message) in errors.items()))

    def mark_failed(self, txn: str, code: str, message: str) -> None:
        now = _now()
        self._chunk_and_invoices(
            "UPDATE chunks SET state = 'failed', error = ?, updated_at = ? WHERE txn = ?", (code, now, txn),
            "UPDATE invoices SET state = 'rejected', error_code = ?, error_message = ?, updated_at = ? "
            "WHERE chunk_txn = ?", (code, message, now, txn))

    def mark_in_doubt(self, txn: str, code: str) -> None:
        with self._db.transaction() as db:
            db.execute("UPDATE chunks SET state = 'sent', error = ?, updated_at = ? WHERE txn = ?", (code, _now(), txn))

    # -- parked GSTINs ------------------------------------------------------------------------------

    def park(self, gstin: str, reason: str) -> None:
        with self._db.transaction() as db:
            db.execute("INSERT INTO parked (gstin, reason, at) VALUES (?, ?, ?) ON CONFLICT (gstin) DO UPDATE SET "
                       "reason = excluded.reason, at = excluded.at", (gstin, reason, _now()))
            db.execute("UPDATE chunks SET state = 'parked', updated_at = ? WHERE gstin = ? AND state = 'planned'",
                       (_now(), gstin))

    def unpark(self, gstin: str) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM parked WHERE gstin = ?", (gstin,))

    def parked(self) -> dict[str, str]:
        return {g: r for g, r in self._db.read("SELECT gstin, reason FROM parked ORDER BY gstin")}

    # -- reading ------------------------------------------------------------------------------------

    def chunks(self, *, states: Iterable[ChunkState] | None = None, gstin: str | None = None) -> list[ChunkRow]:
        where, args = [], []
        if states is not None:
            wanted = [ChunkState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            args += wanted
        if gstin is not None:
            where.append("gstin = ?")
            args.append(gstin)
        sql = f"SELECT {', '.join(_CHUNK_COLUMNS)} FROM chunks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._db.read(sql + " ORDER BY gstin, fp, section, created_at, txn", args)
        return [ChunkRow(txn=r[0], gstin=r[1], fp=r[2], section=r[3], action=r[4], sha256=r[5], count=r[6], size=r[7],
                         state=ChunkState(r[8]), reference_id=r[9], status_cd=r[10], error=r[11], attempts=r[12],
                         updated_at=_dt.datetime.fromisoformat(r[13]) if r[13] else None) for r in rows]

    def invoices(self, *, states: Iterable[InvoiceState] | None = None, gstin: str | None = None,
                 fp: str | None = None) -> Iterator[InvoiceRow]:
        where, args = [], []
        if states is not None:
            wanted = [InvoiceState(s).value for s in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            args += wanted
        for column, value in (("gstin", gstin), ("fp", fp)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        base = f"SELECT {', '.join(_INVOICE_COLUMNS)} FROM invoices"
        if where:
            base += " WHERE " + " AND ".join(where)
        last: tuple[str, str, str, str] | None = None
        while True:  # pages, so a million rows never sit in memory at once
            sql, page_args = base, list(args)
            if last is not None:
                sql += (" AND " if where else " WHERE ") + "(gstin, fp, section, ident) > (?, ?, ?, ?)"
                page_args += list(last)
            rows = self._db.read(sql + " ORDER BY gstin, fp, section, ident LIMIT 5000", page_args)
            for r in rows:
                yield InvoiceRow(r[0], r[1], r[2], r[3], r[4], InvoiceState(r[5]), *r[6:12])
            if len(rows) < 5000:
                return
            last = (rows[-1][0], rows[-1][1], rows[-1][2], rows[-1][3])

    def counts(self, *, gstin: str | None = None) -> dict[str, dict[str, int]]:
        where, args = ("WHERE gstin = ?", [gstin]) if gstin else ("", [])
        invoices = dict(self._db.read(f"SELECT state, count(*) FROM invoices {where} GROUP BY state", args))
        chunks = dict(self._db.read(f"SELECT state, count(*) FROM chunks {where} GROUP BY state", args))
        return {"invoices": {str(k): int(v) for k, v in invoices.items()},
                "chunks": {str(k): int(v) for k, v in chunks.items()}}

    def reset_for_retry(self, *, gstin: str | None = None, rejected: bool = True) -> int:
        where, args = ("AND gstin = ?", (gstin,)) if gstin else ("", ())
        with self._db.transaction() as db:
            cur = db.execute(f"UPDATE invoices SET state = 'pending', chunk_txn = NULL, error_code = NULL, "
                             f"error_message = NULL, updated_at = ? WHERE state = 'rejected' {where}"
                             if rejected else "SELECT 0 WHERE false", (_now(), *args) if rejected else ())
            db.execute(f"UPDATE chunks SET state = 'planned', updated_at = ? "
                       f"WHERE state IN ('failed', 'parked') {where}", (_now(), *args))
            db.execute(f"DELETE FROM parked WHERE true {where}", args)
            return max(0, cur.rowcount)

    def close(self) -> None:
        with self._claims_guard:
            claims, self._claims = list(self._claims.values()), {}
        for lock in claims:
            lock.release()
        self._db.close()

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
