"""No secret (app key, SEK, token, OTP, client secret, GSP token, private key) in logs, reprs or errors."""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import pytest

from gspauth import synthetic
from gspauth.errors import OtpRequired
from gspauth.types import Api
from tests.client.client_support import Env, SecretLog, credentials_for

PERIOD = "072017"


def secret_forms(value: bytes | str) -> set[str]:
    if isinstance(value, str):
        return {value}
    return {base64.b64encode(value).decode(), value.hex(), repr(value)[2:-1]}


def test_no_secret_in_logs_reprs_events_or_errors(env: Env, gsp: str, all_logs: SecretLog) -> None:
    client = env.client(gsp)
    secrets: set[str] = set(credentials_for(gsp).secret_values(client.hooks.gsp(gsp).public_credentials))
    client.request_otp()
    otp = env.latest_otp()
    secrets.add(otp)
    first = client.authenticate(otp)
    chunk = synthetic.gstr1_chunks(2, seed=4, supplier_gstin=client.gstin, ret_period=PERIOD)[0]
    client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period=PERIOD)
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    env.advance(minutes=350)
    client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)  # automatic refresh
    second = client.session
    assert second is not None and second.auth_token != first.auth_token
    texts = [repr(client), str(client), repr(first), repr(second), repr(client.credentials)]
    (sess,) = env.emu.portal.sessions(client.gstin)
    env.emu.portal.revoke(client.gstin, sess["session_id"])
    with pytest.raises(OtpRequired) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    texts += [str(info.value), repr(info.value), str(info.value.__cause__)]
    for s in (first, second):
        secrets |= {s.auth_token} | secret_forms(s.app_key) | secret_forms(s.sek)
    texts += [repr(dataclasses.asdict(e)) for e in env.recorder.events]
    assert all_logs.lines, "nothing was logged: the scan would prove nothing"
    assert any("refresh" in line.lower() or "session" in line.lower() for line in all_logs.lines)
    haystack = "\n".join(all_logs.lines + texts)
    leaked = sorted(s for s in secrets if len(s) >= 6 and s in haystack)
    assert not leaked, f"{len(leaked)} secret value(s) leaked"
    assert repr(client) == (f"Client(gsp={gsp!r}, environment='sandbox', gstin={client.gstin!r}, "
                            f"username={client.username!r})")


def test_async_client_repr(env: Env) -> None:
    import asyncio

    async def main() -> Any:
        async with env.aclient("vayana") as client:
            return repr(client)

    text = asyncio.run(main())
    assert text.startswith("AsyncClient(gsp='vayana'") and "secret" not in text.lower()


def test_httpx_request_log_hides_sensitive_query_values(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every URL at INFO; a FILEDET ``token`` (or a TaxPro ``password``) must not show."""
    import httpx

    import gspauth.client  # noqa: F401  # installs the filter

    url = "https://gsp.example/taxpayerapi/v1.0/returns?action=FILEDET&token=filedet-token-0042&password=pw-0042"
    with caplog.at_level(logging.INFO, logger="httpx"), \
            httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as http:
        http.get(url)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "httpx")
    assert "action=FILEDET" in logged, "the request line should still be logged"
    assert "filedet-token-0042" not in logged and "pw-0042" not in logged
