"""The gspauth conformance kit, run against the TaxPro-style example plugin, plus its GetKey specifics.

The kit's round trip goes through the emulator's ``generic`` mount (GSTN itself); TaxPro's own
layer (GetKey, then the ``session-id`` and ``asp-secret`` checks) is modelled by
:class:`TaxProLayer` in ``gsp_layer``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import gspauth_taxpro_example as plugin
from gspauth.auth import GSPAuth
from gspauth.crypto import decrypt_field
from gspauth.emulator import defaults
from gspauth.errors import ConfigurationError, GSPLayerError
from gspauth.testing import ProviderConformance, hooks_for
from gspauth.types import Api, Credentials, GSPSession, SigningContext

NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)
ASP_ID = "ASP-DEMO-0001"
ASP_PASSWORD = "taxpro-asp-password-0001"
# The emulator's public demo key (deterministic; never use it outside tests) plays the ASP's key.
_KEY = defaults.vayana_demo_private_key()
KEY_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TaxProLayer:
    """TaxPro's side, as far as the plugin can tell: GetKey, then session-id and asp-secret checks."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.getkeys = 0

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/getkey"):
            body = json.loads(request.content)
            assert request.headers["aspid"] == ASP_ID and request.headers.get("txn"), "GetKey needs aspid and txn"
            assert len(body["timestamp"]) == 20 and body["timestamp"].isdigit(), "timestamp is ddMMyyyyHHmmssFFFFFF"
            _KEY.public_key().verify(base64.b64decode(body["signed_content"]), (ASP_ID + body["timestamp"]).encode(),
                                     padding.PKCS1v15(), hashes.SHA256())  # raises if the signature is wrong
            self.getkeys += 1
            session_id, asp_ek = f"taxpro-session-{self.getkeys:04d}", os.urandom(32)
            self.keys[session_id] = asp_ek
            wrapped = _KEY.public_key().encrypt(asp_ek, padding.PKCS1v15())
            return httpx.Response(200, json={"session_id": session_id, "expiry": 360,
                                             "enc_key": base64.b64encode(wrapped).decode()})
        asp_ek = self.keys.get(request.headers.get("session-id", ""))
        if asp_ek is None:
            return httpx.Response(401, json={"error_code": "GSP005", "message": "Invalid or expired session"})
        assert request.headers["aspid"] == ASP_ID and request.headers["appver"]
        assert decrypt_field(asp_ek, request.headers["asp-secret"]) == ASP_PASSWORD.encode(), \
            "asp-secret must be E(AspEK, password)"
        return None  # TaxPro forwards it to GSTN


class TestTaxProExample(ProviderConformance):
    """The whole kit, round trip included, for a GSP with its own key exchange."""

    gsp = "taxpro-example"
    emulator_mount = "generic"

    @pytest.fixture(autouse=True)
    def _layer(self) -> None:
        self.layer = TaxProLayer()

    @pytest.fixture
    def credentials(self) -> Credentials:
        return Credentials(asp_id=ASP_ID, asp_password=ASP_PASSWORD, private_key_pem=KEY_PEM)

    @pytest.fixture
    def gsp_session(self) -> GSPSession:
        return GSPSession(headers={"session-id": "fixture-session-0001"},
                          data={"enc_key": base64.b64encode(bytes(range(32))).decode()})

    def gsp_layer(self, request: httpx.Request) -> httpx.Response | None:
        return self.layer(request)


def test_getkey_is_cached_and_redone_when_taxpro_forgets_it() -> None:
    layer = TaxProLayer()
    sent: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return layer(request) or httpx.Response(200, json={"status_cd": "1"})

    hooks = hooks_for(plugin)
    auth = GSPAuth(hooks, plugin.GSP, "sandbox", Credentials(asp_id=ASP_ID, asp_password=ASP_PASSWORD,
                                                             private_key_pem=KEY_PEM), clock=lambda: NOW)
    url = hooks.endpoint_url(plugin.GSP, Api.RETURNS, "sandbox", "v1.0", "gstr1")
    assert url == "https://gstsandbox.charteredinfo.com/taxpayerapi/v1.0/returns/gstr1"
    with httpx.Client(transport=httpx.MockTransport(transport), auth=auth) as client:
        for _ in range(3):
            assert client.get(url, params={"action": "B2B"}).status_code == 200
        assert layer.getkeys == 1, "one GetKey serves every call until the session expires"
        layer.keys.clear()  # TaxPro restarted: GSP005, one new GetKey, the call is retried
        assert client.get(url, params={"action": "B2B"}).status_code == 200
    assert layer.getkeys == 2 and sent.count("/getkey") == 2
    session = auth.gsp_session
    assert session is not None and session.expires_at == NOW + _dt.timedelta(minutes=360)
    assert "taxpro-session" not in repr(auth) + repr(session) and ASP_PASSWORD not in repr(auth)


def test_getkey_timestamp_is_ist_to_the_microsecond() -> None:
    assert plugin._getkey_timestamp(NOW.replace(microsecond=123456)) == "15072024120000123456"


def test_gsp_error_is_typed() -> None:
    response = httpx.Response(401, json={"error_code": "GSP005", "message": "expired"},
                              request=httpx.Request("GET", "https://gstsandbox.charteredinfo.com/x"))
    error = hooks_for(plugin).map_error(plugin.GSP, response)
    assert isinstance(error, GSPLayerError) and error.error_code == "GSP005" and error.gsp == plugin.GSP


def test_missing_asp_password_names_the_field_not_a_value() -> None:
    with pytest.raises(ConfigurationError, match=r"taxpro-example needs Credentials\(asp_id=..., asp_password=...\)"):
        context = SigningContext(gsp=plugin.GSP, environment="sandbox", action="B2B", gstin=None, txn="t", now=NOW)
        plugin.gspauth_sign_headers(plugin.GSP, context, Credentials(asp_id=ASP_ID))
