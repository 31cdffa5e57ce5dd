"""Reading the inputs into journalled chunks (runs on a worker thread; the Rust ingest releases
the GIL while it parses, so the sender's event loop keeps going).

For each block of each file: parse and validate (:mod:`gspauth.ingest`), ask the journal which
records this run must send (new, changed, or never acknowledged), chunk those, record each
chunk in the journal, and hand it to the sender. Memory is bounded by the ingest's buffer
budget and the hand-over queue, not by the size of the files.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from gspauth import ingest, protocol
from gspauth.errors import InvalidParameter
from gspauth.filer._partition import LineFilter, Partition
from gspauth.filer._report import FilingProgress
from gspauth.journal import ChunkState, FilingJournal

__all__ = ["FilingInput", "PlannedChunk", "Planner"]

#: Record errors kept for the report (all are counted).
MAX_KEPT_ERRORS = 10_000


@dataclass(frozen=True)
class FilingInput:
    """One input file and how to read it (see :func:`gspauth.ingest.read_chunks`).

    :param path: a JSONL, GSTR-1 JSON or offline-tool CSV file: a local path, or a URL fsspec
        reads (``s3://…``, ``gs://…``, ``file://…``; needs ``fsspec`` and the scheme's package).
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


def is_url(path: str) -> bool:
    """Whether an input names a URL (``s3://…``) rather than a local path."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def _fsspec() -> Any:
    try:
        return importlib.import_module("fsspec")  # imported by name: fsspec ships no type information
    except ImportError:
        from gspauth.errors import ConfigurationError

        raise ConfigurationError("reading inputs from URLs needs fsspec: pip install 'gspauth[distributed]' "
                                 "(and the package of the URL's scheme, e.g. s3fs)") from None


def open_input(path: str) -> IO[bytes]:
    """Open an input for reading: a local path, or a URL through fsspec."""
    if not is_url(path):
        return open(path, "rb")
    fsspec = _fsspec()
    f: IO[bytes] = fsspec.open(path, "rb").open()
    return f


def input_size(path: str) -> int:
    """The size of an input in bytes (local path or fsspec URL)."""
    if not is_url(path):
        return os.path.getsize(path)
    fsspec = _fsspec()
    fs, inner = fsspec.core.url_to_fs(path)
    return int(fs.size(inner))


def chunk_txn(action: str, chunk: ingest.Chunk) -> str:
    """The chunk's idempotency key: the same content for the same return gives the same txn."""
    return protocol.derive_txn("gspauth-filing-v2", action, chunk.gstin, chunk.fp, chunk.section, chunk.sha256)


class Planner:
    """Turns input files into journalled chunks, handing each to ``emit`` as it completes."""

    def __init__(self, journal: FilingJournal, run_id: int, *, action: str, max_chunk_bytes: int,
                 max_buffer_bytes: int, retry_rejected: bool, dry_run: bool, progress: FilingProgress,
                 block_size: int = ingest.READ_BLOCK_BYTES, partition: Partition | None = None,
                 admit: Callable[[str], bool] | None = None) -> None:
        self.journal = journal
        self.partition = partition
        # admit(gstin): may this filer file the GSTIN (its journal claim)? Asked once per GSTIN,
        # before any of its records is classified: a GSTIN another filer holds is not touched.
        self.admit = admit
        self._admitted: dict[str, bool] = {}
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

    def _place(self, source: str, batch: ingest.Batch, emit: Callable[[PlannedChunk], None],
               owner: _Ownership | None = None) -> None:
        errors = batch.errors()
        if owner is not None:  # a partition reports the errors of the input it owns, no other
            errors = [e for e in errors if owner.reports(e[1])]
        for e in errors:
            self._error(ingest.RecordError(*e))
        records = batch.records()
        mine: list[int] | None = None
        if self.partition is not None and records:
            mine = self._mine(records, owner)
        if self.admit is not None and records:
            mine = self._admissible(records, mine)
        kept = records if mine is None else [records[i] for i in mine]
        self.progress.read(0, len(kept) + len(errors))
        verdict = self.journal.classify(self.run_id, source, kept, retry_rejected=self.retry_rejected,
                                        write=not self.dry_run)
        self.progress.classified(len(verdict.duplicates), verdict.unchanged, verdict.still_rejected)
        for i in verdict.duplicates:
            r = kept[i]
            self._error(ingest.RecordError(source, r[5], "duplicate",
                                           f"{r[2]} {r[3]} of {r[0]} for {r[1]} appears earlier in this run's input; "
                                           "this copy is not sent"))
        skip: bytes | None = verdict.skip if verdict.skip else None
        if mine is not None:  # the mask covers the whole batch: other partitions' records are left out
            mask = bytearray(b"\x01") * len(records)
            for j, i in enumerate(mine):
                mask[i] = verdict.skip[j]
            skip = bytes(mask)
        self._chunks(self.chunker.add(batch, skip), emit)

    def _mine(self, records: list[ingest.RecordTuple], owner: _Ownership | None) -> list[int] | None:
        """Indexes of this partition's records (``None``: all of them)."""
        partition = self.partition
        assert partition is not None
        mine = [i for i, r in enumerate(records) if r[0] in partition]
        if owner is not None and owner.lines is not None and len(mine) != len(records):
            for r in records:  # a line read as ours holds a record of another GSTIN: it would be lost
                if r[0] not in partition and owner.lines.attributed(r[5]):
                    raise RuntimeError(f"{r[0]} on line {r[5]} was read as partition {partition}'s by the "
                                       "line filter; refusing to go on rather than leave it unfiled")
        return None if len(mine) == len(records) else mine

    def _admissible(self, records: list[ingest.RecordTuple], mine: list[int] | None) -> list[int] | None:
        """``mine`` (``None``: every record) without the records of GSTINs this filer may not file."""
        assert self.admit is not None
        indexes = range(len(records)) if mine is None else mine
        kept = []
        for i in indexes:
            gstin = records[i][0]
            allowed = self._admitted.get(gstin)
            if allowed is None:
                allowed = self._admitted[gstin] = self.admit(gstin)
            if allowed:
                kept.append(i)
        return None if len(kept) == len(records) else kept

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
        owners = [_Ownership.of(spec, self.partition) for spec in resolved]
        self.progress.bytes_total = sum(input_size(i.path) for i, o in zip(resolved, owners) if not o.skip_file)
        for spec, owner in zip(resolved, owners):
            assert spec.format is not None  # resolved
            if owner.skip_file:  # a CSV (or hinted GSTR-1 JSON) of another partition's GSTIN
                continue
            parser = ingest.Parser(spec.format, spec.path, spec.section, spec.gstin, spec.fp)
            lines = owner.lines
            with open_input(spec.path) as f:
                while not stopped():
                    block = f.read(self.block_size)
                    if not block:
                        break
                    self.progress.read(len(block), 0)
                    self._place(spec.path, parser.feed(lines.feed(block) if lines else block), emit, owner)
                    if parser.failed:
                        break
                if stopped():
                    return
                if lines is not None and not parser.failed:
                    self._place(spec.path, parser.feed(lines.finish()), emit, owner)
                self._place(spec.path, parser.finish(), emit, owner)
        self._chunks(self.chunker.flush(), emit)


@dataclass(frozen=True)
class _Ownership:
    """Which of an input's errors a partition reports, and whether it reads the input at all."""

    partition: Partition | None
    whole: bool = False  # the file is one GSTIN's, and it is this partition's
    skip_file: bool = False
    lines: LineFilter | None = None

    @classmethod
    def of(cls, spec: FilingInput, partition: Partition | None) -> _Ownership:
        if partition is None:
            return cls(None, whole=True)
        if spec.gstin and spec.format in ("csv", "gstr1-json"):  # one GSTIN per file, known up front
            mine = spec.gstin in partition
            return cls(partition, whole=mine, skip_file=not mine)
        if spec.format == "jsonl":
            return cls(partition, lines=LineFilter(partition))
        return cls(partition)

    def reports(self, line: int) -> bool:
        if self.partition is None:
            return True
        if self.partition.only is not None:
            return False  # a later pass over some GSTINs: the first pass reported the input's errors
        if self.whole:
            return True
        if self.lines is not None and self.lines.attributed(line):
            return True  # a line read as ours: no other partition saw it
        return self.partition.reports_unattributed
