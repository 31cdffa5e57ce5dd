"""ClearTax specifics: URLs per host profile, headers, error mapping."""

from __future__ import annotations

import datetime as _dt
import json

import httpx
import pytest

import gspauth_cleartax as ct
from gspauth.errors import ConfigurationError, GSPLayerError, ServerError
from gspauth.plugins import Hooks
from gspauth.testing import hooks_for
from gspauth.types import Api, Credentials, SigningContext

NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)
GSTIN = "27AAAPZ1234C1ZV"


@pytest.fixture
def hooks() -> Hooks:
    return hooks_for(ct)


def ctx(action: str, api: Api | None = None) -> SigningContext:
    return SigningContext(gsp="cleartax", environment="sandbox", action=action, gstin=GSTIN, txn="T1", now=NOW, api=api)


@pytest.mark.parametrize(("env", "url"), [
    ("sandbox", "https://api-sandbox.clear.in/gsp/api/taxpayerapi/v0.2/authenticate"),
    ("production", "https://api.clear.in/gsp/api/taxpayerapi/v0.2/authenticate"),
    ("legacy-sandbox", "https://sandbox.gsp.cleartax.in/api/taxpayerapi/v0.2/authenticate"),
    ("legacy-production", "https://gsp.cleartax.in/api/taxpayerapi/v0.2/authenticate"),
])
def test_auth_urls_per_host_profile(hooks: Hooks, env: str, url: str) -> None:
    assert hooks.endpoint_url("cleartax", Api.AUTH, env, "v0.2") == url


def test_returns_and_common_urls(hooks: Hooks) -> None:
    assert hooks.endpoint_url("cleartax", Api.RETURNS, "production", "v4.1", "gstr1") == \
        "https://api.clear.in/gsp/api/taxpayerapi/v4.1/returns/gstr1"
    assert hooks.endpoint_url("cleartax", Api.COMMON, "production", "v1.1", "search") == \
        "https://api.clear.in/gsp/api/commonapi/v1.1/search"


def test_auth_call_carries_token_and_appkey_equal_to_body_app_key(hooks: Hooks) -> None:
    body = {"action": "OTPREQUEST", "username": "u", "app_key": "QUJD" * 86}
    request = httpx.Request("POST", hooks.endpoint_url("cleartax", Api.AUTH, "sandbox"), content=json.dumps(body).encode())
    headers = hooks.sign_headers("cleartax", request, ctx("OTPREQUEST", Api.AUTH), Credentials(gsp_token="tok-123456"))
    assert headers == {"X-CT-Auth-Token": "tok-123456", "appkey": body["app_key"]}


def test_data_call_has_no_appkey_and_client_credentials_only_when_given(hooks: Hooks) -> None:
    request = httpx.Request("GET", hooks.endpoint_url("cleartax", Api.RETURNS, "sandbox", path="gstr1"))
    plain = hooks.sign_headers("cleartax", request, ctx("B2B", Api.RETURNS), Credentials(gsp_token="tok-123456"))
    assert plain == {"X-CT-Auth-Token": "tok-123456"}
    both = hooks.sign_headers("cleartax", request, ctx("B2B", Api.RETURNS),
                              Credentials(gsp_token="tok-123456", client_id="cid", client_secret="csecret"))
    assert both == {"X-CT-Auth-Token": "tok-123456", "clientid": "cid", "client-secret": "csecret"}


def test_missing_token_names_the_field(hooks: Hooks) -> None:
    request = httpx.Request("GET", "https://api.clear.in/gsp/api/taxpayerapi/v1.0/returns")
    with pytest.raises(ConfigurationError, match="gsp_token"):
        hooks.sign_headers("cleartax", request, ctx("B2B"), Credentials())


@pytest.mark.parametrize("code", ["CT401", "CT403", "CT400", "CT404"])
def test_cleartax_layer_errors_become_gsp_layer_errors(hooks: Hooks, code: str) -> None:
    response = httpx.Response(403, json={"error_code": code, "error_message": "refused"},
                              request=httpx.Request("GET", "https://api.clear.in/x"))
    error = hooks.map_error("cleartax", response)
    assert isinstance(error, GSPLayerError)
    assert (error.error_code, error.status_code, error.gsp) == (code, 403, "cleartax")
    assert error.hint


def test_gsp_outage_is_retryable_but_gstn_errors_are_left_alone(hooks: Hooks) -> None:
    req = httpx.Request("GET", "https://api.clear.in/x")
    assert isinstance(hooks.map_error("cleartax", httpx.Response(502, text="bad gateway", request=req)), ServerError)
    gstn = httpx.Response(500, json={"status_cd": "0", "error": {"error_cd": "TEC4001", "message": "x"}}, request=req)
    assert hooks.map_error("cleartax", gstn) is None
