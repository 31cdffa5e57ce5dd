"""Does the hook set cover every GSP of spec §10? Minimal plugins for the GSPs we do not ship.

* TaxPro (GetKey session, per-request ``asp-secret = E(AspEK, password)``): a full plugin in
  ``gsps/gspauth_taxpro_demo.py``, installed as a (fake) distribution, passes the whole
  conformance kit, round trip included, with its GSP layer modelled by ``gsp_layer``.
* GSTOne / Fynamics (JWT or bearer login, refresh, logout): ``JwtGsp`` in test_hookspecs.py.
* IRIS (static headers), Masters India (GSP does the crypto, one route per action) and
  Vayana EAS (per-request key from ``context.nonce``): below.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from gspauth.auth import GSPAuth
from gspauth.crypto import decrypt_field, encrypt_field
from gspauth.emulator import defaults
from gspauth.errors import GSPLayerError
from gspauth.hookspecs import hookimpl
from gspauth.testing import ProviderConformance, hooks_for
from gspauth.types import Api, Credentials, GSPInfo, GSPSession, SigningContext

HERE = Path(__file__).parent
NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)
ASP_ID = "ASP-DEMO-0001"
ASP_PASSWORD = "taxpro-asp-password-0001"
_KEY = defaults.vayana_demo_private_key()
KEY_PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def taxpro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_dist: Callable[..., Path]) -> Any:
    """The TaxPro-style plugin, installed as distribution ``gspauth-taxpro-demo`` (entry ``taxpro-demo``)."""
    import importlib

    site = tmp_path / "taxpro-site"
    write_dist(site, "gspauth-taxpro-demo", {"taxpro-demo": "gspauth_taxpro_demo"},
               {"gspauth_taxpro_demo": (HERE / "gsps" / "gspauth_taxpro_demo.py").read_text()})
    monkeypatch.syspath_prepend(str(site))
    return importlib.import_module("gspauth_taxpro_demo")


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


class TestTaxProStylePluginPassesTheKit(ProviderConformance):
    """The whole kit, round trip included, for a GSP with its own key exchange."""

    gsp = "taxpro-demo"

    @pytest.fixture(autouse=True)
    def _installed(self, taxpro: Any) -> None:
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


def test_taxpro_getkey_is_cached_and_redone_when_taxpro_forgets_it(taxpro: Any) -> None:
    layer = TaxProLayer()
    sent: list[str] = []

    def transport(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return layer(request) or httpx.Response(200, json={"status_cd": "1"})

    hooks = hooks_for(taxpro)
    auth = GSPAuth(hooks, "taxpro-demo", "sandbox", Credentials(asp_id=ASP_ID, asp_password=ASP_PASSWORD,
                                                                private_key_pem=KEY_PEM), clock=lambda: NOW)
    url = hooks.endpoint_url("taxpro-demo", Api.RETURNS, "sandbox", "v1.0", "gstr1")
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


def test_taxpro_gsp_error_is_typed(taxpro: Any) -> None:
    response = httpx.Response(401, json={"error_code": "GSP005", "message": "expired"},
                              request=httpx.Request("GET", "https://gstsandbox.charteredinfo.com/x"))
    error = hooks_for(taxpro).map_error("taxpro-demo", response)
    assert isinstance(error, GSPLayerError) and error.error_code == "GSP005" and error.gsp == "taxpro-demo"


# -- IRIS: static headers only --------------------------------------------------------------------------
class Iris:
    GSP = "iris-demo"

    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id=self.GSP, name="IRIS-style", environments={
            "sandbox": "https://stage.gsp.irisgst.com", "production": "https://gsp.irisgst.com"}))

    @hookimpl
    def gspauth_endpoint_url(self, gsp: str, api: Api, version: str, host: str) -> str | None:
        return host + api.path(version) if gsp == self.GSP else None

    @hookimpl
    def gspauth_sign_headers(self, gsp: str, credentials: Credentials) -> Mapping[str, str] | None:
        if gsp != self.GSP:
            return None
        return {"clientid": credentials.client_id or "", "client-secret": credentials.client_secret or ""}


def test_iris_static_headers_reach_the_wire() -> None:
    hooks = hooks_for(Iris())
    seen: list[httpx.Request] = []
    auth = GSPAuth(hooks, "iris-demo", "production", Credentials(client_id="iris-id", client_secret="iris-secret"),
                   clock=lambda: NOW)
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={"status_cd": "1"}))
    with httpx.Client(transport=transport, auth=auth) as client:
        client.post(hooks.endpoint_url("iris-demo", Api.AUTH, "production"), json={"action": "OTPREQUEST"})
    assert seen[0].url == "https://gsp.irisgst.com/taxpayerapi/v1.0/authenticate"
    assert (seen[0].headers["clientid"], seen[0].headers["client-secret"]) == ("iris-id", "iris-secret")


# -- Masters India: the GSP does the GSTN crypto, one route per action ----------------------------------
class MastersIndia:
    GSP = "mastersindia-demo"
    ROUTES = {"OTPREQUEST": "/authentication/otprequest", "AUTHTOKEN": "/authentication/authtoken",
              "REFRESHTOKEN": "/authentication/refreshtoken"}

    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id=self.GSP, name="MastersIndia-style", crypto_mode="gsp_decrypts",
                         environments={"sandbox": "https://apisandbox.whitebooks.in"}))

    @hookimpl
    def gspauth_endpoint_url(self, gsp: str, api: Api, host: str, action: str | None) -> str | None:
        if gsp != self.GSP:
            return None
        if api is Api.AUTH and action in self.ROUTES:
            return host + self.ROUTES[action]
        return host + "/" + api.value

    @hookimpl
    def gspauth_sign_headers(self, gsp: str, context: SigningContext,
                             credentials: Credentials) -> Mapping[str, str] | None:
        if gsp != self.GSP:
            return None
        return {"client_id": credentials.client_id or "", "client_secret": credentials.client_secret or "",
                "gst_username": context.username or "", "state_cd": (context.gstin or "")[:2]}


def test_masters_india_routes_by_action_and_declares_gsp_crypto() -> None:
    hooks = hooks_for(MastersIndia())
    assert hooks.gsp("mastersindia-demo").crypto_mode == "gsp_decrypts"
    assert hooks.endpoint_url("mastersindia-demo", Api.AUTH, "sandbox", action="OTPREQUEST") == \
        "https://apisandbox.whitebooks.in/authentication/otprequest"
    assert hooks.endpoint_url("mastersindia-demo", Api.AUTH, "sandbox", action="AUTHTOKEN").endswith("/authtoken")
    context = SigningContext(gsp="mastersindia-demo", environment="sandbox", action="OTPREQUEST",
                             gstin="27AAAPZ1234C1ZV", txn="t", now=NOW, username="tp.user")
    headers = hooks.sign_headers("mastersindia-demo", httpx.Request("GET", "https://apisandbox.whitebooks.in/x"),
                                 context, Credentials(client_id="mi", client_secret="mi-secret"))
    assert headers["gst_username"] == "tp.user" and headers["state_cd"] == "27"


# -- Vayana EAS: a per-request key (REK) from context.nonce ----------------------------------------------
class Eas:
    GSP = "eas-demo"

    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id=self.GSP, name="EAS-style", gsp_session=True, crypto_mode="gsp_decrypts",
                         environments={"sandbox": "https://solo.enriched-api.vayana.com"}))

    @hookimpl
    def gspauth_sign_headers(self, gsp: str, context: SigningContext,
                             credentials: Credentials) -> Mapping[str, str] | None:
        if gsp != self.GSP:
            return None
        rek = context.nonce  # the core's randomness: repeatable under test, fresh in production
        return {"X-FLYNN-N-ORG-ID": credentials.get("asp_id") or "",
                "X-FLYNN-S-GSTIN": encrypt_field(rek, (context.gstin or "").encode()),
                # RSA-wrapping the REK for Vayana is randomized padding; a real plugin adds
                # X-FLYNN-S-REK here with the GSP's public key.
                "X-FLYNN-S-REK-DEMO": base64.b64encode(rek).decode()}


def test_eas_per_request_key_comes_from_the_core_nonce() -> None:
    pm_hooks = hooks_for(Eas())
    nonces = iter([bytes([1]) * 32, bytes([2]) * 32])
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            return httpx.Response(200, json={})
        seen.append(request)
        return httpx.Response(200, json={"status_cd": "1"})

    class EasLogin:
        @hookimpl
        def gspauth_gsp_session_login(self, gsp: str, host: str) -> Any:
            from gspauth.types import GSPSessionLogin

            if gsp != "eas-demo":
                return None
            return GSPSessionLogin(httpx.Request("POST", host + "/login"), lambda r: GSPSession())

    hooks = hooks_for(Eas(), EasLogin())
    auth = GSPAuth(hooks, "eas-demo", "sandbox", Credentials(asp_id="org-1"), gstin="27AAAPZ1234C1ZV",
                   clock=lambda: NOW, nonce_factory=lambda: next(nonces))
    with httpx.Client(transport=httpx.MockTransport(transport), auth=auth) as client:
        for _ in range(2):
            client.get("https://solo.enriched-api.vayana.com/basic/gstn/x", params={"action": "TP"})
    reks = [base64.b64decode(r.headers["X-FLYNN-S-REK-DEMO"]) for r in seen]
    assert reks == [bytes([1]) * 32, bytes([2]) * 32], "each request gets its own key from the core"
    assert decrypt_field(reks[0], seen[0].headers["X-FLYNN-S-GSTIN"]) == b"27AAAPZ1234C1ZV"
    assert pm_hooks.gsp("eas-demo").gsp_session
    assert "nonce" not in repr(SigningContext(gsp="g", environment="e", action=None, gstin=None, txn="t", now=NOW))
