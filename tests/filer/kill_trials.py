"""SIGKILL the filer at random points, resume, and prove from the emulator's stored state that
every invoice is there exactly once.

The test suite runs a few trials (``tests/filer/test_file_cli.py``); for the documented run::

    .venv/bin/python -m tests.filer.kill_trials --trials 20

Each trial: an emulator server (with some latency and faults, so kills land mid-exchange), a
JSONL file of several GSTINs, ``gspauth file`` started as a subprocess and killed with SIGKILL
after a random delay, then ``gspauth file`` run again (and again, while it says "run again")
until it completes; then the emulator's stored invoices are compared with the input.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gspauth.emulator import ThreadedEmulator, defaults
from gspauth.emulator.config import EmulatorConfig, FaultConfig
from tests.filer.support import ROOT, World, assert_exactly_once


def _env(world: World, home: Path) -> dict[str, str]:
    import base64

    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               GSPAUTH_HOME=str(home), GSPAUTH_STORE_KEY=base64.b64encode(world.store_key).decode(),
               GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN, GSPAUTH_OTP_COMMAND=(
                   f"{sys.executable} -c \"import httpx,os;print(httpx.get('{world.url}/_emulator/outbox/otp',"
                   f"params={{'gstin':os.environ['GSPAUTH_OTP_GSTIN']}}).json()['latest'])\""))
    return env


def file_command(world: World, path: Path) -> list[str]:
    return [sys.executable, "-m", "gspauth", "file", str(path), "--gsp", "cleartax", "--host",
            f"{world.url}/cleartax", "--certificate", str(world.certificate), "--taxpayers",
            str(world.taxpayers_file()), "--store", str(world.tmp / "sessions.db"), "--journal",
            str(world.tmp / "journal.db"), "--max-chunk-bytes", "40000", "--concurrency", "6", "--quiet",
            "--attempts", "8"]


def trial(seed: int, tmp: Path, *, invoices: int = 600, gstins: int = 3, quiet: bool = False) -> dict[str, Any]:
    """One kill-and-resume trial; raises AssertionError if anything is lost or doubled."""
    rng = random.Random(seed)
    faults = FaultConfig(latency_ms=15, latency_jitter_ms=20, error_5xx_rate=0.05, drop_after_rate=0.05,
                         actions=("RETSAVE", "RETSTATUS"))
    server = ThreadedEmulator(config=EmulatorConfig(seed=seed, faults=faults, retstatus_delay_seconds=1)).start()
    try:
        world = World(server, tmp, os.urandom(32))
        taxpayers = world.taxpayers(gstins, prefix="AAACK")
        path, lines = world.write_jsonl("in.jsonl", {g: invoices // gstins for g in taxpayers}, seed=seed)
        env = _env(world, tmp / "home")
        cmd = file_command(world, path)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.5, 4.0)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
        runs = 1
        while True:
            runs += 1
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                break
            assert done.returncode == 75 and runs < 8, f"run {runs} exited {done.returncode}: {done.stderr[-2000:]}"
        assert_exactly_once(world, lines)
        result = {"seed": seed, "killed_after_s": round(delay, 2), "killed": killed, "runs": runs,
                  "invoices": len(lines), "replayed": server.emulator.stats["events"].get("retsave_replayed", 0)}
        if not quiet:
            print(result, flush=True)
        return result
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    killed = 0
    for n in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            killed += trial(args.seed + n, Path(tmp))["killed"]
    print(f"{args.trials} trials, {killed} killed mid-run, every invoice stored exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
