"""Does the hook set cover every GSP of spec §10? Minimal plugins for the GSPs we do not ship.

* TaxPro (GetKey session, per-request ``asp-secret = E(AspEK, password)``): the example
  distribution ``plugins/taxpro-example`` passes the whole conformance kit, round trip included,
  with TaxPro's layer modelled by ``gsp_layer`` (its own ``tests/test_conformance.py``).
* GSTOne / Fynamics (JWT or bearer login, refresh, logout): ``JwtGsp`` in test_hookspecs.py.
* IRIS (static headers), Masters India (GSP does the crypto, one route per action) and
  Vayana EAS (per-request key from ``context.nonce``): below.
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gspauth.auth import GSPAuth
from gspauth.crypto import decrypt_field, encrypt_field
from gspauth.hookspecs import hookimpl
from gspauth.testing import hooks_for
from gspauth.types import Api, Credentials, GSPInfo, GSPSession, SigningContext

NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)


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
