"""Workers on many machines, played by separate OS processes sharing one PostgreSQL store,
against the emulator server on loopback: one REFRESHTOKEN for a crowd, keep-alive run three
times at once refreshing each session once, and a two-step consent split over three processes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_workers as workers

from gspauth.emulator import defaults
from gspauth.session import SessionKey
from gspauth.store.postgres import PostgresStore
from gspauth.types import Api
from tests.client.client_support import Env
from tests.processes import gather, worker, worker_processes

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4


def _cli_env(store_key: bytes, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GSPAUTH_OTP", "GSPAUTH_CRED_", "GSPAUTH_PROFILE"))}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               GSPAUTH_STORE_KEY=base64.b64encode(store_key).decode(), GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN,
               **extra)
    return env


def _taxpayer(env: Env, n: int) -> Any:
    tp = defaults.SampleTaxpayer(defaults.make_gstin("27", f"AAHCP{n:04d}K"), f"pg.{n}", "+919800000001",
                                 "t@example.invalid")
    env.emu.register_taxpayer(tp.gstin, tp.username, access_duration=dt.timedelta(days=30))
    return tp


def test_processes_refreshing_one_gstin_send_one_refreshtoken(env: Env, postgres_url: str) -> None:
    store_key = os.urandom(32)
    first = env.client("cleartax", store=PostgresStore(postgres_url, key=store_key))
    env.login(first)
    first.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
    env.advance(minutes=350)  # every worker now finds the token inside the margin
    env.emu.reset_stats()
    offset = (env.now() - dt.datetime.now(dt.timezone.utc)).total_seconds()
    args = (postgres_url, store_key, env.url, env.certificate, offset, first.gstin, first.username)
    ctx = worker_processes()
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [worker(workers.refresh_worker, args, barrier, results) for _ in range(WORKERS)]
    outcomes = gather(procs, results, timeout=90)
    assert [o[0] for o in outcomes] == ["ok"] * WORKERS, outcomes
    assert len({o[1] for o in outcomes}) == 1  # all use the one refreshed token
    actions = env.actions()
    assert actions.get("REFRESHTOKEN", 0) == 1 and "AUTHTOKEN" not in actions  # counted by the emulator
    assert actions.get("B2B", 0) == WORKERS
    stored = PostgresStore(postgres_url, key=store_key)
    session = stored.load(first.key)
    assert session is not None and session.refresh_count == 1
    assert hashlib.sha256(session.auth_token.encode()).hexdigest() == outcomes[0][1]
    assert stored.ledger().count(gstin=first.gstin, kind="refreshed") == 1  # one chain, one refresh
    stored.close()


def test_keep_alive_run_three_times_at_once_refreshes_each_session_once(env: Env, postgres_url: str,
                                                                       tmp_path: Path) -> None:
    store_key = os.urandom(32)
    certificate = tmp_path / "gstn.pem"
    certificate.write_bytes(env.certificate)
    store = PostgresStore(postgres_url, key=store_key)
    # three consents made five hours ago (by this machine's clock): one hour left, due under --every 1h
    five_hours_ago = lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=5)
    keys = []
    for n in range(3):
        tp = _taxpayer(env, 10 + n)
        client = env.client("cleartax", store=store, taxpayer=tp, certificate=str(certificate), clock=five_hours_ago)
        env.login(client)
        keys.append(client.key)
    env.emu.reset_stats()
    cmd = [sys.executable, "-m", "gspauth", "session", "keep-alive", "--store", postgres_url, "--every", "1h", "--json"]
    procs = [subprocess.Popen(cmd, env=_cli_env(store_key), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    states: dict[str, list[str]] = {}
    for out, _ in outputs:
        for s in json.loads(out)["sessions"]:
            states.setdefault(s["id"], []).append(s["state"])
    assert sorted(states) == sorted(k.id for k in keys)
    for key_id, seen in states.items():
        assert sorted(seen) == ["not-due", "not-due", "refreshed"], (key_id, seen)  # exactly one refreshed it
    assert env.actions().get("REFRESHTOKEN", 0) == 3  # one per session, counted by the emulator
    for key in keys:
        stored = store.load(key)
        assert stored is not None and stored.refresh_count == 1
    store.close()


def test_two_step_consent_split_over_three_processes(env: Env, postgres_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store_key = os.urandom(32)
    certificate = tmp_path / "gstn.pem"
    certificate.write_bytes(env.certificate)
    tp = _taxpayer(env, 20)
    key = SessionKey("cleartax", "sandbox", tp.gstin, tp.username)
    target = ["--store", postgres_url, "--gsp", "cleartax", "--gstin", tp.gstin, "--username", tp.username,
              "--host", f"{env.url}/cleartax", "--certificate", str(certificate)]  # fmt: skip
    cli_env = _cli_env(store_key)
    # process 1: OTPREQUEST, recorded as pending in the shared store; parks (75)
    first = subprocess.run([sys.executable, "-m", "gspauth", "login", *target, "--no-prompt"], env=cli_env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 75, first.stderr
    assert env.actions()["OTPREQUEST"] == 1
    # process 3: a worker blocked until the consent lands
    waiter_code = (
        "import hashlib, sys, time\n"
        "from gspauth.session import SessionKey\n"
        "from gspauth.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "s = store.wait_for_session(SessionKey.from_id(sys.argv[2]), after=None, timeout=90)\n"
        "print(time.time(), hashlib.sha256(s.auth_token.encode()).hexdigest() if s else None, flush=True)\n"
    )
    waiter = subprocess.Popen([sys.executable, "-c", waiter_code, postgres_url, key.id], env=cli_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout is not None and waiter.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        assert waiter.poll() is None  # still waiting: no session yet
        # process 2: the OTP arrives on another "machine", which finishes the consent
        second = subprocess.run([sys.executable, "-m", "gspauth", "login", *target, "--otp", env.latest_otp(tp.gstin),
                                 "--json"], env=cli_env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["state"] == "logged-in"
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    woke_at, digest = out.split()
    store = PostgresStore(postgres_url, key=store_key)
    session = store.load(key)
    assert session is not None and digest == hashlib.sha256(session.auth_token.encode()).hexdigest()
    saved_at = store._db.read("SELECT extract(epoch FROM updated_at) FROM {schema}.sessions WHERE id = %s",
                              (key.id,))[0][0]
    assert float(woke_at) - float(saved_at) < 1.0  # woken by NOTIFY, not a slow poll
    assert env.actions()["OTPREQUEST"] == 1 and env.actions()["AUTHTOKEN"] == 1
    assert store.load_pending_otp(key) is None
    assert store.ledger().count(gstin=tp.gstin, kind="consent") == 1
    store.close()
    # the shared ledger from the command line: every process's events in one verified chain
    from gspauth.cli import main

    capsys.readouterr()
    assert main(["consent", "log", "--store", postgres_url, "--gstin", tp.gstin, "--json"]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)]
    assert kinds[0] == "otp-requested" and "consent" in kinds and "established" in kinds
    assert main(["consent", "log", "--store", postgres_url, "--verify"]) == 0
    assert "hash chain verified" in capsys.readouterr().out
