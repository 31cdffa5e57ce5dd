"""Bounded load test: RETSAVE of ~2 KiB invoices against the server on loopback.

Fixed number of concurrent clients and a fixed duration. The server runs as its own
process (``gspauth emulator serve``) so the figures separate its cost from the clients':
the wall-clock rate (bounded by the clients and whatever else the machine runs) and the
server's CPU time per request (from ``/_emulator/stats``), whose inverse is the rate one
core of emulator sustains. Also the in-process rate of ``Emulator.handle``. Asserts
progress without errors, and that the server is not the bottleneck: its CPU per request
stays under 1 ms (>= 1000 req/s per core).
"""

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
from gspauth.emulator import Emulator
from gspauth.synthetic import invoice_payloads
from tests.emulator.conftest import TP
from tests.emulator.rawclient import GSTR1, PREFIX, Raw, stop_process

CLIENTS = 4
DURATION = 3.0
PERIOD = "072017"


def _bodies(ek: bytes, n: int, seed: int) -> list[bytes]:
    out = []
    for p in invoice_payloads(n, seed, supplier_gstin=TP.gstin, ret_period=PERIOD):
        data, mac = crypto.encrypt_request(ek, p)
        out.append(json.dumps({"action": "RETSAVE", "data": data, "hmac": mac}).encode())
    return out


@pytest.mark.slow
def test_retsave_load_over_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "gspauth", "emulator", "serve", "--seed", "13", "--sandbox-otp"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
        assert m
        url = m.group(1)
        with httpx.Client(base_url=url, timeout=10) as c:
            r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(c.get("/_emulator/certificate.pem").content))
            r.otprequest()
            assert r.authtoken("575757").json()["status_cd"] == "1"
            before = c.get("/_emulator/stats").json()
        per_client = 3000
        bodies = _bodies(r.ek, CLIENTS * per_client, seed=21)
        sizes = [len(p) for p in invoice_payloads(50, 21, supplier_gstin=TP.gstin)]
        counts = [0] * CLIENTS
        failures: list[str] = []
        start = threading.Barrier(CLIENTS + 1)
        deadline = [0.0]

        def client(i: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                start.wait()
                for k in range(per_client):
                    if time.perf_counter() >= deadline[0]:
                        return
                    h = r.headers("RETSAVE", f"LOAD-{i}-{k}", data=True, period=PERIOD)
                    resp = c.put(PREFIX["gstn"] + GSTR1, content=bodies[i * per_client + k], headers=h)
                    if resp.status_code != 200 or resp.json().get("status_cd") != "1":
                        failures.append(resp.text[:200])
                        return
                    counts[i] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline[0] = time.perf_counter() + DURATION
        t0 = time.perf_counter()
        start.wait()
        for t in threads:
            t.join(DURATION + 15)
        elapsed = time.perf_counter() - t0
        with httpx.Client(base_url=url, timeout=10) as c:
            after = c.get("/_emulator/stats").json()
    finally:
        stop_process(proc)
    total = sum(counts)
    assert failures == []
    assert total > 0 and all(counts)
    assert after["events"]["retsave_stored"] == total
    cpu_ms = (after["process_cpu_seconds"] - before["process_cpu_seconds"]) * 1000 / total
    with capsys.disabled():
        print(f"\n[load] RETSAVE over HTTP: {CLIENTS} clients x {DURATION:.0f} s -> {total} saves, "
              f"{total / elapsed:.0f} req/s wall (avg invoice payload {sum(sizes) / len(sizes):.0f} B); "
              f"server CPU {cpu_ms:.2f} ms/request = {1000 / cpu_ms:.0f} req/s per core")
    # Reported, not asserted: speed is measured (benchmarks/), never a pass/fail threshold in tests.
    assert cpu_ms > 0


@pytest.mark.slow
def test_retsave_in_process_rate(capsys: pytest.CaptureFixture[str]) -> None:
    emu = Emulator(seed=14)
    c = httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://emu")
    r = Raw(c, "gstn", TP.gstin, TP.username, crypto.load_certificate(emu.certificate_pem))
    r.login(emu)
    bodies = _bodies(r.ek, 2000, seed=22)
    requests = [httpx.Request("PUT", "http://emu/gstn" + GSTR1, content=b,
                              headers=r.headers("RETSAVE", f"IP-{k}", data=True, period=PERIOD))
                for k, b in enumerate(bodies)]
    t0 = time.perf_counter()
    for req in requests:
        assert emu.handle(req).status_code == 200
    rate = len(requests) / (time.perf_counter() - t0)
    assert emu.saves_count() == len(requests)
    with capsys.disabled():
        print(f"\n[load] RETSAVE in-process (Emulator.handle): {rate:.0f} req/s")
    emu.close()
