"""`gspauth plugins` / `gspauth plugin new`, value types, GSPAuth context extraction, import hygiene."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import pickle
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gspauth.auth import GSPAuth
from gspauth.cli import main
from gspauth.errors import ConfigurationError
from gspauth.plugins import Hooks, list_plugins
from gspauth.types import Api, Credentials, GSPSession, SessionEvent, SigningContext

NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)


def test_cli_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(data) >= {"cleartax", "vayana"} and "gspauth.direct" not in data
    assert data["vayana"]["distribution"] == "gspauth-vayana" and data["vayana"]["version"] == "0.2.0"
    assert data["cleartax"]["gsps"][0]["environments"]["legacy-production"] == "https://gsp.cleartax.in"
    assert "gspauth_sign_headers" in data["cleartax"]["hooks"]


def test_cli_plugin_versions_match_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    import gspauth
    import gspauth_cleartax
    import gspauth_vayana

    assert main(["plugins", "--json", "--all"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    for name, module in (("cleartax", gspauth_cleartax), ("vayana", gspauth_vayana)):
        installed = importlib.metadata.version(f"gspauth-{name}")
        assert data[name]["version"] == installed == module.__version__, f"{name}: version sources disagree"
        assert data[name]["gsps"][0]["description"] == module.INFO.description
        assert data[name]["gsps"][0]["environments"] == dict(module.INFO.environments)
    assert data["gspauth.direct"]["version"] == gspauth.__version__ and data["gspauth.direct"]["builtin"]


def test_cli_plugins_all_and_hook_filter(capsys: pytest.CaptureFixture[str]) -> None:
    main(["plugins", "--json", "--all", "--hook", "gspauth_map_error"])
    names = {p["name"] for p in json.loads(capsys.readouterr().out)}
    assert names >= {"cleartax", "vayana"} and "gspauth.direct" not in names  # direct has no map_error
    main(["plugins", "--json", "--all"])
    assert "gspauth.direct" in {p["name"] for p in json.loads(capsys.readouterr().out)}


def test_cli_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "cleartax (gspauth-cleartax)" in out and "https://yoda.api.vayanagsp.in" in out
    assert "vayana hooks: check_credentials, endpoint_url, map_error, register_gsps, sign_headers" in out


def test_cli_plugin_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "new", "acme", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "gspauth-acme" / "src" / "gspauth_acme" / "__init__.py").is_file()
    assert "pip install -e ." in capsys.readouterr().out
    assert main(["plugin", "new", "acme", "--dir", str(tmp_path)]) == 1  # exists: a clean error, no traceback
    assert "not empty" in capsys.readouterr().err


def test_list_plugins_uses_public_pluggy_data() -> None:
    infos = {p.name: p for p in list_plugins()}
    assert infos["gspauth.direct"].builtin and [g.id for g in infos["gspauth.direct"].gsps] == ["gstn-direct"]


def test_credentials_repr_hides_every_secret() -> None:
    creds = Credentials(client_id="cid", client_secret="s3cret-value", gsp_token="tok-value",
                        private_key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                        asp_password="pw-value", private_key_password="kp-value")
    text = repr(creds) + str(creds)
    for secret in ("s3cret-value", "tok-value", "AAAA", "pw-value", "kp-value"):
        assert secret not in text
    assert "client_id='cid'" in text and "gsp_token='[secure]'" in text
    assert {"s3cret-value", "tok-value", "pw-value", "kp-value"} <= creds.secret_values()
    assert "cid" not in creds.secret_values()
    assert hash(creds) == hash(Credentials(dict(creds)))  # hashable, equal by value
    assert creds.get("private_key_pem", "").startswith("-----BEGIN")  # bytes are kept as ASCII text
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_credentials_are_checked_against_the_plugins_declarations(hooks: Hooks) -> None:
    ok = hooks.check_credentials("cleartax", Credentials(gsp_token="tok-0001"))
    assert ok == Credentials(gsp_token="tok-0001")
    with pytest.raises(ConfigurationError, match=r"does not use credential\(s\) gsp_tokn; it reads: gsp_token"):
        hooks.check_credentials("cleartax", Credentials(gsp_tokn="typo"))
    with pytest.raises(ConfigurationError, match="needs credential.*gsp_token.*GSPAUTH_CRED_GSP_TOKEN") as err:
        hooks.check_credentials("cleartax", Credentials(client_id="c", client_secret="s-secret-1"))
    assert "s-secret-1" not in str(err.value)
    with pytest.raises(ConfigurationError, match="client_id and client_secret together"):
        hooks.check_credentials("cleartax", Credentials(gsp_token="t", client_id="c"))
    vayana = dict(client_id="c", client_secret="s", asp_cust_id="C", private_key_pem=b"NOT-A-KEY-SECRET")
    with pytest.raises(ConfigurationError, match="private_key_pem is not a usable PEM") as err:
        hooks.check_credentials("vayana", Credentials(vayana))
    assert "NOT-A-KEY" not in str(err.value)
    with pytest.raises(ConfigurationError, match="signature_hash.*sha256, sha1"):
        hooks.check_credentials("vayana", Credentials(vayana, signature_hash="md5"))


def test_types_validate() -> None:
    with pytest.raises(ValueError, match="lowercase identifier"):
        Credentials({"Bad-Name": "x"})
    with pytest.raises(TypeError, match="must be str"):
        Credentials(gsp_token=123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        SigningContext(gsp="g", environment="e", action=None, gstin=None, txn="t", now=_dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="kind"):
        SessionEvent(kind="exploded", gsp="g", environment="e", gstin=None, username=None, at=NOW)  # type: ignore[arg-type]
    assert repr(GSPSession(headers={"Authorization": "Bearer XYZ"})).count("XYZ") == 0
    assert GSPSession(expires_at=NOW).is_expired(NOW - _dt.timedelta(seconds=30))
    assert Api.AUTH.path("v0.2") == "/taxpayerapi/v0.2/authenticate" and Api.COMMON.path() == "/commonapi/v1.1"


def test_gspauth_reads_context_from_body_query_and_extensions(hooks: Hooks) -> None:
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200, json={"status_cd": "1"}))
    creds = Credentials(gsp_token="tok-0001")
    auth = GSPAuth(hooks, "cleartax", "sandbox", creds, gstin="27AAAPZ1234C1ZV", clock=lambda: NOW,
                   txn_factory=lambda: "TXN-FIXED")
    url = hooks.endpoint_url("cleartax", Api.AUTH, "sandbox")
    with httpx.Client(transport=transport, auth=auth) as client:
        client.post(url, json={"action": "OTPREQUEST", "app_key": "AK=="})
        client.get(url.replace("authenticate", "returns"), params={"action": "B2B"})
    assert sent[0].headers["appkey"] == "AK==" and sent[0].headers["txn"] == "TXN-FIXED"
    assert "appkey" not in sent[1].headers
    assert "tok-0001" not in repr(auth)

    async def run() -> httpx.Request:
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            request = client.build_request("POST", url, content=b'{"app_key":"BK=="}')
            request.extensions["gspauth"] = {"action": "AUTHTOKEN", "api": Api.AUTH}
            await client.send(request)
        return sent[-1]

    assert asyncio.run(run()).headers["appkey"] == "BK=="


def test_import_gspauth_does_not_import_the_kit_or_test_tools() -> None:
    code = ("import sys, gspauth, gspauth.plugins, gspauth.auth, gspauth.types, gspauth.hookspecs; "
            "bad = [m for m in ('gspauth.testing', 'pytest', 'hypothesis', 'uvicorn', 'gspauth.emulator') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
