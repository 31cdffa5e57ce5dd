"""One ``test_hook_<name>`` per hookspec, through the core's facade; plus the docs/test meta-tests."""

from __future__ import annotations

import datetime as _dt
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest

from gspauth import hookspecs
from gspauth.auth import GSPAuth
from gspauth.errors import ConfigurationError, GSPError, GSPLayerError, PluginContractError
from gspauth.hookspecs import hookimpl
from gspauth.plugins import Hooks, get_plugin_manager
from gspauth.types import (
    Api,
    CredentialField,
    Credentials,
    GSPInfo,
    GSPSession,
    GSPSessionLogin,
    SessionEvent,
    SigningContext,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("gspauth_"))


class JwtGsp:
    """A GSTOne/Fynamics-like GSP: a JWT login, then ``Authorization`` on every call."""

    def __init__(self) -> None:
        self.refreshes = 0

    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id="jwt", name="JWT GSP", environments={"sandbox": "https://jwt.example"}, gsp_session=True))

    @hookimpl
    def gspauth_endpoint_url(self, gsp: str, api: Api, version: str, host: str) -> str | None:
        return host + "/gst" + api.path(version) if gsp == "jwt" else None

    @hookimpl
    def gspauth_sign_headers(self, gsp: str, context: SigningContext) -> Mapping[str, str] | None:
        if gsp != "jwt":
            return None
        assert context.gsp_session is not None
        return {"x-session-user": context.gsp_session.data["user"]}

    def _parse(self, response: httpx.Response) -> GSPSession:
        body = response.json()
        return GSPSession(headers={"Authorization": f"Bearer {body['jwt']}"},
                          expires_at=NOW + _dt.timedelta(seconds=body["ttl"]), data={"user": body["user"]})

    @hookimpl
    def gspauth_gsp_session_login(self, gsp: str, host: str, credentials: Credentials) -> GSPSessionLogin | None:
        if gsp != "jwt":
            return None
        request = httpx.Request("POST", host + "/auth/", json={"user": credentials.get("asp_id"),
                                                               "password": credentials.get("asp_password")})
        return GSPSessionLogin(request, self._parse)

    @hookimpl
    def gspauth_gsp_session_refresh(self, gsp: str, host: str, session: GSPSession) -> GSPSessionLogin | None:
        if gsp != "jwt":
            return None
        self.refreshes += 1
        request = httpx.Request("PUT", host + "/auth/", headers=dict(session.headers))
        return GSPSessionLogin(request, self._parse)

    @hookimpl
    def gspauth_gsp_session_logout(self, gsp: str, host: str, session: GSPSession) -> httpx.Request | None:
        return httpx.Request("POST", host + "/logout", headers=dict(session.headers)) if gsp == "jwt" else None

    @hookimpl
    def gspauth_map_error(self, gsp: str, response: httpx.Response) -> GSPError | None:
        if gsp == "jwt" and response.status_code == 401 and b"jwt expired" in response.content:
            return GSPLayerError("jwt expired", status_code=401)
        return None


class JwtServer:
    def __init__(self, ttl: int = 3600) -> None:
        self.ttl = ttl
        self.issued = 0
        self.valid: set[str] = set()
        self.log: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append(f"{request.method} {request.url.path}")
        if request.url.path == "/auth/":
            self.issued += 1
            jwt = f"jwt-{self.issued}"
            self.valid.add(jwt)
            return httpx.Response(200, json={"jwt": jwt, "ttl": self.ttl, "user": "asp1"})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return httpx.Response(401, text="jwt expired")
        return httpx.Response(200, json={"status_cd": "1", "user": request.headers["x-session-user"]})


@pytest.fixture
def jwt_hooks() -> tuple[Hooks, JwtGsp]:
    pm = get_plugin_manager(autoload=False)
    plugin = JwtGsp()
    pm.register(plugin, name="jwt")
    return Hooks(pm, config=False), plugin


# -- one test per hook ------------------------------------------------------------------------------
def test_hook_gspauth_register_gsps(hooks: Hooks) -> None:
    assert {"cleartax", "vayana", "gstn-direct"} <= set(hooks.gsps())
    assert hooks.plugin_of("cleartax") == "cleartax" and hooks.plugin_of("gstn-direct") == "gspauth.direct"


def test_hook_gspauth_endpoint_url(hooks: Hooks) -> None:
    assert hooks.endpoint_url("gstn-direct", Api.RETURNS, "sandbox", "v4.1", "gstr1") == \
        "https://devapi.gst.gov.in/taxpayerapi/v4.1/returns/gstr1"
    assert hooks.endpoint_url("vayana", "auth", "sandbox", "v1.0").endswith("/gus/taxpayerapi/v1.0/authenticate")  # type: ignore[arg-type]


def test_hook_gspauth_sign_headers(hooks: Hooks) -> None:
    request = httpx.Request("GET", "https://devapi.gst.gov.in/taxpayerapi/v1.0/returns")
    context = SigningContext(gsp="gstn-direct", environment="sandbox", action="B2B", gstin=None, txn="t", now=NOW)
    headers = hooks.sign_headers("gstn-direct", request, context, Credentials(client_id="c", client_secret="s"))
    assert headers == {"clientid": "c", "client-secret": "s"}


def test_hook_gspauth_map_error(hooks: Hooks) -> None:
    request = httpx.Request("GET", "https://api.clear.in/gsp/api/x")
    mapped = hooks.map_error("cleartax", httpx.Response(403, json={"error_code": "CT403"}, request=request))
    assert isinstance(mapped, GSPLayerError) and mapped.gsp == "cleartax"
    assert hooks.map_error("gstn-direct", httpx.Response(403, json={"error_code": "CT403"}, request=request)) is None


def test_hook_gspauth_gsp_session_login(jwt_hooks: tuple[Hooks, JwtGsp]) -> None:
    hooks, _ = jwt_hooks
    server = JwtServer()
    auth = GSPAuth(hooks, "jwt", "sandbox", Credentials(asp_id="asp1", asp_password="pw-secret-123"),
                   clock=lambda: NOW)
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        url = hooks.endpoint_url("jwt", Api.RETURNS, "sandbox")
        assert client.get(url, params={"action": "B2B"}).json()["user"] == "asp1"
        client.get(url, params={"action": "B2B"})
        assert server.log == ["POST /auth/", "GET /gst/taxpayerapi/v1.0/returns", "GET /gst/taxpayerapi/v1.0/returns"]
        server.valid.clear()  # the GSP forgot the session: one re-login, then the retry succeeds
        assert client.get(url, params={"action": "B2B"}).status_code == 200
        assert server.log[-3:] == ["GET /gst/taxpayerapi/v1.0/returns", "POST /auth/", "GET /gst/taxpayerapi/v1.0/returns"]
    assert "pw-secret-123" not in repr(auth) and "jwt-" not in repr(auth.gsp_session)


def test_hook_gspauth_gsp_session_refresh(jwt_hooks: tuple[Hooks, JwtGsp]) -> None:
    hooks, plugin = jwt_hooks
    server = JwtServer(ttl=30)  # inside the 60 s margin: every call refreshes first
    auth = GSPAuth(hooks, "jwt", "sandbox", Credentials(asp_id="asp1"), clock=lambda: NOW)
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        url = hooks.endpoint_url("jwt", Api.RETURNS, "sandbox")
        client.get(url, params={"action": "B2B"})
        client.get(url, params={"action": "B2B"})
    assert plugin.refreshes == 1
    assert server.log[:3] == ["POST /auth/", "GET /gst/taxpayerapi/v1.0/returns", "PUT /auth/"]


def test_hook_gspauth_gsp_session_logout(jwt_hooks: tuple[Hooks, JwtGsp]) -> None:
    hooks, _ = jwt_hooks
    session = GSPSession(headers={"Authorization": "Bearer x"})
    request = hooks.gsp_session_logout("jwt", "sandbox", Credentials(), session)
    assert request is not None and request.url == "https://jwt.example/logout"
    assert request.headers["authorization"] == "Bearer x"


def test_hook_gspauth_on_session_event(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[SessionEvent] = []

    class Audit:
        @hookimpl
        def gspauth_on_session_event(self, event: SessionEvent) -> None:
            seen.append(event)

    class Broken:
        @hookimpl
        def gspauth_on_session_event(self, event: SessionEvent) -> None:
            raise RuntimeError("observer down")

    pm = get_plugin_manager(autoload=False)
    pm.register(Audit(), name="audit")
    pm.register(Broken(), name="broken")
    event = SessionEvent(kind="consent", gsp="vayana", environment="sandbox", gstin="27AAAPZ1234C1ZV",
                         username="u", at=NOW)
    Hooks(pm, config=False).session_event(event)  # the broken observer is logged, not raised
    assert seen == [event]
    assert any("broken" in r.getMessage() and "RuntimeError" in r.getMessage() for r in caplog.records)


def test_hook_gspauth_provide_otp() -> None:
    class Mailbox:
        @hookimpl
        def gspauth_provide_otp(self, gstin: str) -> str | None:
            return "123456" if gstin == "27AAAPZ1234C1ZV" else None

    pm = get_plugin_manager(autoload=False)
    pm.register(Mailbox())
    hooks = Hooks(pm, config=False)
    assert hooks.provide_otp("vayana", "sandbox", "27AAAPZ1234C1ZV", "u") == "123456"
    assert hooks.provide_otp("vayana", "sandbox", "29AABCE1234F1ZQ", "u") is None


def test_hook_gspauth_check_credentials() -> None:
    class Strict:
        @hookimpl
        def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
            register(GSPInfo(id="strict", name="Strict", environments={"sandbox": "https://s.example"},
                             credentials=(CredentialField("region", "one of our regions", required=True,
                                                          secret=False),
                                          CredentialField("mode", "signing mode", secret=False,
                                                          choices=("a", "b"), default="a"))))

        @hookimpl
        def gspauth_check_credentials(self, gsp: str, credentials: Credentials) -> None:
            if gsp == "strict" and credentials["region"] not in ("north", "south"):
                raise ConfigurationError("Strict: region must be north or south")

    pm = get_plugin_manager(autoload=False)
    pm.register(Strict())
    hooks = Hooks(pm, config=False)
    assert hooks.check_credentials("strict", Credentials(region="north")) == Credentials(region="north", mode="a")
    with pytest.raises(ConfigurationError, match="region must be north or south"):
        hooks.check_credentials("strict", Credentials(region="east"))
    with pytest.raises(ConfigurationError, match="needs credential.*region"):
        hooks.check_credentials("strict", Credentials(mode="b"))
    with pytest.raises(ConfigurationError, match="mode.*one of a, b"):
        hooks.check_credentials("strict", Credentials(region="north", mode="c"))
    with pytest.raises(ConfigurationError, match="does not use credential.*regoin"):
        hooks.check_credentials("strict", Credentials(regoin="north"))
    # other GSPs are not the plugin's business: gstn-direct only checks its own declarations
    hooks.check_credentials("gstn-direct", Credentials(client_id="c", client_secret="s"))


# -- contract enforcement of GSP-session results ---------------------------------------------------------
def test_gsp_session_parse_must_return_a_session(jwt_hooks: tuple[Hooks, JwtGsp], monkeypatch: pytest.MonkeyPatch) -> None:
    hooks, plugin = jwt_hooks
    monkeypatch.setattr(plugin, "_parse", lambda response: {"not": "a session"})
    auth = GSPAuth(hooks, "jwt", "sandbox", Credentials(), clock=lambda: NOW)
    with httpx.Client(transport=httpx.MockTransport(JwtServer()), auth=auth) as client:
        with pytest.raises(PluginContractError, match="expected GSPSession"):
            client.get(hooks.endpoint_url("jwt", Api.RETURNS, "sandbox"))


def test_gsp_login_error_is_mapped(jwt_hooks: tuple[Hooks, JwtGsp]) -> None:
    hooks, _ = jwt_hooks
    transport = httpx.MockTransport(lambda r: httpx.Response(401, text="jwt expired"))
    auth = GSPAuth(hooks, "jwt", "sandbox", Credentials(), clock=lambda: NOW)
    with httpx.Client(transport=transport, auth=auth) as client:
        with pytest.raises(GSPLayerError, match="jwt expired"):
            client.get(hooks.endpoint_url("jwt", Api.RETURNS, "sandbox"))


# -- meta-tests ------------------------------------------------------------------------------------------
def test_every_hookspec_is_documented_with_its_exact_signature() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    missing = []
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        if f"{name}({params})" not in text:
            missing.append(f"{name}({params})")
    assert not missing, f"docs/hooks.md lacks: {missing}"


def test_every_hookspec_has_a_test() -> None:
    here = inspect.getsource(inspect.getmodule(test_every_hookspec_has_a_test))  # type: ignore[arg-type]
    missing = [name for name in HOOKS if f"def test_hook_{name}(" not in here]
    assert not missing, f"add test_hook_<name> tests for: {missing}"


def test_every_hookspec_is_marked_and_versioned() -> None:
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert getattr(fn, "gspauth_spec", None) is not None, f"{name} lacks @hookspec"
        assert ".. versionadded::" in (fn.__doc__ or ""), f"{name} lacks versionadded"
    assert set(hookspecs.__all__) >= set(HOOKS)


