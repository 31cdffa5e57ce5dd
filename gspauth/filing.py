"""Resumable batch filing of GSTR-1 chunks (RETSAVE) with a crash-safe SQLite journal.

High-volume filers split a return into chunks and save them one by one. If the job dies
half-way (crash, deploy, OOM kill, lost network) a naive re-run either files chunks twice or
skips some. :class:`BatchFiler` makes a re-run safe:

* each chunk gets a deterministic idempotency key — ``txn`` derived from GSTIN, return
  period, action and the SHA-256 of the chunk's exact bytes — so the same chunk is always
  sent with the same ``txn``, and GSTN (and the emulator) answer a replay with the original
  ``reference_id`` instead of filing again;
* the journal records each chunk's state *before* it is sent (``sent``: in doubt) and after
  GSTN acknowledged it (``acked`` with its ``reference_id``); it is committed at each step;
* on restart, ``acked`` chunks are skipped and in-doubt ones (``sent``, ``pending``,
  ``needs-otp``) are re-sent with the *same* ``txn``; nothing is duplicated or lost;
* :class:`~gspauth.errors.OtpRequired` for one GSTIN parks that GSTIN (recorded as
  ``needs-otp``) and filing goes on with the others; a later run resumes it once an OTP
  consent exists.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gspauth import protocol
from gspauth.errors import GSPError, OtpRequired, RetryableError
from gspauth.types import Api

__all__ = ["BatchFiler", "ChunkResult", "FilingSummary", "chunk_key"]

log = logging.getLogger("gspauth.filing")

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

_IN_DOUBT = ("pending", "sent", "needs-otp")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def chunk_key(gstin: str, ret_period: str, content: bytes, action: str = "RETSAVE") -> str:
    """The idempotency key (``txn``) of a chunk: same inputs, same key, on every machine."""
    digest = hashlib.sha256(content).hexdigest()
    return protocol.derive_txn("gspauth-filing-v1", action, gstin, ret_period, digest)


@dataclass(frozen=True)
class ChunkResult:
    """What happened to one chunk in this run (passed to the progress callback).

    :param state: ``acked``, ``skipped`` (acked in an earlier run), ``failed``,
        ``needs-otp`` or ``sent`` (still in doubt after retries: re-run to settle it).
    """

    seq: int
    gstin: str
    ret_period: str
    txn: str
    state: str
    reference_id: str | None = None
    error: str | None = None
    done: int = 0


@dataclass
class FilingSummary:
    """The outcome of one :meth:`BatchFiler.file` run."""

    acked: int = 0
    skipped: int = 0
    failed: int = 0
    in_doubt: int = 0
    parked: int = 0
    needs_otp: dict[str, str] = field(default_factory=dict)
    reference_ids: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

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


class _Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an ack must survive power loss
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, txn: str) -> tuple[str, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT state, reference_id FROM chunks WHERE txn = ?", (txn,)).fetchone()
        return (row[0], row[1]) if row else None

    def upsert(self, txn: str, gstin: str, ret_period: str, action: str, seq: int, sha: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO chunks (txn, gstin, ret_period, action, seq, content_sha256, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT(txn) DO NOTHING",
                (txn, gstin, ret_period, action, seq, sha, _now()),
            )

    def mark(self, txn: str, state: str, *, reference_id: str | None = None, error: str | None = None,
             attempt: bool = False) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE chunks SET state = ?, reference_id = COALESCE(?, reference_id), error = ?, "
                "attempts = attempts + ?, updated_at = ? WHERE txn = ?",
                (state, reference_id, error, 1 if attempt else 0, _now(), txn),
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
        with self._lock:
            cur = self._db.execute(
                "SELECT txn, gstin, ret_period, action, seq, content_sha256, state, reference_id, error, attempts "
                "FROM chunks ORDER BY gstin, ret_period, seq")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def parked(self) -> dict[str, str]:
        with self._lock:
            return {g: r or "" for g, r in self._db.execute("SELECT gstin, reason FROM parked").fetchall()}

    def close(self) -> None:
        with self._lock:
            self._db.close()


ClientFactory = Callable[[str], Any]


class BatchFiler:
    """File GSTR-1 chunks with RETSAVE, resumably.

    :param clients: a :class:`~gspauth.client.Client` (one GSTIN) or a factory
        ``gstin -> Client`` for many GSTINs (called once per GSTIN per filer).
    :param journal: path of the SQLite journal (created if missing). Keep it for the life
        of the return: it is what makes a re-run safe.
    :param api: API family of the save call (default :attr:`Api.RETURNS`).
    :param path: path under it (default ``"gstr1"``).
    :param action: GSTN action (default ``"RETSAVE"``).
    :param version: API version (default: the API's).
    :param progress: called with a :class:`ChunkResult` after each chunk's state is
        journalled. An exception raised there stops the run (the journal stays consistent).
    :param retry_failed: also re-send chunks that failed permanently in an earlier run.

    Usage::

        with BatchFiler(client, journal="gstr1-072017.journal") as filer:
            summary = filer.file(chunks)          # an iterable of {"gstin", "fp", "b2b"} dicts
        if summary.needs_otp: ...                 # GSTINs parked for OTP consent
    """

    def __init__(
        self,
        clients: Any,
        journal: str | os.PathLike[str],
        *,
        api: Api = Api.RETURNS,
        path: str = "gstr1",
        action: str = "RETSAVE",
        version: str | None = None,
        progress: Callable[[ChunkResult], None] | None = None,
        retry_failed: bool = False,
    ) -> None:
        if callable(clients) and not hasattr(clients, "put"):
            self._factory: ClientFactory = clients
        else:
            single = clients

            def factory(gstin: str) -> Any:
                if single.gstin != gstin:
                    raise LookupError(f"the filer's client is bound to GSTIN {single.gstin}, not {gstin}; "
                                      "pass a factory gstin -> Client to file for several GSTINs")
                return single

            self._factory = factory
        self._clients: dict[str, Any] = {}
        self._journal = _Journal(journal)
        self.api = api
        self.path = path
        self.action = action
        self.version = version
        self.progress = progress
        self.retry_failed = retry_failed

    def __repr__(self) -> str:
        return f"BatchFiler(journal={self._journal.path!r}, action={self.action!r})"

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

    def _client(self, gstin: str) -> Any:
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
            content = protocol.encode_payload(dict(chunk))
        else:
            raise TypeError(f"a chunk must be a mapping or JSON bytes, not {type(chunk).__name__}")
        gstin = parsed.get("gstin") if isinstance(parsed, Mapping) else None
        period = ret_period or (parsed.get("fp") if isinstance(parsed, Mapping) else None)
        if not isinstance(gstin, str) or not isinstance(period, str):
            raise ValueError("each chunk needs 'gstin' and 'fp' (or pass ret_period=)")
        return gstin.upper(), protocol.validate_ret_period(period), content

    def file(self, chunks: Iterable[Any], *, ret_period: str | None = None) -> FilingSummary:
        """File ``chunks`` in order; return a :class:`FilingSummary`.

        Safe to call again with the same chunks after a crash: acknowledged chunks are
        skipped, in-doubt ones re-sent with their original ``txn``.
        """
        summary = FilingSummary()
        parked_now: dict[str, str] = {}
        seqs: dict[tuple[str, str], int] = {}
        done = 0
        for chunk in chunks:
            gstin, period, content = self._prepare(chunk, ret_period)
            seq = seqs[(gstin, period)] = seqs.get((gstin, period), -1) + 1
            txn = chunk_key(gstin, period, content, self.action)
            prior = self._journal.get(txn)
            if prior is not None and prior[0] == "acked":
                summary.skipped += 1
                if prior[1]:
                    summary.reference_ids[txn] = prior[1]
                done += 1
                self._report(ChunkResult(seq, gstin, period, txn, "skipped", prior[1], done=done))
                continue
            if prior is not None and prior[0] == "failed" and not self.retry_failed:
                summary.failed += 1
                done += 1
                self._report(ChunkResult(seq, gstin, period, txn, "failed", error="failed in an earlier run",
                                         done=done))
                continue
            self._journal.upsert(txn, gstin, period, self.action, seq, hashlib.sha256(content).hexdigest())
            if gstin in parked_now:
                self._journal.mark(txn, "needs-otp", error=parked_now[gstin])
                summary.parked += 1
                done += 1
                self._report(ChunkResult(seq, gstin, period, txn, "needs-otp", error=parked_now[gstin], done=done))
                continue
            result = self._send(gstin, period, content, txn, seq)
            if result.state == "acked":
                summary.acked += 1
                assert result.reference_id is not None
                summary.reference_ids[txn] = result.reference_id
                self._journal.unpark(gstin)
            elif result.state == "needs-otp":
                parked_now[gstin] = result.error or "needs-otp"
                summary.needs_otp[gstin] = parked_now[gstin]
                summary.parked += 1
            elif result.state == "failed":
                summary.failed += 1
                summary.errors[txn] = result.error or "failed"
            else:
                summary.in_doubt += 1
                summary.errors[txn] = result.error or "in doubt"
            done += 1
            self._report(ChunkResult(result.seq, gstin, period, txn, result.state, result.reference_id,
                                     result.error, done))
        return summary

    def _report(self, result: ChunkResult) -> None:
        if self.progress is not None:
            self.progress(result)

    def _send(self, gstin: str, period: str, content: bytes, txn: str, seq: int) -> ChunkResult:
        try:
            client = self._client(gstin)
        except Exception as exc:  # noqa: BLE001 - a missing client fails this GSTIN's chunks only
            self._journal.mark(txn, "failed", error=f"no client: {type(exc).__name__}")
            return ChunkResult(seq, gstin, period, txn, "failed", error=str(exc))
        # Journal first: from here on the chunk is in doubt until GSTN acknowledges it.
        self._journal.mark(txn, "sent", attempt=True)
        try:
            reply = client.put(self.api, self.path, action=self.action, payload=content, ret_period=period,
                               version=self.version, txn=txn)
        except OtpRequired as exc:
            reason = exc.reason or "needs-otp"
            self._journal.mark(txn, "needs-otp", error=reason)
            self._journal.park(gstin, reason)
            log.warning("GSTIN %s parked: OTP consent needed (%s); continuing with other GSTINs", gstin, reason)
            return ChunkResult(seq, gstin, period, txn, "needs-otp", error=reason)
        except RetryableError as exc:
            code = exc.error_code or type(exc).__name__
            self._journal.mark(txn, "sent", error=code)
            return ChunkResult(seq, gstin, period, txn, "sent", error=code)
        except GSPError as exc:
            code = exc.error_code or type(exc).__name__
            self._journal.mark(txn, "failed", error=code)
            return ChunkResult(seq, gstin, period, txn, "failed", error=code)
        except Exception as exc:  # transport errors after retries: still in doubt
            import httpx

            if not isinstance(exc, httpx.TransportError):
                raise
            self._journal.mark(txn, "sent", error=type(exc).__name__)
            return ChunkResult(seq, gstin, period, txn, "sent", error=type(exc).__name__)
        ref = reply.get("reference_id") if isinstance(reply, Mapping) else None
        if not isinstance(ref, str) or not ref:
            self._journal.mark(txn, "sent", error="reply without reference_id")
            return ChunkResult(seq, gstin, period, txn, "sent", error="reply without reference_id")
        self._journal.mark(txn, "acked", reference_id=ref)
        return ChunkResult(seq, gstin, period, txn, "acked", ref)
