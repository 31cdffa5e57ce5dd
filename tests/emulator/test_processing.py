"""RETSAVE processing (issue 10 items 6, 8): RETSTATUS IP → P/PE/ER with GSTN's per-section
error_report, the GSTIN registry, one document number per supplier and financial year, dates
inside the period, GST rates, and per-row upserts of b2cs and hsn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gspauth.emulator import REPORT_CODES, Emulator, defaults
from tests.emulator.conftest import SEED, START, TP, TP2
from tests.emulator.rawclient import GSTR1, RETURNS, Raw, b2b_payload, error_code

P = "072017"
TP3 = defaults.SAMPLE_TAXPAYERS[2]
CANCELLED = defaults.make_gstin("24", "AAACC1111C")
UNREGISTERED = defaults.make_gstin("19", "AAACU2222U")
MALFORMED = TP3.gstin[:14] + ("A" if TP3.gstin[14] != "A" else "B")


def _inv(inum: str, idt: str = "10-07-2017", rt: float = 18, txval: float = 100.0) -> dict[str, Any]:
    return {"inum": inum, "idt": idt, "val": txval * (1 + rt / 100), "pos": "29", "rchrg": "N", "inv_typ": "R",
            "itms": [{"num": 1, "itm_det": {"rt": rt, "txval": txval, "iamt": round(txval * rt / 100, 2), "csamt": 0}}]}


def _b2b(period: str, *groups: tuple[str, list[dict[str, Any]]], gstin: str = TP.gstin, **more: Any) -> dict[str, Any]:
    return {"gstin": gstin, "fp": period, "b2b": [{"ctin": c, "inv": invs} for c, invs in groups], **more}


@pytest.fixture
def r(emu: Emulator, make: Callable[..., Raw]) -> Raw:
    caller = make()
    caller.login(emu)
    return caller


def _status(r: Raw, ref: str, period: str = P) -> dict[str, Any]:
    out: dict[str, Any] = r.open(r.get(RETURNS, "RETSTATUS", period=period, ref_id=ref))
    return out


def _save(r: Raw, payload: dict[str, Any], period: str = P, **kw: Any) -> str:
    ref: str = r.open(r.retsave(payload, period=period, **kw))["reference_id"]
    return ref


def _inums(r: Raw, period: str = P) -> list[str]:
    got = r.open(r.get(GSTR1, "B2B", period=period))
    return sorted(i["inum"] for g in got["b2b"] for i in g["inv"])


def test_counterparty_registry_and_partial_processing(emu: Emulator, r: Raw, client: httpx.Client) -> None:
    assert client.post("/_emulator/registry", json={"gstin": CANCELLED, "status": "cancelled"}).status_code == 200
    assert client.post("/_emulator/registry", json={"gstin": UNREGISTERED, "status": "unregistered"}).status_code == 200
    emu.update_config(retstatus_delay_seconds=30)
    ref = _save(r, _b2b(P, (TP2.gstin, [_inv("A1"), _inv("A2")]), (CANCELLED, [_inv("C1")]),
                        (UNREGISTERED, [_inv("U1"), _inv("U2")]), (MALFORMED, [_inv("M1")]), (TP.gstin, [_inv("S1")])))
    assert _status(r, ref) == {"status_cd": "IP", "form_typ": "R1", "action": "SAVE"}
    emu.clock.advance(30)
    st = _status(r, ref)
    assert st["status_cd"] == "PE"
    report = st["error_report"]
    assert set(report) == {"b2b"}
    by_ctin = {e["ctin"]: e for e in report["b2b"]}
    assert set(by_ctin) == {CANCELLED, UNREGISTERED, MALFORMED, TP.gstin}
    assert all(e["error_cd"] == "RET191113" and e["error_msg"].startswith(REPORT_CODES["RET191113"])
               for e in report["b2b"])
    assert [i["inum"] for i in by_ctin[UNREGISTERED]["inv"]] == ["U1", "U2"]  # whole invoices, as sent
    assert by_ctin[UNREGISTERED]["inv"][0] == _inv("U1")
    assert "cancelled" in by_ctin[CANCELLED]["error_msg"] and "own GSTIN" in by_ctin[TP.gstin]["error_msg"]
    assert _inums(r) == ["A1", "A2"]  # rejected invoices are not stored
    assert emu.stats["events"]["records_rejected"] == 5
    # the registry over HTTP, and a GSTIN put back to active is accepted again
    assert client.get("/_emulator/registry").json() == {"gstins": {CANCELLED: "cancelled", UNREGISTERED: "unregistered"}}
    assert client.get("/_emulator/registry", params={"gstin": TP2.gstin}).json()["status"] == "active"
    client.post("/_emulator/registry", json={"gstin": CANCELLED, "status": "active"})
    emu.update_config(retstatus_delay_seconds=0)
    assert _status(r, _save(r, _b2b(P, (CANCELLED, [_inv("C1")]))))["status_cd"] == "P"
    for bad in ({"gstin": MALFORMED, "status": "cancelled"}, {"gstin": TP2.gstin, "status": "suspended"}):
        assert client.post("/_emulator/registry", json=bad).status_code == 400


def test_all_rejected_is_er_and_cdnr_is_checked_too(emu: Emulator, r: Raw) -> None:
    emu.set_gstin_status(UNREGISTERED, "unregistered")
    note = {"ntty": "C", "nt_num": "CN1", "nt_dt": "12-07-2017", "val": 118, "pos": "19", "rchrg": "N",
            "inv_typ": "R", "itms": [{"num": 1, "itm_det": {"rt": 18, "txval": 100, "iamt": 18, "csamt": 0}}]}
    ref = _save(r, {"gstin": TP.gstin, "fp": P, "cdnr": [{"ctin": UNREGISTERED, "nt": [note]}]})
    st = _status(r, ref)
    assert st["status_cd"] == "ER"
    assert st["error_report"] == {"cdnr": [{"ctin": UNREGISTERED, "error_cd": "RET191113",
                                            "error_msg": st["error_report"]["cdnr"][0]["error_msg"], "nt": [note]}]}
    assert emu.saved_records(TP.gstin, P, "cdnr") == []


def test_document_numbers_are_unique_per_financial_year(emu: Emulator, r: Raw) -> None:
    assert _status(r, _save(r, _b2b(P, (TP2.gstin, [_inv("X1"), _inv("X2")]))))["status_cd"] == "P"
    # an update of the same invoice (same period, same counterparty) is not a duplicate
    assert _status(r, _save(r, _b2b(P, (TP2.gstin, [_inv("X1", txval=200)]))))["status_cd"] == "P"
    # the same number in a later period of the same financial year (case does not matter)
    st = _status(r, _save(r, _b2b("082017", (TP2.gstin, [_inv("x1", "05-08-2017"), _inv("X3", "05-08-2017")])),
                 period="082017"), "082017")
    assert st["status_cd"] == "PE"
    entry = st["error_report"]["b2b"][0]
    assert entry["error_cd"] == "RET191133" and "the return for 072017" in entry["error_msg"]
    assert [i["inum"] for i in entry["inv"]] == ["x1"] and _inums(r, "082017") == ["X3"]
    # the same number for another counterparty in the same period, and twice in one payload
    st = _status(r, _save(r, _b2b(P, (TP3.gstin, [_inv("X2"), _inv("X4")]), (TP2.gstin, [_inv("X4")]))))
    assert st["status_cd"] == "PE"
    assert [(e["ctin"], [i["inum"] for i in e["inv"]]) for e in st["error_report"]["b2b"]] == [
        (TP3.gstin, ["X2"]), (TP2.gstin, ["X4"])]
    assert "another record of this period" in st["error_report"]["b2b"][0]["error_msg"]
    # a new financial year starts a new series
    assert _status(r, _save(r, _b2b("042018", (TP2.gstin, [_inv("X1", "02-04-2018")])), period="042018"),
                   "042018")["status_cd"] == "P"
    # deleting the original frees its number
    delete = _inv("X1")
    delete["flag"] = "D"
    _save(r, _b2b(P, (TP2.gstin, [delete])))
    assert _status(r, _save(r, _b2b("082017", (TP2.gstin, [_inv("X1", "05-08-2017")])), period="082017"),
                   "082017")["status_cd"] == "P"
    emu.update_config(unique_document_numbers=False)
    assert _status(r, _save(r, _b2b(P, (TP3.gstin, [_inv("X2")]))))["status_cd"] == "P"


def test_dates_and_rates(emu: Emulator, r: Raw) -> None:
    ref = _save(r, _b2b(P, (TP2.gstin, [_inv("D1", "01-08-2017"), _inv("D2", "30-06-2017"), _inv("R1", rt=17),
                                        _inv("R2", rt=0.25), _inv("R3", rt=40)])))
    st = _status(r, ref)
    assert st["status_cd"] == "PE"
    codes_by_inum = {i["inum"]: e["error_cd"] for e in st["error_report"]["b2b"] for i in e["inv"]}
    assert codes_by_inum == {"D1": "RET191901", "R1": "RET191175"}
    assert _inums(r) == ["D2", "R2", "R3"]  # an earlier date is a late invoice, not an error
    emu.update_config(reject_dates_after_period=False, check_tax_rates=False, check_counterparty_gstins=False)
    assert _status(r, _save(r, _b2b(P, (TP2.gstin, [_inv("D1", "01-08-2017"), _inv("R1", rt=17)]),
                                   (MALFORMED, [_inv("M1")]))))["status_cd"] == "P"


@pytest.mark.parametrize(("payload", "detail"), [
    ({"b2bx": []}, "unknown section 'b2bx'"),
    ({"b2b": {"ctin": "x"}}, "b2b must be a list"),
    ({"b2b": [{"ctin": TP2.gstin, "inv": [{"inum": "Q1", "idt": "2017-07-01"}]}]}, "not a dd-mm-yyyy date"),
    ({"b2cs": [{"pos": "27", "typ": "OE", "rt": 5}]}, "b2cs[0] lacks sply_ty"),
    ({"hsn": [{"hsn_sc": "1001"}]}, 'hsn must be {"data": [...]}'),
])
def test_structural_errors_refuse_the_whole_payload(emu: Emulator, r: Raw, payload: dict[str, Any],
                                                   detail: str) -> None:  # fmt: skip
    ref = _save(r, {"gstin": TP.gstin, "fp": P, **payload, "cdnur": [{"nt_num": "N9", "nt_dt": "01-07-2017"}]})
    st = _status(r, ref)
    assert st["status_cd"] == "ER" and st["error_report"]["error_cd"] == "RET191106"
    assert detail in st["error_report"]["error_msg"]
    assert emu.saved_records(TP.gstin, P, "cdnur") == []  # the well-formed part is not stored either


def test_replayed_save_keeps_its_first_outcome(emu: Emulator, r: Raw) -> None:
    emu.set_gstin_status(UNREGISTERED, "unregistered")
    payload = _b2b(P, (TP2.gstin, [_inv("K1")]), (UNREGISTERED, [_inv("K2")]))
    ref = _save(r, payload, txn="KEEP-1")
    emu.set_gstin_status(UNREGISTERED, "active")  # would be accepted now, but a replay processes nothing
    assert _save(r, payload, txn="KEEP-1") == ref
    assert _status(r, ref)["status_cd"] == "PE" and _inums(r) == ["K1"] and emu.saves_count() == 1
    bad = {"gstin": TP.gstin, "fp": P, "nope": []}
    ref2 = _save(r, bad, txn="KEEP-2")
    assert _save(r, bad, txn="KEEP-2") == ref2 and _status(r, ref2)["status_cd"] == "ER"


def test_b2cs_and_hsn_rows_are_upserted_one_by_one(emu: Emulator, r: Raw) -> None:
    def row(pos: str, rt: float, txval: float, **kw: Any) -> dict[str, Any]:
        return {"sply_ty": "INTER", "pos": pos, "typ": "OE", "rt": rt, "txval": txval,
                "iamt": round(txval * rt / 100, 2), "csamt": 0, **kw}

    def hsn(code: str, rt: float, txval: float, **kw: Any) -> dict[str, Any]:
        return {"num": 1, "hsn_sc": code, "uqc": "NOS", "qty": 1, "rt": rt, "txval": txval, "iamt": 1, **kw}

    first = {"gstin": TP.gstin, "fp": P, "b2cs": [row("29", 18, 100), row("07", 5, 50), row("33", 12, 10)],
             "hsn": {"data": [hsn("1001", 5, 50), hsn("8471", 18, 100)]}}
    assert _status(r, _save(r, first))["status_cd"] == "P"
    # a differential re-save: one row changed (18 == 18.0), one new, one deleted; the others stay
    second = {"gstin": TP.gstin, "fp": P, "b2cs": [row("29", 18.0, 300), row("27", 28, 1), row("07", 5, 0, flag="D")],
              "hsn": {"data": [hsn("8471", 18, 999)]}}
    assert _status(r, _save(r, second))["status_cd"] == "P"
    b2cs = r.open(r.get(GSTR1, "B2CS"))["b2cs"]
    assert sorted((x["pos"], x["txval"]) for x in b2cs) == [("27", 1), ("29", 300), ("33", 10)]
    assert r.open(r.get(GSTR1, "HSN")) == {"hsn": {"data": [hsn("1001", 5, 50), hsn("8471", 18, 999)]}}
    # a bad rate in one row rejects that row only, reported in GSTN's shapes
    third = {"gstin": TP.gstin, "fp": P, "b2cs": [row("33", 17, 5), row("36", 5, 5)],
             "hsn": {"data": [hsn("2202", 13, 5)]}}
    st = _status(r, _save(r, third))
    assert st["status_cd"] == "PE"
    assert st["error_report"]["b2cs"] == [{**row("33", 17, 5), "error_cd": "RET191175",
                                           "error_msg": st["error_report"]["b2cs"][0]["error_msg"]}]
    assert st["error_report"]["hsn"]["error_cd"] == "RET191175"
    assert st["error_report"]["hsn"]["data"] == [hsn("2202", 13, 5)]
    assert len(r.open(r.get(GSTR1, "B2CS"))["b2cs"]) == 4


def test_document_index_survives_a_restart_and_is_rebuilt(tmp_path: object) -> None:
    state = str(tmp_path)
    emu = Emulator(seed=SEED, state_dir=state, clock_start=START, clock_frozen=True)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    from gspauth import crypto

    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.login(emu)
    _save(r, b2b_payload(TP.gstin, P, 2))
    emu._store.execute("DELETE FROM doc_index")  # as in a state written before the index existed
    emu.close()
    emu2 = Emulator(state_dir=state, clock_start=START, clock_frozen=True)
    r.client = httpx.Client(transport=httpx.MockTransport(emu2.handle), base_url="http://e")
    st = _status(r, _save(r, _b2b("082017", (TP2.gstin, [_inv("INV000002", "03-08-2017")])), period="082017"),
                 "082017")
    assert st["status_cd"] == "ER" and st["error_report"]["b2b"][0]["error_cd"] == "RET191133"
    emu2.close()


def test_cancelled_and_unregistered_gstins_from_config(make: Callable[..., Raw]) -> None:
    emu = Emulator(seed=SEED, clock_start=START, clock_frozen=True, cancelled_gstins=(CANCELLED,),
                   unregistered_gstins=(UNREGISTERED,))
    assert emu.gstin_status(CANCELLED) == "cancelled" and emu.gstin_status(UNREGISTERED) == "unregistered"
    assert emu.gstin_status(MALFORMED) == "unregistered" and emu.gstin_status(TP3.gstin) == "active"
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    r = Raw(c, "gstn", TP.gstin, TP.username, None)
    search = r.call("GET", "/commonapi/v1.1/search", action="TP", params={"action": "TP", "gstin": CANCELLED})
    import base64
    import json

    assert json.loads(base64.b64decode(search.json()["data"]))["sts"] == "Cancelled"
    missing = r.call("GET", "/commonapi/v1.1/search", action="TP", params={"action": "TP", "gstin": UNREGISTERED})
    assert error_code(missing) == "GEN5007"
    emu.close()


def test_processing_over_the_wire_and_registry_persistence(tmp_path: object) -> None:
    from gspauth import crypto
    from gspauth.emulator import ThreadedEmulator

    state = str(tmp_path)
    with ThreadedEmulator(seed=SEED, state_dir=state, clock_start=START, clock_frozen=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:  # fmt: skip
        emu = server.emulator
        c.post("/_emulator/config", json={"retstatus_delay_seconds": 60})
        c.post("/_emulator/registry", json={"gstin": CANCELLED, "status": "cancelled"})
        r = Raw(c, "vayana", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now)
        r.login(emu)
        ref = _save(r, _b2b(P, (TP2.gstin, [_inv("W1")]), (CANCELLED, [_inv("W2")])))
        assert _status(r, ref)["status_cd"] == "IP"
        c.post("/_emulator/clock", json={"advance_seconds": 60})
        st = _status(r, ref)
        assert st["status_cd"] == "PE" and st["error_report"]["b2b"][0]["inv"][0]["inum"] == "W2"
        assert _inums(r) == ["W1"]
    emu.close()
    again = Emulator(state_dir=state, clock_start=START, clock_frozen=True)
    assert again.gstin_registry() == {CANCELLED: "cancelled"}  # the registry survives a restart
    again.close()
