"""Data APIs of spec §5 (RETSAVE, RETSTATUS, section GET, FILEDET, RETSUBMIT/RETFILE), keys, persistence."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import tarfile
from collections.abc import Callable

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, defaults
from tests.emulator.conftest import START, TP, TP2
from tests.emulator.rawclient import (
    AUTH,
    GSTR1,
    RETURNS,
    Raw,
    b2b_payload,
    error_code,
    new_txn,
)

P = "072017"


def test_retsave_envelope_has_fresh_rek_each_time(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    replies = [r.retsave(b2b_payload(TP.gstin, P, start=i * 10)).json() for i in range(3)]
    assert all(set(x) == {"status_cd", "data", "rek", "hmac"} for x in replies)
    reks = {crypto.decrypt_rek(r.ek, x["rek"]) for x in replies}
    assert len(reks) == 3
    refs = {json.loads(crypto.decrypt_response(r.ek, x["data"], x["rek"], x["hmac"]))["reference_id"] for x in replies}
    assert len(refs) == 3
    assert len(emu.saved_records(TP.gstin, P, "b2b")) == 6


def test_retsave_is_idempotent_per_txn(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    payload = b2b_payload(TP.gstin, P, 3)
    first = r.open(r.retsave(payload, txn="RETRY-1"))
    again = r.open(r.retsave(payload, txn="RETRY-1"))  # re-encrypted: different data/hmac, same JSON
    assert first == again
    assert emu.saves_count() == 1 and emu.stats["events"]["retsave_replayed"] == 1
    # the same txn for another GSTIN is a different transaction
    r2 = make(taxpayer=TP2)
    r2.login(emu)
    assert r2.open(r2.retsave(b2b_payload(TP2.gstin, P), txn="RETRY-1"))["reference_id"] != first["reference_id"]
    # a different payload under a used txn is refused (default) or answered first-wins
    changed = b2b_payload(TP.gstin, P, 4)
    resp = r.retsave(changed, txn="RETRY-1")
    assert error_code(resp) == "AUTH4039" and "txn" in resp.json()["error"]["message"]
    emu.update_config(txn_conflict_policy="first-wins")
    assert r.open(r.retsave(changed, txn="RETRY-1")) == first
    assert len(emu.saved_records(TP.gstin, P, "b2b")) == 3


def test_retsave_upserts_and_deletes(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P, 2))
    p = b2b_payload(TP.gstin, P, 1)
    p["b2b"][0]["inv"][0]["val"] = 5.0
    r.retsave(p)
    d = b2b_payload(TP.gstin, P, 1, start=2)
    d["b2b"][0]["inv"][0]["flag"] = "D"
    r.retsave(d)
    got = r.open(r.get(GSTR1, "B2B"))
    assert [i["inum"] for i in got["b2b"][0]["inv"]] == ["INV000001"]
    assert got["b2b"][0]["inv"][0]["val"] == 5.0


def test_retsave_checks_payload(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    assert error_code(r.retsave(b2b_payload(TP2.gstin, P))) == "AUTH4039"  # gstin of another taxpayer
    assert error_code(r.retsave(b2b_payload(TP.gstin, "082017"))) == "AUTH4039"  # fp != ret_period
    assert error_code(r.retsave(b"[1, 2]")) == "AUTH4039"
    assert error_code(r.retsave(b"not json")) == "AUTH4039"
    assert error_code(r.retsave(b2b_payload(TP.gstin, "132017"), period="132017")) == "GEN5007"
    body = {"action": "RETSAVE", "data": "!!!", "hmac": "x"}
    assert error_code(r.call("PUT", GSTR1, action="RETSAVE", body=body, data=True, period=P)) == "TEC4002"
    data, _ = crypto.encrypt_request(r.ek, b"{}")
    nohmac = {"action": "RETSAVE", "data": data}
    assert error_code(r.call("PUT", GSTR1, action="RETSAVE", body=nohmac, data=True, period=P)) == "AUTH4040"
    assert error_code(r.call("POST", GSTR1, action="RETSAVE", body=nohmac, data=True, period=P)) == "AUTH4040"
    assert error_code(r.call("GET", GSTR1, action="B2B", params={"action": "B2B"}, data=True)) == "GEN5001"  # no ret_period


def test_hmac_over_exact_base64_text(emu: Emulator, make: Callable[..., Raw]) -> None:
    """The HMAC covers the Base64 text the client encrypted, not a re-serialisation of the JSON."""
    r = make()
    r.login(emu)
    raw = json.dumps(b2b_payload(TP.gstin, P), indent=3).encode()  # unusual whitespace is fine
    assert r.open(r.retsave(raw))["reference_id"]
    j64 = base64.b64encode(json.dumps(b2b_payload(TP.gstin, P)).encode())
    data = crypto.encrypt_field(r.ek, j64)
    mac_of_json = base64.b64encode(crypto.hmac_sha256(r.ek, json.dumps(b2b_payload(TP.gstin, P)).encode())).decode()
    body = {"action": "RETSAVE", "data": data, "hmac": mac_of_json}
    assert error_code(r.call("PUT", GSTR1, action="RETSAVE", body=body, data=True, period=P)) == "AUTH4039"


def test_retstatus(emu: Emulator, make: Callable[..., Raw]) -> None:
    emu.update_config(retstatus_delay_seconds=30)
    r = make()
    r.login(emu)
    ref = r.open(r.retsave(b2b_payload(TP.gstin, P)))["reference_id"]
    assert r.open(r.get(RETURNS, "RETSTATUS", ref_id=ref))["status_cd"] == "IP"
    emu.clock.advance(31)
    assert r.open(r.get(RETURNS, "RETSTATUS", ref_id=ref)) == {"status_cd": "P", "form_typ": "R1", "action": "SAVE"}
    bad = b2b_payload(TP.gstin, P, start=50)
    bad["b2b"][0]["inv"].append({"idt": "01-07-2017"})  # no inum: the structure is refused as a whole
    ref2 = r.open(r.retsave(bad))["reference_id"]
    emu.clock.advance(31)
    st = r.open(r.get(RETURNS, "RETSTATUS", trans_id=ref2))
    assert st["status_cd"] == "ER" and st["error_report"]["error_cd"] == "RET191106"
    assert "b2b[0].inv[2] lacks inum" in st["error_report"]["error_msg"]
    assert len(emu.saved_records(TP.gstin, P, "b2b")) == 2  # nothing of the refused payload was stored
    assert error_code(r.get(RETURNS, "RETSTATUS", ref_id="LAPN00000000000")) == "AUTH4040"
    assert error_code(r.get(RETURNS, "RETSTATUS")) == "GEN5001"
    r2 = make(taxpayer=TP2)
    r2.login(emu)
    assert error_code(r2.get(RETURNS, "RETSTATUS", ref_id=ref)) == "AUTH4040"  # not TP2's receipt


def test_get_sections(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P, 2, ctin=TP2.gstin))
    r.retsave(b2b_payload(TP.gstin, P, 1, start=5, ctin=defaults.SAMPLE_TAXPAYERS[2].gstin))
    b2cs_row = {"sply_ty": "INTRA", "pos": "27", "typ": "OE", "rt": 5, "txval": 10, "camt": 0.25, "samt": 0.25}
    r.retsave({"gstin": TP.gstin, "fp": P, "b2cs": [b2cs_row]})
    got = r.open(r.get(GSTR1, "B2B"))
    assert sorted(g["ctin"] for g in got["b2b"]) == sorted([TP2.gstin, defaults.SAMPLE_TAXPAYERS[2].gstin])
    only = r.open(r.get(GSTR1, "B2B", ctin=TP2.gstin))
    assert [g["ctin"] for g in only["b2b"]] == [TP2.gstin] and len(only["b2b"][0]["inv"]) == 2
    assert r.open(r.get(GSTR1, "B2CS")) == {"b2cs": [b2cs_row]}
    assert r.open(r.get(GSTR1, "B2B", period="082017")) == {"b2b": []}
    assert error_code(r.get(GSTR1, "NOSUCH")) == "GEN5007"


@pytest.mark.parametrize("layer", ["gstn", "vayana"])
def test_filedet_large_download(layer: str, emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    emu.update_config(large_download_threshold=5, filedet_records_per_file=4)
    r = make(layer)
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P, 10))
    token_reply = r.open(r.get(GSTR1, "B2B"))
    assert set(token_reply) == {"est", "token"}
    det = r.open(r.get(RETURNS, "FILEDET", token=token_reply["token"]))
    assert det["fc"] == 3 and [u["ic"] for u in det["urls"]] == [4, 4, 2]
    ek = base64.b64decode(det["ek"])
    invoices = []
    for u in det["urls"]:
        url = u["ul"] if layer == "gstn" else "/vayana/gus/returns" + u["ul"]
        if layer == "gstn":
            assert url.startswith("http://emulator.test/gstn/files/")
        else:
            assert url.startswith("/vayana/gus/returns/files/")
        blob = client.get(url).content
        assert hashlib.sha256(blob).hexdigest() == u["hash"]
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(".json"))
            text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
        part = json.loads(base64.b64decode(crypto.decrypt_field(ek, text)))
        invoices += [i["inum"] for g in part["b2b"] for i in g["inv"]]
    assert invoices == [f"INV{i:06d}" for i in range(1, 11)]
    assert error_code(r.get(RETURNS, "FILEDET", token="0" * 32)) == "AUTH4040"
    assert error_code(r.get(RETURNS, "FILEDET")) == "GEN5001"
    emu.clock.advance(3601)
    assert client.get(url).status_code == 404  # file URLs expire


def test_retsubmit_and_evc_retfile(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P))
    summary = json.dumps({"gstin": TP.gstin, "ret_period": P}).encode()
    data, mac = crypto.encrypt_request(r.ek, summary)
    sub = r.call("POST", GSTR1, action="RETSUBMIT", body={"action": "RETSUBMIT", "data": data, "hmac": mac}, data=True, period=P)
    assert r.open(sub)["reference_id"].startswith("LAPN")
    pan = TP.gstin[2:12]
    r.call("GET", AUTH, action="EVCOTP", data=True, params={"action": "EVCOTP", "gstin": TP.gstin, "pan": pan, "form_type": "R1"})
    sid = f"{pan}|{emu.outbox.latest_otp(TP.gstin, 'evc')}"
    data, sign = crypto.encrypt_request_evc(r.ek, sid, summary)
    body = {"action": "RETFILE", "data": data, "sign": sign, "st": "EVC", "sid": sid}
    filed = r.open(r.call("POST", GSTR1, action="RETFILE", body=body, data=True, period=P))
    assert filed["ack_num"].startswith("AA")
    resp = r.retsave(b2b_payload(TP.gstin, P, 1, start=50))
    assert error_code(resp) == "AUTH4039" and "filed" in resp.json()["error"]["message"]
    # EVC OTP is single-use
    assert error_code(r.call("POST", GSTR1, action="RETFILE", body=body, data=True, period=P)) == "RET13506"


def test_commonapi_search(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make("vayana")
    resp = r.call("GET", "/commonapi/v1.1/search", action="TP", params={"action": "TP", "gstin": TP2.gstin})
    info = json.loads(base64.b64decode(resp.json()["data"]))
    assert info["gstin"] == TP2.gstin and info["sts"] == "Active"


def test_key_rotation_overlap_then_expiry(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    old_cert = crypto.load_certificate(emu.certificate_pem)
    rotated = client.post("/_emulator/keys/rotate", json={"overlap_days": 10}).json()
    assert rotated["previous"]["accepted_until"].startswith((START + _dt.timedelta(days=10)).date().isoformat())
    certs = client.get("/_emulator/certificates").json()["certificates"]
    assert [c["accepted_now"] for c in certs] == [True, True]
    new_cert = crypto.load_certificate(client.get("/_emulator/certificate.der").content)
    assert new_cert.fingerprint_sha256 != old_cert.fingerprint_sha256
    r = make()
    r.cert = old_cert
    assert r.otprequest().json() == {"status_cd": "1"}  # overlap: the old key still works
    emu.clock.advance(11 * 86400)
    resp = r.otprequest()
    assert error_code(resp) == "TEC4002" and "no longer accepted" in resp.json()["error"]["message"]
    r.cert = new_cert
    assert r.otprequest().json() == {"status_cd": "1"}
    emu.update_config(expired_cert_code="AUTH4036")
    r.cert = old_cert
    assert error_code(r.otprequest()) == "AUTH4036"


def test_state_dir_persists_across_restart(tmp_path: object) -> None:
    state = str(tmp_path)
    emu = Emulator(seed=11, state_dir=state, clock_start=START, clock_frozen=True)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.login(emu)
    ref = r.open(r.retsave(b2b_payload(TP.gstin, P, 2), txn="T-PERSIST"))
    der = emu.certificate_der
    emu.register_taxpayer(defaults.make_gstin("24", "AAECF5555K"), "emu.gujarat")
    emu.set_api_access(TP2.gstin, True, 48)
    revoked = Raw(c, "gstn", TP2.gstin, TP2.username, crypto.load_certificate(der))
    revoked.login(emu)
    emu.revoke_session(TP2.gstin, emu.sessions_of(TP2.gstin)[0]["session_id"])
    notes = emu.outbox.notifications()
    emu.close()

    # no seed: whatever matches the first run comes from the state directory, not from the seed
    emu2 = Emulator(state_dir=state, clock_start=START, clock_frozen=True)
    c2 = httpx.Client(transport=httpx.MockTransport(emu2.handle), base_url="http://e")
    r.client = revoked.client = c2
    assert emu2.certificate_der == der
    assert any(t.username == "emu.gujarat" for t in emu2.taxpayers())
    assert emu2.taxpayer(TP2.gstin).access_duration_hours == 48
    assert r.open(r.get(GSTR1, "B2B"))["b2b"][0]["inv"][1]["inum"] == "INV000002"  # session survived
    assert r.open(r.retsave(b2b_payload(TP.gstin, P, 2), txn="T-PERSIST")) == ref  # txn index survived
    out = revoked.get(GSTR1, "B2B")
    assert error_code(out) == "AUTH4033" and "revoked by the taxpayer" in out.json()["error"]["message"]
    assert emu2.outbox.notifications() == notes and len(notes) == 4
    assert emu2.outbox.latest_otp(TP.gstin) is not None
    emu2.close()
    import os

    assert os.stat(os.path.join(state, "emulator.sqlite3")).st_mode & 0o777 == 0o600


def test_admin_endpoints(emu: Emulator, client: httpx.Client) -> None:
    index = client.get("/_emulator/").json()
    assert index["layers"]["cleartax"] == "http://emulator.test/cleartax"
    assert client.get("/_emulator/health").json()["status"] == "ok"
    pem = client.get("/_emulator/certificate.pem").content
    assert pem.startswith(b"-----BEGIN CERTIFICATE") and pem == emu.certificate_pem
    gstin = defaults.make_gstin("36", "AAFCT7777Q")
    made = client.post("/_emulator/taxpayers", json={"gstin": gstin, "username": "emu.telangana", "duration_hours": 6})
    assert made.status_code == 201 and made.json()["state_code"] == "36" and made.json()["access_duration_hours"] == 6
    assert client.post("/_emulator/taxpayers", json={"gstin": gstin[:14] + "0", "username": "x"}).status_code == 400
    assert gstin in [t["gstin"] for t in client.get("/_emulator/taxpayers").json()["taxpayers"]]
    assert client.post("/_emulator/faults", json={"rate_429": 2}).status_code == 400
    assert client.post("/_emulator/faults", json={"latency_ms": 1}).json()["latency_ms"] == 1
    assert client.post("/_emulator/config", json={"token_life_minutes": 120}).json()["token_life_minutes"] == 120
    assert client.post("/_emulator/config", json={"seed": 1}).status_code == 400
    assert client.post("/_emulator/config", json={"require_hmac": "yes"}).status_code == 400
    codes = client.get("/_emulator/codes").json()
    assert "VAY-4030" in codes["vayana"] and "CT401" in codes["cleartax"]
    assert client.post("/_emulator/stats/reset").json()["requests"] == {}
    assert client.get("/_emulator/nope").status_code == 404
    assert client.get("/elsewhere").status_code == 404
    assert "client_secret" not in json.dumps(client.get("/_emulator/vayana/asps").json())


def test_vayana_asp_registration_and_sha1(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(65537, 2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    resp = client.post("/_emulator/vayana/asps", json={"public_key_pem": pem, "client_id": "CLIENT-X", "cust_id": None,
                                                       "clientid": "asp-x", "client_secret": "s" * 32, "name": "ASP X"})
    assert resp.status_code == 201 and resp.json()["client_id"] == "CLIENT-X"
    from tests.emulator.rawclient import vayana_sign, vayana_token

    for algo in ("sha256", "sha1"):
        txn = new_txn()
        tok = vayana_token(TP.gstin, "OTPREQUEST", txn, emu.clock.now(), cust_id=None, client_id="CLIENT-X")
        r = make("vayana")
        out = r.otprequest(txn=txn, headers={"clientid": "asp-x", "client-secret": "s" * 32, "x-asp-auth-token": tok,
                                             "x-asp-auth-signature": vayana_sign(key, tok, algo)})
        assert out.json() == {"status_cd": "1"}, out.text
    emu.update_config(vayana_skew_seconds=60)
    emu.config.vayana_signature_hashes = ("sha256",)
    txn = new_txn()
    tok = vayana_token(TP.gstin, "OTPREQUEST", txn, emu.clock.now(), cust_id=None, client_id="CLIENT-X")
    out = make("vayana").otprequest(txn=txn, headers={"clientid": "asp-x", "client-secret": "s" * 32,
                                                      "x-asp-auth-token": tok,
                                                      "x-asp-auth-signature": vayana_sign(key, tok, "sha1")})
    assert error_code(out) == "VAY-4030"
    assert emu.outbox.notifications() == []  # OTP requests alone send no consent notification


def test_cleartax_appkey_header(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make("cleartax")
    r.ak = crypto.generate_app_key()
    app_key = r.rsa_app_key()
    body = {"action": "OTPREQUEST", "username": TP.username, "app_key": app_key}
    assert r.call("POST", AUTH, action="OTPREQUEST", body=body, headers={"appkey": app_key}).json() == {"status_cd": "1"}
    emu.update_config(cleartax_require_appkey_header=True)
    assert error_code(r.call("POST", AUTH, action="OTPREQUEST", body=body)) == "CT400"
    # ClearTax adds its own GSTN credentials: whatever the client sends is replaced
    out = r.call("POST", AUTH, action="OTPREQUEST", body=body, headers={"appkey": app_key, "clientid": "junk"})
    assert out.json() == {"status_cd": "1"}


def test_evc_otp_is_burnt_by_a_wrong_guess(emu: Emulator, make: Callable[..., Raw]) -> None:
    # The EVC OTP carries an attempt limit of 1: a wrong OTP must not leave it open to
    # guessing (10**6 candidates), so even the right OTP afterwards is refused.
    r = make()
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P))
    summary = json.dumps({"gstin": TP.gstin, "ret_period": P}).encode()
    pan = TP.gstin[2:12]
    r.call("GET", AUTH, action="EVCOTP", data=True, params={"action": "EVCOTP", "gstin": TP.gstin, "pan": pan, "form_type": "R1"})
    otp = emu.outbox.latest_otp(TP.gstin, "evc")
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    for code in (wrong, otp):
        sid = f"{pan}|{code}"
        data, sign = crypto.encrypt_request_evc(r.ek, sid, summary)
        body = {"action": "RETFILE", "data": data, "sign": sign, "st": "EVC", "sid": sid}
        assert error_code(r.call("POST", GSTR1, action="RETFILE", body=body, data=True, period=P)) == "RET13506"


def test_module_docstring_documents_every_admin_route() -> None:
    import gspauth.emulator as package
    from gspauth.emulator.admin import _ROUTES as ROUTES

    doc = package.__doc__ or ""
    for _method, path, _about in ROUTES:
        tail = path.rsplit("/", 1)[-1].replace("{session_id}", "").replace("{gstin}", "") or path
        assert tail.split(".")[0] in doc, path
    for field in ("max_request_body_bytes", "drop_after_rate", "gstr2b_generation", "check_counterparty_gstins",
                  "unique_document_numbers", "reject_dates_after_period", "check_tax_rates", "gstr2_empty_is_error",
                  "retstatus_delay_seconds", "cancelled_gstins"):
        assert field in doc, field
