"""Consent across processes, from the command line, against the emulator server on loopback.

Each ``gspauth`` here runs as its own OS process: the two-step OTP must survive between them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gspauth.emulator import defaults

PERIOD = "072017"


def taxpayer(emu: Any, n: int) -> Any:
    """A taxpayer of our own in the module's emulator (30-day API access)."""
    tp = defaults.SampleTaxpayer(defaults.make_gstin("27", f"AAHCT{n:04d}K"), f"handoff.{n}", "+919800000001",
                                 "t@example.invalid")
    emu.emulator.register_taxpayer(tp.gstin, tp.username)
    return tp


def target(emu: Any, tp: Any) -> list[str]:
    return ["--gsp", "cleartax", "--gstin", tp.gstin, "--username", tp.username,
            "--host", f"{emu.url}/cleartax", "--certificate", str(emu.certificate)]  # fmt: skip


@pytest.fixture
def run(subprocess_env: Any, cli_env: Path) -> Any:
    """``run(*argv, **env)``: ``gspauth ARGV`` in a new process; returns the CompletedProcess."""

    def go(*argv: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        env = subprocess_env(GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN, **extra)
        return subprocess.run([sys.executable, "-m", "gspauth", *argv], env=env, capture_output=True, text=True,
                              timeout=120, input=stdin)

    return go


def actions(emu: Any) -> dict[str, int]:
    return dict(emu.emulator.stats["actions"])


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("gspauth: error: ") and any(line.startswith("  hint: ") for line in lines), lines


def test_two_step_login_across_processes(run: Any, emu: Any) -> None:
    TP = taxpayer(emu, 1)
    before = actions(emu).get("OTPREQUEST", 0)
    first = run("login", *target(emu, TP), "--no-prompt")
    assert first.returncode == 75, first.stderr
    assert f"--gstin {TP.gstin}" in first.stderr and "--otp <OTP>" in first.stderr and "Traceback" not in first.stderr
    assert actions(emu)["OTPREQUEST"] == before + 1
    # asking again while the OTP is pending must not void it with a new OTPREQUEST
    again = run("login", *target(emu, TP), "--no-prompt", "--json")
    assert again.returncode == 75
    state = json.loads(again.stdout)
    assert state["state"] == "needs-otp" and state["attempts_left"] == 3 and "--otp <OTP>" in state["finish"]
    assert actions(emu)["OTPREQUEST"] == before + 1
    # the taxpayer's OTP arrives; a different process finishes the consent
    done = run("login", *target(emu, TP), "--otp", emu.otp(TP.gstin), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "logged-in"
    assert actions(emu)["OTPREQUEST"] == before + 1
    # session commands need only the id now: the store recorded host and certificate
    key_id = f"cleartax/sandbox/{TP.gstin}/{TP.username}"
    refreshed = run("session", "refresh", key_id, "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    assert json.loads(refreshed.stdout)["session"]["refresh_count"] == 1
    keep = run("session", "keep-alive", "--json", "--every", "1h")
    assert keep.returncode == 0, keep.stderr
    assert [s["state"] for s in json.loads(keep.stdout)["sessions"]] == ["not-due"]
    out = run("session", "logout", key_id, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "logged-out"


def test_wrong_otp_from_the_command_line_says_what_is_left(run: Any, emu: Any) -> None:
    tp = taxpayer(emu, 3)
    assert run("login", *target(emu, tp), "--no-prompt").returncode == 75
    right = emu.otp(tp.gstin)
    wrong = "000000" if right != "000000" else "111111"
    r = run("login", *target(emu, tp), "--otp", wrong)
    assert r.returncode == 1 and "2 attempt(s) left" in r.stderr and "re-enter" in r.stderr
    assert_one_line_error(r)
    assert run("login", *target(emu, tp), "--otp", right).returncode == 0


def test_store_key_missing_fails_before_any_otp_is_requested(run: Any, emu: Any, cli_env: Path) -> None:
    tp = taxpayer(emu, 4)
    before = actions(emu).get("OTPREQUEST", 0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSPAUTH_STORE_KEY")}
    proc = subprocess.run([sys.executable, "-m", "gspauth", "login", *target(emu, tp), "--no-prompt"],
                          env=dict(env, GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN,
                                   PYTHONPATH=str(Path(__file__).resolve().parents[2])),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "GSPAUTH_STORE_KEY" in proc.stderr
    assert_one_line_error(proc)
    assert actions(emu).get("OTPREQUEST", 0) == before  # no OTP spent, no orphan session


def test_unreachable_gsp_exits_69_with_one_line(run: Any, emu: Any) -> None:
    tp = taxpayer(emu, 5)
    args = ["--gsp", "cleartax", "--gstin", tp.gstin, "--username", tp.username,
            "--host", "http://127.0.0.1:9/cleartax", "--certificate", str(emu.certificate)]  # fmt: skip
    r = run("login", *args, "--no-prompt")
    assert r.returncode == 69, r.stderr
    assert_one_line_error(r)
    assert "could not connect to http://127.0.0.1:9" in r.stderr


@pytest.mark.parametrize("damage", ["garbage", "empty", "other-sqlite"])
def test_a_damaged_store_is_a_typed_error_and_left_alone(run: Any, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "sessions.db"
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (x)")
    before = path.read_bytes()
    r = run("session", "list", "--store", str(path))
    assert r.returncode == 1 and "damaged" in r.stderr and str(path) in r.stderr
    assert_one_line_error(r)
    assert path.read_bytes() == before  # never overwritten


def test_a_store_whose_key_check_was_removed_is_not_restamped(run: Any, emu: Any, cli_env: Path) -> None:
    tp = taxpayer(emu, 6)
    assert run("login", *target(emu, tp), "--no-prompt").returncode == 75
    assert run("login", *target(emu, tp), "--otp", emu.otp(tp.gstin)).returncode == 0
    with sqlite3.connect(cli_env / "sessions.db") as db:
        db.execute("DELETE FROM meta WHERE name = 'key_check'")
    other_key = "A" * 43 + "="
    r = run("session", "refresh", f"cleartax/sandbox/{tp.gstin}/{tp.username}", GSPAUTH_STORE_KEY=other_key)
    assert r.returncode == 1 and "key check is missing" in r.stderr
    assert_one_line_error(r)


def test_consent_log_into_a_closed_pipe_exits_quietly(subprocess_env: Any, run: Any, emu: Any) -> None:
    tp = taxpayer(emu, 7)
    for _ in range(3):
        run("login", *target(emu, tp), "--no-prompt")
    script = f"{sys.executable} -m gspauth consent log --json | head -c 20 >/dev/null"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], env=subprocess_env(), capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0


def test_batch_filer_parked_for_otp_resumes_in_a_second_process(subprocess_env: Any, emu: Any,
                                                                 tmp_path: Path) -> None:
    """Run 1 parks the GSTIN; the operator writes <GSTIN>.otp; run 2 (another process) files."""
    tp = taxpayer(emu, 8)
    otp_dir, journal = tmp_path / "otps", tmp_path / "journal.db"
    script = textwrap.dedent(f"""
        import json, sys
        from gspauth import Client, Credentials, FileOtp, SQLiteStore, BatchFiler, synthetic
        client = Client("cleartax", "sandbox", Credentials(gsp_token={defaults.CLEARTAX_AUTH_TOKEN!r}),
                        gstin={tp.gstin!r}, username={tp.username!r}, certificate={str(emu.certificate)!r},
                        hosts={{"sandbox": {emu.url + '/cleartax'!r}}}, store=SQLiteStore({str(tmp_path / 's.db')!r}),
                        otp_provider=FileOtp({str(otp_dir)!r}))
        chunks = synthetic.gstr1_chunks(6, seed=5, supplier_gstin={tp.gstin!r}, ret_period={PERIOD!r},
                                        invoices_per_chunk=2)
        with BatchFiler(client, {str(journal)!r}) as filer:
            summary = filer.file(chunks)
            print(json.dumps({{"acked": summary.acked, "parked": summary.parked, "failed": summary.failed,
                              "needs_otp": summary.needs_otp, "states": [r["state"] for r in filer.journal_rows()]}}))
    """)
    before = actions(emu).get("OTPREQUEST", 0)

    def run_filer() -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))

    first = run_filer()
    assert first["parked"] == 3 and first["failed"] == 0 and first["acked"] == 0
    assert set(first["states"]) == {"needs-otp"} and tp.gstin in first["needs_otp"]
    assert (otp_dir / f"{tp.gstin}.needed").exists() and actions(emu)["OTPREQUEST"] == before + 1
    (otp_dir / f"{tp.gstin}.otp").write_text(emu.otp(tp.gstin))  # the operator delivers it
    second = run_filer()
    assert second["acked"] == 3 and second["failed"] == 0 and set(second["states"]) == {"acked"}
    assert actions(emu)["OTPREQUEST"] == before + 1  # the pending request was answered, not replaced
