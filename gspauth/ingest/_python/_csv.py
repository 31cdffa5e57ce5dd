"""CSV in the layout of the GST offline tool's section templates (Rust twin: ``ingest/csv.rs``).

Row syntax: fields separated by ``,``; a row ends at LF or CRLF (or the end of the
input); a field is either unquoted (no ``,`` ``"`` CR or LF in it) or quoted
(``"…"``, ``""`` for a quote, may hold commas and line breaks) and then followed
by ``,`` or the end of the row. Anything else is a ``csv`` error for that row,
which is then skipped up to the next LF. Fields are trimmed of spaces and tabs;
rows whose fields are all empty are skipped. ``docs/ingest.md`` lists the
accepted headers and how each column becomes GSTR-1 JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gspauth.ingest._python._csv_layout import (
    COLUMNS,
    INVOICE_COLS,
    KEY_COLS,
    LAYOUTS,
    NORMALISED,
    RowError,
    date_cell,
    diff_cell,
    inv_typ_cell,
    norm,
    pos_cell,
    split,
    taxed,
    title,
)
from gspauth.ingest._python._errors import Reject
from gspauth.ingest._python._numbers import csv_number, from_cents
from gspauth.ingest._python._rules import _MAX_ITEMS

if TYPE_CHECKING:
    from gspauth.ingest._python._parser import Parser

__all__ = ["LAYOUTS", "CsvReader"]

class _Invoice:
    __slots__ = ("bad", "cells", "items", "key", "line", "pos", "rec")

    def __init__(self, key: tuple[str, ...], line: int, cells: dict[str, str]) -> None:
        self.key, self.line, self.cells = key, line, cells
        self.pos = ""
        self.rec: dict[str, Any] = {}
        self.items: list[dict[str, Any]] = []
        self.bad = False


class CsvReader:
    def __init__(self, parser: Parser) -> None:
        from gspauth.ingest._python._parser import MAX_RECORD_BYTES

        self.p = parser
        self.max = MAX_RECORD_BYTES
        self.section: str = parser.section or ""
        self.gstin: str = parser.gstin or ""
        self.fp: str = parser.fp or ""
        self.buf = bytearray()
        self.pos = 0
        self.line = 1
        self.skip_to_lf = False
        self.columns: dict[str, int] | None = None  # logical column → index, once the header is read
        self.width = 0
        self.open: _Invoice | None = None
        self.gap = 0  # line of an unreadable row since the last readable one (0: none)
        self.rows = 0  # data rows so far (hsn num)

    # --- rows ------------------------------------------------------------------

    def feed(self, data: bytes, final: bool) -> None:
        self.buf += data
        while not self.p.failed:
            if self.skip_to_lf:
                nl = self.buf.find(b"\n", self.pos)
                if nl < 0:
                    self._consume(len(self.buf))
                    break
                self._consume(nl + 1)
                self.skip_to_lf = False
                continue
            if self.pos == len(self.buf):
                break
            line = self.line
            try:
                got = split(self.buf, self.pos, final)
            except RowError as e:
                self._unreadable(line, e.code, e.message, e.at)
                continue
            # A row longer than the limit is skipped from its start to the next LF, whether or
            # not its end is in the buffer yet, so that the outcome does not depend on the split.
            if got is None:
                if len(self.buf) - self.pos > self.max:
                    self._unreadable(line, "too-large", f"the row is longer than {self.max} bytes", self.pos)
                    continue
                break
            fields, end = got
            if end - self.pos > self.max:
                self._unreadable(line, "too-large", f"the row is longer than {self.max} bytes", self.pos)
                continue
            self._consume(end)
            self._row(fields, line)
        if final and not self.p.failed:
            self._close()
        del self.buf[: self.pos]
        self.pos = 0

    def _consume(self, end: int) -> None:
        self.line += self.buf.count(b"\n", self.pos, end)
        self.pos = end

    def _unreadable(self, line: int, code: str, message: str, at: int) -> None:
        """Report a row that cannot be split and skip to the LF after ``at``."""
        self._consume(at)
        self.skip_to_lf = True
        if self.columns is None:
            self.p.fatal(line, "header", f"the header row cannot be read: {message}")
            return
        self.rows += 1
        self.gap = self.gap or line
        self.p.error(line, code, message)

    def _row(self, raw: list[bytes], line: int) -> None:
        fields = [f.strip(b" \t") for f in raw]
        if not any(fields):
            return
        if self.columns is None:
            self._header(fields, line)
            return
        self.rows += 1
        try:
            if len(fields) < self.width or any(fields[self.width :]):
                raise Reject("csv", f"the row has {len(fields)} fields; the header has {self.width}")
            try:
                cells = [f.decode("utf-8") for f in fields[: self.width]]
            except UnicodeDecodeError:
                raise Reject("utf8", "the row is not valid UTF-8") from None
        except Reject as r:
            self.gap = self.gap or line
            self.p.error(line, r.code, r.message)
            return
        cols = self.columns
        row = {name: cells[i] for name, i in cols.items()}
        gap, self.gap = self.gap, 0
        if self.section in KEY_COLS:
            self._fold(row, line, gap)
        else:
            self._close()
            self._single(row, line)

    def _header(self, fields: list[bytes], line: int) -> None:
        while fields and not fields[-1]:
            fields.pop()
        names = tuple(norm(f) for f in fields)
        for layout, normalised in zip(LAYOUTS[self.section], NORMALISED[self.section]):
            if names == normalised:
                self.columns = {COLUMNS[name]: i for i, name in enumerate(layout)}
                self.width = len(layout)
                return
        expected = ", ".join(LAYOUTS[self.section][0])
        self.p.fatal(line, "header", f"the header does not match the {self.section} template of the GST offline "
                                     f"tool; expected the columns: {expected}")

    # --- invoices ----------------------------------------------------------------

    def _fold(self, row: dict[str, str], line: int, gap: int) -> None:
        key = tuple(row[c] for c in KEY_COLS[self.section])
        inv = self.open
        if inv is not None and inv.key == key:
            if inv.bad:
                return
            try:
                if gap:
                    raise Reject("csv", f"an unreadable row (line {gap}) interrupts this invoice")
                for col in INVOICE_COLS[self.section]:
                    if row.get(col, "") != inv.cells.get(col, ""):
                        raise Reject("inconsistent", f"{title(self.section, col)} differs from the invoice's first "
                                                     f"row (line {inv.line})")
                self._item(inv, row)
            except Reject as r:
                inv.bad = True
                self.p.error(line, r.code, r.message)
            return
        self._close()
        inv = self.open = _Invoice(key, line, row)
        try:
            self._invoice_fields(inv, row)
            self._item(inv, row)
        except Reject as r:
            inv.bad = True
            self.p.error(line, r.code, r.message)

    def _invoice_fields(self, inv: _Invoice, row: dict[str, str]) -> None:
        s, rec = self.section, inv.rec
        if s == "cdnr":
            rec["nt_num"] = row["nt_num"]
            rec["nt_dt"] = date_cell(row["nt_dt"], "Note Date")
            rec["ntty"] = row["ntty"]
        else:
            rec["inum"] = row["inum"]
            rec["idt"] = date_cell(row["idt"], "Invoice date")
        rec["val"] = csv_number(row["val"], title(s, "val"), 2, False)
        pos = inv.pos = pos_cell(row["pos"])
        if s != "b2cl":
            rec["pos"] = pos
            rec["rchrg"] = row["rchrg"]
        diff = diff_cell(row.get("diff", ""))
        if diff is not None:
            rec["diff_percent"] = diff
        if s != "b2cl":
            rec["inv_typ"] = inv_typ_cell(row["inv_typ"], title(s, "inv_typ"))
        if row.get("etin"):
            rec["etin"] = row["etin"]

    def _item(self, inv: _Invoice, row: dict[str, str]) -> None:
        if len(inv.items) >= _MAX_ITEMS:
            raise Reject("items", f"itms has more than {_MAX_ITEMS} items")
        rt = csv_number(row["rt"], "Rate", 2, False)
        txval = csv_number(row["txval"], "Taxable Value", 2, False)
        csamt = csv_number(row["csamt"], "Cess Amount", 2, False) if row["csamt"] else from_cents(0)
        inv.items.append({"rt": rt, "txval": txval, "csamt": csamt})

    def _close(self) -> None:
        inv, self.open = self.open, None
        if inv is None or inv.bad:
            return
        s, rec = self.section, inv.rec
        pos = inv.pos
        if s == "b2cl":
            igst, nil = True, False
        else:
            igst = rec["inv_typ"] in ("SEWP", "SEWOP", "CBW") or pos != self.gstin[:2]
            nil = rec["inv_typ"] == "SEWOP"
        factor = 65 if "diff_percent" in rec else 100
        rec["itms"] = [{"num": from_cents(n * 100), "itm_det": taxed(det, factor, igst, nil)}
                       for n, det in enumerate(inv.items, 1)]
        key = pos if s == "b2cl" else inv.key[0]
        self.p.record(s, self.gstin, self.fp, key, rec, inv.line)

    def _single(self, row: dict[str, str], line: int) -> None:
        """A b2cs or hsn row: one record."""
        try:
            if self.section == "b2cs":
                rec = self._b2cs(row)
            else:
                rec = self._hsn(row)
        except Reject as r:
            self.p.error(line, r.code, r.message)
            return
        self.p.record(self.section, self.gstin, self.fp, "", rec, line)

    def _b2cs(self, row: dict[str, str]) -> dict[str, Any]:
        rec: dict[str, Any] = {"typ": row["typ"]}
        pos = rec["pos"] = pos_cell(row["pos"])
        diff = diff_cell(row.get("diff", ""))
        rt = rec["rt"] = csv_number(row["rt"], "Rate", 2, False)
        txval = rec["txval"] = csv_number(row["txval"], "Taxable Value", 2, True)
        rec["csamt"] = csv_number(row["csamt"], "Cess Amount", 2, True) if row["csamt"] else from_cents(0)
        if row["etin"]:
            rec["etin"] = row["etin"]
        intra = pos == self.gstin[:2]
        rec["sply_ty"] = "INTRA" if intra else "INTER"
        factor = 100
        if diff is not None:
            rec["diff_percent"] = diff
            factor = 65
        rec.update(taxed({"rt": rt, "txval": txval}, factor, not intra, False))
        return rec

    def _hsn(self, row: dict[str, str]) -> dict[str, Any]:
        rec: dict[str, Any] = {"num": from_cents(self.rows * 100), "hsn_sc": row["hsn_sc"]}
        if row["desc"]:
            rec["desc"] = row["desc"]
        rec["uqc"] = row["uqc"].split("-", 1)[0].rstrip(" \t")
        rec["qty"] = csv_number(row["qty"], "Total Quantity", 2, False)
        if row["val"]:
            rec["val"] = csv_number(row["val"], "Total Value", 2, False)
        rec["rt"] = csv_number(row["rt"], "Rate", 2, False)
        rec["txval"] = csv_number(row["txval"], "Taxable Value", 2, False)
        for col, label in (("iamt", "Integrated Tax Amount"), ("camt", "Central Tax Amount"),
                           ("samt", "State/UT Tax Amount"), ("csamt", "Cess Amount")):
            rec[col] = csv_number(row[col], label, 2, False) if row[col] else from_cents(0)
        return rec
