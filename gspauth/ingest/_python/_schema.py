"""The known-field tables and value lists (the Rust twin is ``ingest/schema.rs``).

Every object the ingest accepts is described here: which fields it may have,
their JSON kind, which are required, and how numbers are read. A field not in
its table is an ``unknown-field`` error, so a typo never passes silently.
Tables are listed in code-point order, the order the canonical form writes them.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "COUNTERPARTY",
    "GSTR1_IGNORED",
    "INV_TYPES",
    "LIST_FIELD",
    "NOTE_TYPES",
    "RATES",
    "SECTIONS",
    "SUPPLY_TYPES",
    "UQC",
    "Field",
    "Table",
    "b2cs_typ",
    "invoice_table",
    "jsonl_meta",
]

SECTIONS = ("b2b", "b2cl", "b2cs", "cdnr", "hsn")
#: The counterparty key of a section's groups (JSONL: a field of the line).
COUNTERPARTY = {"b2b": "ctin", "cdnr": "ctin", "b2cl": "pos"}
#: The field holding a group's records, in GSTR-1 JSON and in a chunk.
LIST_FIELD = {"b2b": "inv", "cdnr": "nt", "b2cl": "inv", "b2cs": "", "hsn": "data"}

#: GST rates in percent, × 100 (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40).
RATES = (0, 10, 25, 100, 150, 300, 500, 600, 750, 1200, 1800, 2800, 4000)
INV_TYPES = ("R", "SEWP", "SEWOP", "DE", "CBW")
NOTE_TYPES = ("C", "D")
SUPPLY_TYPES = ("INTER", "INTRA")
b2cs_typ = ("OE", "E")
#: GSTN unit quantity codes (HSN summary), plus NA for services.
UQC = frozenset(
    "BAG BAL BDL BKL BOU BOX BTL BUN CAN CBM CCM CMS CTN DOZ DRM GGK GMS GRS GYD KGS KLR KME LTR MLS MLT "
    "MTR MTS NA NOS OTH PAC PCS PRS QTL ROL SET SQF SQM SQY TBS TGM THD TON TUB UGS UNT YDS".split()
)
#: Top-level GSTR-1 fields that are read past (offline-tool bookkeeping).
GSTR1_IGNORED = ("cur_gt", "gt", "hash", "version")

# Kinds: s = string, n = number (≤ 2 decimals), i = whole number, o = object, a = array of objects.


class Field(NamedTuple):
    name: str
    kind: str
    required: bool = False
    negative: bool = False  # numbers: may be negative
    table: Table | None = None  # objects and arrays: the table of the object(s)


class Table:
    """The fields of one kind of object, in code-point order; ``what`` names it in messages."""

    __slots__ = ("_by_name", "fields", "what")

    def __init__(self, what: str, fields: tuple[Field, ...]) -> None:
        self.what, self.fields = what, fields
        self._by_name = {f.name: f for f in fields}

    def get(self, name: str) -> Field | None:
        return self._by_name.get(name)


def _det(neg: bool, igst_only: bool) -> Table:
    names = ("csamt", "iamt", "rt", "txval") if igst_only else ("camt", "csamt", "iamt", "rt", "samt", "txval")
    return Table("itm_det", tuple(
        Field(n, "n", required=n in ("rt", "txval"), negative=neg and n != "rt") for n in names))


def _items(det: Table) -> Field:
    item = Table("item", (Field("itm_det", "o", True, table=det), Field("num", "i", True)))
    return Field("itms", "a", True, table=item)


_B2B = Table("invoice", (
    Field("diff_percent", "n"), Field("etin", "s"), Field("idt", "s", True), Field("inum", "s", True),
    Field("inv_typ", "s", True), _items(_det(False, False)), Field("pos", "s", True), Field("rchrg", "s", True),
    Field("val", "n", True),
))
_B2CL = Table("invoice", (
    Field("diff_percent", "n"), Field("etin", "s"), Field("idt", "s", True), Field("inum", "s", True),
    _items(_det(False, True)), Field("val", "n", True),
))
_CDNR = Table("note", (
    Field("diff_percent", "n"), Field("inv_typ", "s", True), _items(_det(False, False)), Field("nt_dt", "s", True),
    Field("nt_num", "s", True), Field("ntty", "s", True), Field("pos", "s", True), Field("rchrg", "s", True),
    Field("val", "n", True),
))
_B2CS = Table("entry", (
    Field("camt", "n", negative=True), Field("csamt", "n", negative=True), Field("diff_percent", "n"),
    Field("etin", "s"), Field("iamt", "n", negative=True), Field("pos", "s", True), Field("rt", "n", True),
    Field("samt", "n", negative=True), Field("sply_ty", "s", True), Field("txval", "n", True, negative=True),
    Field("typ", "s", True),
))
_HSN = Table("entry", (
    Field("camt", "n"), Field("csamt", "n"), Field("desc", "s"), Field("hsn_sc", "s", True), Field("iamt", "n"),
    Field("num", "i", True), Field("qty", "n", True), Field("rt", "n", True), Field("samt", "n"),
    Field("txval", "n", True), Field("uqc", "s", True), Field("val", "n"),
))
_TABLES = {"b2b": _B2B, "b2cl": _B2CL, "b2cs": _B2CS, "cdnr": _CDNR, "hsn": _HSN}


def invoice_table(section: str) -> Table:
    """The table of one record of ``section`` as it appears in a chunk."""
    return _TABLES[section]


def _meta(section: str) -> Table:
    base = _TABLES[section]
    extra = [Field("fp", "s", True), Field("gstin", "s", True), Field("section", "s", True)]
    if section in COUNTERPARTY and base.get(COUNTERPARTY[section]) is None:
        extra.append(Field(COUNTERPARTY[section], "s", True))
    return Table(base.what, tuple(sorted((*base.fields, *extra), key=lambda f: f.name)))


_META = {s: _meta(s) for s in SECTIONS}


def jsonl_meta(section: str) -> Table:
    """The table of one JSONL line of ``section``: the record plus gstin, fp, section, counterparty."""
    return _META[section]
