"""The project's main job: ``gspauth demo`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


def test_demo_subprocess_passes_and_reports(tmp_path: Any, subprocess_env: Any) -> None:
    env = subprocess_env(GSPAUTH_HOME=str(tmp_path / "untouched-home"))
    env.pop("GSPAUTH_STORE_KEY", None)  # a fresh machine: no store key, no config
    done = subprocess.run(
        [sys.executable, "-m", "gspauth", "demo", "--invoices", "200", "--chunk-kib", "80"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "RESULT: PASS" in out
    for gsp, gstin_prefix in (("cleartax", "27"), ("vayana", "29")):
        assert f"{gsp:<9} GSTIN {gstin_prefix}" in out
    for check in ("consent", "session stored (encrypted)", "every invoice accepted", "read back identical",
                  "refreshed without OTP", "logged out"):
        assert out.count(f"[PASS] {check}\n") == 2, check
    assert "[FAIL]" not in out
    assert "verified 100/100 invoices identical (every field and JSON type)" in out
    assert "OTPREQUEST 2, AUTHTOKEN 2, RETSAVE 6" in out and "REFRESHTOKEN 2, LOGOUT 2" in out  # 3 chunks per GSP
    assert "\r" not in out + done.stderr  # not a TTY: no progress-bar redraws
    assert not (tmp_path / "untouched-home").exists()
    from gspauth.emulator import defaults

    for secret in (defaults.CLEARTAX_AUTH_TOKEN, defaults.VAYANA_ASP_CLIENT_SECRET):
        assert secret not in out + done.stderr  # the demo keeps its files in a temp dir


def test_demo_json_report(cli: Any, tmp_path: Any) -> None:
    r = cli("demo", "--invoices", "60", "--chunk-kib", "40", "--json", "--keep", str(tmp_path / "keep"))
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["ok"] is True and report["invoices"] == 60
    assert {g: v["invoices"] for g, v in report["gsps"].items()} == {"cleartax": 30, "vayana": 30}
    for g in report["gsps"].values():
        assert g["ok"] and g["chunks"] == 2 and all(g["checks"].values())
        assert g["notes"]["verify"] == {"identical": 30, "missing": 0, "extra": 0, "different": 0, "duplicates": 0}
    assert report["ledger"]["events"]["consent"] == 2 and report["ledger"]["events"]["refreshed"] == 2
    assert report["store"]["sessions_left"] == 0
    kept = tmp_path / "keep"
    assert (kept / "sessions.db").exists() and (kept / "ledger.db").exists()


def test_demo_fails_loudly_when_verification_fails(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gspauth.cli import demo

    real = demo._expected

    def corrupted(lines: Any) -> Any:
        expected = real(lines)
        first = next(iter(expected))
        expected[first] = dict(expected[first], rchrg="Z" + expected[first]["rchrg"])
        return expected

    monkeypatch.setattr(demo, "_expected", corrupted)
    r = cli("demo", "--invoices", "20", "--chunk-kib", "10")
    assert r.code == 1
    assert r.out.count("[FAIL] read back identical") == 2
    assert "different 1" in r.out and "RESULT: FAIL" in r.out


def test_progress_bar_is_tty_aware() -> None:
    import io

    from gspauth.cli.demo import _Progress as Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain = io.StringIO()
    bar = Progress("filing", 100, stream=plain)
    for i in range(0, 101, 5):
        bar.update(i)
    bar.close("done")
    assert plain.getvalue().count("\n") == 1 and "\r" not in plain.getvalue() and "100/100" in plain.getvalue()
    tty = Tty()
    bar = Progress("filing", 10, stream=tty)
    bar.update(10)
    bar.close()
    assert "\r" in tty.getvalue() and "[############################]" in tty.getvalue()


def test_read_back_comparison_is_strict_about_json_types() -> None:
    from gspauth.cli.demo import _same

    assert _same({"a": [1, {"b": "x"}], "c": 2.5}, {"c": 2.5, "a": [1, {"b": "x"}]})  # key order is free
    assert not _same({"a": 1}, {"a": 1.0}) and not _same({"a": 1}, {"a": True})
    assert not _same({"a": [1, 2]}, {"a": [2, 1]}) and not _same({"a": 1}, {"a": 1, "b": None})
