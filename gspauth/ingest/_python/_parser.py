"""The reference :class:`Parser` and its :class:`Batch` (Rust twin: ``ingest/parser.rs``)."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from gspauth.errors import InvalidParameter
from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._record import canonical
from gspauth.ingest._python._rules import check_fp, check_gstin, validate
from gspauth.ingest._python._schema import SECTIONS, invoice_table

__all__ = ["FORMATS", "MAX_RECORD_BYTES", "Batch", "Parser"]

FORMATS = ("jsonl", "gstr1-json", "csv")
#: A record's input bytes (line, row, object) and its canonical bytes are at most this long.
MAX_RECORD_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"

RecordTuple = tuple[str, str, str, str, str, int]
ErrorTuple = tuple[str, int, str, str]


class _Rec:
    """One accepted record, with what the chunker needs besides the public tuple."""

    __slots__ = ("canon", "fp", "gstin", "ident", "key", "line", "section", "sha")

    def __init__(self, gstin: str, fp: str, section: str, key: str, ident: str, canon: bytes, line: int) -> None:
        self.gstin, self.fp, self.section, self.key, self.ident = gstin, fp, section, key, ident
        self.canon, self.line = canon, line
        self.sha = hashlib.sha256(canon).hexdigest()


class Batch:
    """What one :meth:`Parser.feed` or :meth:`Parser.finish` produced."""

    __slots__ = ("_errors", "_recs", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._recs: list[_Rec] = []
        self._errors: list[ErrorTuple] = []

    def __len__(self) -> int:
        return len(self._recs)

    def records(self) -> list[RecordTuple]:
        """``(gstin, fp, section, ident, sha256hex, line)`` per accepted record, in input order."""
        return [(r.gstin, r.fp, r.section, r.ident, r.sha, r.line) for r in self._recs]

    def errors(self) -> list[ErrorTuple]:
        """``(source, line, code, message)`` per rejected record (and a fatal file error), in input order."""
        return list(self._errors)

    def __repr__(self) -> str:
        return f"<Batch {self.source!r}: {len(self._recs)} records, {len(self._errors)} errors>"


class _Reader(Protocol):
    def feed(self, data: bytes, final: bool) -> None: ...


class Parser:
    """Streamed reading of one input file; see :mod:`gspauth.ingest` for the contract."""

    def __init__(self, format: str, source: str, section: str | None, gstin: str | None, fp: str | None, /) -> None:
        for name, value, optional in (("format", format, False), ("source", source, False),
                                      ("section", section, True), ("gstin", gstin, True), ("fp", fp, True)):
            if not (isinstance(value, str) or (optional and value is None)):
                raise TypeError(f"{name} must be str{' or None' if optional else ''}")
        if format not in FORMATS:
            raise InvalidParameter(f"format {show(format)} is not one of jsonl, gstr1-json, csv", "format")
        if section is not None and section not in SECTIONS:
            raise InvalidParameter(f"section {show(section)} is not one of b2b, b2cl, b2cs, cdnr, hsn", "section")
        for name, value, check in (("gstin", gstin, lambda v: check_gstin(v, "gstin", "gstin")), ("fp", fp, check_fp)):
            if value is not None:
                try:
                    check(value)
                except Reject as r:
                    raise InvalidParameter(r.message, name) from None
        if format == "csv" and (section is None or gstin is None or fp is None):
            raise InvalidParameter("a CSV file needs section, gstin and fp: the offline-tool templates carry "
                                   "none of them (pass --section, --gstin, --fp)", "section")
        self.format, self.source, self.section, self.gstin, self.fp = format, source, section, gstin, fp
        self._failed = False
        self._batch = Batch(source)
        self._head = b""  # the first bytes, until a BOM can be recognised
        self._started = False
        self._done = False
        self._reader: _Reader
        if format == "jsonl":
            from gspauth.ingest._python._jsonl import JsonlReader

            self._reader = JsonlReader(self)
        elif format == "gstr1-json":
            from gspauth.ingest._python._gstr1 import Gstr1Reader

            self._reader = Gstr1Reader(self)
        else:
            from gspauth.ingest._python._csv import CsvReader

            self._reader = CsvReader(self)

    @property
    def failed(self) -> bool:
        """``True`` once a fatal (file-level) error was reported: the rest of the input is ignored."""
        return self._failed

    def feed(self, data: bytes, /) -> Batch:
        """Parse the next bytes of the file (any split); returns the records and errors completed."""
        if not isinstance(data, bytes):
            raise TypeError("data must be bytes")
        if self._done:
            raise InvalidParameter("feed() after finish(): make a new Parser per file", "data")
        return self._run(data, False)

    def finish(self) -> Batch:
        """End of input: completes or reports what the last bytes left open."""
        if self._done:
            raise InvalidParameter("finish() called twice: make a new Parser per file", "data")
        self._done = True
        return self._run(b"", True)

    def _run(self, data: bytes, final: bool) -> Batch:
        if not self._started:
            self._head += data
            if len(self._head) < len(_BOM) and not final and _BOM.startswith(self._head):
                return self._take()
            data = self._head[3:] if self._head.startswith(_BOM) else self._head
            self._head = b""
            self._started = True
        if not self._failed:
            self._reader.feed(data, final)
        return self._take()

    def _take(self) -> Batch:
        batch, self._batch = self._batch, Batch(self.source)
        return batch

    # --- called by the readers -------------------------------------------------

    def error(self, line: int, code: str, message: str) -> None:
        self._batch._errors.append((self.source, line, code, message))  # noqa: SLF001 - the parser fills its batches

    def fatal(self, line: int, code: str, message: str) -> None:
        self.error(line, code, message)
        self._failed = True

    def record(self, section: str, gstin: str, fp: str, key: str, rec: dict[str, Any], line: int) -> None:
        """Validate, write and hash one shape-checked record (errors go to the batch)."""
        try:
            ident = validate(section, rec, gstin, fp, key)
            canon = canonical(rec, invoice_table(section)).encode("utf-8")
            if len(canon) > MAX_RECORD_BYTES:
                raise Reject("too-large", f"the record's canonical form is longer than {MAX_RECORD_BYTES} bytes")
        except Reject as r:
            self.error(r.line or line, r.code, r.message)
            return
        self._batch._recs.append(_Rec(gstin, fp, section, key, ident, canon, line))  # noqa: SLF001 - its batch
