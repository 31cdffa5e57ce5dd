from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from gspauth import hookspecs
from gspauth.otp import (
    ChainOtp,
    CommandOtp,
    EnvOtp,
    FileOtp,
    HookOtp,
    OtpProvider,
    OtpRequest,
    PromptOtp,
    default_otp_provider,
)
from gspauth.plugins import Hooks, get_plugin_manager

GSTIN = "27AAAAA0000A1Z5"
REQ = OtpRequest("cleartax", "sandbox", GSTIN, "acme.mh")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_provider_satisfies_the_protocol(tmp_path: Path) -> None:
    for p in (PromptOtp(), EnvOtp(), FileOtp(tmp_path), CommandOtp(["true"]), ChainOtp([]), HookOtp()):
        assert isinstance(p, OtpProvider)


def test_env_prefers_the_gstin_specific_variable() -> None:
    assert EnvOtp({"GSPAUTH_OTP": "111111", f"GSPAUTH_OTP_{GSTIN}": "222222"}).get_otp(REQ) == "222222"
    assert EnvOtp({"GSPAUTH_OTP": " 111111\n"}).get_otp(REQ) == "111111"
    assert EnvOtp({}).get_otp(REQ) is None
    assert EnvOtp({"GSPAUTH_OTP_29AAAAA0000A1Z3": "333333"}).get_otp(REQ) is None


def test_malformed_otp_is_ignored_without_echo(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gspauth")
    assert EnvOtp({"GSPAUTH_OTP": "12ab56zz"}).get_otp(REQ) is None
    assert "12ab56zz" not in caplog.text and "not 4-8 digits" in caplog.text


def test_prompt_refuses_without_a_tty(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gspauth")
    err = io.StringIO()
    assert PromptOtp(stdin=io.StringIO("575757\n"), stderr=err).get_otp(REQ) is None
    assert err.getvalue() == ""  # did not prompt
    assert f"needs OTP for GSTIN {GSTIN}" in caplog.text and "not a terminal" in caplog.text


def test_prompt_reads_from_a_tty_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gspauth")
    err = io.StringIO()
    assert PromptOtp(stdin=FakeTty("oops\n575757\n"), stderr=err).get_otp(REQ) == "575757"
    assert GSTIN in err.getvalue() and "try again" in err.getvalue()
    assert "575757" not in caplog.text and "575757" not in err.getvalue()
    assert PromptOtp(stdin=FakeTty(""), stderr=io.StringIO()).get_otp(REQ) is None  # EOF


def test_file_otp_immediate_and_consumed(tmp_path: Path) -> None:
    provider = FileOtp(tmp_path / "otp")
    otp_path, needed = provider.paths(GSTIN)
    assert provider.get_otp(REQ) is None  # nothing yet: parks, leaves a note
    note = json.loads(needed.read_text())
    assert note["message"] == f"needs OTP for GSTIN {GSTIN}" and note["username"] == "acme.mh"
    assert stat.S_IMODE(needed.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "otp").stat().st_mode) == 0o700
    otp_path.write_text("575757\n")
    assert provider.get_otp(REQ) == "575757"
    assert not otp_path.exists()  # consumed: an OTP is used once
    assert provider.get_otp(REQ) is None


def test_file_otp_waits_and_resumes_when_the_file_arrives(tmp_path: Path) -> None:
    provider = FileOtp(tmp_path, wait=10, poll=0.02)
    otp_path, needed = provider.paths(GSTIN)
    seen_note: list[bool] = []

    def operator() -> None:
        deadline = time.monotonic() + 5
        while not needed.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_note.append(needed.exists())
        tmp = otp_path.with_suffix(".tmp")
        tmp.write_text("424242")
        os.replace(tmp, otp_path)

    t = threading.Thread(target=operator)
    start = time.monotonic()
    t.start()
    assert provider.get_otp(REQ) == "424242"
    t.join()
    assert seen_note == [True]
    assert time.monotonic() - start < 5
    assert not needed.exists() and not otp_path.exists()


def test_file_otp_gives_up_after_wait(tmp_path: Path) -> None:
    provider = FileOtp(tmp_path, wait=0.15, poll=0.05)
    start = time.monotonic()
    assert provider.get_otp(REQ) is None
    assert 0.1 <= time.monotonic() - start < 2
    assert provider.paths(GSTIN)[1].exists()


def test_file_otp_ignores_stale_files(tmp_path: Path) -> None:
    provider = FileOtp(tmp_path, max_age=60)
    otp_path, _ = provider.paths(GSTIN)
    otp_path.write_text("575757")
    old = time.time() - 3600
    os.utime(otp_path, (old, old))
    assert provider.get_otp(REQ) is None and not otp_path.exists()


def test_file_otp_one_file_serves_one_waiter(tmp_path: Path) -> None:
    a, b = FileOtp(tmp_path, wait=0.5, poll=0.01), FileOtp(tmp_path, wait=0.5, poll=0.01)
    a.paths(GSTIN)[0].write_text("575757")
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda p=p: results.append(p.get_otp(REQ))) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == ["575757", None]


def test_command_otp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gspauth")
    script = [sys.executable, "-c", "import os; print('5757' + os.environ['GSPAUTH_OTP_GSTIN'][:2])"]
    assert CommandOtp(script).get_otp(REQ) == "575727"
    assert CommandOtp([sys.executable, "-c", "print('123456'); raise SystemExit(4)"]).get_otp(REQ) is None
    assert "exited with 4" in caplog.text and "123456" not in caplog.text
    start = time.monotonic()
    assert CommandOtp([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5).get_otp(REQ) is None
    assert time.monotonic() - start < 10 and "timed out" in caplog.text
    assert CommandOtp([str(tmp_path / "missing")]).get_otp(REQ) is None
    with pytest.raises(ValueError):
        CommandOtp("echo 1")  # type: ignore[arg-type]


def test_hook_otp_asks_plugins_through_the_traced_facade(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="gspauth.plugins")
    pm = get_plugin_manager(autoload=False)
    asked: list[tuple[str, str]] = []

    class Plugin:
        @hookspecs.hookimpl
        def gspauth_provide_otp(self, gsp: str, gstin: str) -> str | None:
            asked.append((gsp, gstin))
            return "616161" if gsp == "cleartax" else None

    hooks = Hooks(pm, config=False)
    assert HookOtp(hooks).get_otp(REQ) is None  # no plugin answers
    pm.register(Plugin())
    assert HookOtp(hooks).get_otp(REQ) == "616161"
    assert HookOtp(hooks).get_otp(OtpRequest("vayana", "sandbox", GSTIN, "u")) is None
    assert asked == [("cleartax", GSTIN), ("vayana", GSTIN)]
    traced = [r.getMessage() for r in caplog.records if "gspauth_provide_otp" in r.getMessage()]
    assert any(m.startswith("call gspauth_provide_otp") for m in traced)  # the tracer sees the call
    assert not any("616161" in m for m in traced) and any("returned [secure]" in m for m in traced)


def test_chain_takes_the_first_answer_and_default_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Fixed:
        def __init__(self, name: str, value: str | None) -> None:
            self.name, self.value = name, value

        def get_otp(self, request: OtpRequest) -> str | None:
            calls.append(self.name)
            return self.value

    assert ChainOtp([Fixed("a", None), Fixed("b", "777777"), Fixed("c", "888888")]).get_otp(REQ) == "777777"
    assert calls == ["a", "b"]
    monkeypatch.setenv("GSPAUTH_OTP_DIR", str(tmp_path))
    (tmp_path / f"{GSTIN}.otp").write_text("919191")
    chain = default_otp_provider(interactive=False)
    assert [type(p).__name__ for p in chain.providers] == ["EnvOtp", "FileOtp", "HookOtp"]  # type: ignore[attr-defined]
    assert chain.get_otp(REQ) == "919191"
