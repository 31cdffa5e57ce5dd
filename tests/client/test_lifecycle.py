"""End to end against the real emulator server over loopback: the session lifecycle, both GSPs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gspauth import synthetic
from gspauth.errors import (
    CertificateExpired,
    InvalidOtp,
    OtpRequired,
    SessionLimitExceeded,
)
from gspauth.store import MemoryStore
from gspauth.types import Api
from tests.client.client_support import Env

PERIOD = "072017"


def chunk_for(gstin: str, count: int = 3, seed: int = 1) -> dict[str, Any]:
    return synthetic.gstr1_chunks(count, seed=seed, supplier_gstin=gstin, ret_period=PERIOD)[0]


def invoice_numbers(section: Any) -> set[str]:
    return {inv["inum"] for entry in section["b2b"] for inv in entry["inv"]}


# --------------------------------------------------------------------------- full flow


def test_full_flow_sync(env: Env, gsp: str) -> None:
    client = env.client(gsp)
    gstin = client.gstin
    client.request_otp()
    session = client.authenticate(env.latest_otp())
    assert session.expiry_minutes == 360 and session.refresh_count == 0

    chunk = chunk_for(gstin)
    saved = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period=PERIOD)
    ref = saved["reference_id"]
    assert ref.startswith("LAPN")

    got = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert invoice_numbers(got) == invoice_numbers(chunk)

    status = client.get(Api.RETURNS, action="RETSTATUS", ret_period=PERIOD, params={"trans_id": ref})
    assert status["status_cd"] == "P"

    refreshed = client.refresh()
    assert refreshed.refresh_count == 1 and refreshed.auth_token != session.auth_token
    # the refreshed keys work for data calls
    assert invoice_numbers(client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)) == invoice_numbers(chunk)

    assert client.logout() is True
    assert client.store.load(client.key) is None
    acts = env.actions()
    for action in ("OTPREQUEST", "AUTHTOKEN", "RETSAVE", "B2B", "RETSTATUS", "REFRESHTOKEN", "LOGOUT"):
        assert acts.get(action, 0) >= 1, action
    assert acts["REFRESHTOKEN"] == 1
    assert env.recorder.kinds() == ["otp-requested", "consent", "established", "refreshed", "ended"]
    assert all(e.gstin == gstin and e.gsp == gsp and e.ip_usr == "203.0.113.7" for e in env.recorder.events)

    # after logout a data call needs a new consent
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.reason == "logged-out" and gstin in str(info.value)
    client.close()


def test_full_flow_async(env: Env, gsp: str) -> None:
    async def main() -> None:
        async with env.aclient(gsp) as client:
            await client.request_otp()
            await client.authenticate(env.latest_otp())
            chunk = chunk_for(client.gstin, seed=2)
            saved = await client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period=PERIOD)
            got = await client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
            assert invoice_numbers(got) == invoice_numbers(chunk)
            status = await client.get(Api.RETURNS, action="RETSTATUS", ret_period=PERIOD,
                                      params={"trans_id": saved["reference_id"]})
            assert status["status_cd"] == "P"
            env.advance(minutes=350)  # inside the 15-minute margin: the next call refreshes first
            got = await client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
            assert invoice_numbers(got) == invoice_numbers(chunk)
            assert client.session is not None and client.session.refresh_count == 1
            assert await client.logout() is True

    asyncio.run(main())
    acts = env.actions()
    assert acts["REFRESHTOKEN"] == 1 and acts["LOGOUT"] == 1 and acts["RETSAVE"] == 1
    assert env.recorder.kinds() == ["otp-requested", "consent", "established", "refreshed", "ended"]


# --------------------------------------------------------------------------- expiry and refresh


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_margin_triggers_automatic_refresh(env: Env, mode: str) -> None:
    client = env.client("vayana")
    env.login(client)
    env.advance(minutes=340)  # 20 min left: still outside the 15-minute margin
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert env.actions().get("REFRESHTOKEN", 0) == 0
    env.advance(minutes=6)  # 14 min left: inside the margin
    if mode == "sync":
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
        session = client.session
    else:
        aclient = env.aclient("vayana", store=client.store)

        async def run() -> Any:
            await aclient.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
            await aclient.aclose()
            return aclient.session

        session = asyncio.run(run())
    assert env.actions()["REFRESHTOKEN"] == 1
    assert session is not None and session.refresh_count == 1
    assert session.expires_at > env.now()


def test_configurable_margin(env: Env) -> None:
    client = env.client("cleartax", margin=60 * 60)  # one hour
    env.login(client)
    env.advance(minutes=301)  # 59 min left
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert env.actions()["REFRESHTOKEN"] == 1


def test_past_refresh_window_needs_otp(env: Env, gsp: str) -> None:
    client = env.client(gsp)
    env.login(client)
    env.advance(minutes=361)  # token over; strict emulator: refresh only before expiry
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.reason == "expired" and info.value.gstin == client.gstin
    assert client.store.load(client.key) is None
    assert env.recorder.kinds()[-1] == "needs-otp"
    # a fresh consent brings the client back
    env.login(client)
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)


def test_refresh_refused_with_six_hour_setting(env: Env, gsp: str) -> None:
    env.emu.portal.set_api_access(env.taxpayer.gstin, True, 6)
    client = env.client(gsp)
    env.login(client)
    env.advance(minutes=350)
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    err = info.value
    assert err.reason == "refresh-refused"
    assert "Manage API Access" in str(err) and "AUTH4037" in str(err)
    assert isinstance(err.__cause__, Exception) and getattr(err.__cause__, "error_code", None) == "AUTH4037"
    stored = client.store.load(client.key)
    assert stored is not None and stored.refreshable is False
    # known non-refreshable: the next call does not ask GSTN again
    with pytest.raises(OtpRequired) as again:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert again.value.reason == "refresh-refused"
    assert env.actions()["REFRESHTOKEN"] == 1
    assert env.recorder.kinds().count("needs-otp") == 2


def test_explicit_refresh_refused(env: Env) -> None:
    env.emu.portal.set_api_access(env.taxpayer.gstin, True, 6)
    client = env.client("cleartax")
    env.login(client)
    with pytest.raises(OtpRequired) as info:
        client.refresh()
    assert info.value.reason == "refresh-refused"


def test_revoked_on_portal(env: Env, gsp: str) -> None:
    client = env.client(gsp)
    env.login(client)
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    (session,) = env.emu.portal.sessions(client.gstin)
    env.emu.portal.revoke(client.gstin, session["session_id"])
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.reason == "revoked"
    assert client.store.load(client.key) is None
    assert "revoked" in env.recorder.kinds()


def test_api_access_disabled_means_revoked(env: Env) -> None:
    client = env.client("cleartax")
    env.login(client)
    env.emu.portal.set_api_access(client.gstin, False)
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.reason == "revoked"


def test_observed_expiry_is_learned(env: Env) -> None:
    """GSTN kills a token earlier than stated: the client records the real lifetime (pain point #1)."""
    lag = [0.0]

    def lagging_clock() -> Any:
        import datetime as dt

        return env.now() - dt.timedelta(minutes=lag[0])

    client = env.client("cleartax", clock=lagging_clock)
    env.login(client)
    # The emulator's token dies at 360 min; the client believes only 300 min passed.
    env.advance(minutes=361)
    lag[0] = 61
    # Refresh after expiry needs the dormant-window reading of GSTN's rules.
    env.emu.update_config(refresh_grace_minutes=120)
    got = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert got is not None
    session = client.session
    assert session is not None and session.refresh_count == 1
    assert session.observed_lifetime_minutes == 300
    assert session.effective_expires_at < session.expires_at
    assert client.store.load(client.key).observed_lifetime_minutes == 300  # type: ignore[union-attr]


# --------------------------------------------------------------------------- OTP handling


def test_authenticate_without_otp_parks(env: Env) -> None:
    client = env.client("vayana")
    with pytest.raises(OtpRequired) as info:
        client.authenticate()
    assert info.value.gstin == client.gstin and client.gstin in str(info.value)
    assert "authenticate(otp=" in str(info.value)

    class Later:
        calls = 0

        def get_otp(self, request: Any) -> str | None:
            Later.calls += 1
            assert request.gstin == client.gstin
            return None

    client.otp_provider = Later()
    with pytest.raises(OtpRequired) as info:
        client.authenticate()
    assert Later.calls == 1 and env.actions()["OTPREQUEST"] == 1
    assert env.recorder.kinds()[-2:] == ["otp-requested", "needs-otp"]
    # the OTP now arrives: the provider answers and no second OTPREQUEST is sent
    otp = env.latest_otp()
    client.otp_provider = Fixed(otp)
    client.authenticate()
    assert env.actions()["OTPREQUEST"] == 1 and env.actions()["AUTHTOKEN"] == 1


class Fixed:
    def __init__(self, otp: str) -> None:
        self.otp = otp

    def get_otp(self, request: Any) -> str | None:
        return self.otp


class FromEmulator:
    def __init__(self, env: Env) -> None:
        self.env = env

    def get_otp(self, request: Any) -> str | None:
        return self.env.latest_otp()


def test_data_call_logs_in_through_otp_provider(env: Env) -> None:
    from gspauth.otp import EmulatorOtp

    client = env.client("cleartax", otp_provider=EmulatorOtp(env.server, wait=2.0))
    got = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert got is not None
    assert env.actions()["OTPREQUEST"] == 1 and env.actions()["AUTHTOKEN"] == 1


def test_wrong_otp_and_attempt_limit(env: Env, gsp: str) -> None:
    client = env.client(gsp)
    client.request_otp()
    right = env.latest_otp()
    wrong = "000000" if right != "000000" else "111111"
    # every message, hint and attempts_left matches the state of the pending request
    with pytest.raises(InvalidOtp, match="2 attempt") as info:
        client.authenticate(wrong)
    assert info.value.attempts_left == 2 and "re-enter the OTP" in (info.value.hint or "")
    with pytest.raises(InvalidOtp, match="1 attempt") as info:
        client.authenticate(wrong)
    assert info.value.attempts_left == 1 and "re-enter the OTP" in (info.value.hint or "")
    with pytest.raises(InvalidOtp, match="attempt limit") as info:
        client.authenticate(wrong)
    assert info.value.attempts_left == 0 and "re-enter" not in (info.value.hint or "")
    assert "--resend" in (info.value.hint or "") and client.pending_otp() is None
    with pytest.raises(InvalidOtp) as info:  # the OTP is used up: GSTN has none pending any more
        client.authenticate(right)
    assert info.value.attempts_left == 0 and "--resend" in (info.value.hint or "")
    assert "refreshed" not in str(info.value) and "revoked" not in str(info.value)
    assert env.recorder.kinds().count("failed") == 4
    client.request_otp()
    client.authenticate(env.latest_otp())
    assert client.session is not None and client.pending_otp() is None


def test_session_cap(env: Env) -> None:
    clients = [env.client("cleartax", store=MemoryStore()) for _ in range(3)]
    for c in clients:
        env.login(c)
    extra = env.client("cleartax", store=MemoryStore())
    extra.request_otp()
    with pytest.raises(SessionLimitExceeded) as info:
        extra.authenticate(env.latest_otp())
    assert info.value.error_code == "AUTH403"
    assert info.value.hint and "session" in info.value.hint
    # an unattended caller (OTP provider, data call) gets OtpRequired and can park the GSTIN
    unattended = env.client("cleartax", store=MemoryStore(), otp_provider=FromEmulator(env))
    with pytest.raises(OtpRequired) as parked:
        unattended.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
    assert parked.value.reason == "session-cap" and "AUTH403" in str(parked.value)
    assert isinstance(parked.value.__cause__, SessionLimitExceeded)
    # logging one out frees a slot
    clients[0].logout()
    extra.request_otp()
    extra.authenticate(env.latest_otp())


# --------------------------------------------------------------------------- certificate


def test_expired_certificate_refused_unless_allowed(env: Env, tmp_path: Any) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old GSTN")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2021, 1, 1))
            .sign(key, hashes.SHA256()))
    path = tmp_path / "old.cer"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertificateExpired, match="current certificate"):
        env.client("cleartax", certificate=path)
    client = env.client("cleartax", certificate=str(path), allow_expired_certificate=True)
    assert client.gstin == env.taxpayer.gstin


# --------------------------------------------------------------------------- concurrency in one process


def test_threads_share_one_refresh(env: Env) -> None:
    client = env.client("cleartax")
    env.login(client)
    env.advance(minutes=350)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert env.actions()["REFRESHTOKEN"] == 1


def test_async_tasks_share_one_refresh(env: Env) -> None:
    store = MemoryStore()
    seed = env.client("vayana", store=store)
    env.login(seed)
    env.advance(minutes=350)

    async def main() -> None:
        async with env.aclient("vayana", store=store) as client:
            await asyncio.gather(*[client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
                                   for _ in range(6)])

    asyncio.run(main())
    assert env.actions()["REFRESHTOKEN"] == 1


def test_two_clients_one_store_reuse_refreshed_session(env: Env) -> None:
    """A client holding an old token (another worker refreshed) re-loads instead of giving up."""
    store = MemoryStore()
    a = env.client("cleartax", store=store)
    b = env.client("cleartax", store=store)
    env.login(a)
    b.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)  # b caches the first token
    a.refresh()  # GSTN invalidates the token b holds
    b.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert b.session is not None and b.session.auth_token == a.session.auth_token  # type: ignore[union-attr]
    assert env.actions()["REFRESHTOKEN"] == 1
    assert "revoked" not in env.recorder.kinds()


def test_consent_ledger_records_every_event(env: Env, tmp_path: Any) -> None:
    from gspauth.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.db")
    client = env.client("vayana", ledger=ledger)
    env.login(client)
    env.advance(minutes=350)
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    client.logout()
    kinds = [e.kind for e in ledger.query(gstin=client.gstin)]
    assert kinds == ["otp-requested", "consent", "established", "refreshed", "ended"]
    assert kinds == env.recorder.kinds()  # the observer hook saw the same events
    consent = ledger.query(kind="consent")[0]
    assert consent.txn and consent.ip_usr == "203.0.113.7" and consent.gsp == "vayana"
    assert ledger.verify() == 5
    ledger.close()


@pytest.mark.parametrize("gsp_id", ["cleartax", "vayana"])
def test_gsp_layer_refusal_is_typed(env: Env, gsp_id: str) -> None:
    """The GSP's own error shape goes through the plugin's map_error, not GSTN's table."""
    from gspauth.errors import ClientCredentialsError, GSPLayerError
    from tests.client.client_support import credentials_for

    good = credentials_for(gsp_id)
    bad = (good.replace(gsp_token="not-a-cleartax-token") if gsp_id == "cleartax"
           else good.replace(client_secret="0" * 32))
    client = env.client(gsp_id, credentials=bad)
    with pytest.raises((GSPLayerError, ClientCredentialsError)) as info:
        client.request_otp()
    assert info.value.gsp == gsp_id and info.value.hint
    assert "not-a-cleartax-token" not in str(info.value) and "0" * 32 not in str(info.value)
    assert env.actions().get("OTPREQUEST", 0) <= 1 and "otp-requested" not in env.recorder.kinds()


def test_evc_otp_request(env: Env) -> None:
    client = env.client("cleartax")
    env.login(client)
    pan = client.gstin[2:12]
    txn = client.request_evc_otp(pan)
    assert len(txn) == 32
    evc = env.emu.outbox.otps(client.gstin, purpose="evc")
    assert evc and evc[-1]["pan"] == pan and evc[-1]["form_type"] == "R1"
    from gspauth.errors import InvalidParameter

    with pytest.raises(InvalidParameter):
        client.request_evc_otp("not-a-pan")


def test_async_cancel_while_waiting_for_the_store_lock_does_not_leak_it(env: Env) -> None:
    """A task cancelled (e.g. by wait_for) while its worker thread waits for the store lock must
    not leave that lock held forever once the worker gets it."""
    store = MemoryStore()
    client_key = env.client("cleartax", store=store).key
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.lock(client_key, 10):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(5)

    async def main() -> None:
        async with env.aclient("cleartax", store=store) as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.ensure_session(), 0.3)
            release.set()
            await asyncio.sleep(0.3)  # the abandoned worker gets the lock now

    asyncio.run(main())
    t.join(5)
    # from the main thread: a fresh worker thread could reuse the dead worker's thread id
    with store.lock(client_key, 2):
        pass


def test_async_large_payload_crypto_runs_off_the_event_loop(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encrypting a multi-megabyte RETSAVE chunk takes tens of
    ms: the async client must not do it on the event-loop thread."""
    from gspauth import protocol

    store = MemoryStore()
    env.login(env.client("cleartax", store=store))
    chunk = synthetic.gstr1_chunks(1500, seed=3, supplier_gstin=env.taxpayer.gstin, ret_period=PERIOD,
                                   invoices_per_chunk=1500)[0]
    threads: dict[str, set[str]] = {"wrap": set()}
    wrap = protocol.wrap_payload_content

    def spy_wrap(*a: Any) -> Any:
        threads["wrap"].add(threading.current_thread().name)
        return wrap(*a)

    monkeypatch.setattr(protocol, "wrap_payload_content", spy_wrap)

    async def main() -> tuple[str, Any]:
        async with env.aclient("cleartax", store=store) as client:
            ref = await client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period=PERIOD)
            return threading.current_thread().name, ref

    loop_thread, ref = asyncio.run(main())
    assert len(protocol.encode_payload(chunk)) > 256 * 1024
    assert threads["wrap"] and loop_thread not in threads["wrap"]
    assert ref.get("reference_id")
