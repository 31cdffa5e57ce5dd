"""``gspauth doctor``: each check's status, hints, JSON and exit code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gspauth.emulator import defaults

TP = defaults.sample_taxpayer(0)


def checks(r: Any) -> dict[str, dict[str, Any]]:
    data = json.loads(r.out)
    return {c["name"]: c for c in data["checks"]}


def test_doctor_against_the_emulator(cli: Any, emu: Any) -> None:
    r = cli("doctor", "--json", "--gsp", "cleartax", "--gstin", TP.gstin, "--username", TP.username,
            "--host", f"{emu.url}/cleartax", "--certificate", str(emu.certificate))  # fmt: skip
    c = checks(r)
    assert r.code == 0, r.out
    for name in ("versions", "crypto backend", "plugins", "config", "gsp", "store key", "session store", "gstin",
                 "state-cd", "gstn certificate", "certificate rotation", "endpoint", "clock skew"):
        assert name in c, name
    assert c["crypto backend"]["status"] in ("ok", "warn") and c["crypto backend"]["detail"].split()[0] in ("native", "python")
    assert "cleartax" in c["plugins"]["detail"] and "vayana" in c["plugins"]["detail"]
    assert c["endpoint"]["status"] == "ok" and "serves the authenticate API" in c["endpoint"]["detail"]
    assert c["clock skew"]["status"] == "ok"
    assert c["state-cd"]["status"] == "ok" and c["state-cd"]["detail"].startswith("27 (Maharashtra)")
    assert c["gstn certificate"]["status"] == "ok" and "valid until" in c["gstn certificate"]["detail"]
    assert c["certificate rotation"]["status"] == "ok"
    assert c["store key"]["status"] == "ok" and "GSPAUTH_STORE_KEY" in c["store key"]["detail"]


def test_doctor_fails_an_endpoint_that_answers_404(cli: Any, emu: Any) -> None:
    """A host that answers, but not at the GSP's path (wrong prefix), is not 'ok'."""
    r = cli("doctor", "--json", "--gsp", "cleartax", "--gstin", TP.gstin, "--username", TP.username,
            "--host", f"{emu.url}/no-such-gsp", "--certificate", str(emu.certificate))  # fmt: skip
    c = checks(r)
    assert c["endpoint"]["status"] == "fail" and "404" in c["endpoint"]["detail"]
    assert "prefix" in c["endpoint"]["hint"] and r.code == 1


def test_doctor_flags_problems_with_hints(cli: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSPAUTH_STORE_KEY")
    monkeypatch.setenv("GSPAUTH_STATE_CD", "29")
    r = cli("doctor", "--json", "--offline", "--gsp", "cleartax", "--gstin", TP.gstin,
            "--certificate", str(emu.certificate))  # fmt: skip
    c = checks(r)
    assert r.code == 1 and json.loads(r.out)["ok"] is False
    assert c["state-cd"]["status"] == "fail" and "AUTH4041" in c["state-cd"]["hint"]
    assert c["store key"]["status"] in ("warn", "ok")  # ok only if an OS keyring holds one
    if c["store key"]["status"] == "warn":
        assert "GSPAUTH_STORE_KEY" in c["store key"]["hint"]
    assert "endpoint" not in c  # --offline


def test_doctor_bad_gstin_unreachable_endpoint_text_output(cli: Any, emu: Any) -> None:
    r = cli("doctor", "--gsp", "cleartax", "--gstin", "27AAAAA0000A1Z5", "--host", "http://127.0.0.1:9/cleartax")
    assert r.code == 1
    assert "[FAIL] gstin" in r.out and "check character" in r.out
    assert "[FAIL] endpoint" in r.out and "unreachable" in r.out and "hint:" in r.out
    assert "[WARN] gstn certificate" in r.out


def test_doctor_expired_certificate_fails(cli: Any, tmp_path: Any) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old GSTN")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))  # fmt: skip
    path = tmp_path / "old.cer"
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    r = cli("doctor", "--json", "--offline", "--certificate", str(path))
    c = checks(r)
    assert c["gstn certificate"]["status"] == "fail" and "TEC4002" in c["gstn certificate"]["hint"]


def assert_hints(r: Any) -> dict[str, dict[str, Any]]:
    c = checks(r)
    unhelpful = [n for n, v in c.items() if v["status"] != "ok" and not (v.get("hint") or "").strip()]
    assert not unhelpful, f"checks without a hint: {unhelpful}"
    return c


def test_doctor_in_a_fresh_home_says_what_to_set_up(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSPAUTH_STORE_KEY")
    r = cli("doctor", "--json")
    c = assert_hints(r)
    assert r.code == 0  # nothing is broken, only missing
    assert c["config"]["status"] == "warn" and "[profiles." in c["config"]["hint"]
    for name in ("gstin", "gstn certificate", "endpoint"):
        assert c[name]["status"] == "warn", name
    text = cli("doctor")
    assert "[WARN] config" in text.out and "hint: create" in text.out


def test_every_problem_comes_with_a_hint(cli: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_STATE_CD", "29")
    assert_hints(cli("doctor", "--json", "--gsp", "nosuchgsp", "--gstin", "27AAAAA0000A1Z5",
                     "--host", "http://127.0.0.1:9/x", "--certificate", "/nonexistent.pem"))
    monkeypatch.delenv("GSPAUTH_STATE_CD")
    assert_hints(cli("doctor", "--json", "--gsp", "cleartax", "--gstin", TP.gstin, "--username", TP.username,
                     "--host", f"{emu.url}/cleartax", "--certificate", str(emu.certificate)))
