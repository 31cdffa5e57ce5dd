"""Auth actions of spec §3 and the session rules of §7, over raw HTTP on every layer."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, EmulatorConfig, defaults
from tests.emulator.conftest import START, TP, TP2
from tests.emulator.rawclient import GSTR1, Raw, b2b_payload, error_code

LAYERS = ["gstn", "cleartax", "cleartax-legacy", "vayana"]


@pytest.mark.parametrize("layer", LAYERS)
def test_full_session_on_each_layer(layer: str, emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make(layer)
    assert r.otprequest().json() == {"status_cd": "1"}
    otp = emu.outbox.latest_otp(TP.gstin)
    assert otp is not None and len(otp) == 6 and otp.isdigit()
    reply = r.authtoken(otp).json()
    assert set(reply) == {"status_cd", "auth_token", "expiry", "sek"}
    assert reply["expiry"] == 360 and len(reply["sek"]) == 64 and len(r.ek) == 32
    first_token, first_ek = r.token, r.ek
    assert r.refresh(crypto.generate_app_key()).json()["status_cd"] == "1"
    assert r.token != first_token and r.ek != first_ek
    assert r.open(r.retsave(b2b_payload(TP.gstin, "072017")))["reference_id"].startswith("LAPN")
    assert r.logout().json() == {"status_cd": "1"}
    r2 = r.get(GSTR1, "B2B")
    assert error_code(r2) == "AUTH4033" and "logged out" in r2.json()["error"]["message"]
    expected_layer = "cleartax-legacy" if layer == "cleartax-legacy" else layer
    assert emu.stats["by_layer"][expected_layer]["REFRESHTOKEN"] == 1


def test_otp_is_random_per_request_and_replaced(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    otps = []
    for _ in range(5):
        r.otprequest()
        otps.append(emu.outbox.latest_otp(TP.gstin))
    assert len(set(otps)) >= 4 and defaults.SANDBOX_OTP not in otps
    assert error_code(r.authtoken(otps[0])) == "AUTH4034"  # replaced by later OTPREQUESTs
    assert r.authtoken(otps[-1]).json()["status_cd"] == "1"


def test_same_seed_gives_same_otps_and_tokens() -> None:
    seen = []
    for _ in range(2):
        emu = Emulator(seed=99, clock_start=START, clock_frozen=True)
        c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
        r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now)
        r.login(emu)
        seen.append((emu.outbox.latest_otp(TP.gstin), r.token, emu.certificate_der))
        emu.close()
    assert seen[0] == seen[1]


def test_sandbox_otp_only_in_sandbox_mode(make: Callable[..., Raw]) -> None:
    emu = Emulator(seed=1, clock_start=START, clock_frozen=True, sandbox_otp=True)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.otprequest()
    assert emu.outbox.latest_otp(TP.gstin) == "575757"
    assert r.authtoken("575757").json()["status_cd"] == "1"


def test_otp_expiry_and_attempt_limit(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.otprequest()
    emu.clock.advance(601)
    resp = r.authtoken(emu.outbox.latest_otp(TP.gstin))
    assert error_code(resp) == "AUTH4034" and "expired" in resp.json()["error"]["message"]
    r.otprequest()
    good = emu.outbox.latest_otp(TP.gstin)
    bad = "000000" if good != "000000" else "111111"
    msgs = [r.authtoken(bad).json()["error"]["message"] for _ in range(3)]
    assert "2 attempt(s) left" in msgs[0] and "attempt limit" in msgs[2]
    resp = r.authtoken(good)  # the OTP is gone after 3 failures
    assert error_code(resp) == "AUTH4033"


def test_otp_outbox_over_http_and_file(tmp_path: object) -> None:
    import os

    emu = Emulator(seed=5, state_dir=str(tmp_path), clock_start=START, clock_frozen=True)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.otprequest()
    j = c.get("/_emulator/outbox/otp", params={"gstin": TP.gstin}).json()
    assert j["latest"] == emu.outbox.latest_otp(TP.gstin)
    path = os.path.join(str(tmp_path), "outbox-otp.jsonl")
    with open(path, encoding="utf-8") as fh:
        assert json.loads(fh.read().splitlines()[-1])["otp"] == j["latest"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    emu.close()


def test_consent_notifications(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make("cleartax")
    r.login(emu)
    r.refresh()
    notes = emu.outbox.notifications(TP.gstin)
    assert [(n["channel"], n["action"]) for n in notes] == [
        ("sms", "AUTHTOKEN"), ("email", "AUTHTOKEN"), ("sms", "REFRESHTOKEN"), ("email", "REFRESHTOKEN")]
    assert all(n["gsp"] == "ClearTax" and n["application"] == defaults.CLEARTAX_APPLICATION for n in notes)
    assert notes[0]["to"] == TP.mobile and notes[1]["to"] == TP.email
    assert notes[2]["time"] == START.isoformat()
    assert "refreshed" in notes[2]["text"]


def test_refresh_kills_old_token_and_key(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    old_token, old_ek = r.token, r.ek
    r.refresh()
    stale = make()
    stale.token, stale.ek, stale.ak = old_token, old_ek, r.ak
    resp = stale.get(GSTR1, "B2B")
    assert error_code(resp) == "AUTH4033" and "REFRESHTOKEN" in resp.json()["error"]["message"]
    assert error_code(stale.refresh()) == "AUTH4033"  # cannot refresh twice from the same token
    # the new token works, and data encrypted under the old EK does not verify
    assert r.open(r.get(GSTR1, "B2B")) == {"b2b": []}
    r_old_key = make()
    r_old_key.token, r_old_key.ek = r.token, old_ek
    assert error_code(r_old_key.retsave(b2b_payload(TP.gstin, "072017"))) in ("TEC4002", "AUTH4039")


def test_refresh_only_while_token_valid(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    emu.clock.advance(359 * 60)
    assert r.refresh().json()["expiry"] == 360
    emu.clock.advance(361 * 60)
    assert error_code(r.refresh()) == "AUTH4038"


def test_refresh_grace_models_dormant_window(make: Callable[..., Raw]) -> None:
    emu = Emulator(seed=2, clock_start=START, clock_frozen=True, refresh_grace_minutes=18 * 60)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.login(emu)
    emu.clock.advance(10 * 3600)
    assert error_code(r.get(GSTR1, "B2B")) == "AUTH4038"  # data calls still need a valid token
    assert r.refresh().json()["status_cd"] == "1"
    emu.set_api_access(TP.gstin, True, 12)  # shorter duration: the running session's window ends
    emu.clock.advance(6 * 3600 + 60)
    resp = r.refresh()
    assert error_code(resp) == "AUTH4037" and "duration" in resp.json()["error"]["message"]


def test_six_hour_portal_setting_refuses_refresh(emu: Emulator, make: Callable[..., Raw]) -> None:
    emu.set_api_access(TP.gstin, True, 6)
    r = make()
    r.login(emu)
    resp = r.refresh()
    assert error_code(resp) == "AUTH4037" and "6 h" in resp.json()["error"]["message"]


def test_refresh_stops_at_portal_duration(emu: Emulator, make: Callable[..., Raw]) -> None:
    emu.set_api_access(TP.gstin, True, 12)
    r = make()
    r.login(emu)
    emu.clock.advance(5 * 3600)
    assert r.refresh().json()["expiry"] == 360  # 5h + 6h < 12h
    emu.clock.advance(5 * 3600)
    assert r.refresh().json()["expiry"] == 120  # capped at the end of the 12 h duration
    emu.clock.advance(119 * 60)
    assert r.refresh().json()["expiry"] == 1
    emu.clock.advance(61)
    assert error_code(r.refresh()) == "AUTH4038"  # the session ended with the portal duration


def test_session_cap_per_user_per_gsp(emu: Emulator, make: Callable[..., Raw]) -> None:
    callers = [make() for _ in range(3)]
    for c in callers:
        c.login(emu)
    extra = make()
    extra.otprequest()
    otp = emu.outbox.latest_otp(TP.gstin)
    resp = extra.authtoken(otp)
    assert error_code(resp) == "AUTH403"
    # another GSP is counted separately
    make("cleartax").login(emu)
    # logging out frees a slot (the pending OTP survived the refusal)
    callers[0].logout()
    assert extra.authtoken(otp).json()["status_cd"] == "1"


def test_expired_sessions_do_not_count_against_cap(emu: Emulator, make: Callable[..., Raw]) -> None:
    emu.update_config(max_sessions_per_user=1)
    make().login(emu)
    emu.clock.advance(7 * 3600)
    make().login(emu)


def test_logout_needs_the_session_app_key(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    new_ak = crypto.generate_app_key()
    old_ak = r.ak
    r.refresh(new_ak)
    assert error_code(r.logout(old_ak)) == "AUTH4036"  # the latest app key is the session's key
    assert r.logout(new_ak).json() == {"status_cd": "1"}
    assert error_code(r.logout()) == "AUTH4033"


def test_portal_revoke(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = make("vayana")
    r.login(emu)
    sessions = client.get(f"/_emulator/portal/{TP.gstin}/sessions").json()["sessions"]
    assert len(sessions) == 1 and sessions[0]["gsp"] == "Vayana" and "auth_token" not in sessions[0]
    sid = sessions[0]["session_id"]
    resp = client.post(f"/_emulator/portal/{TP.gstin}/sessions/{sid}/revoke")
    assert resp.json()["revoked"]["session_id"] == sid
    out = r.get(GSTR1, "B2B")
    assert error_code(out) == "AUTH4033" and "revoked by the taxpayer" in out.json()["error"]["message"]
    assert error_code(r.refresh()) == "AUTH4033"
    assert emu.portal.sessions(TP.gstin) == []
    assert client.post(f"/_emulator/portal/{TP.gstin}/sessions/nope/revoke").status_code == 404


def test_portal_disable_ends_sessions(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    r = make()
    r.login(emu)
    resp = client.post(f"/_emulator/portal/{TP.gstin}/api-access", json={"enabled": False})
    assert resp.json()["api_access"] is False
    out = r.get(GSTR1, "B2B")
    assert error_code(out) == "AUTH4033" and "disabled" in out.json()["error"]["message"]
    assert error_code(make().otprequest()) == "AUTH4037"
    assert client.post(f"/_emulator/portal/{TP.gstin}/api-access", json={"enabled": True, "duration_hours": 5}).status_code == 400
    assert client.post(f"/_emulator/portal/{TP.gstin}/api-access", json={"enabled": True, "duration_hours": 48}).json()["access_duration_hours"] == 48
    make().login(emu)


def test_token_cannot_cross_gsps_or_users(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make("gstn")
    r.login(emu)
    other = make("cleartax")
    other.token, other.ek = r.token, r.ek
    assert error_code(other.get(GSTR1, "B2B")) == "AUTH4033"
    wrong_user = make()
    wrong_user.token, wrong_user.ek, wrong_user.username = r.token, r.ek, TP2.username
    assert error_code(wrong_user.get(GSTR1, "B2B")) == "AUTH4033"


def test_state_cd_checked_against_user_even_without_gstin(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    resp = r.otprequest(headers={"state-cd": "29"})
    assert error_code(resp) == "AUTH4041" and "user's GSTIN" in resp.json()["error"]["message"]
    lenient = Emulator(EmulatorConfig(seed=3, check_state_cd_against_user=False))
    c = httpx.Client(transport=httpx.MockTransport(lenient.handle), base_url="http://e")
    r2 = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(lenient.certificate_pem))
    assert r2.otprequest(headers={"state-cd": "29"}).json() == {"status_cd": "1"}


def test_evcotp_goes_to_outbox(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    from tests.emulator.rawclient import AUTH

    resp = r.call("GET", AUTH, action="EVCOTP", data=True,
                  params={"action": "EVCOTP", "gstin": TP.gstin, "pan": TP.gstin[2:12], "form_type": "R1"})
    assert resp.json() == {"status_cd": "1"}
    evc = emu.outbox.otps(TP.gstin, "evc")
    assert len(evc) == 1 and evc[0]["pan"] == TP.gstin[2:12]
    assert emu.outbox.latest_otp(TP.gstin) == emu.outbox.otps(TP.gstin, "auth")[-1]["otp"]


def test_clock_set_at_start_and_via_admin(emu: Emulator, client: httpx.Client) -> None:
    assert emu.clock.now() == START
    assert client.post("/_emulator/clock", json={"advance_seconds": 90}).json()["now"] == (START + _dt.timedelta(seconds=90)).isoformat()
    when = "2027-03-01T00:00:00+00:00"
    assert client.post("/_emulator/clock", json={"set": when}).json()["now"] == when
    assert client.post("/_emulator/clock", json={}).status_code == 400


def test_emulator_logs_carry_no_secrets(emu: Emulator, make: Callable[..., Raw], caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    r = make("vayana")
    r.login(emu)
    r.refresh()
    r.retsave(b2b_payload(TP.gstin, "072017"))
    otp = emu.outbox.latest_otp(TP.gstin)
    assert "OTP sent for " + TP.gstin in caplog.text  # it does log, just not the secrets
    for secret in (otp, r.token, r.ek.hex(), defaults.VAYANA_ASP_CLIENT_SECRET):
        assert secret and secret not in caplog.text


def test_register_taxpayer_validation(emu: Emulator) -> None:
    from gspauth.errors import InvalidGSTIN

    with pytest.raises(InvalidGSTIN):
        emu.register_taxpayer(TP.gstin[:14] + ("1" if TP.gstin[14] != "1" else "2"), "someone")
    with pytest.raises(ValueError, match="6 hours"):
        emu.register_taxpayer(defaults.make_gstin("24", "AAECF5555K"), "x", access_duration=_dt.timedelta(hours=5))
    with pytest.raises(ValueError, match="already belongs"):
        emu.register_taxpayer(defaults.make_gstin("24", "AAECF5555K"), TP.username)
    tp = emu.register_taxpayer(defaults.make_gstin("24", "AAECF5555K"), "emu.gujarat", api_access=False,
                               access_duration=_dt.timedelta(hours=6), mobile="+91999", email="g@example.invalid")
    assert (tp.state_code, tp.api_access, tp.access_duration_hours) == ("24", False, 6)
    assert [s.gstin for s in defaults.SAMPLE_TAXPAYERS] == [t.gstin for t in emu.taxpayers()][:4]
