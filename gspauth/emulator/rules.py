"""GSTR-1 business rules the emulator applies while "processing" a RETSAVE, and the
RETSTATUS ``error_report`` built from what they reject (issue 10 item 6).

A rejected record is not stored; the others are. RETSTATUS then answers ``P`` (nothing
rejected), ``PE`` (some rejected) or ``ER`` (all rejected, or the payload's structure was
refused). Codes (``error_cd``) and GSTN's wording (``error_msg``, with a detail after it):

========== ===================================================================== ==========
RET191106  Error in JSON structure validation (whole payload; ``ER``)              seen [C]
RET191113  The GSTIN is invalid (counterparty malformed, not registered,           wording [C],
           cancelled, or the supplier's own GSTIN)                                 grain [I]
RET191133  Invoices already exist with different CTIN or same CTIN (a number       wording [C],
           used by the same supplier in another period of the financial year,     grain [I]
           or for another counterparty / section in this period)
RET191175  The rate entered is not valid according to the rate list                wording [C]
RET191901  Document date is after the end of the tax period                         defined [I]
========== ===================================================================== ==========

``error_report`` follows GSTN's shape, grouped per section like the save payload: grouped
sections list ``{<group key>, "error_cd", "error_msg", <list key>: [records]}`` (one entry
per group and error, as GSTN reports B2B errors per ``ctin``); ``cdnur`` and ``b2cs`` rows
carry ``error_cd``/``error_msg`` themselves; ``hsn`` is ``{"error_cd", "error_msg", "data": [rows]}``.
A structural refusal is the flat ``{"error_cd": "RET191106", "error_msg": ...}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gspauth.emulator.gstr1 import FLAT_SECTIONS, GROUPED_SECTIONS, KEYED_SECTIONS, Record, period_end
from gspauth.gstin import is_valid_gstin

__all__ = ["REPORT_CODES", "Checks", "Rejection", "check_records", "error_report", "structural_report", "valid_gstin"]

#: Rates (percent) GSTN accepts on an item: the slabs plus the special rates.
_GST_RATES = frozenset({0.0, 0.1, 0.25, 1.0, 1.5, 3.0, 5.0, 6.0, 7.5, 12.0, 18.0, 28.0, 40.0})
#: code -> GSTN's message (the report appends a detail).
REPORT_CODES: dict[str, str] = {
    "RET191106": "Error in JSON structure validation",
    "RET191113": "The GSTIN is invalid. Please provide a valid GSTIN",
    "RET191133": "Invoices already exist with different CTIN or same CTIN. Please delete and add again",
    "RET191175": "The rate entered is not valid according to the rate list",
    "RET191901": "Document date is after the end of the tax period",
}


@dataclass
class Rejection:
    """One record GSTN's processing refuses: the ``code`` of :data:`REPORT_CODES` and a detail."""

    record: Record
    code: str
    detail: str

    @property
    def message(self) -> str:
        return f"{REPORT_CODES[self.code]}: {self.detail}"


@dataclass(frozen=True)
class Checks:
    """Which rules run (each an :class:`~gspauth.emulator.EmulatorConfig` switch, on by default)."""

    counterparty: bool = True
    dates: bool = True
    rates: bool = True


@functools.lru_cache(maxsize=65536)
def valid_gstin(gstin: str) -> bool:
    """:func:`gspauth.gstin.is_valid_gstin`, cached: a return names the same counterparties
    over and over, and this runs for every invoice."""
    return is_valid_gstin(gstin)


def _bad_rate(record: Record) -> Any:
    """The first rate of ``record`` that is not a GST rate, else ``_OK``.

    Set membership compares by value (18 == 18.0) and refuses text ("18"); bools (True == 1)
    and unhashable values are no rates either. Runs for every item line: kept lean.
    """
    item = record.item
    if record.section in KEYED_SECTIONS:
        lines: Any = [{"itm_det": item}] if "rt" in item else ()
    else:
        lines = item.get("itms")
        if not isinstance(lines, list):
            return _OK
    for line in lines:
        try:
            rt = line["itm_det"]["rt"]
        except (KeyError, TypeError):
            continue
        try:
            if rt in _GST_RATES and type(rt) is not bool:
                continue
        except TypeError:
            pass
        return rt
    return _OK


_OK = object()


def check_records(
    records: list[Record], *, gstin: str, period: str, checks: Checks, status_of: Callable[[str], str]
) -> tuple[list[Record], list[Rejection]]:
    """Split ``records`` into accepted ones and rejections (the first rule a record breaks).

    :param status_of: the registry status of a GSTIN: ``"active"``, ``"cancelled"`` or
        ``"unregistered"``.
    """
    accepted: list[Record] = []
    rejected: list[Rejection] = []
    last_day = period_end(period)
    for rec in records:
        why = _first_broken(rec, gstin, last_day, checks, status_of)
        if why is None:
            accepted.append(rec)
        else:
            rejected.append(Rejection(rec, *why))
    return accepted, rejected


def _first_broken(rec: Record, gstin: str, last_day: Any, checks: Checks,
                  status_of: Callable[[str], str]) -> tuple[str, str] | None:  # fmt: skip
    if checks.counterparty and rec.ctin is not None:
        if not valid_gstin(rec.ctin):
            return "RET191113", f"counterparty {rec.ctin} is not a valid GSTIN"
        if rec.ctin == gstin:
            return "RET191113", f"counterparty {rec.ctin} is the supplier's own GSTIN"
        status = status_of(rec.ctin)
        if status != "active":
            return "RET191113", f"counterparty {rec.ctin} is {'not registered' if status == 'unregistered' else status}"
    if checks.dates and rec.date is not None and rec.date > last_day:
        return "RET191901", f"{rec.date:%d-%m-%Y} is after {last_day:%d-%m-%Y}, the last day of the period"
    if checks.rates:
        rt = _bad_rate(rec)
        if rt is not _OK:
            return "RET191175", f"rate {rt!r} is not a GST rate"
    return None


def structural_report(detail: str) -> dict[str, Any]:
    """The ``ER`` report of a payload refused as a whole."""
    return {"error_cd": "RET191106", "error_msg": f"{REPORT_CODES['RET191106']}: {detail}"}


def error_report(rejections: list[Rejection]) -> dict[str, Any]:
    """GSTN's per-section ``error_report`` for ``rejections`` (order of the payload kept)."""
    report: dict[str, Any] = {}
    grouped: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    hsn: dict[tuple[str, str], dict[str, Any]] = {}
    for rj in rejections:
        rec, section = rj.record, rj.record.section
        if section in GROUPED_SECTIONS and rec.group is not None:
            group_key, list_key, _ = GROUPED_SECTIONS[section]
            entry_key = (section, rec.group[1], rj.code, rj.message)
            entry = grouped.get(entry_key)
            if entry is None:
                entry = {group_key: rec.group[1], "error_cd": rj.code, "error_msg": rj.message, list_key: []}
                grouped[entry_key] = entry
                report.setdefault(section, []).append(entry)
            entry[list_key].append(rec.item)
        elif section == "hsn":
            block = hsn.get((rj.code, rj.message))
            if block is None:
                block = hsn[(rj.code, rj.message)] = {"error_cd": rj.code, "error_msg": rj.message, "data": []}
            block["data"].append(rec.item)
        elif section in FLAT_SECTIONS or section in KEYED_SECTIONS:
            report.setdefault(section, []).append({**rec.item, "error_cd": rj.code, "error_msg": rj.message})
    if hsn:
        blocks = list(hsn.values())
        report["hsn"] = blocks[0] if len(blocks) == 1 else blocks
    return report
