"""Strictness like the real servers (spec §2.3, §4, §12): headers, state-cd, ret_period, JSON, keys, paths."""

from __future__ import annotations

import base64
import datetime as _dt
import json
from collections.abc import Callable

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, defaults
from tests.emulator.conftest import START, TP, TP2
from tests.emulator.rawclient import (
    AUTH,
    GSTR1,
    PREFIX,
    Raw,
    b2b_payload,
    error_code,
    new_txn,
    vayana_sign,
    vayana_token,
)

P = "072017"


def _message(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


def test_header_names_are_case_insensitive_and_unknown_headers_ignored(emu: Emulator, client: httpx.Client) -> None:
    cert = crypto.load_certificate(emu.certificate_pem)
    ak = crypto.generate_app_key()

    def headers(**extra: str) -> dict[str, str]:
        return {"ClientId": defaults.GSTN_CLIENT_ID, "CLIENT-SECRET": defaults.GSTN_CLIENT_SECRET,
                "State-Cd": TP.gstin[:2], "IP-Usr": "10.1.2.3", "TXN": new_txn(), "Content-TYPE": "application/json",
                "X-Unknown-Header": "whatever", "sek": "ignored", **extra}  # fmt: skip

    app_key = crypto.encrypt_app_key(cert, ak)
    r = client.post(PREFIX["gstn"] + AUTH, headers=headers(),
                    json={"action": "OTPREQUEST", "username": TP.username, "app_key": app_key})
    assert r.json() == {"status_cd": "1"}
    body = {"action": "AUTHTOKEN", "username": TP.username, "app_key": app_key,
            "otp": crypto.encrypt_otp(ak, emu.outbox.latest_otp(TP.gstin) or "")}
    reply = client.post(PREFIX["gstn"] + AUTH, headers=headers(), json=body).json()
    ek = crypto.decrypt_sek(ak, reply["sek"])
    data, mac = crypto.encrypt_request(ek, json.dumps(b2b_payload(TP.gstin, P)).encode())
    saved = client.put(PREFIX["gstn"] + GSTR1, json={"action": "RETSAVE", "data": data, "hmac": mac},
                       headers=headers(GSTIN=TP.gstin, UserName=TP.username, **{"Auth-Token": reply["auth_token"]},
                                       RET_PERIOD=P))
    assert saved.json()["status_cd"] == "1", saved.text


@pytest.mark.parametrize(("header", "code"), [
    ("clientid", "AUT4031"), ("client-secret", "AUT4032"), ("state-cd", "GEN5001"), ("ip-usr", "GEN5001"),
    ("txn", "GEN5001"), ("content-type", "GEN5001"),
])  # fmt: skip
def test_mandatory_auth_headers(header: str, code: str, make: Callable[..., Raw]) -> None:
    r = make()
    r.ak = crypto.generate_app_key()
    h = r.headers("OTPREQUEST", new_txn())
    del h[header]
    body = {"action": "OTPREQUEST", "username": TP.username, "app_key": r.rsa_app_key()}
    resp = r.client.post(PREFIX["gstn"] + AUTH, content=json.dumps(body).encode(), headers=h)
    assert error_code(resp) == code
    if code == "GEN5001":
        assert header in _message(resp)


@pytest.mark.parametrize("header", ["gstin", "username", "auth-token", "ret_period", "state-cd", "ip-usr", "txn"])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_mandatory_data_headers(header: str, method: str, emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    h = r.headers("B2B", new_txn(), data=True, period=P)
    del h[header]
    if method == "GET":
        resp = r.client.get(PREFIX["gstn"] + GSTR1, params={"action": "B2B", "gstin": TP.gstin, "ret_period": P},
                            headers=h)
    else:
        data, mac = crypto.encrypt_request(r.ek, json.dumps(b2b_payload(TP.gstin, P)).encode())
        resp = r.client.put(PREFIX["gstn"] + GSTR1, headers=h,
                            content=json.dumps({"action": "RETSAVE", "data": data, "hmac": mac}).encode())
    assert error_code(resp) == "GEN5001" and header in _message(resp)
    assert emu.saves_count() == 0


@pytest.mark.parametrize("value", ["", "10.0.0", "256.1.1.1", "::1", "localhost", "10.0.0.1, 10.0.0.2"])
def test_ip_usr_must_be_ipv4(value: str, make: Callable[..., Raw]) -> None:
    resp = make().otprequest(headers={"ip-usr": value})
    assert error_code(resp) == ("GEN5001" if value == "" else "GEN5007")


def test_content_type_must_be_json(make: Callable[..., Raw]) -> None:
    resp = make().otprequest(headers={"content-type": "text/plain"})
    assert error_code(resp) == "GEN5007" and "Content-Type" in _message(resp)
    assert make().otprequest(headers={"content-type": "application/json; charset=utf-8"}).json()["status_cd"] == "1"


def test_state_cd_on_data_calls(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    for bad in ("29", "99", "2A", "7", "027"):
        resp = r.call("GET", GSTR1, action="B2B", params={"action": "B2B", "gstin": TP.gstin, "ret_period": P},
                      data=True, period=P, headers={"state-cd": bad})
        assert error_code(resp) == "AUTH4041", bad
    assert error_code(r.otprequest(headers={"state-cd": "99"})) == "AUTH4041"
    assert error_code(r.otprequest(headers={"state-cd": TP2.gstin[:2], "gstin": TP.gstin})) == "AUTH4041"


@pytest.mark.parametrize("period", ["72017", "0720170", "002017", "131999", "07-2017", "071999", "abcdef"])
def test_ret_period_format(period: str, emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    assert error_code(r.get(GSTR1, "B2B", period=period)) == "GEN5007"


def test_ret_period_query_must_match_header(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    resp = r.call("GET", GSTR1, action="B2B", params={"action": "B2B", "gstin": TP.gstin, "ret_period": "082017"},
                  data=True, period=P)
    assert error_code(resp) == "GEN5007" and "differs" in _message(resp)


@pytest.mark.parametrize(("content", "code"), [
    (b"[]", "GEN5007"), (b"", "GEN5007"), (b'"OTPREQUEST"', "GEN5007"), (b"\xff\xfe", "GEN5007"),
    (b'{"action": "OTPREQUEST", "username": 7, "app_key": "x"}', "AUTH4040"),
    (b'{"action": "OTPREQUEST", "username": "emu.maharashtra"}', "AUTH4040"),
    (b'{"action": "otprequest", "username": "emu.maharashtra", "app_key": "x"}', "AUTH4040"),
])  # fmt: skip
def test_json_shape(content: bytes, code: str, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = make()
    resp = client.post(PREFIX["gstn"] + AUTH, content=content, headers=r.headers("OTPREQUEST", new_txn()))
    assert error_code(resp) == code


def test_username_header_must_match_body(make: Callable[..., Raw]) -> None:
    assert error_code(make().otprequest(headers={"username": TP2.username})) == "AUTH4032"
    assert make().otprequest(headers={"username": TP.username.upper()}).json() == {"status_cd": "1"}


@pytest.mark.parametrize("ver", ["v1", "1.0", "v1.0.1", "vX.Y", "V1.0", "v1.0/"])
def test_version_path_shape(ver: str, make: Callable[..., Raw]) -> None:
    r = make()
    r.ak = crypto.generate_app_key()
    body = {"action": "OTPREQUEST", "username": TP.username, "app_key": r.rsa_app_key()}
    resp = r.call("POST", f"/taxpayerapi/{ver}/authenticate", action="OTPREQUEST", body=body)
    assert resp.status_code == 404 and error_code(resp) == "GEN5007"


def test_any_dotted_version_is_accepted(make: Callable[..., Raw]) -> None:
    r = make()
    r.ak = crypto.generate_app_key()
    body = {"action": "OTPREQUEST", "username": TP.username, "app_key": r.rsa_app_key()}
    assert r.call("POST", "/taxpayerapi/v12.34/authenticate", action="OTPREQUEST", body=body).json() == {"status_cd": "1"}


def test_wrong_session_key_is_always_tec4002(emu: Emulator, make: Callable[..., Raw]) -> None:
    """Data under a wrong key: TEC4002 every time, even when the padding happens to look valid."""
    r = make()
    r.login(emu)
    right = r.ek
    codes = set()
    for _ in range(300):
        r.ek = crypto.generate_app_key()
        codes.add(error_code(r.retsave(b2b_payload(TP.gstin, P))))
    r.ek = right
    assert codes == {"TEC4002"}
    assert error_code(r.retsave(b2b_payload(TP.gstin, P), tamper_hmac=True)) == "AUTH4039"


def test_hmac_covers_the_exact_decrypted_text_including_line_breaks(emu: Emulator, make: Callable[..., Raw]) -> None:
    """With ``tolerant_base64`` a Java-style chunked Base64 text (CRLF every 76 chars) is accepted and its
    HMAC is over those exact bytes; by default (strict) it is refused."""
    emu.update_config(tolerant_base64=True)
    r = make()
    r.login(emu)
    j64 = base64.encodebytes(json.dumps(b2b_payload(TP.gstin, P, 3)).encode()).replace(b"\n", b"\r\n")
    assert b"\r\n" in j64[:-2]
    data = crypto.encrypt_field(r.ek, j64)
    exact = base64.b64encode(crypto.hmac_sha256(r.ek, j64)).decode()
    stripped = base64.b64encode(crypto.hmac_sha256(r.ek, j64.replace(b"\r\n", b""))).decode()
    send = lambda mac: r.call("PUT", GSTR1, action="RETSAVE", body={"action": "RETSAVE", "data": data, "hmac": mac},
                              data=True, period=P)
    assert error_code(send(stripped)) == "AUTH4039"
    assert r.open(send(exact))["reference_id"].startswith("LAPN")
    emu.update_config(tolerant_base64=False)
    assert error_code(send(exact)) == "TEC4002"


def test_data_must_decrypt_to_base64_text(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    raw_json = json.dumps(b2b_payload(TP.gstin, P)).encode()  # encrypted without the inner Base64 step
    data = crypto.encrypt_field(r.ek, raw_json)
    mac = base64.b64encode(crypto.hmac_sha256(r.ek, raw_json)).decode()
    resp = r.call("PUT", GSTR1, action="RETSAVE", body={"action": "RETSAVE", "data": data, "hmac": mac}, data=True, period=P)
    assert error_code(resp) == "TEC4002" and "Base64 text" in _message(resp)


def test_otp_valid_until_the_end_of_its_window(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.otprequest()
    emu.clock.advance(600)
    assert r.authtoken(emu.outbox.latest_otp(TP.gstin) or "").json()["status_cd"] == "1"


def _vayana_call(emu: Emulator, make: Callable[..., Raw], token: str, txn: str) -> httpx.Response:
    sig = vayana_sign(defaults.vayana_demo_private_key(), token)
    return make("vayana").otprequest(txn=txn, headers={"x-asp-auth-token": token, "x-asp-auth-signature": sig})


@pytest.mark.parametrize("mutate", [
    lambda t: t + ":extra", lambda t: t.rsplit(":", 1)[0], lambda t: "v2.1" + t[4:], lambda t: " " + t,
])  # fmt: skip
def test_vayana_token_needs_seven_fields_and_v2(mutate: Callable[[str], str], emu: Emulator, make: Callable[..., Raw]) -> None:
    txn = new_txn()
    tok = mutate(vayana_token(TP.gstin, "OTPREQUEST", txn, emu.clock.now()))
    assert error_code(_vayana_call(emu, make, tok, txn)) == "VAY-4015"


@pytest.mark.parametrize("stamp", ["20260115153000", "20260115153000+05.30", "2026011515300+0530", "20261315153000+0530",
                                   "20260115153000+1500", "20260115153000 0530"])
def test_vayana_malformed_timestamp(stamp: str, emu: Emulator, make: Callable[..., Raw]) -> None:
    txn = new_txn()
    tok = ":".join(["v2.0", defaults.VAYANA_ASP_CUST_ID, "", txn, stamp, TP.gstin, "OTPREQUEST"])
    resp = _vayana_call(emu, make, tok, txn)
    assert error_code(resp) == "VAY-4019" and "YYYYMMDDHHMMSS" in resp.json()["error"]["message"]


@pytest.mark.parametrize(("minutes", "ok"), [(-16, False), (-14, True), (14, True), (16, False)])
def test_vayana_skew_window_both_ways(minutes: int, ok: bool, emu: Emulator, make: Callable[..., Raw]) -> None:
    txn = new_txn()
    tok = vayana_token(TP.gstin, "OTPREQUEST", txn, emu.clock.now() + _dt.timedelta(minutes=minutes))
    resp = _vayana_call(emu, make, tok, txn)
    assert (resp.json().get("status_cd") == "1") if ok else (error_code(resp) == "VAY-4019")


def test_vayana_api_action_checked_against_query_action(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make("vayana")
    r.login(emu)
    txn = new_txn()
    tok = vayana_token(TP.gstin, "RETSAVE", txn, emu.clock.now())
    h = {"x-asp-auth-token": tok, "x-asp-auth-signature": vayana_sign(defaults.vayana_demo_private_key(), tok)}
    resp = r.call("GET", GSTR1, action="B2B", params={"action": "B2B", "gstin": TP.gstin, "ret_period": P},
                  data=True, period=P, txn=txn, headers=h)
    assert error_code(resp) == "VAY-4021"
    assert r.open(r.get(GSTR1, "B2B")) == {"b2b": []}


def test_retired_certificate_accepted_only_when_configured(emu: Emulator, make: Callable[..., Raw]) -> None:
    old = crypto.load_certificate(emu.certificate_pem)
    emu.rotate_keys(0)
    emu.clock.advance(1)
    r = make()
    r.cert = old
    assert error_code(r.otprequest()) == "TEC4002"
    emu.update_config(accept_retired_certs=True)
    assert r.otprequest().json() == {"status_cd": "1"}


def test_certificates_rotate_yearly_with_an_overlap() -> None:
    emu = Emulator(seed=31, clock_start=START, clock_frozen=True)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    first = crypto.load_certificate(emu.certificate_pem)
    r = Raw(c, "gstn", TP.gstin, TP.username, first)
    emu.clock.advance(330 * 86400)  # 34 days left: no rotation yet
    assert r.otprequest().json() == {"status_cd": "1"} and len(emu.certificates()) == 1
    emu.clock.advance(10 * 86400)  # 24 days left (< 30-day overlap): GSTN rotates
    assert r.otprequest().json() == {"status_cd": "1"}  # old certificate still accepted until it expires
    certs = emu.certificates()
    assert len(certs) == 2 and [c["accepted_now"] for c in certs] == [True, True]
    assert certs[0]["accepted_until"] == certs[0]["not_valid_after"]
    emu.clock.advance(25 * 86400)
    assert error_code(r.otprequest()) == "TEC4002"
    r.cert = crypto.load_certificate(emu.certificate_pem)
    assert r.otprequest().json() == {"status_cd": "1"}
    assert emu.stats["events"]["certificate_auto_rotated"] == 1
    emu.close()
