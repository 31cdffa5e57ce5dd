"""GSTR-1 sections as the emulator stores them, and the FILEDET archive format.

A save payload (spec §5.2) is split into one stored record per invoice, note or summary row,
keyed so that a later save of the same record replaces it and ``flag: "D"`` deletes it; a GET
regroups the records into the wire shape. Keys (INFERRED where GSTN does not document them):

* ``b2b``/``cdnr`` (+ amendments): counterparty ``ctin`` + invoice / note number; ``b2cl``:
  ``pos`` + number; ``exp``: ``exp_typ`` + number; ``cdnur``: note number;
* ``b2cs``: one row per (``pos``, ``sply_ty``, ``typ``, ``rt``, ``etin``), GSTN's B2CS grain;
* ``hsn``: one row per (``hsn_sc``, ``uqc``, ``rt``) of ``hsn.data``;
* the other summary sections (``nil``, ``doc_issue``, ``at``, ``txpd`` …) one object per period.

So a differential re-save of a few b2cs or hsn rows updates those rows and leaves the rest,
as for invoices. A payload that breaks the structure (unknown section, a list where an object
belongs, a record without its key fields, a date not ``dd-mm-yyyy``) is refused as a whole, as
GSTN's schema validation does (RETSTATUS ``ER`` with RET191106, nothing stored).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DOC_KIND",
    "FLAT_SECTIONS",
    "GROUPED_SECTIONS",
    "KEYED_SECTIONS",
    "KNOWN_SECTIONS",
    "Parsed",
    "Record",
    "financial_year",
    "group",
    "parse_save",
    "period_end",
    "targz",
]

#: Sections saved and returned as one object per return period.
_FIXED_SECTIONS = ("nil", "doc_issue", "at", "txpd", "b2csa", "ata", "txpda", "supeco")
#: section -> (group key, list key, record id key)
GROUPED_SECTIONS: dict[str, tuple[str, str, str]] = {
    "b2b": ("ctin", "inv", "inum"),
    "b2ba": ("ctin", "inv", "inum"),
    "cdnr": ("ctin", "nt", "nt_num"),
    "cdnra": ("ctin", "nt", "nt_num"),
    "b2cl": ("pos", "inv", "inum"),
    "b2cla": ("pos", "inv", "inum"),
    "exp": ("exp_typ", "inv", "inum"),
    "expa": ("exp_typ", "inv", "inum"),
}
#: section -> record id key, for sections that are flat lists of records.
FLAT_SECTIONS: dict[str, str] = {"cdnur": "nt_num", "cdnura": "nt_num"}
#: section -> (key fields, required fields, container key or None): summary rows stored one by one.
KEYED_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "b2cs": (("pos", "sply_ty", "typ", "rt", "etin"), ("pos", "sply_ty", "typ", "rt"), None),
    "hsn": (("hsn_sc", "uqc", "rt"), ("hsn_sc",), "data"),
}
#: Every GSTR-1 section a RETSAVE may carry.
KNOWN_SECTIONS = (frozenset(GROUPED_SECTIONS) | frozenset(FLAT_SECTIONS) | frozenset(KEYED_SECTIONS)
                  | frozenset(_FIXED_SECTIONS))  # fmt: skip
#: Document-number spaces GSTN keeps unique per supplier and financial year (INFERRED grain).
DOC_KIND: dict[str, str] = {"b2b": "inv", "b2cl": "inv", "exp": "inv", "cdnr": "nt", "cdnur": "nt"}
#: The date field of each section whose records carry one.
_DATE_FIELD: dict[str, str] = {"b2b": "idt", "b2cl": "idt", "exp": "idt", "cdnr": "nt_dt", "cdnur": "nt_dt",
                              "b2ba": "idt", "b2cla": "idt", "expa": "idt", "cdnra": "nt_dt", "cdnura": "nt_dt"}
_PAYLOAD_META = frozenset({"gstin", "fp", "gt", "cur_gt", "version", "hash"})
_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})")
_dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class Record:
    """One storable record of a save payload.

    ``item`` is the record as sent (what an error report shows); ``group`` the (key, value) of
    its group in grouped sections; ``kind``/``docnum`` its document number where GSTN keeps
    numbers unique; ``ctin`` its counterparty; ``date`` its document date.
    """

    section: str
    rkey: str
    data: str
    item: dict[str, Any] = field(repr=False)
    group: tuple[str, str] | None = None
    kind: str | None = None
    docnum: str | None = None
    ctin: str | None = None
    date: _dt.date | None = None


@dataclass
class Parsed:
    """A save payload split into records to store, keys to delete, or a structural error."""

    records: list[Record] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    structural: str | None = None


class _Structural(Exception):
    pass


def _key_part(value: Any) -> str:
    """A key field as text: numbers by value (18 == 18.0), everything else as given."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{float(value):g}"
    return "" if value is None else str(value).strip()


def _date(section: str, item: dict[str, Any], where: str) -> _dt.date | None:
    name = _DATE_FIELD.get(section)
    if name is None or name not in item:
        return None
    m = _DATE.fullmatch(str(item[name]))
    try:
        if m is None:
            raise ValueError
        return _dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        raise _Structural(f"{where}: {name} {item[name]!r} is not a dd-mm-yyyy date") from None


def parse_save(payload: dict[str, Any]) -> Parsed:
    """Split a GSTR-1 save payload into records, deletions (``flag: "D"``) or a structural error."""
    out = Parsed()
    try:
        for section, value in payload.items():
            if section in _PAYLOAD_META:
                continue
            if section not in KNOWN_SECTIONS:
                raise _Structural(f"unknown section {section!r}")
            if section in _FIXED_SECTIONS:
                out.records.append(Record(section, "*", _dumps(value), {}))
            elif section in KEYED_SECTIONS:
                _parse_keyed(section, value, out)
            elif section in FLAT_SECTIONS:
                _parse_flat(section, value, out)
            else:
                _parse_grouped(section, value, out)
    except _Structural as exc:
        return Parsed(structural=str(exc))
    return out


def _parse_keyed(section: str, value: Any, out: Parsed) -> None:
    keys, required, container = KEYED_SECTIONS[section]
    rows = value.get(container) if container and isinstance(value, dict) else (None if container else value)
    if not isinstance(rows, list):
        raise _Structural(f"{section} must be " + (f'{{"{container}": [...]}}' if container else "a list"))
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _Structural(f"{section}[{n}] must be an object")
        missing = [k for k in required if row.get(k) in (None, "")]
        if missing:
            raise _Structural(f"{section}[{n}] lacks {', '.join(missing)}")
        rkey = "|".join(_key_part(row.get(k)) for k in keys)
        if row.get("flag") == "D":
            out.deletes.append((section, rkey))
        else:
            out.records.append(Record(section, rkey, _dumps(row), row))


def _parse_flat(section: str, value: Any, out: Parsed) -> None:
    id_key = FLAT_SECTIONS[section]
    if not isinstance(value, list):
        raise _Structural(f"{section} must be a list")
    for n, item in enumerate(value):
        if not isinstance(item, dict) or not item.get(id_key):
            raise _Structural(f"{section}[{n}] lacks {id_key}")
        rkey = str(item[id_key])
        if item.get("flag") == "D":
            out.deletes.append((section, rkey))
            continue
        kind = DOC_KIND.get(section)
        out.records.append(Record(section, rkey, _dumps(item), item, None, kind, rkey.upper() if kind else None,
                                  None, _date(section, item, f"{section}[{n}]")))


def _parse_grouped(section: str, value: Any, out: Parsed) -> None:
    group_key, list_key, id_key = GROUPED_SECTIONS[section]
    if not isinstance(value, list):
        raise _Structural(f"{section} must be a list")
    kind = DOC_KIND.get(section)
    for g, grp in enumerate(value):
        if not isinstance(grp, dict) or not grp.get(group_key) or not isinstance(grp.get(list_key), list):
            raise _Structural(f"{section}[{g}] lacks {group_key} or {list_key}")
        gval = str(grp[group_key])
        for n, item in enumerate(grp[list_key]):
            if not isinstance(item, dict) or not item.get(id_key):
                raise _Structural(f"{section}[{g}].{list_key}[{n}] lacks {id_key}")
            rkey = f"{gval}|{item[id_key]}"
            if item.get("flag") == "D":
                out.deletes.append((section, rkey))
                continue
            out.records.append(Record(
                section, rkey, _dumps({group_key: grp[group_key], list_key: item}), item, (group_key, gval), kind,
                str(item[id_key]).upper() if kind else None, gval if group_key == "ctin" else None,
                _date(section, item, f"{section}[{g}].{list_key}[{n}]"),
            ))  # fmt: skip


def group(section: str, records: list[Any]) -> Any:
    """Stored records of one section back in the wire shape of a GET."""
    if section in KEYED_SECTIONS:
        container = KEYED_SECTIONS[section][2]
        rows: list[Any] = []
        for r in records:  # a state written before per-row keys holds the whole section as one record
            legacy = r.get(container) if container and isinstance(r, dict) and container in r else r
            rows.extend(legacy if isinstance(legacy, list) else [legacy])
        return {container: rows} if container else rows
    if section in _FIXED_SECTIONS:
        return records[0] if records else []
    if section in FLAT_SECTIONS:
        return records
    group_key, list_key, _ = GROUPED_SECTIONS[section]
    grouped: dict[str, list[Any]] = {}
    for r in records:
        grouped.setdefault(r[group_key], []).append(r[list_key])
    return [{group_key: g, list_key: items} for g, items in grouped.items()]


def period_end(period: str) -> _dt.date:
    """The last day of return period ``MMYYYY``."""
    month, year = int(period[:2]), int(period[2:])
    first_of_next = _dt.date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - _dt.timedelta(days=1)


def financial_year(period: str) -> str:
    """India's financial year (April-March) of ``MMYYYY``, e.g. ``"2017-18"``."""
    month, year = int(period[:2]), int(period[2:])
    start = year if month >= 4 else year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def targz(member_name: str, content: bytes) -> bytes:
    """A reproducible ``.tar.gz`` holding one file (mtime 0, mode 0644): same input, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(member_name)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)
