"""Consent that survives processes: the durable two-step OTP, failing before consent, a lost
refresh's reason, typed network errors, the keeper over 30 days — all against the emulator
server on loopback."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gspauth import synthetic
from gspauth.emulator import defaults
from gspauth.errors import (
    ConfigurationError,
    GSPAuthError,
    InvalidOtp,
    NetworkError,
    OtpRequired,
    Unreachable,
)
from gspauth.keeper import SessionKeeper
from gspauth.ledger import Ledger
from gspauth.otp import FileOtp
from gspauth.session import PendingOtp, RefreshIntent, Session, SessionKey, SessionTarget
from gspauth.store import MemoryStore, SQLiteStore
from gspauth.types import Api
from tests.client.client_support import Env

PERIOD = "072017"


class Fixed:
    def __init__(self, otp: str | None) -> None:
        self.otp = otp
        self.asked = 0

    def get_otp(self, request: Any) -> str | None:
        self.asked += 1
        return self.otp


def test_pending_request_is_answered_by_another_client_without_a_new_otprequest(env: Env, tmp_path: Path) -> None:
    store_path, key = tmp_path / "s.db", os.urandom(32)
    first = env.client(store=SQLiteStore(store_path, key=key))
    pending = first.request_otp()
    assert isinstance(pending, PendingOtp) and "[secure]" in repr(pending)
    first.close()
    # a second "process" (a new client and store object on the same file) holds the OTP now
    second = env.client(store=SQLiteStore(store_path, key=key), otp_provider=Fixed(env.latest_otp()))
    again = second.pending_otp()
    assert again is not None and again.txn == pending.txn and again.app_key == pending.app_key
    session = second.authenticate()
    assert session.usable(env.now()) and second.pending_otp() is None
    assert env.actions()["OTPREQUEST"] == 1 and env.actions()["AUTHTOKEN"] == 1
    # the store never holds the OTP, in any form
    assert env.latest_otp().encode() not in store_path.read_bytes()


def test_a_lapsed_or_resend_request_is_replaced(env: Env) -> None:
    client = env.client(otp_provider=Fixed(None))
    client.request_otp()
    env.advance(minutes=11)  # past the 10-minute OTP validity
    assert client.pending_otp() is None
    with pytest.raises(OtpRequired) as info:
        client.authenticate()  # asks the provider after a new OTPREQUEST
    assert env.actions()["OTPREQUEST"] == 2 and "valid until" in str(info.value)
    client.otp_provider = Fixed(None)
    with pytest.raises(OtpRequired):
        client.authenticate(resend=True)
    assert env.actions()["OTPREQUEST"] == 3


def test_file_otp_ignores_an_otp_file_older_than_the_request(env: Env, tmp_path: Path) -> None:
    otp_dir = tmp_path / "otps"
    otp_dir.mkdir()
    stale = otp_dir / f"{env.taxpayer.gstin}.otp"
    stale.write_text("123456")
    old = time.time() - 120
    os.utime(stale, (old, old))
    client = env.client(otp_provider=FileOtp(otp_dir))
    with pytest.raises(OtpRequired):
        client.authenticate()  # the stale file answers an earlier request: ignored, not tried
    assert env.actions().get("AUTHTOKEN", 0) == 0 and not stale.exists()
    (otp_dir / f"{env.taxpayer.gstin}.otp").write_text(env.latest_otp())
    assert client.authenticate().usable(env.now())
    assert env.actions()["OTPREQUEST"] == 1


def test_store_without_a_key_fails_before_any_otprequest(env: Env, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GSPAUTH_STORE_KEY", "GSPAUTH_STORE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    client = env.client(store=SQLiteStore(tmp_path / "s.db"), otp_provider=Fixed("575757"))
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY"):
        client.authenticate()
    with pytest.raises(ConfigurationError, match="GSPAUTH_STORE_KEY"):
        client.request_otp()
    assert env.actions().get("OTPREQUEST", 0) == 0 and env.actions().get("AUTHTOKEN", 0) == 0


class SaveFails(MemoryStore):
    """Everything works until the new session is saved."""

    def save(self, session: Session) -> None:
        raise OSError(28, "No space left on device")


def test_a_session_that_cannot_be_saved_is_logged_out_again(env: Env, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    client = env.client(store=SaveFails(), ledger=ledger)
    client.request_otp()
    with pytest.raises(OSError, match="No space"):
        client.authenticate(env.latest_otp())
    assert env.actions()["AUTHTOKEN"] == 1 and env.actions()["LOGOUT"] == 1
    assert env.emu.sessions_of(env.taxpayer.gstin) == []  # no orphan holding a session slot
    failed = [e for e in ledger.query(kind="failed")]
    assert failed and "not saved" in (failed[-1].detail or "") and failed[-1].outcome == "OSError"


class Killed(BaseException):
    """The process dies: nothing after it runs (not an Exception, so nothing handles it)."""


class DiesOnRefreshSave(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def save(self, session: Session) -> None:
        if self.armed and session.refresh_count:
            raise Killed()
        super().save(session)


def test_a_refresh_lost_between_reply_and_save_is_reported_as_such(env: Env) -> None:
    store = DiesOnRefreshSave()
    client = env.client(store=store)
    env.login(client)
    env.advance(minutes=350)  # inside the margin: the next call refreshes
    store.armed = True
    with pytest.raises(Killed):
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert env.actions()["REFRESHTOKEN"] == 1  # GSTN replaced the token; we never saved the answer
    store.armed = False
    restarted = env.client(store=store)  # the next process, same store
    with pytest.raises(OtpRequired) as info:
        restarted.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.reason == "refresh-lost" and "interrupted" in str(info.value)
    assert store.refresh_intent(restarted.key) is None  # reported once, then cleared


def test_unreachable_host_is_a_typed_gspauth_error(env: Env) -> None:
    from gspauth.plugins import Hooks

    hooks = Hooks(env.hooks.pm, hosts={("cleartax", "sandbox"): "http://127.0.0.1:9/cleartax"}, config=False)
    client = env.client(hooks=hooks)
    with pytest.raises(Unreachable) as info:
        client.request_otp()
    assert isinstance(info.value, GSPAuthError) and isinstance(info.value, NetworkError)
    assert info.value.host == "http://127.0.0.1:9" and "nothing was sent" in (info.value.hint or "")


def test_default_ledger_records_consent(env: Env, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.db", key=os.urandom(32))
    client = env.client(store=store)  # no ledger= given
    env.login(client)
    events = Ledger(tmp_path / "ledger.db").query(gstin=client.gstin)
    assert [e.kind for e in events] == ["otp-requested", "consent", "established"]


def test_store_records_the_session_target(env: Env, tmp_path: Path) -> None:
    cert = tmp_path / "gstn.pem"
    cert.write_bytes(env.certificate)
    store = SQLiteStore(tmp_path / "s.db", key=os.urandom(32))
    client = env.client(store=store, certificate=str(cert))
    env.login(client)
    target = store.load_target(client.key)
    assert target == SessionTarget(key=client.key, host=f"{env.url}/cleartax", certificate=str(cert.resolve()),
                                   certificate_sha256=target.certificate_sha256 if target else "",
                                   ip_usr="203.0.113.7")
    assert [s.host for s in store.list()] == [f"{env.url}/cleartax"]


def test_default_api_versions_follow_the_spec(env: Env) -> None:
    hooks = env.hooks
    assert "/taxpayerapi/v4.1/returns/gstr1" in hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", path="gstr1")
    assert "/taxpayerapi/v6.0/returns/gstr3b" in hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", path="gstr3b")
    assert "/taxpayerapi/v0.2/authenticate" in hooks.endpoint_url("cleartax", Api.AUTH, "sandbox")
    assert "/taxpayerapi/v1.0/authenticate" in hooks.endpoint_url("vayana", Api.AUTH, "sandbox")


def test_config_overrides_api_versions(env: Env, tmp_path: Path) -> None:
    from gspauth.plugins import Hooks

    cfg = tmp_path / "config.toml"
    cfg.write_text('[versions]\n"returns/gstr1" = "v3.0"\n[versions.cleartax]\nauth = "v1.0"\n')
    hooks = Hooks(env.hooks.pm, config=cfg)
    assert "/v3.0/returns/gstr1" in hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", path="gstr1")
    assert "/v1.0/authenticate" in hooks.endpoint_url("cleartax", Api.AUTH, "sandbox")
    cfg.write_text('[versions]\nauth = "1.0"\n')
    with pytest.raises(ConfigurationError, match="must look like 'v1.0'"):
        Hooks(env.hooks.pm, config=cfg)


# -- the keeper -----------------------------------------------------------------------------------


def _keeper(env: Env, store: Any) -> SessionKeeper:
    def client_for(key: SessionKey, target: SessionTarget | None) -> Any:
        tp = next(t for t in defaults.SAMPLE_TAXPAYERS if t.gstin == key.gstin)
        return env.client(key.gsp, taxpayer=tp, store=store)

    return SessionKeeper(store, client_for, every=dt.timedelta(hours=5))


def test_one_otp_lasts_the_30_day_access_period_with_a_keeper(env: Env, tmp_path: Path) -> None:
    """Consent on day 0, a keeper pass every 5 hours, a filing on day 29 without a second OTP."""
    store = SQLiteStore(tmp_path / "s.db", key=os.urandom(32))
    tp = env.taxpayer
    env.emu.register_taxpayer(tp.gstin, tp.username, access_duration=dt.timedelta(days=30))
    client = env.client(store=store)
    env.login(client)
    keeper = _keeper(env, store)
    refreshed = 0
    for _ in range(29 * 24 // 5):
        env.advance(minutes=5 * 60)
        (result,) = keeper.run_once()
        assert result.state in ("refreshed", "not-due"), result
        refreshed += result.state == "refreshed"
    assert env.now() - client.session.consent_at >= dt.timedelta(days=28, hours=23)  # type: ignore[union-attr]
    # day 29: file with a client that has no OTP provider: it must need none
    filer = env.client(store=store)
    chunk = synthetic.gstr1_chunks(2, seed=3, supplier_gstin=tp.gstin, ret_period=PERIOD)[0]
    reply = filer.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period=PERIOD)
    assert reply["reference_id"]
    assert env.actions()["OTPREQUEST"] == 1 and env.actions()["AUTHTOKEN"] == 1
    assert refreshed >= 130 and env.actions()["REFRESHTOKEN"] == refreshed
    ledger = Ledger(tmp_path / "ledger.db")
    assert ledger.count(gstin=tp.gstin, kind="refreshed") == refreshed
    assert ledger.count(gstin=tp.gstin, kind="consent") == 1


def test_a_six_hour_setting_is_reported_needs_otp_once_not_retried(env: Env, tmp_path: Path) -> None:
    store = MemoryStore()
    tp = env.taxpayer
    env.emu.register_taxpayer(tp.gstin, tp.username, access_duration=dt.timedelta(hours=6))
    env.login(env.client(store=store))
    keeper = _keeper(env, store)
    env.advance(minutes=5 * 60)
    (first,) = keeper.run_once()
    assert first.state == "needs-otp" and first.reason == "6-hour-setting"
    for _ in range(3):
        (later,) = keeper.run_once()
        assert later.state == "needs-otp" and later.reason == "refresh-refused"
    assert env.actions()["REFRESHTOKEN"] == 1  # asked once, never again


def test_keeper_leaves_a_session_another_worker_just_refreshed(env: Env) -> None:
    store = MemoryStore()
    client = env.client(store=store)
    env.login(client)
    env.advance(minutes=5 * 60)
    client.refresh()  # another worker got there first
    (result,) = _keeper(env, store).run_once()
    assert result.state == "not-due" and env.actions()["REFRESHTOKEN"] == 1


def test_wrong_otp_hints_follow_the_attempts(env: Env) -> None:
    client = env.client()
    client.request_otp()
    with pytest.raises(InvalidOtp) as info:
        client.authenticate("000001" if env.latest_otp() != "000001" else "000002")
    assert info.value.attempts_left == 2
    pending = client.pending_otp()
    assert pending is not None and pending.attempts_used == 1


def test_pending_otp_and_intent_survive_in_sqlite(tmp_path: Path) -> None:
    secret = os.urandom(32)
    store = SQLiteStore(tmp_path / "s.db", key=secret)
    key = SessionKey("cleartax", "sandbox", "27AAAPZ1234C1Z0", "u")
    now = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)
    pending = PendingOtp(key, "t1", now, now + dt.timedelta(minutes=10), os.urandom(32), 1.0, 2)
    store.save_pending_otp(pending)
    store.begin_refresh(key, RefreshIntent("t2", now))
    reopened = SQLiteStore(tmp_path / "s.db", key=secret)
    loaded = reopened.load_pending_otp(key)
    assert loaded == pending and loaded is not None and loaded.app_key == pending.app_key
    assert reopened.refresh_intent(key) == RefreshIntent("t2", now)
    store.delete_pending_otp(key)
    assert reopened.load_pending_otp(key) is None

