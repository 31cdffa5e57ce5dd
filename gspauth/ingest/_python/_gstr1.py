"""GSTR-1 JSON as the offline tool writes it, walked incrementally (Rust twin: ``ingest/gstr1.rs``).

The outer structure (the top-level object, the section arrays, the ``ctin``/``pos``
groups, ``hsn.data``) is read token by token and checked as JSON; a fault there is
fatal, because nothing after it can be placed. Each record (an invoice, note,
b2cs entry or hsn entry) is located by its *extent* and handed whole to the record
reader, so a broken record is one record error. The extent of a value starting
with ``{`` or ``[`` ends at the bracket that brings the nesting back to zero
(brackets inside strings do not count; the kind of bracket is not checked here);
a string ends at its closing quote; anything else ends before the next ``,``
``]`` ``}`` or whitespace. Values that are read past (``gt``, ``version``, an
unsupported section …) are found the same way and are not otherwise checked.

Lines count LF bytes; a record's line is the line of its first byte.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._extent import Extent, scan
from gspauth.ingest._python._record import parse, record_object
from gspauth.ingest._python._rules import check_fp, check_gstin
from gspauth.ingest._python._schema import COUNTERPARTY, GSTR1_IGNORED, LIST_FIELD, invoice_table

if TYPE_CHECKING:
    from gspauth.ingest._python._parser import Parser

__all__ = ["OUTER_STRING_MAX", "PENDING_MAX", "Gstr1Reader"]

#: A string of the outer structure (a key, a ctin/pos, gstin, fp) is at most this many bytes.
OUTER_STRING_MAX = 4096
#: Records of a group seen before the group's ctin/pos are held up to this many bytes.
PENDING_MAX = 16 << 20

_WS = b" \t\r\n"
_IN_STRING = re.compile(rb'["\\]')
_STRING_BODY = re.compile(rb'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_GROUPED = ("b2b", "b2cl", "cdnr")


class _Need(Exception):
    """More input is needed to go on."""


class _Fatal(Exception):
    def __init__(self, line: int, code: str, message: str) -> None:
        super().__init__(code)
        self.line, self.code, self.message = line, code, message


class _Frame:
    """One open object or array of the outer structure."""

    __slots__ = ("group", "key", "keys", "kind", "line", "pending", "pending_bytes", "phase", "section", "value_key")

    def __init__(self, kind: str, section: str = "", line: int = 0) -> None:
        self.kind = kind  # top | sections | group | hsn | records
        self.section = section
        self.line = line
        self.phase = "open"  # open → first → (key → colon → value → after)* | (elem → after)*
        self.keys: set[str] = set()
        self.value_key = ""  # the member whose value comes next
        self.key: str | None = None  # a group's ctin / pos
        self.pending: list[tuple[bytes, int]] = []
        self.pending_bytes = 0
        self.group: _Frame | None = None  # a records array: its group


class Gstr1Reader:
    def __init__(self, parser: Parser) -> None:
        from gspauth.ingest._python._parser import MAX_RECORD_BYTES

        self.p = parser
        self.max = MAX_RECORD_BYTES
        self.buf = bytearray()
        self.pos = 0
        self.line = 1
        self.stack = [_Frame("top")]
        self.done = False  # the top-level object is closed
        self.extent: Extent | None = None
        self.extent_target: _Frame | None = None
        self.gstin: str | None = None  # the file's own values
        self.fp: str | None = None

    # --- driving ---------------------------------------------------------------

    def feed(self, data: bytes, final: bool) -> None:
        self.buf += data
        try:
            while self._step(final):
                pass
            if final:
                if not self.done:
                    raise _Fatal(self.line, "truncated", "the file ends inside the GSTR-1 object")
        except _Fatal as f:
            self.p.fatal(f.line, f.code, f.message)
        except _Need:
            pass
        del self.buf[: self.pos]
        self.pos = 0

    def _advance(self, n: int) -> None:
        self.line += self.buf.count(b"\n", self.pos, self.pos + n)
        self.pos += n

    def _skip_ws(self, final: bool) -> int:
        """Skip whitespace; the next byte, or raise _Need (or return -1 at the end of the input)."""
        buf, i, n = self.buf, self.pos, len(self.buf)
        while i < n and buf[i] in _WS:
            i += 1
        self._advance(i - self.pos)
        if i == n:
            if final:
                return -1
            raise _Need
        return buf[i]

    def _string(self, final: bool) -> str:
        """The outer-structure string token at pos (its opening quote is there)."""
        buf, start, line = self.buf, self.pos, self.line
        i = start + 1
        while True:
            m = _IN_STRING.search(buf, i, min(len(buf), start + OUTER_STRING_MAX))
            if m is None:
                if len(buf) - start >= OUTER_STRING_MAX:
                    raise _Fatal(line, "syntax", f"a name or value in the file structure is longer than "
                                                 f"{OUTER_STRING_MAX} bytes")
                if final:
                    raise _Fatal(self._eof_line(), "truncated", "the file ends inside a string")
                raise _Need
            if m.group() == b'"':
                end = m.end()
                break
            i = m.end() + 1  # a backslash: the next byte is escaped
            if i >= len(buf) and not final:
                raise _Need
        raw = bytes(buf[start:end])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Fatal(line, "utf8", "a name or value in the file structure is not valid UTF-8") from None
        if not _STRING_BODY.fullmatch(raw):
            raise _Fatal(line, "syntax", "a name or value in the file structure is not a valid JSON string")
        self._advance(end - start)
        value: str = json.loads(text)
        return value

    def _eof_line(self) -> int:
        return self.line + self.buf.count(b"\n", self.pos)

    def _expect(self, what: str) -> None:
        raise _Fatal(self.line, "syntax", f"expected {what}")

    # --- the outer structure ---------------------------------------------------

    def _step(self, final: bool) -> bool:
        if self.extent is not None:
            self._run_extent(final)
            return True
        if self.done:
            b = self._skip_ws(final)
            if b == -1:
                return False
            raise _Fatal(self.line, "syntax", "data after the end of the GSTR-1 object")
        frame = self.stack[-1]
        b = self._skip_ws(final)
        if b == -1:
            raise _Fatal(self.line, "truncated", "the file ends inside the GSTR-1 object")
        if frame.kind in ("top", "group", "hsn"):
            self._object_step(frame, b, final)
        else:
            self._array_step(frame, b, final)
        return True

    def _object_step(self, frame: _Frame, b: int, final: bool) -> None:
        phase = frame.phase
        if phase == "open":
            if b != ord("{"):
                self._expect("'{' to open the GSTR-1 object" if frame.kind == "top" else "'{'")
            self._advance(1)
            frame.phase = "first"
        elif phase in ("first", "key"):
            if b == ord("}") and phase == "first":
                self._advance(1)
                self._close(frame)
            elif b == ord('"'):
                key_line = self.line
                key = self._string(final)
                if key in frame.keys:
                    where = {"top": "the file", "hsn": "hsn"}.get(frame.kind, f"a {frame.section} group")
                    raise _Fatal(key_line, "duplicate-key", f"{where} has the field {show(key)} more than once")
                frame.keys.add(key)
                frame.value_key = key
                frame.line = key_line
                frame.phase = "colon"
            else:
                self._expect("a field name or '}'" if phase == "first" else "a field name")
        elif phase == "colon":
            if b != ord(":"):
                self._expect("':'")
            self._advance(1)
            frame.phase = "value"
        elif phase == "value":
            self._member(frame, frame.value_key, frame.line, b, final)
            frame.phase = "after"  # only now: _member may need more input first
        else:  # after
            if b == ord(","):
                self._advance(1)
                frame.phase = "key"
            elif b == ord("}"):
                self._advance(1)
                self._close(frame)
            else:
                self._expect("',' or '}'")

    def _array_step(self, frame: _Frame, b: int, final: bool) -> None:
        phase = frame.phase
        if phase == "open":
            if b != ord("["):
                self._expect("'['")
            self._advance(1)
            frame.phase = "first"
        elif phase in ("first", "elem"):
            if b == ord("]") and phase == "first":
                self._advance(1)
                self.stack.pop()
            else:
                self._element(frame, b)
                frame.phase = "after"
        else:
            if b == ord(","):
                self._advance(1)
                frame.phase = "elem"
            elif b == ord("]"):
                self._advance(1)
                self.stack.pop()
            else:
                self._expect("',' or ']'")

    def _close(self, frame: _Frame) -> None:
        self.stack.pop()
        if frame.kind == "top":
            self.done = True
        elif frame.kind == "group" and frame.key is None:
            what = COUNTERPARTY[frame.section]
            for _raw, line in frame.pending:
                self.p.error(line, "missing-field", f"its {frame.section} group has no {what}")
            frame.pending.clear()

    def _member(self, frame: _Frame, key: str, key_line: int, b: int, final: bool) -> None:
        if b in b",:]}":
            raise _Fatal(self.line, "syntax", "expected a value")
        if frame.kind == "top":
            self._top_member(key, key_line, b, final)
        elif frame.kind == "group":
            self._group_member(frame, key, key_line, b, final)
        elif key == "data":  # hsn
            self._push("records", "hsn", b, "hsn.data must be an array")
        else:
            self.p.error(key_line, "unknown-field", f"hsn has an unknown field {show(key)}; skipped")
            self._start_extent(b, keep=False)

    def _top_member(self, key: str, key_line: int, b: int, final: bool) -> None:
        if key in ("gstin", "fp"):
            if b != ord('"'):
                raise _Fatal(self.line, "syntax", f"{key} must be a string")
            line = self.line
            value = self._string(final)
            try:
                (check_gstin(value, "gstin", "gstin") if key == "gstin" else check_fp(value))
            except Reject as r:
                raise _Fatal(line, r.code, f"the file's {r.message}") from None
            hint = self.p.gstin if key == "gstin" else self.p.fp
            if hint is not None and hint != value:
                raise _Fatal(line, "hint", f"the file's {key} {value} differs from the {key} {hint} it is read with")
            if key == "gstin":
                self.gstin = value
            else:
                self.fp = value
        elif key in GSTR1_IGNORED:
            self._start_extent(b, keep=False)
        elif key in _GROUPED:
            self._push("sections", key, b, f"{key} must be an array")
        elif key == "b2cs":
            self._push("records", key, b, "b2cs must be an array")
        elif key == "hsn":
            if b != ord("{"):
                raise _Fatal(self.line, "syntax", "hsn must be an object")
            self.stack.append(_Frame("hsn", "hsn"))
        else:
            self.p.error(key_line, "section", f"top-level field {show(key)} is not a supported section "
                                              "(b2b, b2cl, b2cs, cdnr, hsn); skipped")
            self._start_extent(b, keep=False)

    def _group_member(self, frame: _Frame, key: str, key_line: int, b: int, final: bool) -> None:
        section = frame.section
        if key == COUNTERPARTY[section]:
            if b != ord('"'):
                raise _Fatal(self.line, "syntax", f"{key} must be a string")
            frame.key = self._string(final)
            pending, frame.pending, frame.pending_bytes = frame.pending, [], 0
            for raw, line in pending:
                self._record(section, frame.key, raw, line)
        elif key == LIST_FIELD[section]:
            self._push("records", section, b, f"{key} must be an array")
            self.stack[-1].group = frame
        else:
            self.p.error(key_line, "unknown-field", f"a {section} group has an unknown field {show(key)}; skipped")
            self._start_extent(b, keep=False)

    def _push(self, kind: str, section: str, b: int, message: str) -> None:
        if b != ord("["):
            raise _Fatal(self.line, "syntax", message)
        self.stack.append(_Frame(kind, section))

    def _element(self, frame: _Frame, b: int) -> None:
        if frame.kind == "sections":
            if b != ord("{"):
                raise _Fatal(self.line, "syntax", f"expected a {frame.section} group object")
            self.stack.append(_Frame("group", frame.section))
            return
        if b in b",:]}":
            raise _Fatal(self.line, "syntax", "expected a value")
        if (self.p.gstin is None and self.gstin is None) or (self.p.fp is None and self.fp is None):
            raise _Fatal(self.line, "hint", "the file's records come before its gstin and fp: pass gstin and fp "
                                            "(they are checked against the file's own values)")
        self._start_extent(b, keep=True)
        self.extent_target = frame

    # --- extents -----------------------------------------------------------------

    def _start_extent(self, b: int, keep: bool) -> None:
        self.extent = Extent(b, keep, self.line)

    def _run_extent(self, final: bool) -> None:
        ext = self.extent
        assert ext is not None
        end = self._scan(ext, final)
        if end < 0:  # not complete: keep what a record needs, drop the rest
            if ext.keep and not ext.too_large and ext.scan > self.max:
                ext.too_large = True
                self.p.error(ext.line, "too-large", f"the record is longer than {self.max} bytes")
            if not ext.keep or ext.too_large:
                self._advance(ext.scan)
                ext.scan = 0
            if final:
                raise _Fatal(self._eof_line(), "truncated", "the file ends inside a value")
            raise _Need
        raw = bytes(self.buf[self.pos : self.pos + end])
        line = ext.line
        self._advance(end)
        self.extent = None
        target, self.extent_target = self.extent_target, None
        if not ext.keep or ext.too_large:
            return
        if len(raw) > self.max:
            self.p.error(line, "too-large", f"the record is longer than {self.max} bytes")
            return
        assert target is not None
        group = target.group
        if group is not None and group.key is None:
            group.pending.append((raw, line))
            group.pending_bytes += len(raw)
            if group.pending_bytes > PENDING_MAX:
                what = COUNTERPARTY[group.section]
                raise _Fatal(line, "too-large", f"a {group.section} group has more than {PENDING_MAX} bytes of "
                                                f"records before its {what}: write {what} first")
            return
        self._record(target.section, group.key or "" if group is not None else "", raw, line)

    def _scan(self, ext: Extent, final: bool) -> int:
        return scan(self.buf, self.pos, ext, final)

    # --- records -----------------------------------------------------------------

    def _record(self, section: str, key: str, raw: bytes, line: int) -> None:
        p = self.p
        gstin = self.gstin if self.gstin is not None else p.gstin
        fp = self.fp if self.fp is not None else p.fp
        assert gstin is not None and fp is not None
        try:
            rec: dict[str, Any] = record_object(parse(raw), invoice_table(section))
        except Reject as r:
            p.error(line, r.code, r.message)
            return
        p.record(section, gstin, fp, key, rec, line)
