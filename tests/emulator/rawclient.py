"""A deliberately small raw-HTTP client for the emulator tests: httpx + gspauth.crypto only.

It builds the wire bodies of spec §3-§5 by hand (no gspauth client library), so the tests
check the emulator against the spec, not against our own client.
"""

from __future__ import annotations

import base64
import datetime as _dt
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gspauth import crypto
from gspauth.emulator import defaults

PREFIX = {
    "gstn": "/gstn",
    "cleartax": "/cleartax/gsp/api",
    "cleartax-legacy": "/cleartax-legacy/api",
    "vayana": "/vayana/gus",
}
AUTH = "/taxpayerapi/v1.0/authenticate"
GSTR1 = "/taxpayerapi/v4.1/returns/gstr1"
RETURNS = "/taxpayerapi/v1.0/returns"
_txn = itertools.count(1)


def new_txn() -> str:
    return f"TXN{next(_txn):012d}"


def rsa_encrypt_raw(cert: Any, data: bytes) -> str:
    """RSA PKCS#1 v1.5 of arbitrary bytes (to send malformed app keys the library refuses to build)."""
    return base64.b64encode(cert.public_key.encrypt(data, padding.PKCS1v15())).decode()


def vayana_token(gstin: str, action: str, txn: str, now: _dt.datetime, *, cust_id: str | None = defaults.VAYANA_ASP_CUST_ID,
                 client_id: str | None = None) -> str:
    ist = now.astimezone(_dt.timezone(_dt.timedelta(hours=5, minutes=30)))
    ts = ist.strftime("%Y%m%d%H%M%S") + "+0530"
    return ":".join(["v2.0", cust_id or "", "" if cust_id else (client_id or ""), txn, ts, gstin, action])


def vayana_sign(key: rsa.RSAPrivateKey, token: str, algo: str = "sha256") -> str:
    h = hashes.SHA256() if algo == "sha256" else hashes.SHA1()
    return base64.b64encode(key.sign(token.encode(), padding.PKCS1v15(), h)).decode()


@dataclass
class Raw:
    """One caller of one layer, for one taxpayer."""

    client: httpx.Client
    layer: str
    gstin: str
    username: str
    cert: Any = None  # GSTNCertificate
    vayana_key: rsa.RSAPrivateKey | None = None
    now: Any = None  # callable -> datetime (the emulator clock), for Vayana timestamps
    ak: bytes = field(default=b"", repr=False)
    ek: bytes = field(default=b"", repr=False)
    token: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    # --- plumbing ---------------------------------------------------------------
    def headers(self, action: str, txn: str, *, data: bool = False, period: str | None = None) -> dict[str, str]:
        h = {"state-cd": self.gstin[:2], "ip-usr": "10.0.0.1", "txn": txn, "content-type": "application/json"}
        if self.layer == "gstn":
            h |= {"clientid": defaults.GSTN_CLIENT_ID, "client-secret": defaults.GSTN_CLIENT_SECRET}
        elif self.layer.startswith("cleartax"):
            h["x-ct-auth-token"] = defaults.CLEARTAX_AUTH_TOKEN
        elif self.layer == "vayana":
            key = self.vayana_key or defaults.vayana_demo_private_key()
            now = self.now() if self.now else _dt.datetime.now(_dt.timezone.utc)
            tok = vayana_token(self.gstin, action, txn, now)
            h |= {"clientid": defaults.VAYANA_ASP_CLIENTID, "client-secret": defaults.VAYANA_ASP_CLIENT_SECRET,
                  "x-asp-auth-token": tok, "x-asp-auth-signature": vayana_sign(key, tok)}
        if data:
            h |= {"gstin": self.gstin, "username": self.username, "auth-token": self.token}
        if period:
            h["ret_period"] = period
        return h | self.extra_headers

    def call(self, method: str, path: str, *, action: str, body: dict[str, Any] | None = None,
             params: dict[str, str] | None = None, data: bool = False, period: str | None = None,
             txn: str | None = None, headers: dict[str, str] | None = None,
             timeout: float | None = None) -> httpx.Response:
        h = self.headers(action, txn or new_txn(), data=data, period=period) | (headers or {})
        content = json.dumps(body).encode() if body is not None else None
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return self.client.request(method, PREFIX[self.layer] + path, content=content, params=params, headers=h,
                                   **extra)

    # --- auth ---------------------------------------------------------------------
    def rsa_app_key(self, ak: bytes | None = None) -> str:
        return crypto.encrypt_app_key(self.cert, ak if ak is not None else self.ak, allow_expired=True)

    def otprequest(self, **kw: Any) -> httpx.Response:
        if not self.ak:
            self.ak = crypto.generate_app_key()
        body = {"action": "OTPREQUEST", "username": self.username, "app_key": self.rsa_app_key()}
        return self.call("POST", AUTH, action="OTPREQUEST", body=body, **kw)

    def authtoken(self, otp: str, **kw: Any) -> httpx.Response:
        body = {"action": "AUTHTOKEN", "username": self.username, "app_key": self.rsa_app_key(),
                "otp": crypto.encrypt_otp(self.ak, otp)}
        r = self.call("POST", AUTH, action="AUTHTOKEN", body=body, **kw)
        j = r.json()
        if j.get("status_cd") == "1":
            self.token = j["auth_token"]
            self.ek = crypto.decrypt_sek(self.ak, j["sek"])
        return r

    def login(self, emu: Any) -> dict[str, Any]:
        r = self.otprequest()
        assert r.json() == {"status_cd": "1"}, r.text
        otp = emu.outbox.latest_otp(self.gstin)
        r = self.authtoken(otp)
        assert r.json()["status_cd"] == "1", r.text
        return r.json()

    def refresh(self, new_ak: bytes | None = None, **kw: Any) -> httpx.Response:
        ak2 = new_ak or self.ak
        body = {"action": "REFRESHTOKEN", "username": self.username, "auth_token": self.token,
                "app_key": crypto.encrypt_refresh_app_key(self.ek, ak2)}
        r = self.call("POST", AUTH, action="REFRESHTOKEN", body=body, **kw)
        j = r.json()
        if j.get("status_cd") == "1":
            self.ak, self.token = ak2, j["auth_token"]
            self.ek = crypto.decrypt_sek(ak2, j["sek"])
        return r

    def logout(self, ak: bytes | None = None, **kw: Any) -> httpx.Response:
        body = {"action": "LOGOUT", "username": self.username, "auth_token": self.token,
                "app_key": self.rsa_app_key(ak)}
        return self.call("POST", AUTH, action="LOGOUT", body=body, **kw)

    # --- data -----------------------------------------------------------------------
    def retsave(self, payload: dict[str, Any] | bytes, period: str = "072017", *, txn: str | None = None,
                tamper_hmac: bool = False, **kw: Any) -> httpx.Response:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        data, mac = crypto.encrypt_request(self.ek, raw)
        if tamper_hmac:
            mac = crypto.encrypt_request(self.ek, raw + b" ")[1]
        return self.call("PUT", GSTR1, action="RETSAVE", body={"action": "RETSAVE", "data": data, "hmac": mac},
                         data=True, period=period, txn=txn, **kw)

    def get(self, path: str, action: str, period: str = "072017", **params: str) -> httpx.Response:
        q = {"action": action, "gstin": self.gstin, "ret_period": period, **params}
        return self.call("GET", path, action=action, params=q, data=True, period=period)

    def open(self, r: httpx.Response) -> Any:
        j = r.json()
        assert j.get("status_cd") == "1", r.text
        return json.loads(crypto.decrypt_response(self.ek, j["data"], j["rek"], j.get("hmac")))


def error_code(r: httpx.Response) -> str | None:
    """The error code of any layer's error body."""
    j = r.json()
    if "error_code" in j:
        return j["error_code"]
    err = j.get("error") or {}
    return err.get("error_cd") or err.get("code")


def b2b_payload(gstin: str, period: str, n_invoices: int = 2, *, start: int = 1, ctin: str | None = None,
                items: int = 1) -> dict[str, Any]:
    """A simple GSTR-1 B2B save payload (used when gspauth.synthetic is not available)."""
    ctin = ctin or defaults.SAMPLE_TAXPAYERS[1].gstin
    invs = []
    for i in range(start, start + n_invoices):
        itms = [{"num": k + 1, "itm_det": {"rt": 18, "txval": 1000.0 + k, "iamt": 180.0, "csamt": 0}}
                for k in range(items)]
        invs.append({"inum": f"INV{i:06d}", "idt": "15-07-2017", "val": 1180.0 * items, "pos": ctin[:2],
                     "rchrg": "N", "inv_typ": "R", "itms": itms})
    return {"gstin": gstin, "fp": period, "b2b": [{"ctin": ctin, "inv": invs}]}


def stop_process(proc: Any) -> None:
    """SIGTERM a ``gspauth emulator serve`` child, wait for it, kill it if it hangs, close its pipes."""
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
