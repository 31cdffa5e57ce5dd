"""Secrets: never in the emulator's logs (its own and uvicorn's access log), reprs, error bodies or URLs;
state-directory files 0600 and directories 0700."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, ThreadedEmulator, defaults
from gspauth.emulator._http import Request
from gspauth.emulator.model import Call, IssuedOtp
from tests.emulator.conftest import TP
from tests.emulator.rawclient import AUTH, GSTR1, RETURNS, Raw, b2b_payload

P = "072017"


def _secrets_of(r: Raw) -> list[str]:
    return [r.token, r.ak.hex(), r.ek.hex(), base64.b64encode(r.ak).decode(), base64.b64encode(r.ek).decode()]


@pytest.fixture
def log_capture() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    # the emulator's loggers only: httpx (the *client* here) logs request URLs itself
    names = ["gspauth.emulator", "uvicorn", "uvicorn.access", "uvicorn.error", "uvicorn.asgi"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield buf
    for lg, level in zip(loggers, levels):
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_no_secret_in_any_log_over_the_wire(tmp_path: object, log_capture: io.StringIO) -> None:
    """A full flow through uvicorn with the access log on at debug level: no secret in any log line."""
    emu = Emulator(seed=41, state_dir=str(tmp_path), large_download_threshold=2)
    with ThreadedEmulator(emu, log_level="debug", access_log=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:  # fmt: skip
        # uvicorn configures its loggers at start: attach the capture again afterwards
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).addHandler(logging.StreamHandler(log_capture))
        secrets: list[str] = [defaults.GSTN_CLIENT_SECRET, defaults.VAYANA_ASP_CLIENT_SECRET, defaults.CLEARTAX_AUTH_TOKEN]
        for layer in ("gstn", "cleartax", "vayana"):
            r = Raw(c, layer, TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now)
            r.ak = crypto.generate_app_key()
            app_key = r.rsa_app_key()
            body = {"action": "OTPREQUEST", "username": TP.username, "app_key": app_key}
            assert r.call("POST", AUTH, action="OTPREQUEST", body=body, headers={"appkey": app_key}).json()["status_cd"] == "1"
            otp = emu.outbox.latest_otp(TP.gstin) or ""
            reply = r.authtoken(otp).json()
            secrets += [*_secrets_of(r), otp, app_key, reply["sek"]]
            r.refresh(crypto.generate_app_key())
            secrets += _secrets_of(r)
            r.retsave(b2b_payload(TP.gstin, P, 3))
            token = r.open(r.get(GSTR1, "B2B"))["token"]
            det = r.open(r.get(RETURNS, "FILEDET", token=token))
            base = "/vayana/gus/returns" if layer == "vayana" else ""
            assert c.get(base + det["urls"][0]["ul"]).status_code == 200
            secrets += [token, det["ek"], det["urls"][0]["ul"].split("/files/")[1].split("/")[0]]
            r.call("GET", AUTH, action="EVCOTP", data=True,
                   params={"action": "EVCOTP", "gstin": TP.gstin, "pan": TP.gstin[2:12], "form_type": "R1"})
            secrets.append(emu.outbox.latest_otp(TP.gstin, "evc") or "")
            assert r.logout().json() == {"status_cd": "1"}
        c.post("/gstn" + AUTH, content=b"{broken")
    text = log_capture.getvalue()
    assert "PUT /gstn/taxpayerapi" in text and "OTP sent for" in text  # the logs were captured
    assert "token=[secure]" in text and "/files/[secure]/" in text
    leaked = [s for s in secrets if s and s in text]
    assert leaked == []


def test_error_bodies_do_not_echo_secrets(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    bogus = "SECRET-TOKEN-DO-NOT-ECHO-0001"
    stale = make()
    stale.token, stale.ek, stale.ak = bogus, r.ek, r.ak
    replies = [stale.get(GSTR1, "B2B"), stale.refresh(), r.otprequest(headers={"client-secret": "WRONG-SECRET-0001"})]
    replies.append(make("cleartax").otprequest(headers={"x-ct-auth-token": "WRONG-CT-TOKEN-0001"}))
    replies.append(make("vayana").otprequest(headers={"client-secret": "WRONG-VAYANA-SECRET"}))
    r2 = make()
    r2.ak = crypto.generate_app_key()
    replies.append(r2.authtoken("123456"))
    for resp in replies:
        assert resp.status_code >= 400 or resp.json()["status_cd"] == "0"
        for s in (bogus, "WRONG-SECRET-0001", "WRONG-CT-TOKEN-0001", "WRONG-VAYANA-SECRET", r.token, r.ek.hex(),
                  r2.ak.hex(), defaults.GSTN_CLIENT_SECRET):
            assert s not in resp.text


def test_no_secrets_in_reprs(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    session = next(iter(emu._sessions.values()))
    req = Request.build("POST", "http://e", "/gstn" + AUTH, "", [("client-secret", "REQ-SECRET"), ("auth-token", "T0K")],
                        b'{"app_key":"BODYSECRET"}')
    call = Call(req, "gstn", "GSTN direct", "app", AUTH, dict(req.headers), "")
    objects = [session, emu.config, emu.keys.current, next(iter(emu._asps.values())), emu, emu.outbox, req, call,
               IssuedOtp("424242", 0.0, 3), emu.keys, emu.clock]
    text = " ".join(repr(o) for o in objects)
    for secret in (r.token, r.ak.hex(), r.ek.hex(), defaults.VAYANA_ASP_CLIENT_SECRET, defaults.GSTN_CLIENT_SECRET,
                   defaults.CLEARTAX_GSTN_CLIENT_SECRET, defaults.CLEARTAX_AUTH_TOKEN, "REQ-SECRET", "T0K", "BODYSECRET",
                   "424242"):
        assert secret not in text, secret
    view = json.dumps(emu.config.public_view())
    assert defaults.GSTN_CLIENT_SECRET not in view and defaults.CLEARTAX_AUTH_TOKEN not in view


def test_state_dir_files_are_private(tmp_path: object) -> None:
    state = os.path.join(str(tmp_path), "state")
    emu = Emulator(seed=42, state_dir=state)
    with ThreadedEmulator(emu) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
        r.login(emu)
        r.refresh()
        r.retsave(b2b_payload(TP.gstin, P))
        c.post("/_emulator/keys/rotate", json={"overlap_days": 1})
        seen = []
        for root, dirs, files in os.walk(state):
            for d in dirs:
                seen.append(d)
                assert stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) == 0o700, d
            for f in files:
                seen.append(f)
                assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o600, f
    emu.close()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for expected in ("emulator.sqlite3", "emulator.sqlite3-wal", "outbox-otp.jsonl", "outbox-notifications.jsonl",
                     "gstn-certificate.pem", "gstn-certificate.der", "url", "certificates", "gstn-1.pem"):
        assert expected in seen


def test_no_secret_travels_in_a_url(emu: Emulator, make: Callable[..., Raw]) -> None:
    """Tokens, keys and credentials travel in headers and bodies; URLs carry only identifiers."""
    seen: list[str] = []
    real = emu.handle

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return real(request)

    c = httpx.Client(transport=httpx.MockTransport(spy), base_url="http://e")
    r = Raw(c, "vayana", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now)
    r.login(emu)
    r.retsave(b2b_payload(TP.gstin, P))
    r.get(GSTR1, "B2B")
    urls = " ".join(seen)
    for secret in [*_secrets_of(r), defaults.VAYANA_ASP_CLIENT_SECRET, emu.outbox.latest_otp(TP.gstin) or "x"]:
        assert secret not in urls
