"""``gspauth file`` / ``gspauth journal`` as separate OS processes against the emulator server."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gspauth.emulator import defaults
from tests.filer import kill_trials
from tests.filer.support import ROOT, World, assert_exactly_once, world  # noqa: F401


def env_for(world: World, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GSPAUTH_OTP", "GSPAUTH_OTP_DIR", "GSPAUTH_OTP_COMMAND")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               GSPAUTH_HOME=str(world.tmp / "home"), GSPAUTH_STORE_KEY=base64.b64encode(world.store_key).decode(),
               GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN, **extra)
    return env


def gspauth(world: World, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gspauth", *args], env=env_for(world, **extra), capture_output=True,
                          text=True, timeout=300)


def target(world: World) -> list[str]:
    return ["--gsp", "cleartax", "--host", f"{world.url}/cleartax", "--certificate", str(world.certificate),
            "--store", str(world.tmp / "sessions.db")]


def test_parked_gstin_resumes_from_a_second_process_with_the_otp(world: World) -> None:
    a, b = world.taxpayers(2)
    path, lines = world.write_jsonl("in.jsonl", {a: 60, b: 60})
    args = ["file", str(path), *target(world), "--taxpayers", str(world.taxpayers_file()), "--journal",
            str(world.tmp / "j.db"), "--json"]
    first = gspauth(world, *args)
    assert first.returncode == 75, first.stderr
    report = json.loads(first.stdout)
    assert report["outcome"] == "parked" and set(report["parked"]) == {a, b}
    command = report["parked"][a]["command"]
    assert f"--gstin {a}" in command and "--otp <OTP>" in command and f"--host {world.url}/cleartax" in command
    otprequests = world.emu.stats["actions"]["OTPREQUEST"]
    # the operator delivers each OTP from another process, with the command the report gave
    for gstin in (a, b):
        cmd = report["parked"][gstin]["command"].replace("<OTP>", world.emu.outbox.latest_otp(gstin)).split()
        done = gspauth(world, *cmd[1:], "--store", str(world.tmp / "sessions.db"))
        assert done.returncode == 0, done.stderr
    assert world.emu.stats["actions"]["OTPREQUEST"] == otprequests  # the pending requests were answered
    second = gspauth(world, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["outcome"] == "complete"
    assert_exactly_once(world, lines)
    status = gspauth(world, "journal", "status", "--journal", str(world.tmp / "j.db"), "--json")
    assert json.loads(status.stdout)["counts"]["invoices"] == {"accepted": 120}
    export = gspauth(world, "journal", "export", "--journal", str(world.tmp / "j.db"), "--format", "csv")
    assert export.returncode == 0 and export.stdout.count("\n") == 121 and "accepted" in export.stdout


def test_rejected_records_exit_1_and_are_listed(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 10})
    path.write_bytes(b"".join(lines) + b"not json\n")
    r = gspauth(world, "file", str(path), *target(world), "--taxpayers", str(world.taxpayers_file()),
                GSPAUTH_OTP_COMMAND=f"{sys.executable} -c \"import httpx;print(httpx.get('{world.url}/_emulator/outbox"
                                    f"/otp',params={{'gstin':'{a}'}}).json()['latest'])\"")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{path}:11: json:" in r.stdout and "10 accepted" in r.stdout and "Traceback" not in r.stderr


def test_a_dry_run_exits_1_on_invalid_records_and_sends_nothing(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 5})
    journal = str(world.tmp / "j.db")
    saves = world.emu.stats["actions"].get("RETSAVE", 0)
    clean = gspauth(world, "file", str(path), *target(world), "--journal", journal, "--dry-run", "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["outcome"] == "dry-run"
    path.write_bytes(b"".join(lines) + b"not json\n")
    bad = gspauth(world, "file", str(path), *target(world), "--journal", journal, "--dry-run")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"{path}:6: json:" in bad.stdout and "Traceback" not in bad.stderr
    assert world.emu.stats["actions"].get("RETSAVE", 0) == saves  # validation only


def test_missing_input_or_settings_are_one_line_errors(world: World) -> None:
    r = gspauth(world, "file", str(world.tmp / "nope.jsonl"), *target(world))
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
    csv = world.tmp / "b2b.csv"
    csv.write_text("x\n")
    r = gspauth(world, "file", str(csv), *target(world))
    assert r.returncode == 1 and "--gstin and --fp" in r.stderr


def test_ctrl_c_stops_cleanly_and_the_next_run_completes(world: World) -> None:
    taxpayers = world.taxpayers(2)
    path, lines = world.write_jsonl("in.jsonl", {g: 400 for g in taxpayers})
    world.emu.set_faults(latency_ms=60, actions=("RETSAVE",))
    otp = (f"{sys.executable} -c \"import httpx,os;print(httpx.get('{world.url}/_emulator/outbox/otp',"
           f"params={{'gstin':os.environ['GSPAUTH_OTP_GSTIN']}}).json()['latest'])\"")
    args = ["file", str(path), *target(world), "--taxpayers", str(world.taxpayers_file()), "--journal",
            str(world.tmp / "j.db"), "--max-chunk-bytes", "20000", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "gspauth", *args], env=env_for(world, GSPAUTH_OTP_COMMAND=otp),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while world.emu.stats["actions"].get("RETSAVE", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["outcome"] == "interrupted" and 0 < report["totals"]["saved"] < 800
    assert "stopping after the chunks in flight" in err and "Traceback" not in err
    world.emu.set_faults(latency_ms=0)
    done = gspauth(world, *args, GSPAUTH_OTP_COMMAND=otp)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(world, lines)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_sigkill_at_a_random_point_loses_and_doubles_nothing(seed: int, tmp_path: Path) -> None:
    result: dict[str, Any] = kill_trials.trial(seed, tmp_path, invoices=450, quiet=True)
    assert result["runs"] >= 2
