"""SQLite persistence of the emulator (WAL in the state directory, or ``:memory:``).

Kept across a restart: GSTN keys/certificates, the taxpayer registry, Vayana ASPs,
sessions (so a restarted emulator still honours its tokens), digests of dead tokens
with the reason they died (so a revoked token still gets a clear error), saved return
data with its document-number / counterparty index, save receipts (reference ids, status,
error report), the per-GSTIN ``txn`` idempotency index, the GSTIN registry's cancelled and
unregistered entries, generated GSTR-2B statements and a start counter (a seeded emulator
restarted on its state draws fresh identifiers).
Not kept: pending OTPs, FILEDET download tokens, statistics, fault settings.

All access goes through one connection guarded by one lock; statements are short.
The file and its WAL/SHM companions are created mode 0600.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

__all__ = ["Finish", "Row", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gstn_keys (
    idx INTEGER PRIMARY KEY, private_pem BLOB NOT NULL, cert_der BLOB NOT NULL, accepted_until TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taxpayers (
    gstin TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vayana_asps (clientid TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    gstin TEXT NOT NULL, period TEXT NOT NULL, section TEXT NOT NULL, rkey TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (gstin, period, section, rkey)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS saves (
    reference_id TEXT PRIMARY KEY, gstin TEXT NOT NULL, period TEXT NOT NULL, txn TEXT,
    action TEXT NOT NULL, payload_sha TEXT NOT NULL, created_at REAL NOT NULL,
    status TEXT NOT NULL, error_report TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS saves_txn ON saves (gstin, txn) WHERE txn IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_tokens (digest TEXT PRIMARY KEY, why TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS return_state (
    gstin TEXT NOT NULL, period TEXT NOT NULL, form TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (gstin, period, form));
CREATE TABLE IF NOT EXISTS doc_index (
    gstin TEXT NOT NULL, period TEXT NOT NULL, section TEXT NOT NULL, rkey TEXT NOT NULL,
    fy TEXT NOT NULL, kind TEXT, docnum TEXT, ctin TEXT,
    PRIMARY KEY (gstin, period, section, rkey)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_index_number ON doc_index (gstin, fy, kind, docnum) WHERE kind IS NOT NULL;
CREATE INDEX IF NOT EXISTS doc_index_ctin ON doc_index (ctin, period, section) WHERE ctin IS NOT NULL;
CREATE TABLE IF NOT EXISTS gstin_status (gstin TEXT PRIMARY KEY, status TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gstr2b (
    gstin TEXT NOT NULL, period TEXT NOT NULL, generated_at REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (gstin, period));
"""

#: Sections indexed in ``doc_index`` (document numbers, counterparties): see :mod:`.gstr1`.
_INDEXED_SECTIONS = ("b2b", "b2cl", "exp", "cdnr", "cdnur", "b2ba", "cdnra")


class Row(NamedTuple):
    """One record to store, with what ``doc_index`` keeps about it."""

    section: str
    rkey: str
    data: str
    kind: str | None = None
    docnum: str | None = None
    ctin: str | None = None


#: ``finish(duplicates)`` → ``(status, error_report JSON or None)``; ``duplicates`` are
#: ``(index into rows, the conflicting record's period)``.
Finish = Callable[[list[tuple[int, str]]], tuple[str, "str | None"]]


class Store:
    """Saved GSTR-1 records and the document-number index, in SQLite (in memory without a path)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        if path is not None:
            # SQLite creates the -wal / -shm files with the mode of the database file.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._backfill_doc_index()

    def _backfill_doc_index(self) -> None:
        """Index the records of a state written before ``doc_index`` existed (once)."""
        from gspauth.emulator.gstr1 import DOC_KIND, FLAT_SECTIONS, GROUPED_SECTIONS, financial_year

        marks = ", ".join("?" * len(_INDEXED_SECTIONS))
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM doc_index LIMIT 1").fetchone() is not None:
                return
            rows = db.execute(f"SELECT gstin, period, section, rkey, data FROM records "
                              f"WHERE section IN ({marks})", _INDEXED_SECTIONS).fetchall()
            out = []
            for gstin, period, section, rkey, data in rows:
                kind = DOC_KIND.get(section)
                if section in FLAT_SECTIONS:
                    docnum, ctin = rkey, None
                else:
                    group_key, list_key, id_key = GROUPED_SECTIONS[section]
                    rec = json.loads(data)
                    docnum = str(rec[list_key][id_key])
                    ctin = str(rec[group_key]) if group_key == "ctin" else None
                out.append((gstin, period, section, rkey, financial_year(period), kind,
                            docnum.upper() if kind else None, ctin))
            db.executemany("INSERT OR REPLACE INTO doc_index VALUES (?, ?, ?, ?, ?, ?, ?, ?)", out)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def execute(self, sql: str, args: Iterable[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, tuple(args))

    # --- keys -------------------------------------------------------------------
    def load_keys(self) -> list[tuple[int, bytes, bytes, str]]:
        rows = self.query("SELECT idx, private_pem, cert_der, accepted_until FROM gstn_keys ORDER BY idx")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def save_key(self, idx: int, private_pem: bytes, cert_der: bytes, accepted_until: str) -> None:
        self.execute("INSERT OR REPLACE INTO gstn_keys VALUES (?, ?, ?, ?)",
                     (idx, private_pem, cert_der, accepted_until))

    # --- JSON blobs -------------------------------------------------------------
    def put_taxpayer(self, gstin: str, username: str, data: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO taxpayers VALUES (?, ?, ?)", (gstin, username, json.dumps(data)))

    def taxpayers(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.query("SELECT data FROM taxpayers ORDER BY gstin")]

    def put_asp(self, clientid: str, data: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO vayana_asps VALUES (?, ?)", (clientid, json.dumps(data)))

    def asps(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.query("SELECT data FROM vayana_asps")]

    def put_session(self, session_id: str, data: dict[str, Any] | None) -> None:
        if data is None:
            self.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        else:
            self.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (session_id, json.dumps(data)))

    def sessions(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.query("SELECT data FROM sessions")]

    def bury_token(self, digest: str, why: str, at: float) -> None:
        self.execute("INSERT OR REPLACE INTO dead_tokens VALUES (?, ?, ?)", (digest, why, at))

    def dead_tokens(self, limit: int) -> list[tuple[str, str]]:
        """The ``limit`` most recent (digest, why), oldest first."""
        rows = self.query("SELECT digest, why FROM dead_tokens ORDER BY at DESC, rowid DESC LIMIT ?", (limit,))
        return [(r[0], r[1]) for r in reversed(rows)]

    def count_start(self) -> int:
        """Count this start; return how many starts this state has seen (1 for a fresh one)."""
        with self.transaction() as db:
            db.execute("INSERT INTO meta VALUES ('starts', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
            row = db.execute("SELECT value FROM meta WHERE key = 'starts'").fetchone()
        return int(row[0])

    # --- returns ----------------------------------------------------------------
    def save_records(
        self, ref: str, gstin: str, period: str, fy: str, txn: str, sha: str, now: float,
        rows: Sequence[Row], deletes: Sequence[tuple[str, str]], finish: Finish, *, unique_numbers: bool = True,
    ) -> tuple[str, str] | str | None:
        """One RETSAVE, processed in one transaction.

        Rows whose document number the supplier already used elsewhere in the financial year
        ``fy`` (another period, or another record of this period) are duplicates when
        ``unique_numbers``; ``finish`` gets them and decides the save's status and report.
        Everything else is upserted (and ``deletes`` removed).

        Returns ``None`` when processed, ``(reference_id, payload_sha)`` of the first save when
        ``txn`` was already used for this GSTIN (nothing stored), or ``"FILED"`` when the
        return is already filed (nothing stored).
        """
        with self.transaction() as db:
            row = db.execute("SELECT reference_id, payload_sha FROM saves WHERE gstin = ? AND txn = ?",
                             (gstin, txn)).fetchone()
            if row is not None:
                return (row[0], row[1])
            if self.return_state_locked(db, gstin, period, "R1") == "FILED":
                return "FILED"
            if deletes:
                db.executemany("DELETE FROM records WHERE gstin = ? AND period = ? AND section = ? AND rkey = ?",
                               [(gstin, period, sec, key) for sec, key in deletes])
                db.executemany("DELETE FROM doc_index WHERE gstin = ? AND period = ? AND section = ? AND rkey = ?",
                               [(gstin, period, sec, key) for sec, key in deletes])
            dups = self._duplicates(db, gstin, period, fy, rows) if unique_numbers else []
            status, report = finish(dups)
            skip = {i for i, _ in dups}
            keep = [r for i, r in enumerate(rows) if i not in skip]
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                           [(gstin, period, r.section, r.rkey, r.data) for r in keep])
            db.executemany("INSERT OR REPLACE INTO doc_index VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(gstin, period, r.section, r.rkey, fy, r.kind, r.docnum, r.ctin)
                            for r in keep if r.section in _INDEXED_SECTIONS])
            db.execute("INSERT INTO saves VALUES (?, ?, ?, ?, 'RETSAVE', ?, ?, ?, ?)",
                       (ref, gstin, period, txn, sha, now, status, report))
        return None

    @staticmethod
    def _duplicates(db: sqlite3.Connection, gstin: str, period: str, fy: str,
                    rows: Sequence[Row]) -> list[tuple[int, str]]:  # fmt: skip
        numbered = [(i, r) for i, r in enumerate(rows) if r.kind is not None and r.docnum is not None]
        if not numbered:
            return []
        # What the financial year already holds under these numbers, in a few batched queries.
        held: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for kind in {r.kind for _, r in numbered}:
            nums = sorted({r.docnum for _, r in numbered if r.kind == kind and r.docnum is not None})
            for at in range(0, len(nums), 500):
                part = nums[at:at + 500]
                marks = ", ".join("?" * len(part))
                for docnum, p, sec, rkey in db.execute(
                        f"SELECT docnum, period, section, rkey FROM doc_index WHERE gstin = ? AND fy = ? "
                        f"AND kind = ? AND docnum IN ({marks})", (gstin, fy, kind, *part)):  # fmt: skip
                    held.setdefault((str(kind), docnum), []).append((p, sec, rkey))
        dups: list[tuple[int, str]] = []
        seen: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, docnum) -> (section, rkey) in this payload
        for i, r in numbered:
            key = (str(r.kind), str(r.docnum))
            mine = (r.section, r.rkey)
            if seen.setdefault(key, mine) != mine:
                dups.append((i, period))
                continue
            other = next((p for p, sec, rk in held.get(key, ()) if (p, sec, rk) != (period, *mine)), None)
            if other is not None:
                dups.append((i, other))
        return dups

    def save_receipt(self, ref: str, gstin: str, period: str, txn: str, sha: str, now: float, status: str,
                     report: str | None) -> tuple[str, str] | str | None:  # fmt: skip
        """A RETSAVE refused as a whole (nothing stored): only its receipt, for RETSTATUS and replays."""
        return self.save_records(ref, gstin, period, "", txn, sha, now, [], [], lambda _: (status, report),
                                 unique_numbers=False)

    def set_return_state(self, ref: str, gstin: str, period: str, action: str, state: str, sha: str,
                         now: float) -> None:  # fmt: skip
        """Record RETSUBMIT / RETFILE: the return's new state and a receipt."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO return_state VALUES (?, ?, 'R1', ?)", (gstin, period, state))
            db.execute("INSERT INTO saves VALUES (?, ?, ?, NULL, ?, ?, ?, 'P', NULL)",
                       (ref, gstin, period, action, sha, now))

    def records(self, gstin: str, period: str, section: str) -> list[tuple[str, str]]:
        rows = self.query(
            "SELECT rkey, data FROM records WHERE gstin = ? AND period = ? AND section = ? ORDER BY rkey",
            (gstin, period, section),
        )
        return [(r[0], r[1]) for r in rows]

    def receipt(self, reference_id: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT reference_id, gstin, period, txn, action, created_at, status, error_report FROM saves "
            "WHERE reference_id = ?", (reference_id,))
        if not rows:
            return None
        r = rows[0]
        return {"reference_id": r[0], "gstin": r[1], "period": r[2], "txn": r[3], "action": r[4],
                "created_at": r[5], "status": r[6], "error_report": json.loads(r[7]) if r[7] else None}

    @staticmethod
    def return_state_locked(db: sqlite3.Connection, gstin: str, period: str, form: str) -> str:
        """A return's state (``"NEW"`` when none is recorded), read inside a :meth:`transaction`."""
        row = db.execute("SELECT state FROM return_state WHERE gstin = ? AND period = ? AND form = ?",
                         (gstin, period, form)).fetchone()
        return row[0] if row else "NEW"

    def filed_at(self, gstin: str, period: str) -> float | None:
        """When GSTR-1 of ``period`` was filed (RETFILE), or ``None`` while it is not."""
        rows = self.query("SELECT r.state, MAX(s.created_at) FROM return_state r LEFT JOIN saves s ON "
                          "s.gstin = r.gstin AND s.period = r.period AND s.action = 'RETFILE' "
                          "WHERE r.gstin = ? AND r.period = ? AND r.form = 'R1'", (gstin, period))
        return rows[0][1] if rows and rows[0][0] == "FILED" else None

    def inward(self, ctin: str, period: str, sections: Sequence[str]) -> list[tuple[str, str, str]]:
        """``(supplier gstin, section, record JSON)`` of every record of ``period`` naming ``ctin``."""
        marks = ", ".join("?" * len(sections))
        rows = self.query(
            f"SELECT r.gstin, r.section, r.data FROM doc_index d JOIN records r ON r.gstin = d.gstin AND "
            f"r.period = d.period AND r.section = d.section AND r.rkey = d.rkey WHERE d.ctin = ? AND d.period = ? "
            f"AND d.section IN ({marks}) ORDER BY r.gstin, r.section, r.rkey", (ctin, period, *sections))
        return [(r[0], r[1], r[2]) for r in rows]

    # --- GSTIN registry and GSTR-2B -----------------------------------------------
    def set_gstin_status(self, gstin: str, status: str, now: float) -> None:
        if status == "active":
            self.execute("DELETE FROM gstin_status WHERE gstin = ?", (gstin,))
        else:
            self.execute("INSERT OR REPLACE INTO gstin_status VALUES (?, ?, ?)", (gstin, status, now))

    def gstin_statuses(self) -> dict[str, str]:
        """Every GSTIN not ``active`` → its status."""
        return {r[0]: r[1] for r in self.query("SELECT gstin, status FROM gstin_status ORDER BY gstin")}

    def put_gstr2b(self, gstin: str, period: str, generated_at: float, data: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO gstr2b VALUES (?, ?, ?, ?)",
                     (gstin, period, generated_at, json.dumps(data)))

    def gstr2b(self, gstin: str, period: str) -> tuple[float, dict[str, Any]] | None:
        rows = self.query("SELECT generated_at, data FROM gstr2b WHERE gstin = ? AND period = ?", (gstin, period))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def counts(self) -> dict[str, int]:
        return {
            "records": self.query("SELECT COUNT(*) FROM records")[0][0],
            "saves": self.query("SELECT COUNT(*) FROM saves")[0][0],
        }
