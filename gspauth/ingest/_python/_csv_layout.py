"""The offline tool's CSV layouts, the row splitter and the cell values (Rust twin: ``ingest/csv/``).

See :mod:`._csv` for the row syntax; ``docs/ingest.md`` lists the layouts and how
each column becomes GSTR-1 JSON.
"""

from __future__ import annotations

import re
from typing import Any

from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._numbers import Num, csv_number, from_cents, round_div

__all__ = [
    "COLUMNS", "INVOICE_COLS", "INV_TYPE_LABELS", "KEY_COLS", "LAYOUTS", "NORMALISED", "RowError", "date_cell",
    "diff_cell", "inv_typ_cell", "norm", "pos_cell", "split", "taxed", "title",
]

# Header name (as the tool writes it) → logical column.
COLUMNS = {
    "GSTIN/UIN of Recipient": "ctin", "Receiver Name": "name", "Invoice Number": "inum", "Invoice date": "idt",
    "Invoice Value": "val", "Place Of Supply": "pos", "Reverse Charge": "rchrg", "Applicable % of Tax Rate": "diff",
    "Invoice Type": "inv_typ", "E-Commerce GSTIN": "etin", "Rate": "rt", "Taxable Value": "txval",
    "Cess Amount": "csamt", "Type": "typ", "Note Number": "nt_num", "Note Date": "nt_dt", "Note Type": "ntty",
    "Note Supply Type": "inv_typ", "Note Value": "val", "HSN": "hsn_sc", "Description": "desc", "UQC": "uqc",
    "Total Quantity": "qty", "Total Value": "val", "Integrated Tax Amount": "iamt", "Central Tax Amount": "camt",
    "State/UT Tax Amount": "samt",
}  # fmt: skip
_B2B = ("GSTIN/UIN of Recipient", "Receiver Name", "Invoice Number", "Invoice date", "Invoice Value",
        "Place Of Supply", "Reverse Charge", "Applicable % of Tax Rate", "Invoice Type", "E-Commerce GSTIN", "Rate",
        "Taxable Value", "Cess Amount")
#: The accepted header rows per section, the current template first.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "b2b": (_B2B, tuple(c for c in _B2B if c not in ("Receiver Name", "Applicable % of Tax Rate"))),
    "b2cl": (("Invoice Number", "Invoice date", "Invoice Value", "Place Of Supply", "Applicable % of Tax Rate", "Rate",
              "Taxable Value", "Cess Amount", "E-Commerce GSTIN"),
             ("Invoice Number", "Invoice date", "Invoice Value", "Place Of Supply", "Rate", "Taxable Value",
              "Cess Amount", "E-Commerce GSTIN")),
    "b2cs": (("Type", "Place Of Supply", "Applicable % of Tax Rate", "Rate", "Taxable Value", "Cess Amount",
              "E-Commerce GSTIN"),
             ("Type", "Place Of Supply", "Rate", "Applicable % of Tax Rate", "Taxable Value", "Cess Amount",
              "E-Commerce GSTIN"),
             ("Type", "Place Of Supply", "Rate", "Taxable Value", "Cess Amount", "E-Commerce GSTIN")),
    "cdnr": (("GSTIN/UIN of Recipient", "Receiver Name", "Note Number", "Note Date", "Note Type", "Place Of Supply",
              "Reverse Charge", "Note Supply Type", "Note Value", "Applicable % of Tax Rate", "Rate", "Taxable Value",
              "Cess Amount"),),
    "hsn": (("HSN", "Description", "UQC", "Total Quantity", "Total Value", "Rate", "Taxable Value",
             "Integrated Tax Amount", "Central Tax Amount", "State/UT Tax Amount", "Cess Amount"),),
}
#: Invoice Type / Note Supply Type labels (compared ASCII-case-insensitively) → inv_typ.
INV_TYPE_LABELS = {
    "regular b2b": "R", "regular": "R", "sez supplies with payment": "SEWP", "sez supplies without payment": "SEWOP",
    "deemed exp": "DE", "deemed exports": "DE", "intra-state supplies attracting igst": "CBW",
}  # fmt: skip
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_DATE = re.compile(r"([0-9]{2})-([A-Za-z]{3})-([0-9]{4})")
_POS = re.compile(r"([0-9]{2})(?:-.*)?", re.DOTALL)
# Invoice-level columns: repeated on every row of an invoice, and must agree.
INVOICE_COLS = {
    "b2b": ("idt", "val", "pos", "rchrg", "diff", "inv_typ", "etin"),
    "b2cl": ("idt", "val", "pos", "diff", "etin"),
    "cdnr": ("nt_dt", "ntty", "pos", "rchrg", "inv_typ", "val", "diff"),
}
KEY_COLS = {"b2b": ("ctin", "inum"), "b2cl": ("inum",), "cdnr": ("ctin", "nt_num")}
_SPACE = re.compile(rb"[ \t]+")


def norm(name: bytes) -> bytes:
    return _SPACE.sub(b" ", name.strip(b" \t")).lower()


NORMALISED = {s: tuple(tuple(norm(c.encode()) for c in layout) for layout in layouts)
               for s, layouts in LAYOUTS.items()}


class RowError(Exception):
    def __init__(self, code: str, message: str, at: int) -> None:
        super().__init__(code)
        self.code, self.message, self.at = code, message, at


def split(buf: bytearray, start: int, final: bool) -> tuple[list[bytes], int] | None:
    """One row from ``start`` → (fields, end after its terminator); None if more input is needed."""
    # Most rows have no quote and no stray CR: split them in one call.
    nl = buf.find(b"\n", start)
    if nl >= 0 or final:
        end = nl if nl >= 0 else len(buf)
        body = bytes(buf[start:end])
        if nl >= 0 and body.endswith(b"\r"):
            body = body[:-1]
        if b'"' not in body and b"\r" not in body:
            return body.split(b","), (nl + 1 if nl >= 0 else len(buf))
    fields: list[bytes] = []
    i, n = start, len(buf)
    while True:
        if i < n and buf[i] == 0x22:  # quoted
            j = i + 1
            while True:
                k = buf.find(b'"', j)
                if k < 0:
                    if final:
                        raise RowError("truncated", "the file ends inside a quoted field", n)
                    return None
                if k + 1 < n and buf[k + 1] == 0x22:
                    j = k + 2
                    continue
                if k + 1 == n and not final:
                    return None
                break
            fields.append(bytes(buf[i + 1 : k]).replace(b'""', b'"'))
            i = k + 1
            if i == n:
                return fields, n  # final
            c = buf[i]
            if c == 0x2C:
                i += 1
                continue
            if c == 0x0A:
                return fields, i + 1
            if c == 0x0D and i + 1 < n and buf[i + 1] == 0x0A:
                return fields, i + 2
            if c == 0x0D and i + 1 == n and not final:
                return None
            raise RowError("csv", "text after the closing quote of a field", i)
        m = _UNQUOTED_END.search(buf, i)
        if m is None:
            if not final:
                return None
            fields.append(bytes(buf[i:n]))
            return fields, n
        k = m.start()
        c = buf[k]
        if c == 0x22:
            raise RowError("csv", "a quote inside an unquoted field (quote the whole field)", k)
        fields.append(bytes(buf[i:k]))
        if c == 0x2C:
            i = k + 1
            continue
        if c == 0x0A:
            return fields, k + 1
        if k + 1 < n and buf[k + 1] == 0x0A:  # CR
            return fields, k + 2
        if k + 1 == n and not final:
            return None
        raise RowError("csv", "a carriage return that does not end a line", k)


_UNQUOTED_END = re.compile(rb'[,"\r\n]')


def taxed(det: dict[str, Num], factor: int, igst: bool, nil: bool) -> dict[str, Any]:
    """The item's tax columns computed from rt and txval: half-up to the paisa."""
    out: dict[str, Any] = dict(det)
    exact = det["txval"].cents * det["rt"].cents * factor  # paise × 10^6
    if igst:
        out["iamt"] = from_cents(0 if nil else round_div(exact, 1_000_000))
    else:
        half = from_cents(round_div(exact, 2_000_000))
        out["camt"] = out["samt"] = half
    return out


def title(section: str, col: str) -> str:
    for layout in LAYOUTS[section]:
        for name in layout:
            if COLUMNS[name] == col:
                return name
    return col  # pragma: no cover


def date_cell(text: str, title: str) -> str:
    m = _DATE.fullmatch(text)
    month = _MONTHS.get(m.group(2).lower()) if m else None
    if m is None or month is None:
        raise Reject("date", f"{title} {show(text)} is not a date dd-mmm-yyyy (e.g. 05-Jul-2017)")
    return f"{m.group(1)}-{month:02d}-{m.group(3)}"


def pos_cell(text: str) -> str:
    m = _POS.fullmatch(text)
    if m is None:
        raise Reject("pos", f"Place Of Supply {show(text)} must be a state code and name such as 27-Maharashtra")
    return m.group(1)


def diff_cell(text: str) -> Num | None:
    if not text:
        return None
    n = csv_number(text, "Applicable % of Tax Rate", 2, False)
    if n.cents != 6500:
        raise Reject("value", "Applicable % of Tax Rate must be empty or 65")
    return from_cents(65)


def inv_typ_cell(text: str, title: str) -> str:
    code = INV_TYPE_LABELS.get(text.encode("utf-8").lower().decode("utf-8"))
    if code is None:
        raise Reject("value", f"{title} {show(text)} is not one of: Regular B2B, SEZ supplies with payment, "
                              "SEZ supplies without payment, Deemed Exp, Intra-State supplies attracting IGST")
    return code
