"""GSTR-2A / GSTR-2B (issue 10 item 8): a taxpayer's purchases, built from other taxpayers'
GSTR-1 naming it as counterparty; filing flags, the 2B statement, large results, binding."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, ThreadedEmulator, defaults
from tests.emulator.conftest import SEED, TP, TP2
from tests.emulator.rawclient import AUTH, GSTR1, RETURNS, Raw, b2b_payload, error_code

P = "072017"
TP3 = defaults.SAMPLE_TAXPAYERS[2]
G2A = "/taxpayerapi/v2.0/returns/gstr2a"
G2B = "/taxpayerapi/v1.0/returns/gstr2b"
NOTE = {"ntty": "C", "nt_num": "CN-1", "nt_dt": "20-07-2017", "val": 118, "pos": "29", "rchrg": "N", "inv_typ": "R",
        "itms": [{"num": 1, "itm_det": {"rt": 18, "txval": 100, "iamt": 18, "csamt": 0}}]}


def _file(r: Raw, emu: Emulator, period: str = P) -> None:
    pan = r.gstin[2:12]
    r.call("GET", AUTH, action="EVCOTP", data=True,
           params={"action": "EVCOTP", "gstin": r.gstin, "pan": pan, "form_type": "R1"})
    sid = f"{pan}|{emu.outbox.latest_otp(r.gstin, 'evc')}"
    data, sign = crypto.encrypt_request_evc(r.ek, sid, json.dumps({"gstin": r.gstin, "ret_period": period}).encode())
    body = {"action": "RETFILE", "data": data, "sign": sign, "st": "EVC", "sid": sid}
    assert r.open(r.call("POST", GSTR1, action="RETFILE", body=body, data=True, period=period))["ack_num"]


@pytest.fixture
def parties(emu: Emulator, make: Callable[..., Raw]) -> dict[str, Raw]:
    """TP and TP3 sell to TP2 (and TP to TP3); TP2 is the recipient whose 2A/2B is fetched."""
    out = {}
    for name, tp in (("a", TP), ("b", TP3), ("buyer", TP2)):
        out[name] = make(taxpayer=tp)
        out[name].login(emu)
    a, b = out["a"], out["b"]
    a.open(a.retsave({**b2b_payload(TP.gstin, P, 2, ctin=TP2.gstin), "cdnr": [{"ctin": TP2.gstin, "nt": [NOTE]}]}))
    a.open(a.retsave(b2b_payload(TP.gstin, P, 1, start=9, ctin=TP3.gstin)))  # not TP2's
    b.open(b.retsave(b2b_payload(TP3.gstin, P, 1, start=20, ctin=TP2.gstin)))
    return out


def _open(r: Raw, resp: httpx.Response) -> Any:
    return r.open(resp)


def test_gstr2a_shows_saved_and_filed_documents_of_other_taxpayers(emu: Emulator, parties: dict[str, Raw]) -> None:
    buyer, a = parties["buyer"], parties["a"]
    got = _open(buyer, buyer.get(G2A, "B2B"))
    assert set(got) == {"b2b"}
    by_supplier = {e["ctin"]: e for e in got["b2b"]}
    assert set(by_supplier) == {TP.gstin, TP3.gstin}
    assert [i["inum"] for i in by_supplier[TP.gstin]["inv"]] == ["INV000001", "INV000002"]
    assert by_supplier[TP.gstin]["cfs"] == "N" and "fldtr1" not in by_supplier[TP.gstin]
    inv = by_supplier[TP.gstin]["inv"][0]
    assert len(inv.pop("chksum")) == 64 and inv == b2b_payload(TP.gstin, P, 2, ctin=TP2.gstin)["b2b"][0]["inv"][0]
    _file(a, emu)
    got = _open(buyer, buyer.get(G2A, "B2B", ctin=TP.gstin))
    assert [e["ctin"] for e in got["b2b"]] == [TP.gstin]
    assert got["b2b"][0]["cfs"] == "Y" and got["b2b"][0]["flprdr1"] == P
    assert got["b2b"][0]["fldtr1"] == emu.clock.now().astimezone(
        __import__("datetime").timezone(__import__("datetime").timedelta(hours=5, minutes=30))).strftime("%d-%m-%Y")
    cdn = _open(buyer, buyer.get(G2A, "CDN"))
    assert [(e["ctin"], [n["nt_num"] for n in e["nt"]]) for e in cdn["cdn"]] == [(TP.gstin, ["CN-1"])]
    # TP3 sees only what names TP3
    b = parties["b"]
    assert [i["inum"] for e in _open(b, b.get(G2A, "B2B"))["b2b"] for i in e["inv"]] == ["INV000009"]


def test_gstr2a_errors_and_empty_results(emu: Emulator, parties: dict[str, Raw]) -> None:
    buyer = parties["buyer"]
    assert error_code(buyer.get(G2A, "B2B", period="082017")) == "RET11416"
    emu.update_config(gstr2_empty_is_error=False)
    assert _open(buyer, buyer.get(G2A, "B2B", period="082017")) == {"b2b": []}
    assert error_code(buyer.get(G2A, "ISD")) == "GEN5007"
    # the session is bound to its GSTIN: TP2's token cannot read TP's purchases
    buyer.gstin = TP.gstin
    assert error_code(buyer.get(G2A, "B2B")) == "AUTH158"


def test_gstr2a_large_result_goes_through_filedet(emu: Emulator, parties: dict[str, Raw], client: httpx.Client) -> None:
    emu.update_config(large_download_threshold=2, filedet_records_per_file=2)
    buyer = parties["buyer"]
    token = _open(buyer, buyer.get(G2A, "B2B"))
    assert set(token) == {"est", "token"}
    det = _open(buyer, buyer.get(RETURNS, "FILEDET", token=token["token"]))
    assert det["fc"] == 2
    key = base64.b64decode(det["ek"])
    seen = []
    for u in det["urls"]:
        blob = client.get(u["ul"]).content
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None
            part = json.loads(base64.b64decode(crypto.decrypt_field(key, member.read().decode())))
        seen += [(e["ctin"], e["cfs"], i["inum"]) for e in part["b2b"] for i in e["inv"]]
    assert sorted(seen) == sorted([(TP.gstin, "N", "INV000001"), (TP.gstin, "N", "INV000002"),
                                   (TP3.gstin, "N", "INV000020")])


def test_gstr2b_is_a_generated_statement_of_filed_returns(emu: Emulator, parties: dict[str, Raw],
                                                          client: httpx.Client) -> None:  # fmt: skip
    buyer, a = parties["buyer"], parties["a"]
    assert error_code(buyer.get(G2B, "GET2B", rtnprd=P)) == "RET2B1023"  # not generated yet
    _file(a, emu)  # TP files; TP3 does not
    made = client.post("/_emulator/gstr2b/generate", json={"gstin": TP2.gstin, "period": P})
    assert made.status_code == 200 and made.json()["b2b"] == 2 and made.json()["cdnr"] == 1
    reply = _open(buyer, buyer.get(G2B, "GET2B", rtnprd=P))
    data = reply["data"]
    assert len(reply["chksum"]) == 64 and data["gstin"] == TP2.gstin and data["rtnprd"] == P
    assert set(data) == {"gstin", "rtnprd", "version", "gendt", "docdata"}
    [b2b] = data["docdata"]["b2b"]
    assert b2b["ctin"] == TP.gstin and b2b["supprd"] == P and b2b["trdnm"].startswith("EMULATED TAXPAYER")
    inv = b2b["inv"][0]
    assert inv["inum"] == "INV000001" and inv["dt"] == "15-07-2017" and inv["typ"] == "R" and inv["itcavl"] == "Y"
    assert inv["items"] == [{"num": 1, "rt": 18, "txval": 1000.0, "igst": 180.0, "cgst": 0, "sgst": 0, "cess": 0}]
    [cdnr] = data["docdata"]["cdnr"]
    assert cdnr["nt"][0]["ntnum"] == "CN-1" and cdnr["nt"][0]["typ"] == "C" and cdnr["nt"][0]["suptyp"] == "R"
    # the statement is frozen: TP3 filing later shows up only after regeneration
    _file(parties["b"], emu)
    assert len(_open(buyer, buyer.get(G2B, "GET2B", rtnprd=P))["data"]["docdata"]["b2b"]) == 1
    client.post("/_emulator/gstr2b/generate", json={"gstin": TP2.gstin, "period": P})
    assert len(_open(buyer, buyer.get(G2B, "GET2B", rtnprd=P))["data"]["docdata"]["b2b"]) == 2
    # errors
    assert error_code(buyer.get(G2B, "GET2B")) == "GEN5001"
    assert error_code(buyer.get(G2B, "GET2B", rtnprd="082017")) == "GEN5007"
    assert error_code(buyer.get(G2B, "GEN2B", rtnprd=P)) == "GEN5007"
    assert client.post("/_emulator/gstr2b/generate", json={"gstin": "X", "period": P}).status_code == 400


def test_gstr2b_live_mode_empty_and_paging(emu: Emulator, parties: dict[str, Raw]) -> None:
    buyer = parties["buyer"]
    emu.update_config(gstr2b_generation="live")
    assert error_code(buyer.get(G2B, "GET2B", rtnprd=P)) == "RET2B1016"  # nothing filed yet
    _file(parties["a"], emu)
    _file(parties["b"], emu)
    full = _open(buyer, buyer.get(G2B, "GET2B", rtnprd=P))["data"]
    emu.update_config(large_download_threshold=2)
    first = _open(buyer, buyer.get(G2B, "GET2B", rtnprd=P))["data"]
    assert first["fc"] == 2 and "docdata" not in first
    merged: dict[str, list[tuple[str, str]]] = {}
    for k in (1, 2):
        page = _open(buyer, buyer.get(G2B, "GET2B", rtnprd=P, file_num=str(k)))["data"]
        assert page["fc"] == 2
        for sec, entries in page["docdata"].items():
            lk = "inv" if sec == "b2b" else "nt"
            merged.setdefault(sec, []).extend((e["ctin"], d["inum" if sec == "b2b" else "ntnum"])
                                              for e in entries for d in e[lk])
    expected = {sec: [(e["ctin"], d["inum" if sec == "b2b" else "ntnum"]) for e in entries
                      for d in e["inv" if sec == "b2b" else "nt"]] for sec, entries in full["docdata"].items()}
    assert merged == expected
    assert error_code(buyer.get(G2B, "GET2B", rtnprd=P, file_num="3")) == "GEN5007"


def test_gstr2a_over_the_wire_through_vayana() -> None:
    with ThreadedEmulator(seed=SEED) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        emu = server.emulator
        cert = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
        seller = Raw(c, "vayana", TP.gstin, TP.username, cert, now=emu.clock.now)
        seller.login(emu)
        seller.open(seller.retsave(b2b_payload(TP.gstin, P, 3, ctin=TP2.gstin)))
        buyer = Raw(c, "vayana", TP2.gstin, TP2.username, cert, now=emu.clock.now)
        buyer.login(emu)
        got = buyer.open(buyer.get(G2A, "B2B"))
        assert [i["inum"] for i in got["b2b"][0]["inv"]] == ["INV000001", "INV000002", "INV000003"]
        assert c.get("/_emulator/stats").json()["by_layer"]["vayana"]["B2B"] == 1
