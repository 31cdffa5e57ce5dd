"""The emulator as a real HTTP server: ThreadedEmulator, faults on the wire, concurrency, the CLI process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, ThreadedEmulator, defaults
from tests.emulator.conftest import SEED, TP
from tests.emulator.rawclient import GSTR1, Raw, b2b_payload, error_code, stop_process


def test_threaded_emulator_serves_the_full_flow() -> None:
    with ThreadedEmulator(seed=SEED) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url) and server.port != 0
        with httpx.Client(base_url=server.url, timeout=10) as c:
            cert = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
            for layer in ("gstn", "cleartax", "vayana"):
                r = Raw(c, layer, TP.gstin, TP.username, cert, now=server.emulator.clock.now)
                assert r.otprequest().json() == {"status_cd": "1"}
                otp = c.get("/_emulator/outbox/otp", params={"gstin": TP.gstin}).json()["latest"]
                assert r.authtoken(otp).json()["status_cd"] == "1"
                assert r.open(r.retsave(b2b_payload(TP.gstin, "072017")))["reference_id"]
            c.post("/_emulator/clock", json={"advance_seconds": 7 * 3600})
            assert error_code(r.get(GSTR1, "B2B")) == "AUTH4038"  # the admin clock drives the server
            stats = c.get("/_emulator/stats").json()
            assert stats["by_layer"]["vayana"]["RETSAVE"] == 1 and stats["requests"]["admin"] >= 4
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/_emulator/health", timeout=2)  # stopped


def test_dropped_connection_and_http_faults_on_the_wire() -> None:
    with ThreadedEmulator(seed=SEED) as server, httpx.Client(base_url=server.url, timeout=5) as c:
        c.post("/_emulator/faults", json={"drop_rate": 1.0})
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"{}")
        assert c.get("/_emulator/health").status_code == 200  # admin is never faulted
        c.post("/_emulator/faults", json={"drop_rate": 0.0, "rate_429": 1.0})
        resp = c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"{}")
        assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
        c.post("/_emulator/faults", json={"rate_429": 0.0, "error_5xx_rate": 1.0, "error_5xx_status": 502})
        assert c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"{}").status_code == 502
        c.post("/_emulator/faults", json={"error_5xx_rate": 0.0, "latency_ms": 150})
        t = time.perf_counter()
        assert error_code(c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"{}")) == "AUT4031"
        assert time.perf_counter() - t >= 0.15
        assert c.get("/_emulator/stats").json()["faults"] == {"drop": 1, "429": 1, "502": 1}


def test_key_rotation_and_expired_certificate_on_the_wire() -> None:
    with ThreadedEmulator(seed=SEED, clock_frozen=True) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        old = crypto.load_certificate(c.get("/_emulator/certificate.der").content)
        assert c.post("/_emulator/keys/rotate", json={"overlap_days": 2}).status_code == 200
        new = crypto.load_certificate(c.get("/_emulator/certificate.pem").content)
        assert new.fingerprint_sha256 != old.fingerprint_sha256
        r = Raw(c, "cleartax", TP.gstin, TP.username, old)
        assert r.otprequest().json() == {"status_cd": "1"}  # overlap
        c.post("/_emulator/clock", json={"advance_seconds": 3 * 86400})
        resp = r.otprequest()
        assert error_code(resp) == "TEC4002" and "download the current one" in resp.json()["error"]["message"]
        r.cert = new
        assert r.otprequest().json() == {"status_cd": "1"}


def test_fault_rates_are_seeded() -> None:
    def run() -> list[int]:
        emu = Emulator(seed=SEED)
        emu.set_faults(error_5xx_rate=0.3, rate_429=0.3)
        c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://e")
        return [c.get("/gstn/x").status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert {503, 429, 403} <= set(first)  # 403: AUT4031, no clientid


def test_concurrent_logins_and_saves_are_consistent() -> None:
    with ThreadedEmulator(seed=SEED) as server:
        emu = server.emulator
        emu.update_config(max_sessions_per_user=50)
        errors: list[str] = []
        refs: list[str] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=20) as c:
                    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
                    r.ak = crypto.generate_app_key()
                    # OTPs are per (GSP client, user): serialise OTP request + use for this test
                    with lock:
                        r.otprequest()
                        assert r.authtoken(emu.outbox.latest_otp(TP.gstin)).json()["status_cd"] == "1"
                    for k in range(10):
                        ref = r.open(r.retsave(b2b_payload(TP.gstin, "072017", 1, start=n * 100 + k)))["reference_id"]
                        with lock:
                            refs.append(ref)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(refs) == len(set(refs)) == 60
        assert len(emu.saved_records(TP.gstin, "072017", "b2b")) == 60
        assert len(emu.portal.sessions(TP.gstin)) == 6


def test_cli_serve_runs_as_a_separate_process(tmp_path: object) -> None:
    state = str(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gspauth", "emulator", "serve", "--port", "0", "--seed", "12", "--state-dir", state,
         "--sandbox-otp", "--fault-actions", "RETSTATUS,FILEDET", "--slow-ms", "5", "--retstatus-delay", "7",
         "--max-body-bytes", "2000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert m, first + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = m.group(1)
        rest = [proc.stdout.readline() for _ in range(3)]
        assert f"{url}/_emulator/certificate.pem" in rest[0]
        assert os.path.join(state, "gstn-certificate.pem") in rest[1]
        with open(os.path.join(state, "gstn-certificate.pem"), "rb") as fh:
            cert_file = fh.read()
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get("/_emulator/certificate.pem").content == cert_file
            faults = c.get("/_emulator/faults").json()
            assert faults["actions"] == ["RETSTATUS", "FILEDET"] and faults["slow_ms"] == 5
            config = c.get("/_emulator/config").json()
            assert config["retstatus_delay_seconds"] == 7 and config["max_request_body_bytes"] == 2_000_000
            r = Raw(c, "cleartax", TP.gstin, TP.username, crypto.load_certificate(cert_file))
            r.otprequest()
            assert r.authtoken(defaults.SANDBOX_OTP).json()["status_cd"] == "1"
            assert r.open(r.retsave(b2b_payload(TP.gstin, "072017")))["reference_id"]
        with open(os.path.join(state, "outbox-otp.jsonl"), encoding="utf-8") as fh:
            assert json.loads(fh.readline())["otp"] == defaults.SANDBOX_OTP
        with open(os.path.join(state, "url"), encoding="utf-8") as fh:
            assert fh.read().strip() == url
    finally:
        stop_process(proc)
    assert proc.returncode == 0


def test_server_redacts_through_the_one_redaction_module() -> None:
    """The access log is filtered by gspauth.redact's filter (once), not by a copy of it."""
    import logging

    from gspauth.emulator import server as server_module
    from gspauth.redact import RedactingFilter

    assert not hasattr(server_module, "RedactingFilter") and not hasattr(server_module, "redact_url")
    server_module._make_server(Emulator(seed=SEED), access_log=True)
    server_module._make_server(Emulator(seed=SEED), access_log=True)  # idempotent
    for name in ("uvicorn.access", "uvicorn.error"):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/gstn/files/" + "ab" * 16 + "/x.tar.gz?token=t0k3n&a=1",
                                "1.1", 200), None)  # fmt: skip
    assert filters[0].filter(record)
    line = record.getMessage()
    assert "t0k3n" not in line and "ab" * 16 not in line and "token=[secure]" in line and "a=1" in line


def test_cli_serve_refuses_bad_fault_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from gspauth.cli import main

    assert main(["emulator", "serve", "--drop-after-rate", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gspauth emulator serve: drop_after_rate must be") and "Traceback" not in err
    assert main(["emulator", "serve", "--max-body-bytes", "0"]) == 2
