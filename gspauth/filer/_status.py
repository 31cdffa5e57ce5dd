"""Reading GSTN's RETSTATUS: the final status of a save and its per-invoice error report.

``status_cd``: ``IP`` (in progress: ask again later), ``P`` (processed), ``PE`` (processed with
errors: the ``error_report`` names the rejected records), ``ER`` (error: nothing stored; a
flat ``{"error_cd", "error_msg"}`` when the payload's structure was refused). The error report
is grouped per section like the save payload (the emulator's ``gspauth.emulator.rules``
documents the shape): grouped sections carry ``error_cd``/``error_msg`` per counterparty group
and list the rejected records under it; ``b2cs`` rows carry them themselves; ``hsn`` is
``{"error_cd", "error_msg", "data": [rows]}``. Records are named by the ingest's ``ident``.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["FINAL_STATUSES", "report_errors"]

#: RETSTATUS values after which nothing changes.
FINAL_STATUSES = frozenset({"P", "PE", "ER"})

# section -> (group key, list key, number key)
_GROUPED = {"b2b": ("ctin", "inv", "inum"), "cdnr": ("ctin", "nt", "nt_num"), "b2cl": ("pos", "inv", "inum")}


def _num(value: Any) -> str:
    """A number in the ingest's normal form (``18.0`` → ``18``, ``0.250`` → ``0.25``)."""
    try:
        d = Decimal(str(value)).normalize()
    except (InvalidOperation, ValueError):
        return str(value)
    text = format(d, "f")
    return "0" if text in ("-0", "") else text


def _codes(entry: Any, fallback: tuple[str, str]) -> tuple[str, str]:
    if isinstance(entry, dict) and isinstance(entry.get("error_cd"), str):
        return entry["error_cd"], str(entry.get("error_msg") or entry["error_cd"])
    return fallback


def report_errors(report: Any, section: str, idents: list[str]) -> dict[str, tuple[str, str]]:
    """The rejected records of one chunk: ``ident -> (error code, message)``.

    :param report: RETSTATUS ``error_report`` (a JSON object, or JSON text of one).
    :param section: the chunk's section.
    :param idents: every record of the chunk (a payload-level error rejects them all).
    """
    if isinstance(report, str):
        try:
            report = json.loads(report)
        except ValueError:
            return dict.fromkeys(idents, ("unreadable-report", "GSTN's error report could not be read"))
    if not isinstance(report, dict):
        return {}
    if isinstance(report.get("error_cd"), str) and section not in report:  # the whole payload was refused
        whole = _codes(report, ("ER", "refused"))
        return dict.fromkeys(idents, whole)
    out: dict[str, tuple[str, str]] = {}
    entries = report.get(section)
    if section in _GROUPED and isinstance(entries, list):
        group_key, list_key, number_key = _GROUPED[section]
        for group in entries:
            if not isinstance(group, dict):
                continue
            codes = _codes(group, ("rejected", "rejected by GSTN"))
            for rec in group.get(list_key) or []:
                if isinstance(rec, dict) and number_key in rec:
                    out[f"{group.get(group_key)}|{rec[number_key]}"] = _codes(rec, codes)
    elif section == "b2cs" and isinstance(entries, list):
        for row in entries:
            if isinstance(row, dict):
                ident = "|".join((str(row.get("pos", "")), str(row.get("sply_ty", "")), str(row.get("typ", "")),
                                  _num(row.get("rt", "")), str(row.get("etin") or "")))
                out[ident] = _codes(row, ("rejected", "rejected by GSTN"))
    elif section == "hsn" and isinstance(entries, dict):
        codes = _codes(entries, ("rejected", "rejected by GSTN"))
        for row in entries.get("data") or []:
            if isinstance(row, dict):
                rt = _num(row["rt"]) if row.get("rt") is not None else ""
                out[f"{row.get('hsn_sc', '')}|{row.get('uqc', '')}|{rt}"] = _codes(row, codes)
    known = set(idents)
    return {k: v for k, v in out.items() if k in known}
