"""A GSP with its own login (GSTOne/Fynamics-style JWT): the client logs in at the GSP once,
signs every GSTN call with that session, and ends it at the GSP when the taxpayer logs out."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping

import httpx
import pytest

from gspauth import Client, Credentials
from gspauth.emulator import Emulator, defaults
from gspauth.hookspecs import hookimpl
from gspauth.plugins import Hooks, get_plugin_manager
from gspauth.types import Api, CredentialField, GSPInfo, GSPSession, GSPSessionLogin, SigningContext

HOST = "http://127.0.0.1:9"  # never contacted: a MockTransport routes everything


class JwtGsp:
    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id="jwt", name="JWT GSP", environments={"sandbox": "https://jwt.example"}, gsp_session=True,
                         credentials=(CredentialField("asp_id", "login id", required=True),
                                      CredentialField("client_id", "GSTN clientid"),
                                      CredentialField("client_secret", "GSTN client-secret"))))

    @hookimpl
    def gspauth_endpoint_url(self, gsp: str, api: Api, version: str, host: str) -> str | None:
        return host + "/gst" + api.path(version) if gsp == "jwt" else None

    @hookimpl
    def gspauth_sign_headers(self, gsp: str, context: SigningContext) -> Mapping[str, str] | None:
        if gsp != "jwt" or context.gsp_session is None:
            return None
        return dict(context.gsp_session.headers)

    @hookimpl
    def gspauth_gsp_session_login(self, gsp: str, host: str, credentials: Credentials,
                                  now: _dt.datetime) -> GSPSessionLogin | None:
        if gsp != "jwt":
            return None

        def parse(response: httpx.Response) -> GSPSession:
            return GSPSession(headers={"Authorization": "Bearer " + response.json()["jwt"]},
                              expires_at=now + _dt.timedelta(hours=1))

        return GSPSessionLogin(httpx.Request("POST", host + "/auth/", json={"user": credentials.get("asp_id")}), parse)

    @hookimpl
    def gspauth_gsp_session_logout(self, gsp: str, host: str, session: GSPSession) -> httpx.Request | None:
        return httpx.Request("POST", host + "/logout", headers=dict(session.headers)) if gsp == "jwt" else None


def test_gsp_session_is_used_for_every_call_and_ended_on_logout() -> None:
    emulator = Emulator(seed=3)
    taxpayer = defaults.SAMPLE_TAXPAYERS[0]
    seen: list[str] = []
    live: set[str] = set()

    def route(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        seen.append(path)
        if path == "/auth/":
            live.add("jwt-1")
            return httpx.Response(200, json={"jwt": "jwt-1"})
        if path == "/logout":
            live.discard(request.headers["authorization"].removeprefix("Bearer "))
            return httpx.Response(200, json={"ok": True})
        assert request.headers.get("authorization") == "Bearer jwt-1", "GSTN calls must carry the GSP session"
        forwarded = httpx.Request(request.method, str(request.url).replace(HOST + "/gst", "http://emulator/generic"),
                                  headers=request.headers, content=request.content)
        return emulator.handle(forwarded)

    pm = get_plugin_manager(autoload=False)
    pm.register(JwtGsp(), name="jwt")
    credentials = Credentials(asp_id="asp-1", client_id=defaults.GSTN_CLIENT_ID,
                              client_secret=defaults.GSTN_CLIENT_SECRET)
    client = Client("jwt", "sandbox", credentials, gstin=taxpayer.gstin, username=taxpayer.username,
                    certificate=emulator.certificate_pem, hooks=Hooks(pm, hosts={"sandbox": HOST}, config=False),
                    clock=emulator.clock.now, transport=httpx.MockTransport(route))
    with client:
        client.request_otp()
        client.authenticate(emulator.outbox.latest_otp(taxpayer.gstin))
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
        assert live == {"jwt-1"} and seen.count("/auth/") == 1, "one GSP login serves every call"
        assert client.logout() is True
    assert seen[-1] == "/logout" and live == set(), "logout must end the GSP-level session too"


@pytest.mark.parametrize("action", ["OTPREQUEST", "B2B"])
def test_endpoint_url_hook_receives_the_gstn_action(action: str) -> None:
    """Masters-India-style GSPs route by action, so the client passes it to the URL hook."""
    received: list[str | None] = []

    class Routed:
        @hookimpl
        def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
            register(GSPInfo(id="routed", name="Routed", environments={"sandbox": "https://routed.example"},
                             credentials=(CredentialField("client_id", "GSTN clientid"),
                                          CredentialField("client_secret", "GSTN client-secret"))))

        @hookimpl
        def gspauth_endpoint_url(self, gsp: str, api: Api, version: str, host: str,
                                 action: str | None) -> str | None:
            if gsp != "routed":
                return None
            received.append(action)
            return f"{host}{api.path(version)}"

        @hookimpl
        def gspauth_sign_headers(self, gsp: str) -> Mapping[str, str] | None:
            return {} if gsp == "routed" else None

    emulator = Emulator(seed=4)
    taxpayer = defaults.SAMPLE_TAXPAYERS[0]
    pm = get_plugin_manager(autoload=False)
    pm.register(Routed(), name="routed")

    def route(request: httpx.Request) -> httpx.Response:
        return emulator.handle(httpx.Request(request.method, str(request.url).replace(HOST, "http://emulator/generic"),
                                             headers=request.headers, content=request.content))

    client = Client("routed", "sandbox", Credentials(client_id=defaults.GSTN_CLIENT_ID,
                                                     client_secret=defaults.GSTN_CLIENT_SECRET),
                    gstin=taxpayer.gstin, username=taxpayer.username, certificate=emulator.certificate_pem,
                    hooks=Hooks(pm, hosts={"sandbox": HOST}, config=False), clock=emulator.clock.now,
                    transport=httpx.MockTransport(route))
    with client:
        client.request_otp()
        if action == "B2B":
            client.authenticate(emulator.outbox.latest_otp(taxpayer.gstin))
            client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
    assert received[-1] == action


def test_map_error_hook_runs_once_per_reply() -> None:
    """GSPAuth (looking for a refused GSP session) and the client (raising the error) share one
    answer per reply, so a plugin parses a large body once."""
    emulator = Emulator(seed=5)
    taxpayer = defaults.SAMPLE_TAXPAYERS[0]
    asked: list[int] = []

    class Counting(JwtGsp):
        @hookimpl
        def gspauth_map_error(self, gsp: str, response: httpx.Response) -> None:
            if gsp == "jwt":
                asked.append(id(response))

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/":
            return httpx.Response(200, json={"jwt": "jwt-1"})
        return emulator.handle(httpx.Request(request.method,
                                             str(request.url).replace(HOST + "/gst", "http://emulator/generic"),
                                             headers=request.headers, content=request.content))

    pm = get_plugin_manager(autoload=False)
    pm.register(Counting(), name="jwt")
    credentials = Credentials(asp_id="asp-1", client_id=defaults.GSTN_CLIENT_ID,
                              client_secret=defaults.GSTN_CLIENT_SECRET)
    client = Client("jwt", "sandbox", credentials, gstin=taxpayer.gstin, username=taxpayer.username,
                    certificate=emulator.certificate_pem, hooks=Hooks(pm, hosts={"sandbox": HOST}, config=False),
                    clock=emulator.clock.now, transport=httpx.MockTransport(route))
    with client:
        client.request_otp()
        client.authenticate(emulator.outbox.latest_otp(taxpayer.gstin))
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
    assert asked and len(asked) == len(set(asked)), "the plugin was asked twice about one reply"
