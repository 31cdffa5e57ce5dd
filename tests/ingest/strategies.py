"""Hypothesis strategies: input files of every format, valid and broken, with controlled JSON text.

Records start from the valid ones of :mod:`.support` and are mutated (fields dropped,
added, retyped, duplicated, renumbered, mistaxed …); the JSON text is written by
:func:`render`, which chooses number spellings (``1000.50``, ``1.0005e3``) and string
escapes (``\\u00e9``, lone surrogates) so both backends see the same odd but real inputs.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from . import support as s

SECTIONS = ("b2b", "b2cl", "b2cs", "cdnr", "hsn")


class Raw(str):
    """JSON text written as is (a number spelling, a broken value)."""


class Pairs(list):  # type: ignore[type-arg]
    """An object as (key, value) pairs: keys may repeat."""


_ODD_STRINGS = ["", "A", "é", "\"q\"", "back\\slash", "tab\t", "nl\n", "\x01", "\u2028", "😀", "INV/1", "27",
                "Y", "N", "R", "SEWOP", "CBW", "OE", "E", "INTRA", "INTER", "C", "KGS", "NA", "05-07-2017",
                "31-06-2017", "1001", s.CTIN, s.CTIN_LOCAL, s.SUPPLIER, s.ETIN, "27AAPCD0007K1ZP", "x" * 41]
_NUMBERS = ["0", "-0", "1", "18", "18.0", "5", "0.65", "0.1", "7.5", "1000.50", "1e3", "1.0005E+3", "123.456",
            "-5", "1e16", "99999999999999.99", "1e-2", "0.001", "1E400", "2360", "180", "25", "1000", "45",
            "354000", "54000", "300000", "50", "100000.01", "250000", "250001"]


def render(v: Any, draw: Any = None) -> str:
    """JSON text of ``v``: :class:`Pairs` keep duplicates, :class:`Raw` is verbatim, and with
    ``draw`` strings may be escaped in a random but valid way."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return "{" + ",".join(f"{render(k, draw)}:{render(x, draw)}" for k, x in v) + "}"
    if isinstance(v, dict):
        return render(Pairs(v.items()), draw)
    if isinstance(v, list):
        return "[" + ",".join(render(x, draw) for x in v) + "]"
    if isinstance(v, str) and draw is not None and draw(st.integers(0, 9)) == 0:
        return "\"" + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in v) + "\""
    if isinstance(v, float) and v == int(v):
        return str(int(v)) if draw is None or draw(st.booleans()) else repr(v)
    return json.dumps(v, ensure_ascii=False)


def _mutate_value(draw: Any, v: Any) -> Any:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return Raw(draw(st.sampled_from(_NUMBERS)))
    if kind == 1:
        return draw(st.sampled_from(_ODD_STRINGS))
    if kind == 2:
        return Raw(draw(st.sampled_from(["null", "true", "{}", "[]", "[1]", '"\\ud800"', '"a\\udc00b"',
                                         '"\\ud83d\\ude00"', "NaN", "01", "1.", "\"\\x\""])))
    if kind == 3 and isinstance(v, (int, float)):
        return Raw(repr(float(v)) if draw(st.booleans()) else f"{v}e0")
    if kind == 4:
        return draw(st.text(st.characters(codec="utf-8"), max_size=6))
    return v


def _mutate_record(draw: Any, rec: dict[str, Any] | Pairs) -> Any:
    """Zero or more changes to a record (as Pairs so keys may repeat)."""
    pairs = Pairs(rec) if isinstance(rec, Pairs) else Pairs(rec.items())
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.integers(0, 7))
        if not pairs:
            break
        i = draw(st.integers(0, len(pairs) - 1))
        k, v = pairs[i]
        if op == 0:
            del pairs[i]
        elif op == 1:
            pairs.insert(i, (draw(st.sampled_from(["foo", "Inum", "itm_det", "chksum", "\u00e9"])), 1))
        elif op == 2:
            pairs.append((k, v))
        elif op == 3 and k == "itms" and isinstance(v, list):
            items = [dict(x) for x in v]
            sub = draw(st.integers(0, 4))
            if sub == 0:
                items = []
            elif sub == 1:
                items.append(dict(items[0]))
            elif sub == 2:
                items[0] = {**items[0], "itm_det": _mutate_record(draw, items[0]["itm_det"])}
            elif sub == 3:
                items.insert(0, Raw(draw(st.sampled_from(["1", "null", "[]", '"x"']))))
            else:
                items[0] = _mutate_record(draw, items[0])
            pairs[i] = (k, items)
        else:
            pairs[i] = (k, _mutate_value(draw, v))
    order = draw(st.permutations(range(len(pairs)))) if draw(st.booleans()) else range(len(pairs))
    return Pairs(pairs[j] for j in order)


@st.composite
def record_values(draw: Any, section: str) -> Any:
    """A record of ``section`` (without meta), valid about half the time."""
    rec = s.MAKERS[section]()
    if draw(st.booleans()):
        return rec
    return _mutate_record(draw, rec)


@st.composite
def jsonl_files(draw: Any) -> tuple[bytes, tuple[str | None, str | None, str | None]]:
    """A JSONL file and the (section, gstin, fp) it is read with."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        section = draw(st.sampled_from(SECTIONS))
        meta: list[tuple[str, Any]] = [("gstin", s.SUPPLIER), ("fp", s.FP), ("section", section)]
        if section in s.COUNTERPARTY:
            meta.append(s.COUNTERPARTY[section])
        body = draw(record_values(section))
        obj = Pairs([*meta, *(body.items() if isinstance(body, dict) else body)])
        if draw(st.integers(0, 5)) == 0:
            obj = _mutate_record(draw, obj)
        text = render(obj, draw).encode("utf-8", "surrogatepass")
        garbage = draw(st.integers(0, 24))
        if garbage == 0:
            text = text[: draw(st.integers(0, len(text)))]
        elif garbage == 1:
            text = draw(st.binary(max_size=12))
        elif garbage == 2:
            text = b"[" * 40 + b"]" * 40
        elif garbage == 3:
            text = text.replace(b"INV", b"\xff\xfe", 1)
        lines.append(text)
    sep = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = sep.join(lines) + draw(st.sampled_from([b"", b"\n", b"\n\n  \n"]))
    if draw(st.integers(0, 4)) == 0:
        data = b"\xef\xbb\xbf" + data
    hints = draw(st.sampled_from([(None, None, None)] * 5 + [("b2b", None, None), (None, s.SUPPLIER, s.FP),
                                                             (None, s.CTIN_LOCAL, "082017")]))
    return data, hints


@st.composite
def gstr1_files(draw: Any) -> tuple[bytes, tuple[None, str | None, str | None]]:
    """A GSTR-1 JSON file and its (None, gstin hint, fp hint)."""
    sections: list[tuple[str, Any]] = []
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=4, unique=True)):
        recs = draw(st.lists(record_values(section), max_size=3))
        if section in ("b2b", "cdnr", "b2cl"):
            key, value = s.COUNTERPARTY[section]
            if draw(st.integers(0, 5)) == 0:
                value = draw(st.sampled_from(["27", s.CTIN, "X", s.SUPPLIER]))
            listname = "nt" if section == "cdnr" else "inv"
            group: list[tuple[str, Any]] = [(key, value), (listname, recs)]
            g = draw(st.integers(0, 6))
            if g == 0:
                group.reverse()  # the records before their ctin / pos
            elif g == 1:
                group = [group[1]]  # no ctin / pos
            elif g == 2:
                group.append(("cfs", "Y"))
            sections.append((section, [Pairs(group)] * draw(st.integers(1, 2))))
        elif section == "hsn":
            sections.append((section, Pairs([("data", recs)] + ([("hsn_b2b", [])] if draw(st.booleans()) else []))))
        else:
            sections.append((section, recs))
    if draw(st.integers(0, 4)) == 0:
        sections.append((draw(st.sampled_from(["exp", "b2ba", "nil"])), Raw('[{"a":"]"}, 1]')))
    head = [("gstin", draw(st.sampled_from([s.SUPPLIER] * 8 + [s.CTIN, "27AAPCD0007K1ZP"]))),
            ("fp", draw(st.sampled_from([s.FP] * 8 + ["062017", "082017"]))), ("gt", 0), ("version", "GST3.0.4")]
    first = draw(st.integers(0, 3)) > 0
    doc = Pairs(head + sections if first else sections + head)
    if draw(st.integers(0, 12)) == 0:
        doc.append(("gstin", s.SUPPLIER))  # a duplicate top-level key
    text = render(doc, draw)
    if draw(st.booleans()):  # pretty-print-ish: newlines between tokens
        text = text.replace(",", ",\n ").replace("[", "[\n")
    data = text.encode("utf-8", "surrogatepass")
    tamper = draw(st.integers(0, 16))
    if tamper == 0 and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif tamper == 1:
        data += draw(st.sampled_from([b" x", b"\n{}", b"   \n"]))
    elif tamper == 2 and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + draw(st.sampled_from([b"\xff", b"{", b"]", b'"', b",", b"\\"])) + data[i:]
    hint = draw(st.sampled_from([(None, None), (s.SUPPLIER, s.FP), (s.SUPPLIER, s.FP), (s.SUPPLIER, None),
                                 (s.CTIN, s.FP)]))
    return data, (None, *hint)


def _cell(v: Any) -> str:
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)


_LABELS = {"R": "Regular B2B", "SEWP": "SEZ supplies with payment", "SEWOP": "SEZ supplies without payment",
           "DE": "Deemed Exp", "CBW": "Intra-State supplies attracting IGST"}
_MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _date(d: str) -> str:
    day, month, year = d.split("-")
    return f"{day}-{_MON[int(month) - 1]}-{year}"


def csv_rows(section: str, rec: dict[str, Any], counterparty: str) -> list[list[str]]:
    """The offline-tool rows of a valid record (current layout)."""
    rows = []
    if section == "b2cs":
        return [[rec["typ"], f"{rec['pos']}-State", "", _cell(rec["rt"]), _cell(rec["txval"]), _cell(rec["csamt"]),
                 rec.get("etin", "")]]
    if section == "hsn":
        return [[rec["hsn_sc"], rec.get("desc", ""), rec["uqc"] + "-KILOGRAMS", _cell(rec["qty"]),
                 _cell(rec.get("val", "")), _cell(rec["rt"]), _cell(rec["txval"]), _cell(rec["iamt"]),
                 _cell(rec["camt"]), _cell(rec["samt"]), _cell(rec["csamt"])]]
    for it in rec["itms"]:
        det = it["itm_det"]
        item_cells = [_cell(det["rt"]), _cell(det["txval"]), _cell(det.get("csamt", 0))]
        if section == "b2b":
            rows.append([counterparty, "Name, Ltd", rec["inum"], _date(rec["idt"]), _cell(rec["val"]),
                         f"{rec['pos']}-State", rec["rchrg"], "", _LABELS[rec["inv_typ"]], "", *item_cells])
        elif section == "cdnr":
            rows.append([counterparty, "Name", rec["nt_num"], _date(rec["nt_dt"]), rec["ntty"], f"{rec['pos']}-X",
                         rec["rchrg"], _LABELS[rec["inv_typ"]], _cell(rec["val"]), "", *item_cells])
        else:
            rows.append([rec["inum"], _date(rec["idt"]), _cell(rec["val"]), f"{counterparty}-Karnataka", "",
                         *item_cells, ""])
    return rows


def _quote(cell: str, draw: Any) -> str:
    if any(c in cell for c in ',"\r\n') or draw(st.integers(0, 6)) == 0:
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_files(draw: Any) -> tuple[bytes, tuple[str, str, str]]:
    """An offline-tool CSV file and the (section, gstin, fp) it is read with."""
    from gspauth.ingest._python._csv import LAYOUTS

    section = draw(st.sampled_from(SECTIONS))
    header = list(LAYOUTS[section][0])
    if draw(st.integers(0, 8)) == 0:
        header = [h.upper() if draw(st.booleans()) else f" {h} " for h in header]
    if draw(st.integers(0, 15)) == 0:
        header = header[:-1]
    rows: list[list[str]] = [header]
    counterparty = s.COUNTERPARTY.get(section, ("", ""))[1]
    for n in range(draw(st.integers(0, 4))):
        rec = s.MAKERS[section]()
        if "inum" in rec:
            rec["inum"] = f"I-{n}"
        if "nt_num" in rec:
            rec["nt_num"] = f"N-{n}"
        block = csv_rows(section, rec, counterparty)
        for row in block:
            if draw(st.integers(0, 3)) == 0:
                i = draw(st.integers(0, len(row) - 1))
                row[i] = draw(st.sampled_from(["", "x", "1.234", "-5", "65", "99", "31-Feb-2017", "05-07-2017",
                                               "97-X", "N", "E", "OE", s.CTIN, "é", "a,b", 'q"q', "1e3"]))
        rows.extend(block)
        if draw(st.integers(0, 6)) == 0:
            rows.append([""] * len(header))
    sep = draw(st.sampled_from(["\n", "\r\n"]))
    text = sep.join(",".join(_quote(c, draw) for c in row) for row in rows)
    text += draw(st.sampled_from(["", sep, sep + ",,,," + sep]))
    data = text.encode()
    tamper = draw(st.integers(0, 8))
    if tamper == 0 and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + draw(st.sampled_from([b'"', b"\r", b"\xff", b",", b"\n"])) + data[i:]
    elif tamper == 1 and data:
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 4)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data, (section, s.SUPPLIER, s.FP)
