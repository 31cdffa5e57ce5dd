"""``gspauth login``, ``session``, ``consent log`` against a real emulator on loopback."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gspauth.emulator import defaults

TP = defaults.sample_taxpayer(0)  # Maharashtra
TP2 = defaults.sample_taxpayer(1)  # Karnataka


def target(emu: Any, tp: Any = TP) -> list[str]:
    return ["--gsp", "cleartax", "--gstin", tp.gstin, "--username", tp.username,
            "--host", f"{emu.url}/cleartax", "--certificate", str(emu.certificate)]  # fmt: skip


@pytest.fixture(autouse=True)
def cleartax_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_CRED_GSP_TOKEN", defaults.CLEARTAX_AUTH_TOKEN)


def deliver_otp_when_needed(emu: Any, otp_dir: Path, gstin: str) -> threading.Thread:
    """An operator/webhook: waits for <GSTIN>.needed, then drops the OTP the taxpayer received."""

    def work() -> None:
        needed = otp_dir / f"{gstin}.needed"
        deadline = time.monotonic() + 20
        while not needed.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        note = json.loads(needed.read_text())
        assert note["message"] == f"needs OTP for GSTIN {gstin}"
        otp = emu.otp(gstin)
        tmp = otp_dir / f".{gstin}.tmp"
        tmp.write_text(otp)
        os.replace(tmp, otp_dir / f"{gstin}.otp")

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


def secret_forms(value: bytes | str) -> set[str]:
    raw = value.encode() if isinstance(value, str) else value
    return {raw.decode("latin-1"), base64.b64encode(raw).decode(), raw.hex(), raw.hex().upper()}


def test_full_session_lifecycle(cli: Any, emu: Any, tmp_path: Path, cli_env: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, at DEBUG: scanned for secrets at the end
    seen: list[str] = []
    run = cli

    def cli(*argv: str) -> Any:
        r = run(*argv)
        seen.extend((r.out, r.err))
        return r

    def session_secrets(key_id: str) -> set[str]:
        from gspauth.session import SessionKey
        from gspauth.store import SQLiteStore

        with SQLiteStore(cli_env / "sessions.db") as store:
            s = store.load(SessionKey.from_id(key_id))
        assert s is not None
        return {s.auth_token} | secret_forms(s.sek) | secret_forms(s.app_key)

    otp_dir = tmp_path / "otp"
    helper = deliver_otp_when_needed(emu, otp_dir, TP.gstin)
    r = cli("login", *target(emu), "--otp-dir", str(otp_dir), "--wait", "20", "--no-prompt")
    helper.join(5)
    assert r.code == 0, r.err
    key_id = f"cleartax/sandbox/{TP.gstin}/{TP.username}"
    secrets = session_secrets(key_id) | {str(emu.otp(TP.gstin)), defaults.CLEARTAX_AUTH_TOKEN,
                                         os.environ["GSPAUTH_STORE_KEY"]}
    assert f"Logged in: {key_id}" in r.out and "refreshable" in r.out
    assert not (otp_dir / f"{TP.gstin}.needed").exists()
    store = cli_env / "sessions.db"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    r = cli("login", *target(emu), "--no-prompt")  # still valid: no second consent
    assert r.code == 0 and "Already logged in" in r.out

    r = cli("session", "list")
    assert r.code == 0 and key_id in r.out and "REFRESHABLE" in r.out
    r = cli("session", "list", "--json")
    (row,) = json.loads(r.out)
    assert row["id"] == key_id and row["refresh_count"] == 0 and 5 * 3600 < row["remaining_seconds"] <= 6 * 3600
    assert not any(k in row for k in ("auth_token", "sek", "app_key"))

    r = cli("session", "refresh", key_id, "--host", f"{emu.url}/cleartax", "--certificate", str(emu.certificate))
    assert r.code == 0, r.err
    assert "Refreshed" in r.out and "refreshes: 1" in r.out
    secrets |= session_secrets(key_id)
    r = cli("session", "show", key_id, "--json")
    assert json.loads(r.out)["refresh_count"] == 1
    assert cli("session", "show", key_id).code == 0
    r = cli("doctor", *target(emu), "--json")
    assert json.loads(r.out)["checks"]
    stored_bytes = b"".join(p.read_bytes() for p in cli_env.glob("sessions.db*") if p.is_file())

    r = cli("session", "logout", *target(emu))
    assert r.code == 0 and f"Logged out {key_id}" in r.out
    assert json.loads(cli("session", "list", "--json").out) == []
    assert cli("session", "show", key_id).code == 1

    r = cli("consent", "log", "--gstin", TP.gstin, "--json", "--verify")
    kinds = [e["kind"] for e in json.loads(r.out)]
    assert kinds[:2] == ["otp-requested", "consent"] and "refreshed" in kinds and kinds[-1] == "ended"
    assert all(e["gstin"] == TP.gstin and e["gsp"] == "cleartax" for e in json.loads(r.out))
    r = cli("consent", "log", "--kind", "consent", "--verify")
    assert r.code == 0 and "consent" in r.out and "hash chain verified" in r.out
    # no secret anywhere: printed output, DEBUG logs, the store and ledger files
    ledger_bytes = b"".join(p.read_bytes() for p in cli_env.glob("ledger.db*"))
    assert b"otp-requested" in ledger_bytes
    logs = [rec.getMessage() for rec in caplog.records] + [rec.exc_text or "" for rec in caplog.records]
    text = "\n".join(seen + logs)
    files = (stored_bytes + ledger_bytes).decode("latin-1")
    assert len(secrets) > 10 and len(logs) > 5
    leaked = sorted(name for name in secrets if len(name) >= 6 and (name in text or name in files))
    assert not leaked, f"{len(leaked)} secret value(s) leaked into CLI output, logs or files"


def test_login_parks_without_an_otp_source(cli: Any, emu: Any) -> None:
    r = cli("login", *target(emu, TP2), "--no-prompt")
    assert r.code == 75
    assert f"needs OTP for GSTIN {TP2.gstin}" in r.err
    r = cli("consent", "log", "--json")
    assert [e["kind"] for e in json.loads(r.out)][-2:] == ["otp-requested", "needs-otp"]


def test_login_from_a_config_profile(cli: Any, emu: Any, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_env.mkdir(parents=True, exist_ok=True)
    config = cli_env / "config.toml"
    config.write_text(
        f'default_profile = "ka"\n[profiles.ka]\ngsp = "cleartax"\ngstin = "{TP2.gstin}"\n'
        f'username = "{TP2.username}"\nhost = "{emu.url}/cleartax"\ncertificate = "{emu.certificate}"\n'
        f'ip_usr = "203.0.113.9"\n[profiles.ka.credentials]\ngsp_token_env = "MY_CT_TOKEN"\n'
    )
    monkeypatch.delenv("GSPAUTH_CRED_GSP_TOKEN")
    monkeypatch.setenv("MY_CT_TOKEN", defaults.CLEARTAX_AUTH_TOKEN)

    # The taxpayer reads the SMS and the OTP reaches the job's environment after OTPREQUEST.
    import gspauth.otp as otp_module

    real_env_get = otp_module.EnvOtp.get_otp

    def env_after_request(self: Any, request: Any) -> Any:
        os.environ[f"GSPAUTH_OTP_{TP2.gstin}"] = emu.otp(TP2.gstin)
        try:
            return real_env_get(self, request)
        finally:
            del os.environ[f"GSPAUTH_OTP_{TP2.gstin}"]

    monkeypatch.setattr(otp_module.EnvOtp, "get_otp", env_after_request)
    r = cli("login", "--no-prompt")
    assert r.code == 0, r.err
    assert f"Logged in: cleartax/sandbox/{TP2.gstin}" in r.out
    events = json.loads(cli("consent", "log", "--gstin", TP2.gstin, "--kind", "consent", "--json").out)
    assert events[-1]["ip_usr"] == "203.0.113.9"
    assert cli("session", "logout").code == 0  # the profile names the session


def test_config_with_a_readable_secret_is_refused(cli: Any, cli_env: Path) -> None:
    cli_env.mkdir(parents=True, exist_ok=True)
    config = cli_env / "config.toml"
    config.write_text('[profiles.p]\ngsp = "cleartax"\n[profiles.p.credentials]\nclient_secret = "abc"\n')
    os.chmod(config, 0o644)
    r = cli("login", "--profile", "p", "--no-prompt")
    assert r.code == 1 and "readable by other users" in r.err and "abc" not in r.err


def test_missing_settings_are_named(cli: Any) -> None:
    r = cli("login", "--gsp", "cleartax", "--no-prompt")
    assert r.code == 1
    assert "gstin" in r.err and "--gstin / GSPAUTH_GSTIN" in r.err


def test_consent_log_empty_and_since(cli: Any) -> None:
    r = cli("consent", "log")
    assert r.code == 0 and "No consent events" in r.out
    assert cli("consent", "log", "--since", "2h", "--json").out.strip() == "[]"
    r = cli("consent", "log", "--since", "yesterday")
    assert r.code == 1 and "--since" in r.err


def test_session_commands_report_a_missing_store_instead_of_creating_one(cli: Any, tmp_path: Path) -> None:
    store = tmp_path / "typo.db"
    for argv in (("session", "list"), ("session", "keep-alive"), ("session", "show", "1")):
        r = cli(*argv, "--store", str(store))
        assert r.code == 1, (argv, r)
        assert f"no session store at {store}" in r.err and "gspauth login" in r.err, (argv, r.err)
    assert not store.exists()
