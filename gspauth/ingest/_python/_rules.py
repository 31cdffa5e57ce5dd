"""Validation of one record after its shape was checked (the Rust twin is ``ingest/rules.rs``).

The checks run in a fixed order and the first failure is the record's error,
so both backends report the same code and message. Each function returns the
record identity (see ``docs/ingest.md``).
"""

from __future__ import annotations

import re
from typing import Any

from gspauth.gstin import STATE_CODES, check_character
from gspauth.ingest._python._errors import Reject, show
from gspauth.ingest._python._numbers import Num
from gspauth.ingest._python._schema import INV_TYPES, NOTE_TYPES, RATES, SUPPLY_TYPES, UQC, b2cs_typ

__all__ = ["POS_CODES", "b2cl_threshold", "check_fp", "check_gstin", "validate"]

_GSTIN = re.compile(r"[0-9]{2}[0-9A-Z]{13}")
_DOC_NUMBER = re.compile(r"[A-Za-z0-9/-]{1,16}")
_DATE = re.compile(r"([0-9]{2})-([0-9]{2})-([0-9]{4})")
_FP = re.compile(r"(0[1-9]|1[0-2])([0-9]{4})")
_HSN = re.compile(r"[0-9]{4,8}")
#: Places of supply: the GST state codes except 99 (Centre Jurisdiction), plus 96 (foreign country).
POS_CODES = frozenset((set(STATE_CODES) - {"99"}) | {"96"})
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: The only differential rate notified (65 % of the rate), × 100.
_DIFF_PERCENT = 65
_MAX_ITEMS = 1000
_TOLERANCE = 100  # paise: ₹1 per item line


def check_gstin(value: str, what: str, code: str) -> None:
    """A GSTIN/UIN: shape, state code, mod-36 check character (as :mod:`gspauth.gstin`)."""
    if not _GSTIN.fullmatch(value):
        raise Reject(code, f"{what} {show(value)} is not a GSTIN (2 digits, then 13 upper-case letters or digits)")
    if value[:2] not in STATE_CODES:
        raise Reject(code, f"{what} {show(value)} starts with {value[:2]}, which is not a GST state code")
    if check_character(value[:14]) != value[14]:
        raise Reject(code, f"{what} {show(value)} has a wrong check character (a typo?)")


def check_fp(fp: str) -> tuple[int, int]:
    """The return period MMYYYY, from 072017 on; returns (month, year)."""
    m = _FP.fullmatch(fp)
    if m is None or not (2017 <= int(m.group(2)) <= 2099) or (m.group(2) == "2017" and int(m.group(1)) < 7):
        raise Reject("period", f"fp {show(fp)} is not a return period MMYYYY from 072017 on")
    return int(m.group(1)), int(m.group(2))


def b2cl_threshold(month: int, year: int) -> int:
    """The B2C-large invoice-value threshold in paise: ₹2.5 lakh before 08-2024, ₹1 lakh from then."""
    return 1_00_000_00 if (year, month) >= (2024, 8) else 2_50_000_00


def _date(value: str, what: str, month: int, year: int, fp: str) -> None:
    m = _DATE.fullmatch(value)
    if m is None:
        raise Reject("date", f"{what} {show(value)} is not a date dd-mm-yyyy")
    d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not (1 <= mo <= 12 and 1 <= d <= _DAYS[mo - 1] + (1 if mo == 2 and leap else 0)):
        raise Reject("date", f"{what} {value} is not a calendar date")
    if (mo, y) != (month, year):
        raise Reject("date", f"{what} {value} is outside the return period {fp}")


def _pos(value: str, what: str = "pos") -> None:
    if value not in POS_CODES:
        raise Reject("pos", f"{what} {show(value)} is not a place-of-supply state code")


def _choice(value: str, what: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise Reject("value", f"{what} {show(value)} must be one of {', '.join(allowed)}")


def _doc_number(value: str, what: str) -> None:
    if not _DOC_NUMBER.fullmatch(value):
        raise Reject("value", f"{what} {show(value)} must be 1-16 letters, digits, '/' or '-'")


def _diff_factor(rec: dict[str, Any]) -> int:
    diff: Num | None = rec.get("diff_percent")
    if diff is None:
        return 100
    if diff.cents != _DIFF_PERCENT:
        raise Reject("value", f"diff_percent {diff.text} must be 0.65 (the only differential rate)")
    return _DIFF_PERCENT


def _rate(rt: Num, what: str) -> None:
    if rt.cents not in RATES:
        raise Reject("rate", f"{what} {rt.text} is not a GST rate (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40)")


def _cents(det: dict[str, Any], name: str) -> int | None:
    n: Num | None = det.get(name)
    return None if n is None else n.cents


def _tax(det: dict[str, Any], where: str, factor: int, igst: bool, nil: bool = False) -> None:
    """IGST (inter-state) or CGST = SGST (intra-state) against txval × rt × factor, ±₹1."""
    exact = det["txval"].cents * det["rt"].cents * factor  # tax in paise × 10^6
    iamt, camt, samt = _cents(det, "iamt"), _cents(det, "camt"), _cents(det, "samt")
    if igst:
        if camt or samt:
            raise Reject("tax", f"{where} has CGST/SGST on an inter-state supply (IGST only)")
        if nil:
            if iamt:
                raise Reject("tax", f"{where} has IGST on a supply without payment of tax")
            return
        if iamt is None:
            raise Reject("tax", f"{where} has no iamt (IGST) for an inter-state supply")
        if abs(iamt * 1_000_000 - exact) > _TOLERANCE * 1_000_000:
            raise Reject("tax", f"{where} iamt {det['iamt'].text} is not txval × rt (±1.00)")
        return
    if iamt:
        raise Reject("tax", f"{where} has IGST on an intra-state supply (CGST + SGST only)")
    if camt is None or samt is None:
        raise Reject("tax", f"{where} needs camt and samt (CGST + SGST) for an intra-state supply")
    for name, amt in (("camt", camt), ("samt", samt)):
        if abs(amt * 2_000_000 - exact) > _TOLERANCE * 2_000_000:
            raise Reject("tax", f"{where} {name} {det[name].text} is not half of txval × rt (±1.00)")


def _items(rec: dict[str, Any], factor: int, igst: bool, nil: bool = False) -> None:
    items = rec["itms"]
    if not items:
        raise Reject("items", "itms is empty")
    if len(items) > _MAX_ITEMS:
        raise Reject("items", f"itms has more than {_MAX_ITEMS} items")
    seen: set[int] = set()
    for i, item in enumerate(items, 1):
        num = item["num"].cents // 100
        if not 1 <= num <= 99999:
            raise Reject("items", f"itms[{i}].num must be 1-99999")
        if num in seen:
            raise Reject("items", f"itms[{i}].num {num} is used twice")
        seen.add(num)
        det = item["itm_det"]
        _rate(det["rt"], f"itms[{i}].itm_det.rt")
        _tax(det, f"itms[{i}].itm_det", factor, igst, nil)


def _b2b_like(rec: dict[str, Any], ctx: _Ctx, number: str, date: str) -> str:
    check_gstin(ctx.key, "ctin", "ctin")
    if ctx.key == ctx.gstin:
        raise Reject("ctin", "ctin is the supplier's own GSTIN")
    _doc_number(rec[number], number)
    _date(rec[date], date, ctx.month, ctx.year, ctx.fp)
    if "ntty" in rec:
        _choice(rec["ntty"], "ntty", NOTE_TYPES)
    _pos(rec["pos"])
    _choice(rec["rchrg"], "rchrg", ("Y", "N"))
    inv_typ = rec["inv_typ"]
    _choice(inv_typ, "inv_typ", INV_TYPES)
    if "etin" in rec:
        check_gstin(rec["etin"], "etin", "etin")
    factor = _diff_factor(rec)
    igst = inv_typ in ("SEWP", "SEWOP", "CBW") or rec["pos"] != ctx.gstin[:2]
    _items(rec, factor, igst, inv_typ == "SEWOP")
    return f"{ctx.key}|{rec[number]}"


def _b2cl(rec: dict[str, Any], ctx: _Ctx) -> str:
    _pos(ctx.key)
    if ctx.key == ctx.gstin[:2]:
        raise Reject("pos", f"pos {ctx.key} is the supplier's state: B2C large is for inter-state supplies only")
    _doc_number(rec["inum"], "inum")
    _date(rec["idt"], "idt", ctx.month, ctx.year, ctx.fp)
    if "etin" in rec:
        check_gstin(rec["etin"], "etin", "etin")
    factor = _diff_factor(rec)
    threshold = b2cl_threshold(ctx.month, ctx.year)
    if rec["val"].cents <= threshold:
        raise Reject("threshold", f"val {rec['val'].text} is not above the B2C-large threshold of "
                                  f"{threshold // 100} for {ctx.fp}")
    _items(rec, factor, True)
    return f"{ctx.key}|{rec['inum']}"


def _b2cs(rec: dict[str, Any], ctx: _Ctx) -> str:
    pos, sply_ty, typ = rec["pos"], rec["sply_ty"], rec["typ"]
    _pos(pos)
    _choice(sply_ty, "sply_ty", SUPPLY_TYPES)
    intra = pos == ctx.gstin[:2]
    if (sply_ty == "INTRA") != intra:
        raise Reject("pos", f"sply_ty {sply_ty} does not match pos {pos} for a supplier in state {ctx.gstin[:2]}")
    _choice(typ, "typ", b2cs_typ)
    etin = rec.get("etin")
    if typ == "E" and etin is None:
        raise Reject("etin", "typ E (through an e-commerce operator) needs etin")
    if typ == "OE" and etin is not None:
        raise Reject("etin", "typ OE must not have etin (use typ E)")
    if etin is not None:
        check_gstin(etin, "etin", "etin")
    factor = _diff_factor(rec)
    _rate(rec["rt"], "rt")
    _tax(rec, "entry", factor, not intra)
    return f"{pos}|{sply_ty}|{typ}|{rec['rt'].text}|{etin or ''}"


def _hsn(rec: dict[str, Any], ctx: _Ctx) -> str:
    num = rec["num"].cents // 100
    if not 1 <= num <= 99999:
        raise Reject("items", "num must be 1-99999")
    hsn = rec["hsn_sc"]
    if not _HSN.fullmatch(hsn):
        raise Reject("value", f"hsn_sc {show(hsn)} must be 4 to 8 digits")
    uqc = rec["uqc"]
    if uqc not in UQC:
        raise Reject("value", f"uqc {show(uqc)} is not a GSTN unit quantity code (KGS, NOS, PCS, NA …)")
    desc = rec.get("desc")
    if desc is not None and len(desc) > 30:
        raise Reject("value", "desc is longer than 30 characters")
    _rate(rec["rt"], "rt")
    exact = rec["txval"].cents * rec["rt"].cents * 100
    iamt, camt, samt = (_cents(rec, n) or 0 for n in ("iamt", "camt", "samt"))
    if abs(camt - samt) > _TOLERANCE:
        raise Reject("tax", f"camt {rec['camt'].text if 'camt' in rec else '0'} and samt "
                            f"{rec['samt'].text if 'samt' in rec else '0'} differ by more than 1.00")
    if abs((iamt + camt + samt) * 1_000_000 - exact) > max(_TOLERANCE * 1_000_000, exact // 100):
        raise Reject("tax", "iamt + camt + samt is not txval × rt (±1 % or ±1.00)")
    return f"{hsn}|{uqc}|{rec['rt'].text}"


class _Ctx:
    __slots__ = ("fp", "gstin", "key", "month", "year")

    def __init__(self, gstin: str, fp: str, key: str) -> None:
        self.gstin, self.fp, self.key = gstin, fp, key
        self.month = self.year = 0


def validate(section: str, rec: dict[str, Any], gstin: str, fp: str, key: str) -> str:
    """Check ``rec`` (a record of ``section`` with its shape checked) in the documented order.

    ``key`` is the counterparty (ctin or b2cl pos; ``""`` for b2cs/hsn). Returns the identity.
    """
    check_gstin(gstin, "gstin", "gstin")
    ctx = _Ctx(gstin, fp, key)
    ctx.month, ctx.year = check_fp(fp)
    if section == "b2b":
        return _b2b_like(rec, ctx, "inum", "idt")
    if section == "cdnr":
        return _b2b_like(rec, ctx, "nt_num", "nt_dt")
    if section == "b2cl":
        return _b2cl(rec, ctx)
    if section == "b2cs":
        return _b2cs(rec, ctx)
    return _hsn(rec, ctx)
