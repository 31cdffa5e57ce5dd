"""Injected faults (issue 10 item 7): the connection dropped *after* the save was applied,
slow requests for client timeouts, faults limited to some actions, and all of them together
at 10-30 % rates against a retrying client on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import DroppedConnection, Emulator, ThreadedEmulator
from tests.emulator.conftest import SEED, TP
from tests.emulator.rawclient import GSTR1, Raw, b2b_payload

P = "072017"


def test_drop_after_apply_in_process(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    emu.set_faults(drop_after_rate=1.0, actions=["RETSAVE"])
    payload = b2b_payload(TP.gstin, P, 3)
    with pytest.raises(DroppedConnection):
        r.retsave(payload, txn="AFTER-1")
    # the client saw a transport error, yet the save is stored
    assert len(emu.saved_records(TP.gstin, P, "b2b")) == 3 and emu.saves_count() == 1
    assert emu.stats["faults"] == {"drop_after": 1}
    assert r.open(r.get(GSTR1, "B2B"))["b2b"][0]["inv"][2]["inum"] == "INV000003"  # GETs are not faulted
    emu.set_faults(drop_after_rate=0.0)
    first = r.open(r.retsave(payload, txn="AFTER-1"))["reference_id"]  # the retry, same txn
    assert emu.saves_count() == 1 and emu.stats["events"]["retsave_replayed"] == 1
    ref_status = r.open(r.get("/taxpayerapi/v1.0/returns", "RETSTATUS", ref_id=first))
    assert ref_status["status_cd"] == "P"


def test_faults_limited_to_actions_and_validated(emu: Emulator, make: Callable[..., Raw], client: httpx.Client) -> None:
    faults = client.post("/_emulator/faults", json={"error_5xx_rate": 1.0, "actions": ["RETSAVE"]}).json()
    assert faults["actions"] == ["RETSAVE"] and faults["drop_after_rate"] == 0.0
    r = make()
    r.login(emu)  # OTPREQUEST and AUTHTOKEN untouched
    assert r.retsave(b2b_payload(TP.gstin, P)).status_code == 503
    assert emu.stats["faults"] == {"503": 1}
    for bad in ({"drop_after_rate": 1.5}, {"slow_ms": -1}, {"actions": "RETSAVE"}, {"no_such_fault": 1},
                {"slow_rate": True}):
        resp = client.post("/_emulator/faults", json=bad)
        assert resp.status_code == 400, bad
    assert client.get("/_emulator/faults").json()["error_5xx_rate"] == 1.0  # unchanged by refused updates


def test_slow_request_in_process_is_delayed_then_processed(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    emu.set_faults(slow_rate=1.0, slow_ms=120, actions=["RETSAVE"])
    t = time.perf_counter()
    assert r.open(r.retsave(b2b_payload(TP.gstin, P)))["reference_id"]
    assert time.perf_counter() - t >= 0.12
    assert emu.stats["faults"] == {"slow": 1}


def _login_on(c: httpx.Client, server: ThreadedEmulator) -> Raw:
    emu = server.emulator
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem), now=emu.clock.now)
    r.login(emu)
    return r


def test_drop_after_and_timeout_on_the_wire() -> None:
    with ThreadedEmulator(seed=SEED) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        r = _login_on(c, server)
        emu = server.emulator
        c.post("/_emulator/faults", json={"drop_after_rate": 1.0, "actions": ["RETSAVE"]})
        payload = b2b_payload(TP.gstin, P, 2)
        with pytest.raises(httpx.RemoteProtocolError):
            r.retsave(payload, txn="WIRE-1")
        assert emu.saves_count() == 1  # applied before the drop
        # a slow save: the client's timeout trips, the emulator stores it anyway
        c.post("/_emulator/faults", json={"drop_after_rate": 0.0, "slow_rate": 1.0, "slow_ms": 400})
        with pytest.raises(httpx.ReadTimeout):
            r.retsave(b2b_payload(TP.gstin, P, 1, start=10), txn="WIRE-2", timeout=0.15)
        deadline = time.monotonic() + 5
        while emu.saves_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.saves_count() == 2
        c.post("/_emulator/faults", json={"slow_rate": 0.0})
        refs = {r.open(r.retsave(payload, txn="WIRE-1"))["reference_id"],
                r.open(r.retsave(b2b_payload(TP.gstin, P, 1, start=10), txn="WIRE-2"))["reference_id"]}
        assert len(refs) == 2 and emu.saves_count() == 2
        assert c.get("/_emulator/stats").json()["faults"] == {"drop_after": 1, "slow": 1}


def test_every_fault_at_realistic_rates_with_a_retrying_client() -> None:
    """30 % of saves hit some fault; a client that retries with the same txn stores each exactly once."""
    with ThreadedEmulator(seed=SEED) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        r = _login_on(c, server)
        c.post("/_emulator/faults", json={"error_5xx_rate": 0.08, "rate_429": 0.06, "retry_after_seconds": 0,
                                         "drop_rate": 0.06, "drop_after_rate": 0.06, "slow_rate": 0.06,
                                         "slow_ms": 300, "actions": ["RETSAVE"]})
        refs = []
        for n in range(60):
            payload = b2b_payload(TP.gstin, P, 1, start=n)
            for _attempt in range(12):
                try:
                    resp = r.retsave(payload, txn=f"MIX-{n}", timeout=0.15)
                except (httpx.TransportError, httpx.TimeoutException):
                    continue
                if resp.status_code in (429, 503):
                    continue
                refs.append(r.open(resp)["reference_id"])
                break
            else:
                pytest.fail(f"save {n} never got through")
        emu = server.emulator
        deadline = time.monotonic() + 5  # a timed-out slow save may still be finishing
        while emu.saves_count() < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(set(refs)) == 60 and emu.saves_count() == 60
        assert len(emu.saved_records(TP.gstin, P, "b2b")) == 60
        faults = c.get("/_emulator/stats").json()["faults"]
        assert set(faults) == {"503", "429", "drop", "drop_after", "slow"}, faults
        assert 0.10 <= sum(faults.values()) / (60 + sum(faults.values())) <= 0.40
