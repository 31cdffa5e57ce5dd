"""Reading the inputs into journalled chunks (runs on a worker thread; the Rust ingest releases
the GIL while it parses, so the sender's event loop keeps going).

For each block of each file: parse and validate (:mod:`gspauth.ingest`), ask the journal which
records this run must send (new, changed, or never acknowledged), chunk those, record each
chunk in the journal, and hand it to the sender. Memory is bounded by the ingest's buffer
budget and the hand-over queue, not by the size of the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gspauth import ingest, protocol
from gspauth.errors import InvalidParameter
from gspauth.filer._report import FilingProgress
from gspauth.journal import ChunkState, FilingJournal

__all__ = ["FilingInput", "PlannedChunk", "Planner"]

#: Record errors kept for the report (all are counted).
MAX_KEPT_ERRORS = 10_000


@dataclass(frozen=True)
class FilingInput:
    """One input file and how to read it (see :func:`gspauth.ingest.read_chunks`).

    :param path: a JSONL, GSTR-1 JSON or offline-tool CSV file.
    :param format: ``jsonl`` | ``gstr1-json`` | ``csv`` (default: from the extension).
    :param section: the CSV's section (default: from the file name).
    :param gstin: the supplier GSTIN (required for CSV).
    :param fp: the return period MMYYYY (required for CSV).
    """

    path: str
    format: str | None = None
    section: str | None = None
    gstin: str | None = None
    fp: str | None = None

    def resolved(self) -> FilingInput:
        fmt = self.format or ingest.detect_format(self.path)
        section = self.section
        if section is None and fmt == "csv":
            section = ingest.section_from_name(self.path)
            if section is None:
                raise InvalidParameter(f"cannot tell the section of {self.path!r} from its name; pass --section "
                                       "(b2b, b2cl, b2cs, cdnr or hsn)", "section")
        if fmt == "csv" and (not self.gstin or not self.fp):
            raise InvalidParameter(f"{self.path}: the offline tool's CSV templates carry neither the supplier GSTIN "
                                   "nor the period; pass --gstin and --fp", "gstin")
        return FilingInput(self.path, fmt, section, self.gstin, self.fp)


@dataclass(frozen=True)
class PlannedChunk:
    """A chunk to send: the ingest's chunk, its txn, and what the journal knew of it."""

    chunk: ingest.Chunk
    txn: str
    known: ChunkState


def chunk_txn(action: str, chunk: ingest.Chunk) -> str:
    """The chunk's idempotency key: the same content for the same return gives the same txn."""
    return protocol.derive_txn("gspauth-filing-v2", action, chunk.gstin, chunk.fp, chunk.section, chunk.sha256)


class Planner:
    """Turns input files into journalled chunks, handing each to ``emit`` as it completes."""

    def __init__(self, journal: FilingJournal, run_id: int, *, action: str, max_chunk_bytes: int,
                 max_buffer_bytes: int, retry_rejected: bool, dry_run: bool, progress: FilingProgress,
                 block_size: int = ingest.READ_BLOCK_BYTES) -> None:
        self.journal = journal
        self.run_id = run_id
        self.action = action
        self.retry_rejected = retry_rejected
        self.dry_run = dry_run
        self.progress = progress
        self.block_size = block_size
        self.chunker = ingest.Chunker(max_chunk_bytes, max_buffer_bytes)
        self.errors: list[ingest.RecordError] = []

    def _error(self, error: ingest.RecordError) -> None:
        self.progress.record_error(error.code)
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)

    def _place(self, source: str, batch: ingest.Batch, emit: Callable[[PlannedChunk], None]) -> None:
        errors = batch.errors()
        for e in errors:
            self._error(ingest.RecordError(*e))
        records = batch.records()
        self.progress.read(0, len(records) + len(errors))
        verdict = self.journal.classify(self.run_id, source, records, retry_rejected=self.retry_rejected,
                                        write=not self.dry_run)
        self.progress.classified(len(verdict.duplicates), verdict.unchanged, verdict.still_rejected)
        for i in verdict.duplicates:
            r = records[i]
            self._error(ingest.RecordError(source, r[5], "duplicate",
                                           f"{r[2]} {r[3]} of {r[0]} for {r[1]} appears earlier in this run's input; "
                                           "this copy is not sent"))
        self._chunks(self.chunker.add(batch, verdict.skip if verdict.skip else None), emit)

    def _chunks(self, chunks: list[ingest.Chunk], emit: Callable[[PlannedChunk], None]) -> None:
        for e in self.chunker.errors():
            self._error(ingest.RecordError(*e))
        for chunk in chunks:
            txn = chunk_txn(self.action, chunk)
            known = ChunkState.PLANNED
            if not self.dry_run:
                known = self.journal.plan_chunk(txn, chunk.gstin, chunk.fp, chunk.section, self.action, chunk.sha256,
                                                len(chunk.payload), chunk.records)
            self.progress.planned(chunk.gstin, chunk.count)
            emit(PlannedChunk(chunk, txn, known))

    def run(self, inputs: list[FilingInput], emit: Callable[[PlannedChunk], None],
            stopped: Callable[[], bool]) -> None:
        """Read every input (stopping early when ``stopped()``), then flush the open chunks."""
        resolved = [i.resolved() for i in inputs]
        self.progress.bytes_total = sum(os.path.getsize(i.path) for i in resolved)
        for spec in resolved:
            assert spec.format is not None  # resolved
            parser = ingest.Parser(spec.format, spec.path, spec.section, spec.gstin, spec.fp)
            with Path(spec.path).open("rb") as f:
                while not stopped():
                    block = f.read(self.block_size)
                    if not block:
                        break
                    self.progress.read(len(block), 0)
                    self._place(spec.path, parser.feed(block), emit)
                    if parser.failed:
                        break
                if stopped():
                    return
                self._place(spec.path, parser.finish(), emit)
        self._chunks(self.chunker.flush(), emit)
