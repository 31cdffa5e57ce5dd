"""What the consent work needs from the emulator (issue 10 item 9), over loopback: the admin
clock moves 30 days, the portal's API-access duration (6 h … 30 days) bounds refreshes
(AUTH4037), and each taxpayer's OTPs are read from the outbox over HTTP."""

from __future__ import annotations

import datetime as _dt

import httpx

from gspauth import crypto
from gspauth.emulator import ThreadedEmulator, defaults
from tests.emulator.conftest import SEED, START, TP, TP2
from tests.emulator.rawclient import GSTR1, Raw, error_code

HOUR = 3600


def _login(c: httpx.Client, cert: object, tp: defaults.SampleTaxpayer, server: ThreadedEmulator) -> Raw:
    r = Raw(c, "cleartax", tp.gstin, tp.username, cert, now=server.emulator.clock.now)
    assert r.otprequest().json() == {"status_cd": "1"}
    otp = c.get("/_emulator/outbox/otp", params={"gstin": tp.gstin}).json()["latest"]
    assert r.authtoken(otp).json()["status_cd"] == "1"
    return r


def test_thirty_day_consent_with_refreshes_every_five_hours() -> None:
    with ThreadedEmulator(seed=SEED, clock_start=START, clock_frozen=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:  # fmt: skip
        cert = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
        c.post(f"/_emulator/portal/{TP.gstin}/api-access", json={"enabled": True, "duration_hours": 720})
        r = _login(c, cert, TP, server)
        refreshes = 0
        while True:
            now = c.post("/_emulator/clock", json={"advance_seconds": 5 * HOUR}).json()["now"]
            resp = r.refresh()
            if resp.json().get("status_cd") != "1":
                break
            refreshes += 1
        elapsed = _dt.datetime.fromisoformat(now) - START
        # 720 h / 5 h = 144: the refresh at 720 h is the first one refused
        assert refreshes == 143 and elapsed == _dt.timedelta(hours=720)
        assert error_code(resp) == "AUTH4037" and "duration" in resp.json()["error"]["message"]
        sessions = c.get(f"/_emulator/portal/{TP.gstin}/sessions").json()["sessions"]
        assert sessions[0]["refresh_count"] == 143
        assert sessions[0]["access_expires_at"] == (START + _dt.timedelta(hours=720)).isoformat()
        # the last refreshed token is capped at the portal duration: data calls end with it
        c.post("/_emulator/clock", json={"advance_seconds": 1})
        assert error_code(r.get(GSTR1, "B2B")) == "AUTH4038"
        notes = c.get("/_emulator/outbox/notifications", params={"gstin": TP.gstin}).json()["notifications"]
        assert sum(n["action"] == "REFRESHTOKEN" for n in notes) == 2 * 143  # SMS and e-mail each time


def test_six_hour_setting_and_day_29_filing_need_the_right_answers() -> None:
    with ThreadedEmulator(seed=SEED, clock_start=START, clock_frozen=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:  # fmt: skip
        cert = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
        c.post(f"/_emulator/portal/{TP2.gstin}/api-access", json={"enabled": True, "duration_hours": 6})
        short = _login(c, cert, TP2, server)
        resp = short.refresh()
        assert error_code(resp) == "AUTH4037" and "6 h" in resp.json()["error"]["message"]
        long = _login(c, cert, TP, server)
        for _ in range(29 * 24 // 5):  # keep-alive passes through day 29
            c.post("/_emulator/clock", json={"advance_seconds": 5 * HOUR})
            assert long.refresh().json()["status_cd"] == "1"
        assert long.open(long.get(GSTR1, "B2B")) == {"b2b": []}  # a data call on day 29 needs no OTP
        # the clock moves 30 days in one call, too
        moved = c.post("/_emulator/clock", json={"advance_seconds": 30 * 24 * HOUR}).json()["now"]
        assert _dt.datetime.fromisoformat(moved) - START == _dt.timedelta(hours=29 * 24 // 5 * 5 + 720)


def test_each_taxpayers_otps_over_http() -> None:
    with ThreadedEmulator(seed=SEED, clock_start=START, clock_frozen=True) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:  # fmt: skip
        cert = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
        a = Raw(c, "gstn", TP.gstin, TP.username, cert)
        b = Raw(c, "vayana", TP2.gstin, TP2.username, cert, now=server.emulator.clock.now)
        a.otprequest()
        c.post("/_emulator/clock", json={"advance_seconds": 60})
        b.otprequest()
        mark = c.get("/_emulator/clock").json()["now"]
        c.post("/_emulator/clock", json={"advance_seconds": 60})
        a.otprequest()  # a's second OTP replaces the first
        for tp, n in ((TP, 2), (TP2, 1)):
            j = c.get("/_emulator/outbox/otp", params={"gstin": tp.gstin}).json()
            assert len(j["messages"]) == n and {m["gstin"] for m in j["messages"]} == {tp.gstin}
            assert j["latest"] == server.emulator.outbox.latest_otp(tp.gstin)
        since = c.get("/_emulator/outbox/otp", params={"gstin": TP.gstin, "since": mark}).json()
        assert len(since["messages"]) == 1 and since["latest"] == server.emulator.outbox.latest_otp(TP.gstin)
        by_user = c.get("/_emulator/outbox/otp", params={"username": TP2.username.upper()}).json()
        assert [m["gstin"] for m in by_user["messages"]] == [TP2.gstin] and by_user["messages"][0]["gsp"] == "Vayana"
        assert a.authtoken(since["latest"]).json()["status_cd"] == "1"
        assert b.authtoken(by_user["latest"]).json()["status_cd"] == "1"
        assert c.get("/_emulator/outbox/otp", params={"since": "not a time"}).status_code == 400
