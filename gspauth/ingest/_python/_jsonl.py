"""JSONL: one record per line (Rust twin: ``ingest/jsonl.rs``).

A line is the bytes before an LF (a CR before it is JSON whitespace). Lines of
only whitespace are skipped. A line longer than ``MAX_RECORD_BYTES`` is
``too-large`` and is skipped up to its LF without being kept in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._record import jsonl_line
from gspauth.ingest._python._schema import COUNTERPARTY

if TYPE_CHECKING:
    from gspauth.ingest._python._parser import Parser

__all__ = ["JsonlReader"]

_TOO_LARGE = "the line is longer than {} bytes"


class JsonlReader:
    def __init__(self, parser: Parser) -> None:
        from gspauth.ingest._python._parser import MAX_RECORD_BYTES

        self.p = parser
        self.max = MAX_RECORD_BYTES
        self.tail = bytearray()
        self.line = 1
        self.skipping = False

    def feed(self, data: bytes, final: bool) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self.skipping:
                self.skipping = False
            elif self.tail:
                self.tail += data[start:nl]
                self._line(bytes(self.tail))
            else:
                self._line(data[start:nl])
            self.tail.clear()
            self.line += 1
            start = nl + 1
        if not self.skipping:
            self.tail += data[start:]
            if len(self.tail) > self.max:
                self.p.error(self.line, "too-large", _TOO_LARGE.format(self.max))
                self.skipping = True
        if self.skipping:
            self.tail.clear()
        if final and self.tail:
            self._line(bytes(self.tail))
            self.tail.clear()

    def _line(self, raw: bytes) -> None:
        if len(raw) > self.max:
            self.p.error(self.line, "too-large", _TOO_LARGE.format(self.max))
            return
        if not raw.strip(b" \t\r"):
            return
        p = self.p
        try:
            section, rec = jsonl_line(raw)
            for name, want in (("section", p.section), ("gstin", p.gstin), ("fp", p.fp)):
                got = section if name == "section" else rec[name]
                if want is not None and got != want:
                    raise Reject("mismatch",
                                 f"{name} {show(got)} differs from the {name} {want} this file is read with")
        except Reject as r:
            p.error(self.line, r.code, r.message)
            return
        key = rec[COUNTERPARTY[section]] if section in COUNTERPARTY else ""
        p.record(section, rec["gstin"], rec["fp"], key, rec, self.line)
