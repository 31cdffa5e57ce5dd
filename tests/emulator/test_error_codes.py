"""Every error code the emulator can emit, each provoked over raw HTTP and checked.

``test_scenarios_cover_every_emitted_code`` ties the scenario table to the codes the
emulator's source can produce, so a new code without a test fails here.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gspauth import codes, crypto
from gspauth.emulator import (
    CLEARTAX_ERRORS,
    EMITTED_GSTN_CODES,
    FAULT_CODES,
    REPORT_CODES,
    VAYANA_ERRORS,
    Emulator,
    defaults,
)
from tests.emulator.conftest import TP, TP2
from tests.emulator.rawclient import (
    AUTH,
    GSTR1,
    PREFIX,
    Raw,
    b2b_payload,
    error_code,
    new_txn,
    rsa_encrypt_raw,
    vayana_sign,
    vayana_token,
)

Scenario = Callable[[Emulator, Callable[..., Raw], httpx.Client], httpx.Response]


def _otp(r: Raw, **kw: object) -> httpx.Response:
    return r.otprequest(**kw)


def _logged_in(emu: Emulator, make: Callable[..., Raw], layer: str = "gstn") -> Raw:
    r = make(layer)
    r.login(emu)
    return r


def _raw_post(client: httpx.Client, r: Raw, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    h = r.headers("OTPREQUEST", new_txn()) | (headers or {})
    return client.post(PREFIX[r.layer] + AUTH, content=content, headers=h)


def _vay(emu: Emulator, make: Callable[..., Raw], **headers: str) -> httpx.Response:
    return make("vayana").otprequest(headers=headers)


def _vay_token(emu: Emulator, make: Callable[..., Raw], token: str, **extra: str) -> httpx.Response:
    sig = vayana_sign(defaults.vayana_demo_private_key(), token)
    return _vay(emu, make, **{"x-asp-auth-token": token, "x-asp-auth-signature": sig, **extra})


def _tok(emu: Emulator, **kw: object) -> str:
    return vayana_token(TP.gstin, kw.pop("action", "OTPREQUEST"), kw.pop("txn", "T1"), kw.pop("now", emu.clock.now()), **kw)  # type: ignore[arg-type]


def _expired_token(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    r = _logged_in(emu, make)
    emu.clock.advance(361 * 60)
    return r.get(GSTR1, "B2B")


def _session_cap(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    emu.update_config(max_sessions_per_user=1)
    _logged_in(emu, make)
    r = make()
    r.otprequest()
    return r.authtoken(emu.outbox.latest_otp(TP.gstin))


def _wrong_gstin(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    r = _logged_in(emu, make)
    r.gstin = TP2.gstin  # session is for TP; state-cd follows the gstin header
    return r.get(GSTR1, "B2B")


def _retfile_bad_otp(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    r = _logged_in(emu, make)
    pan = TP.gstin[2:12]
    r.call("GET", AUTH, action="EVCOTP", params={"action": "EVCOTP", "gstin": TP.gstin, "pan": pan, "form_type": "R1"},
           data=True)
    raw = json.dumps({"gstin": TP.gstin, "ret_period": "072017"}).encode()
    sid = f"{pan}|000000" if emu.outbox.latest_otp(TP.gstin, "evc") != "000000" else f"{pan}|111111"
    data, sign = crypto.encrypt_request_evc(r.ek, sid, raw)
    return r.call("POST", GSTR1, action="RETFILE", data=True, period="072017",
                  body={"action": "RETFILE", "data": data, "sign": sign, "st": "EVC", "sid": sid})


def _foreign_app_key(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    other = rsa.generate_private_key(65537, 2048).public_key()
    r = make()
    r.cert = crypto.load_certificate(other.public_bytes(  # a bare key is accepted by load_certificate
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo))
    return r.otprequest()


def _short_app_key(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    r = make()
    body = {"action": "OTPREQUEST", "username": TP.username,
            "app_key": rsa_encrypt_raw(r.cert, b"0123456789abcdef")}
    return r.call("POST", AUTH, action="OTPREQUEST", body=body)


def _logout_other_key(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
    r = _logged_in(emu, make)
    return r.logout(crypto.generate_app_key())


def _faulty(kind: str) -> Scenario:
    def run(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
        emu.set_faults(**{kind: 1.0})
        return make().otprequest()
    return run


GSTN_SCENARIOS: dict[str, Scenario] = {
    "AUT4031": lambda e, m, c: _otp(m(), headers={"clientid": ""}),
    "AUT4032": lambda e, m, c: _otp(m(), headers={"client-secret": ""}),
    "AUT4033": lambda e, m, c: _otp(m(), headers={"clientid": "not-a-client"}),
    "AUT4034": lambda e, m, c: _otp(m(), headers={"client-secret": "0" * 32}),
    "GEN5001": lambda e, m, c: _otp(m(), headers={"ip-usr": ""}),
    "AUTH4041": lambda e, m, c: _otp(m(), headers={"state-cd": "29"}),
    "GEN5007": lambda e, m, c: _raw_post(c, m(), b"{not json"),
    "AUTH4040": lambda e, m, c: m().call("POST", AUTH, action="NOPE", body={"action": "NOPE", "username": TP.username}),
    "AUTH4032": lambda e, m, c: m(taxpayer=defaults.SampleTaxpayer(TP.gstin, "no.such.user", "", "")).otprequest(),
    "AUTH4037": lambda e, m, c: (e.set_api_access(TP.gstin, False), m().otprequest())[1],
    "TEC4002": _foreign_app_key,
    "TEC4003": _short_app_key,
    "AUTH4036": _logout_other_key,
    "AUTH4034": lambda e, m, c: (lambda r: (r.otprequest(), r.authtoken("999999" if e.outbox.latest_otp(TP.gstin) != "999999" else "888888"))[1])(m()),
    "AUTH4033": lambda e, m, c: m(ak=crypto.generate_app_key()).authtoken("123456"),  # no OTPREQUEST before
    "AUTH403": _session_cap,
    "AUTH4038": _expired_token,
    "AUTH4039": lambda e, m, c: _logged_in(e, m).retsave(b2b_payload(TP.gstin, "072017"), tamper_hmac=True),
    "AUTH158": _wrong_gstin,
    "RET13506": _retfile_bad_otp,
    "TEC4001": _faulty("error_5xx_rate"),
    "RET11416": lambda e, m, c: _logged_in(e, m).get("/taxpayerapi/v2.0/returns/gstr2a", "B2B"),
    "RET2B1016": lambda e, m, c: (e.update_config(gstr2b_generation="live"),
                                  _logged_in(e, m).get("/taxpayerapi/v1.0/returns/gstr2b", "GET2B", rtnprd="072017"))[1],
    "RET2B1023": lambda e, m, c: _logged_in(e, m).get("/taxpayerapi/v1.0/returns/gstr2b", "GET2B", rtnprd="072017"),
    "GEN5413": lambda e, m, c: (e.update_config(max_request_body_bytes=1024), _raw_post(c, m(), b"{" + b" " * 2048 + b"}"))[1],
}

FAULT_SCENARIOS: dict[str, Scenario] = {"EMU429": _faulty("rate_429")}


def _ct(headers: dict[str, str], path: str = AUTH) -> Scenario:
    def run(emu: Emulator, make: Callable[..., Raw], c: httpx.Client) -> httpx.Response:
        r = make("cleartax")
        if path != AUTH:
            return c.get("/cleartax/gsp/api" + path, headers=r.headers("X", "T1") | headers)
        return r.otprequest(headers=headers)
    return run


CLEARTAX_SCENARIOS: dict[str, Scenario] = {
    "CT401": _ct({"x-ct-auth-token": ""}),
    "CT403": _ct({"x-ct-auth-token": "not-a-token"}),
    "CT400": _ct({"appkey": "bm90IHRoZSBhcHAga2V5"}),
    "CT404": lambda e, m, c: c.get("/cleartax/api/taxpayerapi/v1.0/authenticate"),
}

VAYANA_SCENARIOS: dict[str, Scenario] = {
    "VAY-4010": lambda e, m, c: _vay(e, m, clientid=""),
    "VAY-4011": lambda e, m, c: _vay(e, m, **{"client-secret": ""}),
    "VAY-4012": lambda e, m, c: _vay(e, m, **{"client-secret": "x" * 32}),
    "VAY-4013": lambda e, m, c: _vay(e, m, **{"x-asp-auth-token": ""}),
    "VAY-4014": lambda e, m, c: _vay(e, m, **{"x-asp-auth-signature": ""}),
    "VAY-4015": lambda e, m, c: _vay_token(e, m, "v1.0:" + _tok(e, txn="T1")[5:], txn="T1"),
    "VAY-4016": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1").replace(f"{defaults.VAYANA_ASP_CUST_ID}::", f"{defaults.VAYANA_ASP_CUST_ID}:{defaults.VAYANA_ASP_CLIENT_ID}:"), txn="T1"),
    "VAY-4017": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1", cust_id="SOMEONEELSE"), txn="T1"),
    "VAY-4018": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1"), txn="T2"),
    "VAY-4019": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1", now=e.clock.now() - __import__("datetime").timedelta(minutes=16)), txn="T1"),
    "VAY-4020": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1").replace(TP.gstin, TP.gstin[:14] + "X"), txn="T1"),
    "VAY-4021": lambda e, m, c: _vay_token(e, m, _tok(e, txn="T1", action="AUTHTOKEN"), txn="T1"),
    "VAY-4022": lambda e, m, c: (e.update_config(vayana_txn_replay_check=True),
                                 _vay_token(e, m, _tok(e, txn="T9"), txn="T9"),
                                 _vay_token(e, m, _tok(e, txn="T9"), txn="T9"))[2],
    "VAY-4030": lambda e, m, c: _vay(e, m, **{"x-asp-auth-signature": vayana_sign(rsa.generate_private_key(65537, 2048), "x")}),
    "VAY-4031": lambda e, m, c: (e.register_vayana_asp(None, clientid=defaults.VAYANA_ASP_CLIENTID,
                                                       client_secret=defaults.VAYANA_ASP_CLIENT_SECRET,
                                                       cust_id=defaults.VAYANA_ASP_CUST_ID), _vay(e, m))[1],
    "VAY-4040": lambda e, m, c: c.get("/vayana/gus/nowhere"),
}


def test_scenarios_cover_every_emitted_code() -> None:
    src = "\n".join(p.read_text() for p in pathlib.Path("gspauth/emulator").glob("*.py"))
    literal = set(re.findall(r'gstn_error\(\s*"([A-Z0-9-]+)"', src))
    literal |= set(re.findall(r'"error_cd": "([A-Z0-9-]+)"', src))
    literal |= {"TEC4002", "AUTH4036"}  # via config.bad_app_key_code / expired_cert_code
    assert literal - set(FAULT_CODES) <= EMITTED_GSTN_CODES | {"TEC4001"} | set(REPORT_CODES)
    assert set(REPORT_CODES) <= set(codes.CODES), "every RETSTATUS report code is in gspauth.codes"
    assert EMITTED_GSTN_CODES == set(GSTN_SCENARIOS)
    assert set(FAULT_CODES) - EMITTED_GSTN_CODES == set(FAULT_SCENARIOS)
    assert set(CLEARTAX_ERRORS) == set(CLEARTAX_SCENARIOS)
    assert set(VAYANA_ERRORS) == set(VAYANA_SCENARIOS)
    assert set(re.findall(r'cleartax_error\(\s*"([A-Z0-9-]+)"', src)) == set(CLEARTAX_ERRORS)
    assert set(re.findall(r'vayana_error\(\s*"([A-Z0-9-]+)"', src)) == set(VAYANA_ERRORS)
    assert EMITTED_GSTN_CODES <= set(codes.CODES), "every GSTN code the emulator emits is in gspauth.codes"


@pytest.mark.parametrize("code", sorted(GSTN_SCENARIOS))
def test_gstn_code(code: str, emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = GSTN_SCENARIOS[code](emu, make, client)
    body = r.json()
    assert body["status_cd"] == "0"
    assert body["error"]["error_cd"] == code, r.text
    assert body["error"]["message"].startswith(codes.CODES[code].message)
    if code in FAULT_CODES:  # TEC4001 comes only from an injected 5xx fault
        assert r.status_code == FAULT_CODES[code] and emu.stats["faults"] == {"503": 1}
    else:
        assert r.status_code == codes.CODES[code].http_status
        assert emu.stats["error_codes"][code] >= 1


@pytest.mark.parametrize("code", sorted(FAULT_SCENARIOS))
def test_fault_code(code: str, emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = FAULT_SCENARIOS[code](emu, make, client)
    assert r.status_code == FAULT_CODES[code]
    assert error_code(r) == code
    assert r.headers["retry-after"] == "1"


@pytest.mark.parametrize("code", sorted(CLEARTAX_SCENARIOS))
def test_cleartax_code(code: str, emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = CLEARTAX_SCENARIOS[code](emu, make, client)
    assert r.json() == {"error_code": code, "error_message": r.json()["error_message"]}
    assert r.status_code == CLEARTAX_ERRORS[code][0]


@pytest.mark.parametrize("code", sorted(VAYANA_SCENARIOS))
def test_vayana_code(code: str, emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = VAYANA_SCENARIOS[code](emu, make, client)
    body = r.json()
    assert body["status"] == "0" and body["error"]["code"] == code, r.text
    assert r.status_code == VAYANA_ERRORS[code][0]
    assert "status_cd" not in body  # distinct from GSTN's shape


def test_gstn_error_shape_is_exact(make: Callable[..., Raw]) -> None:
    r = make().otprequest(headers={"clientid": "not-a-client"})
    assert r.json() == {"status_cd": "0", "error": {"error_cd": "AUT4033", "message": "Invalid Client ID"}}
    assert r.status_code == 403
