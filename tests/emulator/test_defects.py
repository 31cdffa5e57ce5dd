"""Defects found in review (issue 9 item 8), each shown failing before its fix.

* a Vayana ASP registered without ``cust_id`` inherited the demo customer id;
* a second key rotation capped only the key it retired, so an *older* retired key outlived it.

The missing request-body limit (the third defect) is tested in ``test_limits.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gspauth import crypto
from gspauth.emulator import Emulator, defaults
from tests.emulator.conftest import TP
from tests.emulator.rawclient import Raw, error_code, new_txn, vayana_sign, vayana_token


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_new_vayana_asp_gets_no_demo_identity(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    key = defaults.vayana_demo_private_key()  # same key on purpose: only the identity may differ
    made = client.post("/_emulator/vayana/asps", json={"public_key_pem": _pem(key), "clientid": "asp-new",
                                                       "client_secret": "n" * 32, "client_id": "CLIENT-NEW"})
    assert made.status_code == 201, made.text
    assert made.json()["cust_id"] is None and made.json()["client_id"] == "CLIENT-NEW"
    creds = {"clientid": "asp-new", "client-secret": "n" * 32}
    for cust_id, client_id, expected in ((defaults.VAYANA_ASP_CUST_ID, None, "VAY-4017"), (None, "CLIENT-NEW", None)):
        txn = new_txn()
        tok = vayana_token(TP.gstin, "OTPREQUEST", txn, emu.clock.now(), cust_id=cust_id, client_id=client_id)
        out = make("vayana").otprequest(txn=txn, headers={**creds, "x-asp-auth-token": tok,
                                                          "x-asp-auth-signature": vayana_sign(key, tok)})
        assert (error_code(out) if expected else out.json()) == (expected or {"status_cd": "1"}), out.text


def test_new_vayana_asp_needs_its_own_credentials(emu: Emulator, client: httpx.Client) -> None:
    pem = _pem(rsa.generate_private_key(65537, 2048))
    for missing in ("clientid", "client_secret"):
        body = {"public_key_pem": pem, "clientid": "asp-y", "client_secret": "y" * 32, "cust_id": "CUST-Y"}
        del body[missing]
        resp = client.post("/_emulator/vayana/asps", json=body)
        assert resp.status_code == 400 and missing in resp.json()["error"]
    resp = client.post("/_emulator/vayana/asps", json={"public_key_pem": pem, "clientid": "asp-y", "client_secret": "y"})
    assert resp.status_code == 400 and "cust_id or a client_id" in resp.json()["error"]
    # the demo ASP is untouched by all of this
    demo = next(a for a in emu.vayana_asps() if a["clientid"] == defaults.VAYANA_ASP_CLIENTID)
    assert (demo["cust_id"], demo["client_id"]) == (defaults.VAYANA_ASP_CUST_ID, defaults.VAYANA_ASP_CLIENT_ID)


def test_a_rotation_caps_every_older_key(emu: Emulator, make: Callable[..., Raw]) -> None:
    oldest = crypto.load_certificate(emu.certificate_pem)
    emu.rotate_keys(1)  # oldest: one more day
    middle = crypto.load_certificate(emu.certificate_pem)
    emu.rotate_keys(0)  # now nothing but the newest key is accepted
    newest = crypto.load_certificate(emu.certificate_pem)

    def outcomes() -> dict[str, str]:
        out = {}
        for name, cert in (("oldest", oldest), ("middle", middle), ("newest", newest)):
            r = make()
            r.cert = cert
            out[name] = error_code(r.otprequest()) or "ok"
        return out

    expected = {"oldest": "TEC4002", "middle": "TEC4002", "newest": "ok"}
    assert outcomes() == expected  # overlap 0 retires at once, not at the end of this second
    assert [c["accepted_now"] for c in emu.certificates()] == [False, False, True]
    emu.clock.advance(1)  # the report: the oldest key was still accepted, the middle one refused
    assert outcomes() == expected
