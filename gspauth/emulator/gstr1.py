"""GSTR-1 sections as the emulator stores them, and the FILEDET archive format.

A save payload (spec §5.2) is split into one stored record per invoice / note / fixed
section, keyed so that a later save of the same invoice replaces it and ``flag: "D"``
deletes it; a GET regroups the records into the wire shape.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from typing import Any

__all__ = ["FIXED_SECTIONS", "FLAT_SECTIONS", "GROUPED_SECTIONS", "KNOWN_SECTIONS", "extract_records", "group",
           "targz"]  # fmt: skip

#: Sections saved and returned as one object (or list) per return period.
FIXED_SECTIONS = ("b2cs", "hsn", "nil", "doc_issue", "at", "txpd", "b2csa", "ata", "txpda", "supeco")
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
KNOWN_SECTIONS = frozenset(GROUPED_SECTIONS) | frozenset(FLAT_SECTIONS) | frozenset(FIXED_SECTIONS)
_PAYLOAD_META = frozenset({"gstin", "fp", "gt", "cur_gt", "version", "hash"})

Row = tuple[str, str, str]  # (section, record key, JSON text)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def extract_records(payload: dict[str, Any]) -> tuple[list[Row], list[tuple[str, str]], list[dict[str, Any]]]:
    """Split a GSTR-1 save payload into stored records, deletions (``flag: "D"``) and error-report entries."""
    rows: list[Row] = []
    deletes: list[tuple[str, str]] = []
    errors: list[dict[str, Any]] = []
    for section, value in payload.items():
        if section in _PAYLOAD_META:
            continue
        if section not in KNOWN_SECTIONS:
            errors.append({"section": section, "error_msg": "unknown section"})
            continue
        if section in FIXED_SECTIONS:
            rows.append((section, "*", _dumps(value)))
            continue
        if not isinstance(value, list):
            errors.append({"section": section, "error_msg": "section must be a list"})
            continue
        if section in FLAT_SECTIONS:
            id_key = FLAT_SECTIONS[section]
            for item in value:
                if not isinstance(item, dict) or not item.get(id_key):
                    errors.append({"section": section, "error_msg": f"{id_key} missing"})
                elif item.get("flag") == "D":
                    deletes.append((section, str(item[id_key])))
                else:
                    rows.append((section, str(item[id_key]), _dumps(item)))
            continue
        group_key, list_key, id_key = GROUPED_SECTIONS[section]
        for grp in value:
            if not isinstance(grp, dict) or not grp.get(group_key) or not isinstance(grp.get(list_key), list):
                errors.append({"section": section, "error_msg": f"{group_key} or {list_key} missing"})
                continue
            gval = str(grp[group_key])
            for item in grp[list_key]:
                if not isinstance(item, dict) or not item.get(id_key):
                    errors.append({"section": section, group_key: gval, "error_msg": f"{id_key} missing"})
                    continue
                rkey = f"{gval}|{item[id_key]}"
                if item.get("flag") == "D":
                    deletes.append((section, rkey))
                else:
                    rows.append((section, rkey, _dumps({group_key: grp[group_key], list_key: item})))
    return rows, deletes, errors


def group(section: str, records: list[Any]) -> Any:
    """Stored records of one section back in the wire shape of a GET."""
    if section in FIXED_SECTIONS:
        return records[0] if records else []
    if section in FLAT_SECTIONS:
        return records
    group_key, list_key, _ = GROUPED_SECTIONS[section]
    grouped: dict[str, list[Any]] = {}
    for r in records:
        grouped.setdefault(r[group_key], []).append(r[list_key])
    return [{group_key: g, list_key: items} for g, items in grouped.items()]


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
