"""The filing journal: what was filed, invoice by invoice, so a run can resume and a corrected
input re-sends only what changed.

:class:`FilingJournal` is the protocol the filer uses; :class:`~gspauth.journal.sqlite.SQLiteJournal`
is the default (one file, WAL, 0600). Every invoice is recorded by its identity — GSTIN,
return period, section and ``ident`` (counterparty + number, see ``docs/ingest.md``) — with the
SHA-256 of its canonical bytes, and every RETSAVE chunk by its ``txn``:

Invoice states::

    pending ──▶ sent ──▶ saved ──▶ accepted
       ▲          │         └────▶ rejected (GSTN's per-invoice error: code, message)
       └──────────┘ (in doubt: re-sent with its chunk's txn, or in another chunk — RETSAVE
                     replaces an invoice by its number, so it is never filed twice)

Chunk states: ``planned`` → ``sent`` (in doubt) → ``saved`` (GSTN acknowledged, reference id)
→ ``processed`` | ``partial`` (processed with errors) | ``error``; or ``failed`` (refused at
RETSAVE), ``parked`` (its GSTIN needs OTP consent).

A re-run classifies each input record against the journal: the same content already saved,
accepted or rejected is left out (``retry_rejected`` re-sends rejected ones); a changed record,
a new one, or one never acknowledged goes into this run's chunks. The same identity twice in
one run's input is reported as a ``duplicate`` record error.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = [
    "ChunkRow",
    "ChunkState",
    "Classified",
    "FilingJournal",
    "InvoiceRow",
    "InvoiceState",
    "RecordKey",
    "default_journal_path",
    "open_journal",
]


class InvoiceState(str, enum.Enum):
    """Where an invoice stands with GSTN (see the module docs for the transitions)."""

    PENDING = "pending"
    SENT = "sent"
    SAVED = "saved"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value


class ChunkState(str, enum.Enum):
    """Where a RETSAVE chunk stands with GSTN (see the module docs for the transitions)."""

    PLANNED = "planned"
    SENT = "sent"
    SAVED = "saved"
    PROCESSED = "processed"
    PARTIAL = "partial"
    ERROR = "error"
    FAILED = "failed"
    PARKED = "parked"

    def __str__(self) -> str:
        return self.value


#: ``(gstin, fp, section, ident, sha256hex, line)``: an accepted input record (the ingest's tuple).
RecordKey = tuple[str, str, str, str, str, int]


@dataclass(frozen=True)
class Classified:
    """What the journal says about a batch of input records.

    :param skip: one byte per record, non-zero to leave it out of this run's chunks (the
        ingest chunker's ``skip`` mask).
    :param duplicates: indexes of records whose identity already appeared in this run.
    :param unchanged: records left out because GSTN already has this content (saved/accepted).
    :param still_rejected: records left out because GSTN rejected this very content before.
    """

    skip: bytes
    duplicates: tuple[int, ...] = ()
    unchanged: int = 0
    still_rejected: int = 0


@dataclass(frozen=True)
class ChunkRow:
    """One RETSAVE chunk in the journal (no payload: chunks are rebuilt from the input)."""

    txn: str
    gstin: str
    fp: str
    section: str
    action: str
    sha256: str
    count: int
    size: int
    state: ChunkState
    reference_id: str | None
    status_cd: str | None
    error: str | None
    attempts: int
    updated_at: _dt.datetime | None = None

    def to_dict(self) -> dict[str, object]:
        return {"txn": self.txn, "gstin": self.gstin, "fp": self.fp, "section": self.section, "action": self.action,
                "sha256": self.sha256, "count": self.count, "size": self.size, "state": str(self.state),
                "reference_id": self.reference_id, "status_cd": self.status_cd, "error": self.error,
                "attempts": self.attempts,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}


@dataclass(frozen=True)
class InvoiceRow:
    """One invoice (or b2cs/hsn row) in the journal."""

    gstin: str
    fp: str
    section: str
    ident: str
    sha256: str
    state: InvoiceState
    chunk_txn: str | None
    reference_id: str | None
    error_code: str | None
    error_message: str | None
    source: str | None
    line: int | None

    def to_dict(self) -> dict[str, object]:
        return {"gstin": self.gstin, "fp": self.fp, "section": self.section, "ident": self.ident,
                "sha256": self.sha256, "state": str(self.state), "chunk_txn": self.chunk_txn,
                "reference_id": self.reference_id, "error_code": self.error_code,
                "error_message": self.error_message, "source": self.source, "line": self.line}


@runtime_checkable
class FilingJournal(Protocol):
    """Where a filer records invoices and chunks. Implementations are safe across threads;
    persistent ones across processes (and, for shared databases, machines)."""

    def claim(self, gstin: str) -> bool:
        """Take the right to file ``gstin`` in this process (``False``: another filer holds it)."""
        ...

    def release(self, gstin: str) -> None:
        """Give back :meth:`claim`."""
        ...

    def begin_run(self, description: Mapping[str, object]) -> int:
        """Start a run (inputs and options, for the record); its id scopes duplicate detection."""
        ...

    def end_run(self, run_id: int, outcome: str) -> None:
        """Close a run with its outcome (``complete``, ``interrupted``, ``parked`` …)."""
        ...

    def classify(self, run_id: int, source: str, records: Sequence[RecordKey], *,
                 retry_rejected: bool = False, write: bool = True) -> Classified:
        """Decide, per input record, whether this run must send it (see the module docs).

        ``write=False`` (a dry run) records nothing.
        """
        ...

    def plan_chunk(self, txn: str, gstin: str, fp: str, section: str, action: str, sha256: str, size: int,
                   records: Sequence[tuple[str, str]]) -> ChunkState:
        """Record a chunk built from this run's input and link its invoices to it; returns its
        state if the journal already knew the ``txn`` (a resumed run rebuilt the same chunk)."""
        ...

    def mark_sent(self, txn: str) -> None:
        """The chunk is about to be sent: in doubt until GSTN acknowledges it."""
        ...

    def mark_saved(self, txn: str, reference_id: str) -> None:
        """GSTN acknowledged the chunk (RETSAVE ``reference_id``)."""
        ...

    def mark_status(self, txn: str, status_cd: str, errors: Mapping[str, tuple[str, str]]) -> None:
        """GSTN processed the chunk (RETSTATUS ``P``/``PE``/``ER``); ``errors``: ident → (code, message)."""
        ...

    def mark_failed(self, txn: str, code: str, message: str) -> None:
        """GSTN refused the chunk at RETSAVE (permanently); its invoices are rejected with it."""
        ...

    def mark_in_doubt(self, txn: str, code: str) -> None:
        """No answer (after retries): the chunk stays in doubt, to be re-sent with its txn."""
        ...

    def park(self, gstin: str, reason: str) -> None:
        """The GSTIN has no usable session (``reason``); its planned chunks wait."""
        ...

    def unpark(self, gstin: str) -> None:
        ...

    def parked(self) -> dict[str, str]:
        """GSTIN → reason, for every parked GSTIN."""
        ...

    def chunks(self, *, states: Iterable[ChunkState] | None = None, gstin: str | None = None) -> list[ChunkRow]:
        ...

    def invoices(self, *, states: Iterable[InvoiceState] | None = None, gstin: str | None = None,
                 fp: str | None = None) -> Iterator[InvoiceRow]:
        ...

    def counts(self, *, gstin: str | None = None) -> dict[str, dict[str, int]]:
        """``{"invoices": {state: n}, "chunks": {state: n}}`` (optionally for one GSTIN)."""
        ...

    def reset_for_retry(self, *, gstin: str | None = None, rejected: bool = True) -> int:
        """Make failed chunks' and (``rejected``) rejected invoices' content eligible again;
        returns how many invoices were reset."""
        ...

    def close(self) -> None:
        ...


def default_journal_path() -> Path:
    """``<gspauth home>/filing.journal`` (see :func:`gspauth.config.gspauth_home`)."""
    from gspauth.config import gspauth_home

    return gspauth_home() / "filing.journal"


def open_journal(spec: str | os.PathLike[str] | None = None) -> FilingJournal:
    """The journal a setting names: ``None`` → the default SQLite file; a path (or
    ``sqlite:///path``) → a :class:`~gspauth.journal.sqlite.SQLiteJournal` there; a
    ``postgresql://`` (or ``postgres://``) URL → a :class:`~gspauth.journal.postgres.PostgresJournal`
    shared by filers on many machines.

    :raises ConfigurationError: a URL scheme no journal backend handles, or a database schema
        this gspauth cannot use.
    :raises DamagedFile: the file is not a usable journal.
    :raises Unreachable: the database server cannot be reached.
    """
    from gspauth.errors import ConfigurationError
    from gspauth.journal.sqlite import SQLiteJournal

    if spec is None:
        return SQLiteJournal(default_journal_path())
    text = os.fspath(spec)
    if text.startswith("sqlite://"):
        return SQLiteJournal(text[len("sqlite://"):])
    if text.startswith(("postgresql://", "postgres://")):
        from gspauth.journal.postgres import PostgresJournal

        return PostgresJournal(text)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isalpha():
        raise ConfigurationError(f"no filing journal backend for {scheme}:// URLs "
                                 "(give a file path, sqlite:///path or postgresql://…)")
    return SQLiteJournal(text)
