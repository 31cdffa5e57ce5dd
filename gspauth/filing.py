"""Resumable batch filing of GSTR-1 chunks (RETSAVE) with a crash-safe SQLite journal.

High-volume filers split a return into chunks and save them one by one. If the job dies
half-way (crash, deploy, OOM kill, lost network) a naive re-run either files chunks twice or
skips some. :class:`BatchFiler` makes a re-run safe:

* each chunk gets a deterministic idempotency key — ``txn`` derived from GSTIN, return
  period, action and the SHA-256 of the chunk's bytes (a mapping is serialised as
  canonical JSON, sorted keys, so rebuilding the same chunk in another process or after a
  restart gives the same key) — so the same chunk is always sent with the same ``txn``,
  and GSTN (and the emulator) answer a replay with the original ``reference_id`` instead
  of filing again; different chunks get different keys;
* the journal records each chunk's state *before* it is sent (``sent``: in doubt) and after
  GSTN acknowledged it (``acked`` with its ``reference_id``, synced to disk before the
  next chunk is sent);
* one filer at a time per journal: a second filer (thread or process) on the same journal
  is refused with :class:`~gspauth.errors.JournalBusy` instead of racing the first;
* on restart, ``acked`` chunks are skipped and in-doubt ones (``sent``, ``pending``,
  ``needs-otp``) are re-sent with the *same* ``txn``; nothing is duplicated or lost;
* :class:`~gspauth.errors.OtpRequired` for one GSTIN parks that GSTIN (recorded as
  ``needs-otp``) and filing goes on with the others; a later run resumes it once an OTP
  consent exists. With ``workers > 1`` GSTINs are filed in parallel (each GSTIN's chunks
  in order, on one worker at a time), so a GSTIN whose OTP provider is *waiting* for an
  OTP (e.g. :class:`~gspauth.otp.FileOtp` with ``wait``) holds one worker while the
  others keep filing, and resumes in the same run when the OTP arrives.

States: ``pending`` → ``sent`` → ``acked`` | ``failed`` (a permanent GSTN rejection, e.g. a
malformed payload) | ``needs-otp``. A chunk whose content changes gets a new key.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gspauth import protocol
from gspauth.errors import (
    CryptoError,
    GSPAuthError,
    GSPError,
    JournalBusy,
    LockTimeout,
    OtpRequired,
    RetryableError,
    SessionInvalid,
    StoreCorrupted,
)
from gspauth.locks import ExclusiveFile
from gspauth.protocol import Payload
from gspauth.types import Api

__all__ = [
    "BatchFiler",
    "ChunkFailure",
    "ChunkResult",
    "ClientFactory",
    "FilingClient",
    "FilingSummary",
    "chunk_content",
    "chunk_key",
]

_logger = logging.getLogger("gspauth.filing")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    txn           TEXT PRIMARY KEY,
    gstin         TEXT NOT NULL,
    ret_period    TEXT NOT NULL,
    action        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    content_sha256 TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending','sent','acked','failed','needs-otp')),
    reference_id  TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_gstin ON chunks (gstin, ret_period, state);
CREATE TABLE IF NOT EXISTS parked (
    gstin  TEXT PRIMARY KEY,
    reason TEXT,
    at     TEXT NOT NULL
);
"""

_HINTS = {
    "sent": "in doubt: GSTN may or may not have stored it; re-run with the same journal, the chunk is re-sent "
            "with its original txn, so GSTN answers with the original reference instead of filing twice",
    "needs-otp": "the taxpayer must give OTP consent: `gspauth login --gstin GSTIN` (or deliver the OTP to your "
                 "OTP provider), then re-run with the same journal",
    "failed": "GSTN rejected the chunk: fix it (see the hint) and re-run with retry_failed=True",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def chunk_content(chunk: Mapping[str, Any] | bytes) -> bytes:
    """The bytes a chunk is filed as: ``bytes`` as given, a mapping as canonical JSON (sorted keys)."""
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    return json.dumps(chunk, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chunk_key(gstin: str, ret_period: str, content: bytes, action: str = "RETSAVE") -> str:
    """The idempotency key (``txn``) of a chunk: same inputs, same key, on every machine."""
    return _txn_of(gstin, ret_period, hashlib.sha256(content).hexdigest(), action)


def _txn_of(gstin: str, ret_period: str, sha256_hex: str, action: str) -> str:
    return protocol.derive_txn("gspauth-filing-v1", action, gstin, ret_period, sha256_hex)


@dataclass(frozen=True)
class ChunkResult:
    """What happened to one chunk in this run (passed to the progress callback).

    :param state: ``acked``, ``skipped`` (acked in an earlier run), ``failed``,
        ``needs-otp`` or ``sent`` (still in doubt after retries: re-run to settle it).
    :param size: the chunk's size in bytes (before encryption).
    """

    seq: int
    gstin: str
    ret_period: str
    txn: str
    state: str
    reference_id: str | None = None
    error: str | None = None
    done: int = 0
    size: int = 0


@dataclass(frozen=True)
class ChunkFailure:
    """A chunk that is not acknowledged, with what to do about it.

    :param state: ``failed`` (rejected), ``sent`` (in doubt) or ``needs-otp``.
    :param code: the GSTN/GSP error code, or the exception name.
    :param hint: what the user should do.
    """

    gstin: str
    ret_period: str
    seq: int
    txn: str
    state: str
    code: str
    message: str = ""
    hint: str = ""


@dataclass
class FilingSummary:
    """The outcome of one :meth:`BatchFiler.file` run.

    ``errors`` maps each unacknowledged chunk's ``txn`` to its error code; ``failures``
    holds the same chunks with GSTIN, position, message and hint; :meth:`report` turns
    them into a short, actionable text.
    """

    acked: int = 0
    skipped: int = 0
    failed: int = 0
    in_doubt: int = 0
    parked: int = 0
    bytes_sent: int = 0
    needs_otp: dict[str, str] = field(default_factory=dict)
    reference_ids: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    failures: list[ChunkFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.acked + self.skipped + self.failed + self.in_doubt + self.parked

    @property
    def complete(self) -> bool:
        """``True`` when every chunk seen is acknowledged (now or in an earlier run)."""
        return self.failed == 0 and self.in_doubt == 0 and self.parked == 0

    def __str__(self) -> str:
        text = (f"{self.acked} acked, {self.skipped} already acked, {self.failed} failed, "
                f"{self.in_doubt} in doubt, {self.parked} parked")
        if self.needs_otp:
            text += f"; needs OTP for {', '.join(sorted(self.needs_otp))}"
        return text

    def report(self, limit: int = 5) -> str:
        """Unacknowledged chunks grouped by state and code: how many, which GSTINs, and what to do."""
        lines = [str(self)]
        groups: dict[tuple[str, str], list[ChunkFailure]] = {}
        for f in self.failures:
            groups.setdefault((f.state, f.code), []).append(f)
        for (state, code), items in sorted(groups.items()):
            where = ", ".join(f"{f.gstin} #{f.seq}" for f in items[:limit])
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            label = {"sent": "in doubt", "needs-otp": "needs OTP"}.get(state, state)
            lines.append(f"- {len(items)} {label} ({code}): {where}{more}")
            if items[0].message and items[0].message != code:
                lines.append(f"  {items[0].message}")
            if items[0].hint:
                lines.append(f"  hint: {items[0].hint}")
            if items[0].hint != _HINTS[state]:
                lines.append(f"  next: {_HINTS[state]}")
        return "\n".join(lines)


class _Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        from gspauth._sqlite import SQLiteFile

        self.path = os.fspath(path)
        # GSTINs and references are business data: SQLiteFile keeps the file and its WAL 0600.
        # Commits that record an outcome (acked/failed) are synced (FULL); "sent" need not be:
        # a chunk lost from the journal is simply re-sent with its deterministic txn.
        schema = [st for st in _SCHEMA.split(";") if st.strip()]
        self._file = SQLiteFile(Path(self.path), what="filing journal", schema=schema, expect=("chunks",))
        with self._file.transaction() as db:
            for statement in schema:  # idempotent (IF NOT EXISTS); also checks the file is a database
                db.execute(statement)
        self._exclusive = ExclusiveFile(self.path + ".lock")

    def acquire(self) -> None:
        """Exclusive use of the journal for one :meth:`BatchFiler.file` run (threads and processes)."""
        if not self._exclusive.acquire():
            raise JournalBusy(
                f"filing journal {self.path} is in use by another filer (this or another process); "
                "wait for it to finish, or give each worker its own journal (e.g. one per GSTIN range)"
            )

    def release(self) -> None:
        self._exclusive.release()

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        with self._file.guard:
            if durable:
                self._file.connection().execute("PRAGMA synchronous=FULL")
            try:
                with self._file.transaction() as db:
                    yield db
            finally:
                if durable:
                    self._file.connection().execute("PRAGMA synchronous=NORMAL")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._file.read(sql, args)

    def get(self, txn: str) -> tuple[str, str | None] | None:
        rows = self._read("SELECT state, reference_id FROM chunks WHERE txn = ?", (txn,))
        return (rows[0][0], rows[0][1]) if rows else None

    def start(self, txn: str, gstin: str, ret_period: str, action: str, seq: int, sha: str) -> None:
        """Record the chunk as ``sent`` (in doubt) with one more attempt, creating its row if new."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO chunks (txn, gstin, ret_period, action, seq, content_sha256, state, attempts, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'sent', 1, ?) ON CONFLICT(txn) DO UPDATE SET state = 'sent', "
                "error = NULL, attempts = attempts + 1, updated_at = excluded.updated_at",
                (txn, gstin, ret_period, action, seq, sha, _now()),
            )

    def upsert(self, txn: str, gstin: str, ret_period: str, action: str, seq: int, sha: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO chunks (txn, gstin, ret_period, action, seq, content_sha256, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT(txn) DO NOTHING",
                (txn, gstin, ret_period, action, seq, sha, _now()),
            )

    def mark(self, txn: str, state: str, *, reference_id: str | None = None, error: str | None = None) -> None:
        with self._tx(durable=state in ("acked", "failed")) as db:
            db.execute(
                "UPDATE chunks SET state = ?, reference_id = COALESCE(?, reference_id), error = ?, updated_at = ? "
                "WHERE txn = ?",
                (state, reference_id, error, _now(), txn),
            )

    def park(self, gstin: str, reason: str | None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO parked (gstin, reason, at) VALUES (?, ?, ?) "
                       "ON CONFLICT(gstin) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                       (gstin, reason, _now()))

    def unpark(self, gstin: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM parked WHERE gstin = ?", (gstin,))

    def rows(self) -> list[dict[str, Any]]:
        names = ("txn", "gstin", "ret_period", "action", "seq", "content_sha256", "state", "reference_id", "error",
                 "attempts")
        rows = self._read(f"SELECT {', '.join(names)} FROM chunks ORDER BY gstin, ret_period, seq")
        return [dict(zip(names, r)) for r in rows]

    def parked(self) -> dict[str, str]:
        return {g: r or "" for g, r in self._read("SELECT gstin, reason FROM parked")}

    def close(self) -> None:
        self.release()
        self._file.close()


@runtime_checkable
class FilingClient(Protocol):
    """What the filer needs of a client (:class:`gspauth.Client` fits): one GSTIN's session and saves."""

    @property
    def gstin(self) -> str: ...

    def ensure_session(self) -> object: ...

    def put(self, api: Api, path: str = "", *, action: str, payload: Payload | None = None,
            ret_period: str | None = None, params: Mapping[str, object] | None = None, version: str | None = None,
            txn: str | None = None) -> Any: ...


#: Makes the client of one GSTIN (called once per GSTIN per filer).
ClientFactory = Callable[[str], FilingClient]


@dataclass
class _Chunk:
    gstin: str
    period: str
    content: bytes
    seq: int
    sha: str  # SHA-256 hex of content: journalled, and part of txn
    txn: str


@dataclass
class _Outcome:
    """The chunk's result plus, for an unacknowledged one, its failure record."""

    result: ChunkResult
    failure: ChunkFailure | None = None


class _Run:
    """Mutable state of one :meth:`BatchFiler.file` call, shared by its worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.summary = FilingSummary()
        self.parked: dict[str, str] = {}
        self.done = 0
        self.error: BaseException | None = None


class BatchFiler:
    """File GSTR-1 chunks with RETSAVE, resumably.

    :param clients: a :class:`~gspauth.client.Client` (one GSTIN) or a factory
        ``gstin -> Client`` for many GSTINs (called once per GSTIN per filer).
    :param journal: path of the SQLite journal (created if missing, mode 0600). Keep it for
        the life of the return: it is what makes a re-run safe.
    :param api: API family of the save call (default :attr:`Api.RETURNS`).
    :param path: path under it (default ``"gstr1"``).
    :param action: GSTN action (default ``"RETSAVE"``).
    :param version: API version (default: the API's).
    :param progress: called with a :class:`ChunkResult` after each chunk's state is
        journalled (one call at a time, also with ``workers > 1``). An exception raised there
        stops the run (the journal stays consistent) and is re-raised by :meth:`file`.
    :param retry_failed: also re-send chunks that failed permanently in an earlier run.
    :param workers: GSTINs filed in parallel (threads). Chunks of one GSTIN are always
        sent one after another, in input order.
    :param max_pending: with ``workers > 1``, how many chunks may be read ahead of the
        workers (bounds memory); default ``8 * workers``.

    Usage::

        with BatchFiler(client, journal="gstr1-072017.journal") as filer:
            summary = filer.file(chunks)          # an iterable of {"gstin", "fp", "b2b"} dicts
        if not summary.complete:
            print(summary.report())               # what is missing, and what to do about it
    """

    def __init__(
        self,
        clients: FilingClient | ClientFactory,
        journal: str | os.PathLike[str],
        *,
        api: Api = Api.RETURNS,
        path: str = "gstr1",
        action: str = "RETSAVE",
        version: str | None = None,
        progress: Callable[[ChunkResult], None] | None = None,
        retry_failed: bool = False,
        workers: int = 1,
        max_pending: int | None = None,
    ) -> None:
        if not isinstance(clients, FilingClient):
            self._factory: ClientFactory = clients
        else:
            single = clients

            def factory(gstin: str) -> FilingClient:
                if single.gstin != gstin:
                    raise LookupError(f"the filer's client is bound to GSTIN {single.gstin}, not {gstin}; "
                                      "pass a factory gstin -> Client to file for several GSTINs")
                return single

            self._factory = factory
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._clients: dict[str, FilingClient] = {}
        self._clients_lock = threading.Lock()
        self._journal = _Journal(journal)
        self.api = api
        self.path = path
        self.action = action
        self.version = version
        self.progress = progress
        self.retry_failed = retry_failed
        self.workers = workers
        self.max_pending = max_pending or 8 * workers

    def __repr__(self) -> str:
        return f"BatchFiler(journal={self._journal.path!r}, action={self.action!r}, workers={self.workers})"

    def __enter__(self) -> BatchFiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the journal (clients are the caller's to close)."""
        self._journal.close()

    def journal_rows(self) -> list[dict[str, Any]]:
        """Every journalled chunk (no payloads): txn, gstin, period, seq, state, reference_id …"""
        return self._journal.rows()

    def parked(self) -> dict[str, str]:
        """GSTINs waiting for OTP consent → reason."""
        return self._journal.parked()

    def _client(self, gstin: str) -> FilingClient:
        with self._clients_lock:
            client = self._clients.get(gstin)
            if client is None:
                client = self._clients[gstin] = self._factory(gstin)
            return client

    @staticmethod
    def _prepare(chunk: Any, ret_period: str | None) -> tuple[str, str, bytes]:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            content = bytes(chunk)
            parsed = json.loads(content)
        elif isinstance(chunk, Mapping):
            parsed = chunk
            content = chunk_content(chunk)
        else:
            raise TypeError(f"a chunk must be a mapping or JSON bytes, not {type(chunk).__name__}")
        gstin = parsed.get("gstin") if isinstance(parsed, Mapping) else None
        period = ret_period or (parsed.get("fp") if isinstance(parsed, Mapping) else None)
        if not isinstance(gstin, str) or not isinstance(period, str):
            raise ValueError("each chunk needs 'gstin' and 'fp' (or pass ret_period=)")
        return gstin.upper(), protocol.validate_ret_period(period), content

    def _chunks(self, chunks: Iterable[Any], ret_period: str | None) -> Iterator[_Chunk]:
        seqs: dict[tuple[str, str], int] = {}
        for chunk in chunks:
            gstin, period, content = self._prepare(chunk, ret_period)
            seq = seqs[(gstin, period)] = seqs.get((gstin, period), -1) + 1
            sha = hashlib.sha256(content).hexdigest()  # hashed once per chunk: for txn and the journal
            yield _Chunk(gstin, period, content, seq, sha, _txn_of(gstin, period, sha, self.action))

    def file(self, chunks: Iterable[Any], *, ret_period: str | None = None) -> FilingSummary:
        """File ``chunks`` (mappings or JSON bytes with ``gstin`` and ``fp``); return a :class:`FilingSummary`.

        Safe to call again with the same chunks after a crash: acknowledged chunks are
        skipped, in-doubt ones re-sent with their original ``txn``.

        :raises JournalBusy: another filer is filing with this journal right now.
        """
        self._journal.acquire()
        try:
            run = _Run()
            if self.workers == 1:
                for chunk in self._chunks(chunks, ret_period):
                    self._one(chunk, run)
            else:
                self._parallel(self._chunks(chunks, ret_period), run)
            return run.summary
        finally:
            self._journal.release()

    def _parallel(self, chunks: Iterator[_Chunk], run: _Run) -> None:
        # One queue per GSTIN, drained by at most one worker at a time (chunks stay in order,
        # a GSTIN waiting for its OTP holds one worker, never the others).
        queues: dict[str, deque[_Chunk]] = {}
        running: set[str] = set()
        slots = threading.BoundedSemaphore(self.max_pending)

        def drain(gstin: str) -> None:
            while True:
                with run.lock:
                    queue = queues[gstin]
                    if run.error is not None:
                        for _ in range(len(queue)):
                            slots.release()
                        queue.clear()
                    if not queue:
                        running.discard(gstin)
                        return
                    chunk = queue.popleft()
                try:
                    self._one(chunk, run)
                except BaseException as exc:  # noqa: BLE001 - re-raised by file()
                    with run.lock:
                        run.error = run.error or exc
                finally:
                    slots.release()

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gspauth-filer") as pool:
            try:
                for chunk in chunks:
                    while not slots.acquire(timeout=0.1):
                        if run.error is not None:
                            break
                    if run.error is not None:
                        break
                    with run.lock:
                        queues.setdefault(chunk.gstin, deque()).append(chunk)
                        if chunk.gstin not in running:
                            running.add(chunk.gstin)
                            pool.submit(drain, chunk.gstin)
            except BaseException as exc:  # noqa: BLE001 - a bad chunk in the input: stop the workers, re-raised
                with run.lock:
                    run.error = run.error or exc
        if run.error is not None:
            raise run.error

    def _one(self, chunk: _Chunk, run: _Run) -> None:
        """Settle one chunk: skip, park, or send; journal and tally the outcome."""
        txn = chunk.txn
        prior = self._journal.get(txn)
        if prior is not None and prior[0] == "acked":
            outcome = _Outcome(self._result(chunk, "skipped", prior[1]))
        elif prior is not None and prior[0] == "failed" and not self.retry_failed:
            outcome = self._failure(chunk, "failed", "earlier-run", "failed in an earlier run",
                                    "re-run with retry_failed=True after fixing the chunk")
        else:
            with run.lock:
                parked = run.parked.get(chunk.gstin)
            if parked is not None:
                self._journal.upsert(txn, chunk.gstin, chunk.period, self.action, chunk.seq, chunk.sha)
                self._journal.mark(txn, "needs-otp", error=parked)
                outcome = self._failure(chunk, "needs-otp", parked, f"GSTIN {chunk.gstin} needs OTP consent",
                                        _HINTS["needs-otp"].replace("GSTIN", chunk.gstin))
            else:
                outcome = self._send(chunk)
        self._tally(outcome, run)

    def _result(self, chunk: _Chunk, state: str, reference_id: str | None = None,
                error: str | None = None) -> ChunkResult:
        return ChunkResult(chunk.seq, chunk.gstin, chunk.period, chunk.txn, state, reference_id, error,
                           size=len(chunk.content))

    def _failure(self, chunk: _Chunk, state: str, code: str, message: str, hint: str) -> _Outcome:
        failure = ChunkFailure(chunk.gstin, chunk.period, chunk.seq, chunk.txn, state, code, message, hint)
        return _Outcome(self._result(chunk, state, error=code), failure)

    def _tally(self, outcome: _Outcome, run: _Run) -> None:
        result, s = outcome.result, run.summary
        with run.lock:
            if result.state in ("acked", "skipped"):
                if result.state == "acked":
                    s.acked += 1
                    s.bytes_sent += result.size
                else:
                    s.skipped += 1
                if result.reference_id:
                    s.reference_ids[result.txn] = result.reference_id
            else:
                if result.state == "needs-otp":
                    reason = result.error or "needs-otp"
                    run.parked.setdefault(result.gstin, reason)
                    s.needs_otp.setdefault(result.gstin, run.parked[result.gstin])
                    s.parked += 1
                elif result.state == "failed":
                    s.failed += 1
                    s.errors[result.txn] = result.error or "failed"
                else:
                    s.in_doubt += 1
                    s.errors[result.txn] = result.error or "in doubt"
                if outcome.failure is not None:
                    s.failures.append(outcome.failure)
            run.done += 1
            report = ChunkResult(result.seq, result.gstin, result.ret_period, result.txn, result.state,
                                 result.reference_id, result.error, run.done, result.size)
            # under the lock: the callback sees results one at a time, in completion order
            if self.progress is not None:
                self.progress(report)

    def _park(self, chunk: _Chunk, exc: BaseException) -> _Outcome:
        """Park the chunk's GSTIN: no session could be had, for the reason in ``exc``."""
        gstin = chunk.gstin
        if isinstance(exc, OtpRequired):
            reason = exc.reason or "needs-otp"
            hint = _HINTS["needs-otp"].replace("GSTIN", gstin)
        elif isinstance(exc, GSPError):
            reason = exc.error_code or type(exc).__name__
            hint = exc.hint or _HINTS["needs-otp"].replace("GSTIN", gstin)
        else:
            reason = type(exc).__name__
            hint = "fix the session of this GSTIN, then re-run with the same journal"
        self._journal.upsert(chunk.txn, gstin, chunk.period, self.action, chunk.seq, chunk.sha)
        self._journal.mark(chunk.txn, "needs-otp", error=reason)
        self._journal.park(gstin, reason)
        _logger.warning("GSTIN %s parked: no session (%s); continuing with other GSTINs", gstin, reason)
        return self._failure(chunk, "needs-otp", reason, f"GSTIN {gstin} has no usable session: {exc}", hint)

    def _send(self, chunk: _Chunk) -> _Outcome:
        gstin, period, txn, sha = chunk.gstin, chunk.period, chunk.txn, chunk.sha
        try:
            client = self._client(gstin)
        except Exception as exc:  # noqa: BLE001 - a missing client fails this GSTIN's chunks only
            self._journal.upsert(txn, gstin, period, self.action, chunk.seq, sha)
            self._journal.mark(txn, "failed", error=f"no client: {type(exc).__name__}")
            return self._failure(chunk, "failed", "no-client", str(exc),
                                 "the client factory raised for this GSTIN: check its credentials/configuration")
        # A session first: consent problems (no OTP yet, a wrong or lapsed OTP, API access off,
        # bad credentials, GSTN unreachable) belong to the GSTIN, never to this chunk, which has
        # not been sent: the GSTIN is parked with the real reason and the chunk waits for a re-run.
        try:
            client.ensure_session()
        except LockTimeout as exc:  # another process holds this GSTIN's session lock: the others go on
            self._journal.upsert(txn, gstin, period, self.action, chunk.seq, sha)
            self._journal.mark(txn, "sent", error="LockTimeout")
            return self._failure(chunk, "sent", "LockTimeout", str(exc),
                                 "another process was authenticating or refreshing this GSTIN's session; "
                                 + _HINTS["sent"])
        except RetryableError as exc:  # GSTN/GSP unreachable or busy: not sent, settle it on a re-run
            code = exc.error_code or type(exc).__name__
            self._journal.upsert(txn, gstin, period, self.action, chunk.seq, sha)
            self._journal.mark(txn, "sent", error=code)
            return self._failure(chunk, "sent", code, exc.message, exc.hint or _HINTS["sent"])
        except GSPAuthError as exc:
            return self._park(chunk, exc)
        # Journal first: from here on the chunk is in doubt until GSTN acknowledges it.
        self._journal.start(txn, gstin, period, self.action, chunk.seq, sha)
        try:
            reply = client.put(self.api, self.path, action=self.action, payload=chunk.content, ret_period=period,
                               version=self.version, txn=txn)
        except OtpRequired as exc:  # the session died mid-call and could not be renewed
            return self._park(chunk, exc)
        except RetryableError as exc:
            code = exc.error_code or type(exc).__name__
            self._journal.mark(txn, "sent", error=code)
            hint = _HINTS["sent"]
            if exc.retry_after is not None:
                hint = f"the server asked to wait {exc.retry_after:.0f} s; then {hint}"
            return self._failure(chunk, "sent", code, exc.message, hint)
        except SessionInvalid as exc:  # GSTN refused the *session*, never the chunk: still in doubt
            code = exc.error_code or type(exc).__name__
            self._journal.mark(txn, "sent", error=code)
            return self._failure(chunk, "sent", code, exc.message,
                                 (exc.hint + "; then " if exc.hint else "") + _HINTS["sent"])
        except (CryptoError, StoreCorrupted) as exc:  # the reply (or our session) could not be read
            self._journal.mark(txn, "sent", error=type(exc).__name__)
            return self._failure(chunk, "sent", type(exc).__name__, str(exc),
                                 "the reply could not be verified or the stored session is damaged, so whether "
                                 "GSTN stored the chunk is unknown; " + _HINTS["sent"])
        except GSPError as exc:
            code = exc.error_code or type(exc).__name__
            self._journal.mark(txn, "failed", error=code)
            return self._failure(chunk, "failed", code, exc.message, exc.hint or _HINTS["failed"])
        except LockTimeout as exc:  # another worker holds this GSTIN's session lock: the others go on
            self._journal.mark(txn, "sent", error="LockTimeout")
            return self._failure(chunk, "sent", "LockTimeout", str(exc),
                                 "another process was authenticating or refreshing this GSTIN's session; "
                                 + _HINTS["sent"])
        ref = reply.get("reference_id") if isinstance(reply, Mapping) else None
        if not isinstance(ref, str) or not ref:
            self._journal.mark(txn, "sent", error="reply without reference_id")
            return self._failure(chunk, "sent", "no-reference", "the reply carried no reference_id", _HINTS["sent"])
        self._journal.mark(txn, "acked", reference_id=ref)
        self._journal.unpark(gstin)
        return _Outcome(self._result(chunk, "acked", ref))
