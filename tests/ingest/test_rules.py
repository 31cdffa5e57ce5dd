"""The validation rules, one case each, on both backends (through JSONL lines)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from . import support as s
from .support import item, run


def _items(*its: dict[str, Any]) -> list[dict[str, Any]]:
    return list(its)


def _intra(rt: Any, txval: Any, camt: Any, samt: Any | None = None) -> dict[str, Any]:
    return {"num": 1, "itm_det": {"rt": rt, "txval": txval, "camt": camt, "samt": camt if samt is None else samt}}


def _inter(rt: Any, txval: Any, iamt: Any, **extra: Any) -> dict[str, Any]:
    return {"num": 1, "itm_det": {"rt": rt, "txval": txval, "iamt": iamt, **extra}}


# (section, record, meta overrides, code, message — exact, or a prefix ending in "…")
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    ("b2b", s.b2b(), {"gstin": "27AAPCD0007K1ZP"}, "gstin", 'gstin "27AAPCD0007K1ZP" has a wrong check character (a typo?)'),
    ("b2b", s.b2b(), {"gstin": "27aapcd0007k1zo"}, "gstin", 'gstin "27aapcd0007k1zo" is not a GSTIN …'),
    ("b2b", s.b2b(), {"gstin": "00AAPCD0007K1Z5"}, "gstin", 'gstin "00AAPCD0007K1Z5" starts with 00, which is not a GST state code'),
    ("b2b", s.b2b(), {"fp": "062017"}, "period", 'fp "062017" is not a return period MMYYYY from 072017 on'),
    ("b2b", s.b2b(), {"fp": "132017"}, "period", "fp …"),
    ("b2b", s.b2b(), {"ctin": "29AAACB1234A1ZX"}, "ctin", 'ctin "29AAACB1234A1ZX" has a wrong check character (a typo?)'),
    ("b2b", s.b2b(), {"ctin": s.SUPPLIER}, "ctin", "ctin is the supplier's own GSTIN"),
    ("b2b", s.b2b(inum="INV 1"), {}, "value", "inum \"INV 1\" must be 1-16 letters, digits, '/' or '-'"),
    ("b2b", s.b2b(inum="A" * 17), {}, "value", "inum …"),
    ("b2b", s.b2b(idt="5-7-2017"), {}, "date", 'idt "5-7-2017" is not a date dd-mm-yyyy'),
    ("b2b", s.b2b(idt="31-06-2017"), {}, "date", "idt 31-06-2017 is not a calendar date"),
    ("b2b", s.b2b(idt="05-08-2017"), {}, "date", "idt 05-08-2017 is outside the return period 072017"),
    ("b2b", s.b2b(pos="99"), {}, "pos", 'pos "99" is not a place-of-supply state code'),
    ("b2b", s.b2b(rchrg="n"), {}, "value", 'rchrg "n" must be one of Y, N'),
    ("b2b", s.b2b(inv_typ="B2B"), {}, "value", 'inv_typ "B2B" must be one of R, SEWP, SEWOP, DE, CBW'),
    ("b2b", s.b2b(etin="07AAACE0001C1Z0"), {}, "etin", "etin …"),
    ("b2b", s.b2b(diff_percent=0.5), {}, "value", "diff_percent 0.5 must be 0.65 (the only differential rate)"),
    ("b2b", s.b2b(itms=[]), {}, "items", "itms is empty"),
    ("b2b", s.b2b(itms=[item(1, 18, 1000, igst=True), item(1, 18, 1000, igst=True)]), {}, "items",
     "itms[2].num 1 is used twice"),
    ("b2b", s.b2b(itms=[item(0, 18, 1000, igst=True)]), {}, "items", "itms[1].num must be 1-99999"),
    ("b2b", s.b2b(itms=[item(1, 17, 1000, igst=True)]), {}, "rate",
     "itms[1].itm_det.rt 17 is not a GST rate (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40)"),
    ("b2b", s.b2b(itms=[_inter(18, 1000, 181.01)]), {}, "tax", "itms[1].itm_det iamt 181.01 is not txval × rt (±1.00)"),
    ("b2b", s.b2b(itms=[_intra(18, 1000, 90)]), {}, "tax", "itms[1].itm_det has CGST/SGST on an inter-state supply (IGST only)"),
    ("b2b", s.b2b(itms=[_inter(18, 1000, 180)], pos="27"), {}, "tax",
     "itms[1].itm_det has IGST on an intra-state supply (CGST + SGST only)"),
    ("b2b", s.b2b(itms=[{"num": 1, "itm_det": {"rt": 18, "txval": 1000}}]), {}, "tax",
     "itms[1].itm_det has no iamt (IGST) for an inter-state supply"),
    ("b2b", s.b2b(itms=[_intra(18, 1000, 90, 88.99)], pos="27"), {}, "tax",
     "itms[1].itm_det samt 88.99 is not half of txval × rt (±1.00)"),
    ("b2b", s.b2b(itms=[_inter(18, 1000, 180)], inv_typ="SEWOP"), {}, "tax",
     "itms[1].itm_det has IGST on a supply without payment of tax"),
    ("cdnr", s.cdnr(ntty="X"), {}, "value", 'ntty "X" must be one of C, D'),
    ("cdnr", s.cdnr(nt_dt="01-06-2017"), {}, "date", "nt_dt 01-06-2017 is outside the return period 072017"),
    ("b2cl", s.b2cl(), {"pos": "27"}, "pos", "pos 27 is the supplier's state: B2C large is for inter-state supplies only"),
    ("b2cl", s.b2cl(val=250000), {}, "threshold", "val 250000 is not above the B2C-large threshold of 250000 for 072017"),
    ("b2cl", s.b2cl(val=150000, idt="05-07-2024"), {"fp": "072024"}, "threshold",
     "val 150000 is not above the B2C-large threshold of 250000 for 072024"),
    ("b2cs", s.b2cs(sply_ty="INTER"), {}, "pos", "sply_ty INTER does not match pos 27 for a supplier in state 27"),
    ("b2cs", s.b2cs(typ="E"), {}, "etin", "typ E (through an e-commerce operator) needs etin"),
    ("b2cs", s.b2cs(etin=s.ETIN), {}, "etin", "typ OE must not have etin (use typ E)"),
    ("b2cs", s.b2cs(camt=26.01), {}, "tax", "entry camt 26.01 is not half of txval × rt (±1.00)"),
    ("b2cs", s.b2cs(rt=2), {}, "rate", "rt 2 is not a GST rate …"),
    ("hsn", s.hsn(hsn_sc="10"), {}, "value", 'hsn_sc "10" must be 4 to 8 digits'),
    ("hsn", s.hsn(uqc="KG"), {}, "value", 'uqc "KG" is not a GSTN unit quantity code (KGS, NOS, PCS, NA …)'),
    ("hsn", s.hsn(desc="d" * 31), {}, "value", "desc is longer than 30 characters"),
    ("hsn", s.hsn(iamt=0, camt=25, samt=23.9), {}, "tax", "camt 25 and samt 23.9 differ by more than 1.00"),
    ("hsn", s.hsn(iamt=60), {}, "tax", "iamt + camt + samt is not txval × rt (±1 % or ±1.00)"),
    ("hsn", s.hsn(num=0), {}, "items", "num must be 1-99999"),
]


@pytest.mark.parametrize(("section", "rec", "meta", "code", "message"), CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)])
def test_rule(ingest: SimpleNamespace, section: str, rec: dict[str, Any], meta: dict[str, Any], code: str,
              message: str) -> None:
    out = run(ingest, "jsonl", s.line(section, rec, **meta))
    assert out.records == []
    assert out.codes == [code]
    got = out.errors[0][3]
    if message.endswith("…"):
        assert got.startswith(message[:-1]), got
    else:
        assert got == message


@pytest.mark.parametrize(("section", "rec", "meta"), [
    ("b2b", s.b2b(itms=[_inter(18, 1000, 181)]), {}),  # within ₹1
    ("b2b", s.b2b(itms=[_inter(18, 1000, 179)]), {}),
    ("b2b", s.b2b(itms=[_intra(18, 1000, 90)], pos="27"), {}),
    ("b2b", s.b2b(itms=[_inter(18, 1000, 180)], pos="27", inv_typ="CBW"), {}),  # intra-state attracting IGST
    ("b2b", s.b2b(itms=[_inter(18, 1000, 180)], pos="27", inv_typ="SEWP"), {}),
    ("b2b", s.b2b(itms=[_inter(18, 1000, 0)], inv_typ="SEWOP"), {}),
    ("b2b", s.b2b(itms=[{"num": 1, "itm_det": {"rt": 18, "txval": 1000}}], inv_typ="SEWOP"), {}),
    ("b2b", s.b2b(itms=[_inter(5, 10000, 325)], diff_percent=0.65), {}),  # 65 % of the rate
    ("b2b", s.b2b(itms=[_inter(40, 100, 40)], idt="05-10-2025"), {"fp": "102025"}),
    ("b2b", s.b2b(itms=[_inter(0.25, 1000, 2.5)]), {}),
    ("b2b", s.b2b(etin=s.ETIN), {}),
    ("b2b", s.b2b(idt="29-02-2024"), {"fp": "022024"}),  # a leap day
    ("b2cl", s.b2cl(val=150000, idt="05-08-2024"), {"fp": "082024"}),  # ₹1 lakh from 08-2024
    ("b2cs", s.b2cs(typ="E", etin=s.ETIN), {}),
    ("b2cs", s.b2cs(txval=-1000, camt=-25, samt=-25), {}),  # b2cs nets credit notes: negatives allowed
    ("b2cs", s.b2cs(sply_ty="INTER", pos="29", camt=None, samt=None, iamt=50), {}),
    ("hsn", s.hsn(iamt=20, camt=15, samt=15), {}),
    ("hsn", s.hsn(txval=1000000, iamt=50400), {}),  # 1 % tolerance on an aggregate
    ("hsn", s.hsn(uqc="NA", desc=None), {}),
])
def test_valid(ingest: SimpleNamespace, section: str, rec: dict[str, Any], meta: dict[str, Any]) -> None:
    rec = {k: v for k, v in rec.items() if v is not None}
    out = run(ingest, "jsonl", s.line(section, rec, **meta))
    assert out.errors == []
    assert len(out.records) == 1


def test_identities(ingest: SimpleNamespace) -> None:
    data = b"".join([s.line("b2b"), s.line("cdnr"), s.line("b2cl"), s.line("b2cs", s.b2cs(rt=5.0)),
                     s.line("b2cs", s.b2cs(typ="E", etin=s.ETIN)), s.line("hsn")])
    out = run(ingest, "jsonl", data)
    assert [r[3] for r in out.records] == [
        f"{s.CTIN}|INV/1", f"{s.CTIN_LOCAL}|CN-7", "29|L-1", "27|INTRA|OE|5|", f"27|INTRA|E|5|{s.ETIN}", "1001|KGS|5"]
