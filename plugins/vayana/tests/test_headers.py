"""Vayana specifics: /gus URLs, the 7-field X-Asp-Auth-Token, the RSA signature, error mapping."""

from __future__ import annotations

import base64
import datetime as _dt

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import gspauth_vayana as vy
from gspauth.auth import GSPAuth
from gspauth.errors import ClientCredentialsError, ConfigurationError, GSPLayerError
from gspauth.plugins import Hooks
from gspauth.testing import hooks_for
from gspauth.types import Api, Credentials, SigningContext

NOW = _dt.datetime(2018, 2, 24, 5, 57, 59, tzinfo=_dt.timezone.utc)  # 11:27:59 IST
GSTIN = "27AAAPZ1234C1ZV"


@pytest.fixture
def hooks() -> Hooks:
    return hooks_for(vy)


@pytest.fixture
def creds(demo_key_pem: bytes) -> Credentials:
    return Credentials(client_id="cid", client_secret="csecret-000", asp_cust_id="CUST1", private_key_pem=demo_key_pem)


def ctx(action: str = "OTPREQUEST", txn: str = "TXN42") -> SigningContext:
    return SigningContext(gsp="vayana", environment="sandbox", action=action, gstin=GSTIN, txn=txn, now=NOW)


def req() -> httpx.Request:
    return httpx.Request("POST", "https://yoda.api.vayanagsp.in/gus/taxpayerapi/v1.0/authenticate")


def test_gus_mapping(hooks: Hooks) -> None:
    assert hooks.endpoint_url("vayana", Api.AUTH, "sandbox", "v1.0") == \
        "https://yoda.api.vayanagsp.in/gus/taxpayerapi/v1.0/authenticate"
    assert hooks.endpoint_url("vayana", Api.COMMON, "production", "v1.3", "search") == \
        "https://api.gsp.vayana.com/gus/commonapi/v1.3/search"
    assert hooks.endpoint_url("vayana", Api.FILES, "production") == "https://api.gsp.vayana.com/gus/returns"


def test_token_has_seven_fields_ist_timestamp_and_txn(hooks: Hooks, creds: Credentials) -> None:
    headers = hooks.sign_headers("vayana", req(), ctx("AUTHTOKEN", "TXN42"), creds)
    assert headers["X-Asp-Auth-Token"] == f"v2.0:CUST1::TXN42:20180224112759+0530:{GSTIN}:AUTHTOKEN"
    assert (headers["clientid"], headers["client-secret"]) == ("cid", "csecret-000")


def test_client_id_variant_leaves_cust_id_empty() -> None:
    token = vy._asp_auth_token(cust_id=None, client_id="CL9", txn="t", now=NOW, gstin=GSTIN, action="B2B")
    assert token.split(":") == ["v2.0", "", "CL9", "t", "20180224112759+0530", GSTIN, "B2B"]
    assert len(token.split(":")[4]) == 19


@pytest.mark.parametrize(("cust", "client"), [(None, None), ("C", "D")])
def test_exactly_one_identity(cust: str | None, client: str | None) -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        vy._asp_auth_token(cust_id=cust, client_id=client, txn="t", now=NOW, gstin=GSTIN, action="B2B")


@pytest.mark.parametrize(("name", "algorithm"), [("sha256", hashes.SHA256()), ("sha1", hashes.SHA1())])
def test_signature_verifies_under_the_public_key(hooks: Hooks, demo_key_pem: bytes, name: str,
                                                 algorithm: hashes.HashAlgorithm) -> None:
    creds = Credentials(client_id="cid", client_secret="s" * 8, asp_client_id="CL1", private_key_pem=demo_key_pem,
                        signature_hash=name)
    headers = hooks.sign_headers("vayana", req(), ctx(), creds)
    public = serialization.load_pem_private_key(demo_key_pem, None).public_key()
    signature = base64.b64decode(headers["X-Asp-Auth-Signature"], validate=True)
    public.verify(signature, headers["X-Asp-Auth-Token"].encode(), padding.PKCS1v15(), algorithm)  # type: ignore[union-attr]
    other = hashes.SHA1() if name == "sha256" else hashes.SHA256()
    with pytest.raises(InvalidSignature):
        public.verify(signature, headers["X-Asp-Auth-Token"].encode(), padding.PKCS1v15(), other)  # type: ignore[union-attr]


def test_txn_header_equals_token_txn_through_httpx(hooks: Hooks, creds: Credentials) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={"status_cd": "1"}))
    auth = GSPAuth(hooks, "vayana", "sandbox", creds, gstin=GSTIN, clock=lambda: NOW, txn_factory=lambda: "GEN0001")
    with httpx.Client(transport=transport, auth=auth) as client:
        client.post(hooks.endpoint_url("vayana", Api.AUTH, "sandbox"), json={"action": "OTPREQUEST"})
        client.get(hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", path="gstr1"),
                   params={"action": "B2B", "gstin": GSTIN}, headers={"txn": "OWN0002"})
    first, second = seen
    assert first.headers["txn"] == "GEN0001" and first.headers["X-Asp-Auth-Token"].split(":")[3] == "GEN0001"
    assert first.headers["X-Asp-Auth-Token"].endswith(":OTPREQUEST")
    assert second.headers["txn"] == "OWN0002" and second.headers["X-Asp-Auth-Token"].split(":")[3] == "OWN0002"
    assert second.headers["X-Asp-Auth-Token"].endswith(":B2B")


def test_missing_fields_are_named_without_values(hooks: Hooks) -> None:
    with pytest.raises(ConfigurationError, match="client_secret, private_key_pem") as info:
        hooks.sign_headers("vayana", req(), ctx(), Credentials(client_id="cid-visible"))
    assert "cid-visible" not in str(info.value)


def test_bad_pem_does_not_echo_the_key(hooks: Hooks) -> None:
    creds = Credentials(client_id="c", client_secret="s", asp_cust_id="C", private_key_pem=b"NOT-A-KEY-SECRET")
    with pytest.raises(ConfigurationError) as info:
        hooks.sign_headers("vayana", req(), ctx(), creds)
    assert "NOT-A-KEY" not in str(info.value)


@pytest.mark.parametrize(("code", "cls"), [("VAY-4012", ClientCredentialsError), ("VAY-4030", GSPLayerError),
                                           ("VAY-4019", GSPLayerError), ("VAY-9999", GSPLayerError)])
def test_vayana_layer_errors(hooks: Hooks, code: str, cls: type) -> None:
    response = httpx.Response(401, json={"status": "0", "error": {"code": code, "message": "no"}},
                              request=httpx.Request("GET", "https://yoda.api.vayanagsp.in/gus/x"))
    error = hooks.map_error("vayana", response)
    assert type(error) is cls
    assert error is not None and error.error_code == code and error.hint
