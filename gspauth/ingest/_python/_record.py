"""One JSON record: read, shape-checked against its table, written in canonical form.

Order of checks (the Rust twin, ``ingest/record.rs``, follows it exactly):

1. the bytes are UTF-8 (``utf8``), then valid JSON nesting at most
   :data:`MAX_DEPTH` deep (``json``); the record is an object (``type``);
2. each object, outermost first: a key that appears twice (``duplicate-key``),
   then its members in document order: a field not in the table
   (``unknown-field``), the JSON kind (``type``), a lone surrogate in a string
   (``surrogate``), a number's form (``decimals``/``range``), objects and
   arrays recursively; after the members, the first required field missing in
   table order (``missing-field``);
3. the section rules of :mod:`._rules`.
"""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring
from typing import Any

from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._numbers import json_number
from gspauth.ingest._python._schema import SECTIONS, Table, jsonl_meta

__all__ = ["MAX_DEPTH", "canonical", "jsonl_line", "parse", "record_object", "walk"]

#: Objects and arrays nest at most this deep in a record (an invoice needs 4).
MAX_DEPTH = 32


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object as its list of (key, value) pairs, in document order."""


class _RawNum(str):
    """A JSON number, kept as its text."""

    __slots__ = ()


def _constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity are not JSON


_DECODER = json.JSONDecoder(object_pairs_hook=_Obj, parse_float=_RawNum, parse_int=_RawNum,
                            parse_constant=_constant)
_SURROGATE = re.compile("[\ud800-\udfff]")
_KIND = {"s": "a string", "n": "a number", "i": "a whole number", "o": "an object", "a": "an array"}
_TYPE = {"s": str, "n": _RawNum, "i": _RawNum, "o": _Obj, "a": list}  # exact types: bool is not a number


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, list):  # objects (_Obj) and arrays
            if depth > MAX_DEPTH:
                return True
            stack.extend((x[1] if isinstance(v, _Obj) else x, depth + 1) for x in v)
    return False


def parse(raw: bytes) -> Any:
    """UTF-8 and JSON syntax of one record's bytes → its value (objects as :class:`_Obj`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("utf8", "the record is not valid UTF-8") from None
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        raise _not_json() from None


def _not_json() -> Reject:
    return Reject("json", f"the record is not valid JSON (or nests deeper than {MAX_DEPTH} levels)")


def _deep_first(value: Any, reject: Reject) -> Reject:
    """Nesting deeper than :data:`MAX_DEPTH` is a ``json`` error, before any shape error.

    Checked only when the shape check failed: a record that passes it nests no
    deeper than its tables (4 levels).
    """
    return _not_json() if _too_deep(value) else reject


def walk(obj: _Obj, table: Table, path: str) -> dict[str, Any]:
    """Check one object against ``table`` (see the module docstring) → its model dict."""
    where = path or f"the {table.what}"
    keys = [key for key, _ in obj]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise Reject("duplicate-key", f"{where} has the field {show(key)} more than once")
            seen.add(key)
    out: dict[str, Any] = {}
    for key, value in obj:
        f = table.get(key)
        if f is None:
            raise Reject("unknown-field", f"{where} has an unknown field {show(key)}")
        p = f"{path}.{key}" if path else key
        if type(value) is not _TYPE[f.kind]:
            raise Reject("type", f"{p} must be {_KIND[f.kind]}")
        if f.kind == "s":
            if _SURROGATE.search(value):
                raise Reject("surrogate", f"{p} contains a lone surrogate (\\ud800-\\udfff) escape")
            out[key] = value
        elif f.kind in "ni":
            out[key] = json_number(value.encode("ascii"), p, 0 if f.kind == "i" else 2, f.negative)
        elif f.kind == "o":
            assert f.table is not None
            out[key] = walk(value, f.table, p)
        else:
            assert f.table is not None
            items = []
            for i, item in enumerate(value, 1):
                ip = f"{p}[{i}]"
                if type(item) is not _Obj:
                    raise Reject("type", f"{ip} must be an object")
                items.append(walk(item, f.table, ip))
            out[key] = items
    for f in table.fields:
        if f.required and f.name not in out:
            raise Reject("missing-field", f"{where} has no {f.name}")
    return out


def record_object(value: Any, table: Table) -> dict[str, Any]:
    """A record value (from :func:`parse`) that must be an object of ``table``."""
    try:
        if type(value) is not _Obj:
            raise Reject("type", f"the {table.what} must be a JSON object")
        return walk(value, table, "")
    except Reject as r:
        raise _deep_first(value, r) from None


def jsonl_line(raw: bytes) -> tuple[str, dict[str, Any]]:
    """One JSONL line → (section, model with gstin/fp/section/counterparty)."""
    value = parse(raw)
    try:
        return _jsonl_value(value)
    except Reject as r:
        raise _deep_first(value, r) from None


def _jsonl_value(value: Any) -> tuple[str, dict[str, Any]]:
    if type(value) is not _Obj:
        raise Reject("type", "the line must be a JSON object")
    seen: set[str] = set()
    section: Any = None
    for key, v in value:
        if key in seen:
            raise Reject("duplicate-key", f"the line has the field {show(key)} more than once")
        seen.add(key)
        if key == "section":
            section = v
    if "section" not in seen:
        raise Reject("missing-field", "the line has no section")
    if type(section) is not str:
        raise Reject("type", "section must be a string")
    if section not in SECTIONS:
        raise Reject("section", f"section {show(section)} is not supported (b2b, b2cl, b2cs, cdnr, hsn)")
    return section, walk(value, jsonl_meta(section), "")


def canonical(rec: dict[str, Any], table: Table) -> str:
    """``rec`` written compact with keys in code-point order (the table's order)."""
    parts = []
    for f in table.fields:
        v = rec.get(f.name)
        if v is None:
            continue
        if f.kind == "s":
            text = encode_basestring(v)
        elif f.kind in "ni":
            text = v.text
        elif f.kind == "o":
            assert f.table is not None
            text = canonical(v, f.table)
        else:
            assert f.table is not None
            sub = f.table
            text = "[" + ",".join([canonical(x, sub) for x in v]) + "]"
        parts.append(f'"{f.name}":{text}')
    return "{" + ",".join(parts) + "}"
