"""``ProviderConformance``: the test suite every GSP plugin subclasses in its own tests.

::

    # tests/test_conformance.py of your plugin distribution
    import pytest
    from gspauth.testing import ProviderConformance
    from gspauth.types import Credentials

    class TestAcme(ProviderConformance):
        gsp = "acme"                      # the GSP id you register (and, by default, your entry name)

        @pytest.fixture
        def credentials(self) -> Credentials:
            return Credentials(client_id="test-id", client_secret="test-secret-value")

Run it with ``pytest`` after ``pip install -e .`` (discovery goes through your entry point).
Override class attributes to describe your GSP (see :class:`ProviderConformance`).
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as _dt
import importlib.metadata
import io
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
import pluggy
import pytest

from gspauth.auth import GSPAuth
from gspauth.errors import ConfigurationError, GSPAuthError, NetworkError, PluginError
from gspauth.hookspecs import PROJECT
from gspauth.plugins import Hooks, check_hooks, collect_gsps, get_plugin_manager, load_entry_point
from gspauth.redact import is_sensitive
from gspauth.types import Api, Credentials, GSPInfo, GSPSession, SigningContext, is_loopback_host

__all__ = ["ProviderConformance"]

_ENV_SWITCHES = ("GSPAUTH_PLUGINS", "GSPAUTH_BLOCKED_PLUGINS", "GSPAUTH_DISABLE_PLUGIN_AUTOLOAD",
                 "GSPAUTH_TRACE_HOOKS", "GSPAUTH_CONFIG")
_FROZEN_NOW = _dt.datetime(2024, 7, 15, 6, 30, 5, tzinfo=_dt.timezone.utc)
_TXN = "GSPAUTHCONF0000001"
_NONCE = bytes(range(32))
_RET_PERIOD = "072024"


class _ForbiddenIO(AssertionError):
    pass


@contextmanager
def _forbid_io(monkeypatch: pytest.MonkeyPatch, what: str) -> Iterator[None]:
    """Make sockets, file opens and sleeps raise while ``what`` runs."""

    def deny(kind: str) -> Any:
        def _deny(*args: Any, **kwargs: Any) -> Any:
            raise _ForbiddenIO(f"{what} tried to {kind}; signing must be pure (no network, disk or sleep)")

        return _deny

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", deny("open a network connection"))
        m.setattr(socket.socket, "connect_ex", deny("open a network connection"))
        m.setattr(socket.socket, "sendto", deny("send a datagram"))
        m.setattr(socket, "create_connection", deny("open a network connection"))
        m.setattr(socket, "getaddrinfo", deny("resolve a host name"))
        m.setattr(builtins, "open", deny("open a file"))
        m.setattr(io, "open", deny("open a file"))
        m.setattr(os, "open", deny("open a file"))
        m.setattr(time, "sleep", deny("sleep"))
        yield


class _KitTransport(httpx.BaseTransport):
    """What stands between the client and the emulator in the round trip: the test class's
    :meth:`ProviderConformance.gsp_layer` first, then, for the ``generic`` mount, a plain
    pass-through GSP (strip the plugin's prefix, send the emulator's GSTN client credentials)."""

    def __init__(self, layer: Any, generic_root: str | None, prefix: str) -> None:
        self._layer = layer
        self._generic_root = generic_root
        self._prefix = prefix
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        answer = self._layer(request)
        if answer is not None:
            return answer  # type: ignore[no-any-return]
        if self._generic_root is not None:
            from gspauth.emulator import defaults

            mounted = self._generic_root + self._prefix
            if self._prefix and request.url.path.startswith(mounted + "/"):
                request.url = request.url.copy_with(path=self._generic_root + request.url.path[len(mounted):])
            request.headers["clientid"] = defaults.GSTN_CLIENT_ID
            request.headers["client-secret"] = defaults.GSTN_CLIENT_SECRET
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class ProviderConformance:
    """Base class of a GSP plugin's conformance tests. Subclass it as ``Test<YourGSP>``.

    **Required:** the class attribute :attr:`gsp` and the fixture ``credentials``.

    **Optional fixtures:** ``emulator_credentials`` (what the gspauth emulator accepts for your
    GSP; default: ``credentials``), ``gstin``, ``gsp_session`` (GSPs with their own login: a
    sample :class:`GSPSession` such as your login's ``parse`` returns).

    **Optional method:** :meth:`gsp_layer` models your GSP's own layer in front of the
    emulator (answer your GSP login, check your headers).

    **Flags** (override as class attributes) describe what your GSP does; the defaults fit a
    pass-through GSP that signs every request and supports refresh.
    """

    #: The GSP id your plugin registers. Required.
    gsp: ClassVar[str] = ""
    #: Your entry-point name in group ``gspauth`` (default: :attr:`gsp`).
    plugin_name: ClassVar[str | None] = None
    #: GSTN API version used to build sample URLs.
    api_version: ClassVar[str] = "v1.0"
    #: The APIs whose URLs are checked in every environment.
    apis: ClassVar[tuple[Api, ...]] = tuple(Api)
    #: URLs end with the GSTN path (``/taxpayerapi/v1.0/authenticate`` …): true for pass-through GSPs.
    passthrough_paths: ClassVar[bool] = True
    #: ``gspauth_sign_headers`` returns at least one header for your GSP.
    signs_requests: ClassVar[bool] = True
    #: Your GSP forwards REFRESHTOKEN (must equal ``GSPInfo.supports_refresh``).
    supports_refresh: ClassVar[bool] = True
    #: Run the OTP → ... → LOGOUT round trip against the gspauth emulator.
    round_trip: ClassVar[bool] = True
    #: The emulator mount serving your GSP: ``"cleartax"``, ``"cleartax-legacy"``, ``"vayana"``,
    #: or ``"generic"`` (GSTN itself; the kit then plays a plain pass-through GSP in front of it:
    #: it strips your URL prefix and sends the emulator's GSTN ``clientid``/``client-secret``).
    emulator_mount: ClassVar[str] = "generic"
    #: Your environment whose host is pointed at the emulator for the round trip.
    emulator_environment: ClassVar[str] = "sandbox"
    #: Extra :class:`~gspauth.emulator.EmulatorConfig` settings for the round trip.
    emulator_config: ClassVar[dict[str, Any]] = {}

    # -- fixtures to override ------------------------------------------------------------------
    @pytest.fixture
    def credentials(self) -> Credentials:
        """The :class:`Credentials` your plugin needs (fake values are fine)."""
        raise NotImplementedError("override in your test class: return the Credentials your plugin needs")

    @pytest.fixture
    def emulator_credentials(self, credentials: Credentials) -> Credentials:
        """Credentials the gspauth emulator accepts for your GSP (default: ``credentials``)."""
        return credentials

    @pytest.fixture
    def gsp_session(self) -> GSPSession:
        """For GSPs registered with ``gsp_session=True``: the session the signing checks pass as
        ``context.gsp_session`` (fake values; e.g. ``GSPSession(headers={"session-id": "s1"},
        data={"enc_key": ...})``). Default: an empty session."""
        return GSPSession()

    def gsp_layer(self, request: httpx.Request) -> httpx.Response | None:
        """Model your GSP's own layer for the kit's httpx runs (round trip, sync/async check).

        Called with every request the client sends, before it reaches the emulator (or the
        kit's stub). Return an :class:`httpx.Response` to answer it yourself, e.g. your GSP's
        login (TaxPro ``GetKey``, a JWT login); raise ``AssertionError`` when your headers are
        wrong; return ``None`` to pass it on. Default: pass everything on.
        """
        return None

    @pytest.fixture
    def gstin(self) -> str:
        """The GSTIN used in sample requests (default: the emulator's first sample taxpayer)."""
        from gspauth.emulator.defaults import sample_taxpayer

        return sample_taxpayer(0).gstin

    # -- kit fixtures --------------------------------------------------------------------------
    @pytest.fixture
    def _entry_name(self) -> str:
        if not self.gsp:
            pytest.fail(f"{type(self).__name__}: set the class attribute `gsp` to the GSP id your plugin registers")
        return self.plugin_name or self.gsp

    @pytest.fixture
    def pm(self, monkeypatch: pytest.MonkeyPatch, _entry_name: str) -> pluggy.PluginManager:
        """A plugin manager holding the built-ins and *only* your plugin, loaded by entry point."""
        for name in _ENV_SWITCHES:
            monkeypatch.delenv(name, raising=False)
        return self._load(_entry_name)

    def _load(self, entry_name: str) -> pluggy.PluginManager:
        pm = get_plugin_manager(autoload=False)
        try:
            load_entry_point(pm, entry_name)
        except PluginError as exc:
            pytest.fail(str(exc))
        if pm.get_plugin(entry_name) is None:
            pytest.fail(
                f"no entry point named {entry_name!r} in group {PROJECT!r}. Is your distribution installed "
                f"(pip install -e .)? Its pyproject.toml needs:\n"
                f"    [project.entry-points.{PROJECT}]\n    {entry_name} = \"<your module>\""
            )
        try:
            check_hooks(pm)
            collect_gsps(pm)
        except (PluginError, ValueError) as exc:
            pytest.fail(f"plugin {entry_name!r} failed to register its GSPs: {exc}")
        return pm

    @pytest.fixture
    def hooks(self, pm: pluggy.PluginManager) -> Hooks:
        return Hooks(pm, config=False)

    @pytest.fixture
    def info(self, hooks: Hooks) -> GSPInfo:
        if self.gsp not in hooks.gsps():
            pytest.fail(f"plugin {self.plugin_name or self.gsp!r} loaded but did not register GSP {self.gsp!r}; "
                        f"registered: {sorted(hooks.gsps())}")
        return hooks.gsp(self.gsp)

    # -- helpers -------------------------------------------------------------------------------
    def sample_requests(self, hooks: Hooks, gstin: str, environment: str) -> list[tuple[str, httpx.Request, Api]]:
        """(GSTN action, request, api) triples used by the signing checks: an auth call, a
        RETSAVE upload and a B2B download, with the GSTN headers a client would set."""
        base = {"Content-Type": "application/json", "state-cd": gstin[:2], "ip-usr": "203.0.113.7",
                "txn": _TXN, "gstin": gstin, "username": "conformance.user"}
        auth_body = {"action": "OTPREQUEST", "username": "conformance.user", "app_key": "A" * 342 + "=="}
        save_body = {"action": "RETSAVE", "data": "QUJDRA==" * 8, "hmac": "SE1BQw==" * 5}
        v = self.api_version
        out = [
            ("OTPREQUEST", httpx.Request("POST", hooks.endpoint_url(self.gsp, Api.AUTH, environment, v),
                                         headers=base, content=json.dumps(auth_body).encode()), Api.AUTH),
            ("RETSAVE", httpx.Request("PUT", hooks.endpoint_url(self.gsp, Api.RETURNS, environment, v, "gstr1"),
                                      headers={**base, "ret_period": _RET_PERIOD, "auth-token": "f" * 32},
                                      content=json.dumps(save_body).encode()), Api.RETURNS),
            ("B2B", httpx.Request("GET", hooks.endpoint_url(self.gsp, Api.RETURNS, environment, v, "gstr1"),
                                  params={"gstin": gstin, "ret_period": _RET_PERIOD, "action": "B2B"},
                                  headers={**base, "ret_period": _RET_PERIOD, "auth-token": "f" * 32}), Api.RETURNS),
        ]
        for _, request, _ in out:
            request.read()
        return out

    def _context(self, info: GSPInfo, environment: str, action: str, gstin: str, api: Api,
                 session: GSPSession) -> SigningContext:
        return SigningContext(gsp=info.id, environment=environment, action=action, gstin=gstin, txn=_TXN,
                              now=_FROZEN_NOW, api=api, username="conformance.user",
                              gsp_session=session if info.gsp_session else None, nonce=_NONCE)

    def _sign(self, hooks: Hooks, request: httpx.Request, context: SigningContext,
              credentials: Credentials) -> dict[str, str]:
        try:
            return hooks.sign_headers(self.gsp, request, context, credentials)
        except ConfigurationError as exc:
            pytest.fail(f"gspauth_sign_headers refused the `credentials` fixture for {context.action}: {exc}. "
                        "Return Credentials with every field your plugin needs from that fixture (fake values "
                        "are fine)")

    def _http_handler(self, status: int, reply: dict[str, Any]) -> Any:
        def handle(request: httpx.Request) -> httpx.Response:
            request.read()
            return self.gsp_layer(request) or httpx.Response(status, json=reply)

        return handle

    # -- 1. discovery --------------------------------------------------------------------------
    def test_discovered_under_entry_name(self, pm: pluggy.PluginManager, _entry_name: str) -> None:
        eps = [ep for ep in importlib.metadata.entry_points(group=PROJECT) if ep.name == _entry_name]
        assert len(eps) == 1, (
            f"expected exactly one entry point {_entry_name!r} in group {PROJECT!r}, found {len(eps)}: "
            f"{[ep.value for ep in eps]}"
        )
        registry = collect_gsps(pm)
        mine = sorted(gsp for gsp, (_, owner) in registry.items() if owner == _entry_name)
        assert mine == [self.gsp], (
            f"plugin {_entry_name!r} must register exactly one GSPInfo with id {self.gsp!r}; it registered {mine}"
        )
        dist = {p: d for p, d in pm.list_plugin_distinfo()}.get(pm.get_plugin(_entry_name))
        assert dist is not None and dist.version, f"plugin {_entry_name!r} has no distribution version"

    def test_gsp_info_is_well_formed(self, info: GSPInfo) -> None:
        assert isinstance(info, GSPInfo)
        assert info.name.strip(), f"GSPInfo.name of {self.gsp!r} is empty"
        assert self.emulator_environment in info.environments, (
            f"GSP {self.gsp!r} declares environments {list(info.environments)}; the kit points "
            f"{self.emulator_environment!r} at the emulator: set emulator_environment in your test class"
        )
        assert info.supports_refresh is self.supports_refresh, (
            f"GSPInfo.supports_refresh is {info.supports_refresh} but the test class says supports_refresh = "
            f"{self.supports_refresh}; make them agree"
        )

    def test_credentials_are_declared_and_accepted(self, hooks: Hooks, info: GSPInfo,
                                                   credentials: Credentials) -> None:
        undocumented = [f.name for f in info.credentials if not f.description.strip()]
        assert not undocumented, f"describe these credential fields in GSPInfo.credentials: {undocumented}"
        try:
            hooks.check_credentials(self.gsp, credentials)
        except GSPAuthError as exc:
            pytest.fail(f"the `credentials` fixture does not pass the plugin's own declarations: {exc}. Declare "
                        "every field your hooks read in GSPInfo(credentials=(CredentialField(...), ...))")

    # -- 2. URLs -------------------------------------------------------------------------------
    def test_endpoint_urls_are_well_formed(self, hooks: Hooks, info: GSPInfo) -> None:
        problems = []
        for env, host in info.environments.items():
            for api in self.apis:
                where = f"api={api.value} environment={env}"
                try:
                    url = hooks.endpoint_url(self.gsp, api, env, self.api_version)
                except (GSPAuthError, ValueError) as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                parts = httpx.URL(url)
                if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.host))):
                    problems.append(f"{where}: {url!r} is not https (only loopback hosts may use http)")
                if not url.startswith(host):
                    problems.append(f"{where}: {url!r} does not start with the host {host!r}; build URLs from "
                                    "the `host` argument so overrides work")
                if "//" in parts.path:
                    problems.append(f"{where}: {url!r} has an empty path segment ('//')")
                if self.passthrough_paths and not parts.path.endswith(api.path(self.api_version)):
                    problems.append(f"{where}: {url!r} does not end with the GSTN path "
                                    f"{api.path(self.api_version)!r} (set passthrough_paths = False if your "
                                    "GSP maps paths differently)")
        assert not problems, "malformed endpoint URLs:\n  " + "\n  ".join(problems)

    def test_endpoint_urls_follow_host_overrides(self, pm: pluggy.PluginManager, info: GSPInfo) -> None:
        override = "https://override.gspauth.invalid/base"
        hooks = Hooks(pm, hosts={(self.gsp, env): override for env in info.environments}, config=False)
        wrong = []
        for env in info.environments:
            for api in self.apis:
                url = hooks.endpoint_url(self.gsp, api, env, self.api_version)
                if not url.startswith(override + "/"):
                    wrong.append(f"api={api.value} environment={env}: {url}")
        assert not wrong, (f"with the host overridden to {override!r} these URLs ignore the override "
                           "(use the `host` argument of gspauth_endpoint_url):\n  " + "\n  ".join(wrong))

    # -- 3. declining other GSP ids --------------------------------------------------------------
    def test_declines_other_gsp_ids(self, pm: pluggy.PluginManager, _entry_name: str, credentials: Credentials,
                                    gstin: str) -> None:
        other = "not-" + self.gsp
        request = httpx.Request("POST", "https://other.gspauth.invalid/taxpayerapi/v1.0/authenticate",
                                headers={"txn": _TXN}, content=b'{"action":"OTPREQUEST"}')
        request.read()
        response = httpx.Response(403, json={"error_code": "X1", "error": {"code": "X1", "message": "no"}},
                                  request=request)
        pool: dict[str, Any] = {
            "gsp": other, "api": Api.AUTH, "environment": "sandbox", "version": "v1.0",
            "host": "https://other.gspauth.invalid", "request": request, "response": response,
            "credentials": credentials, "session": GSPSession(), "now": _FROZEN_NOW,
            "gstin": gstin, "username": "conformance.user", "txn": _TXN, "action": "OTPREQUEST",
            "context": SigningContext(gsp=other, environment="sandbox", action="OTPREQUEST", gstin=gstin,
                                      txn=_TXN, now=_FROZEN_NOW, nonce=_NONCE),
        }
        plugin = pm.get_plugin(_entry_name)
        problems = []
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.spec is None or "gsp" not in caller.spec.argnames or caller.name == "gspauth_provide_otp":
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                missing = [a for a in impl.argnames if a not in pool]
                if missing:
                    problems.append(f"{caller.name}: the kit has no sample for argument(s) {missing}")
                    continue
                try:
                    result = impl.function(**{a: pool[a] for a in impl.argnames})
                except Exception as exc:  # noqa: BLE001 - any exception is the finding reported
                    problems.append(f"{caller.name} raised {type(exc).__name__} for GSP id {other!r}; "
                                    "return None for ids you did not register")
                    continue
                if result is not None:
                    problems.append(f"{caller.name} returned {type(result).__name__} for GSP id {other!r}; "
                                    "it must return None for ids you did not register")
        assert not problems, "plugin does not decline other GSPs:\n  " + "\n  ".join(problems)

    # -- 4. pure, repeatable signing --------------------------------------------------------------
    def test_signing_is_pure_and_repeatable(self, hooks: Hooks, info: GSPInfo, credentials: Credentials,
                                            gstin: str, gsp_session: GSPSession,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        env = self.emulator_environment
        for action, request, api in self.sample_requests(hooks, gstin, env):
            before = dict(request.headers)
            context = self._context(info, env, action, gstin, api, gsp_session)
            with _forbid_io(monkeypatch, f"gspauth_sign_headers({action})"):
                try:
                    first = self._sign(hooks, request, context, credentials)
                    second = self._sign(hooks, request, context, credentials)
                except _ForbiddenIO as exc:
                    pytest.fail(str(exc))
            assert first == second, (
                f"signing {action} twice with the same request, context.now, context.txn and context.nonce gave "
                f"different headers {sorted(k for k in first if first.get(k) != second.get(k))}: use "
                "context.now, context.txn and context.nonce instead of the system clock or random values"
            )
            assert dict(request.headers) == before, f"gspauth_sign_headers mutated the {action} request's headers"
            if self.signs_requests:
                assert first, (f"gspauth_sign_headers returned no headers for {action} "
                               "(set signs_requests = False if your GSP needs none)")

    def test_signing_runs_in_sync_and_async_httpx(self, hooks: Hooks, info: GSPInfo, credentials: Credentials,
                                                  gstin: str, gsp_session: GSPSession) -> None:
        env = self.emulator_environment
        seen: list[httpx.Request] = []
        answer = self._http_handler(200, {"status_cd": "1"})

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return answer(request)  # type: ignore[no-any-return]

        action, request, api = self.sample_requests(hooks, gstin, env)[0]
        expected = self._sign(hooks, request, self._context(info, env, action, gstin, api, gsp_session),
                              credentials)
        auth = GSPAuth(hooks, self.gsp, env, credentials, gstin=gstin, clock=lambda: _FROZEN_NOW,
                       nonce_factory=lambda: _NONCE)

        def fresh() -> httpx.Request:
            request = self.sample_requests(hooks, gstin, env)[0][1]
            request.extensions["gspauth"] = {"action": action, "api": api}
            return request

        async def run_async() -> None:
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as aclient:
                await aclient.send(fresh(), auth=auth)

        try:
            with httpx.Client(transport=httpx.MockTransport(handler)) as client:
                client.send(fresh(), auth=auth)
            auth.clear_gsp_session()  # the async client logs in afresh
            asyncio.run(run_async())
        except GSPAuthError as exc:
            hint = (" Your GSP has its own login: override gsp_layer() in your test class to answer it."
                    if info.gsp_session else "")
            pytest.fail(f"signing through GSPAuth failed: {type(exc).__name__}: {exc}.{hint}")
        sent = [r for r in seen if r.url.path == request.url.path]
        assert len(sent) == 2, f"expected one {action} request per client, the transport saw {len(sent)}"
        for kind, wire in zip(("sync", "async"), sent):
            if info.gsp_session:  # session values come from gsp_layer's login reply, not the fixture
                missing = sorted(k for k in expected if k not in wire.headers)
            else:
                missing = sorted(k for k in expected if wire.headers.get(k) != expected[k])
            assert not missing, f"the {kind} httpx client did not send the plugin's headers: " \
                                f"missing or different {missing}"

    # -- 5. secrets --------------------------------------------------------------------------------
    def test_no_secret_in_reprs_or_logs(self, _entry_name: str, credentials: Credentials, gstin: str,
                                        gsp_session: GSPSession, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
        for name in _ENV_SWITCHES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
        caplog.set_level(logging.DEBUG, logger="gspauth")
        pm = self._load(_entry_name)
        hooks = Hooks(pm, config=False)
        info = hooks.gsp(self.gsp)
        env = self.emulator_environment
        secrets = set(credentials.secret_values(info.public_credentials))
        if info.gsp_session:
            secrets.update([*gsp_session.headers.values(), *gsp_session.data.values()])
        texts = [repr(credentials), str(credentials), repr(info), repr(hooks), repr(gsp_session)]
        errors: list[str] = []
        for action, request, api in self.sample_requests(hooks, gstin, env):
            context = self._context(info, env, action, gstin, api, gsp_session)
            texts.append(repr(context))
            try:
                headers = hooks.sign_headers(self.gsp, request, context, credentials)
            except GSPAuthError as exc:
                errors.append(str(exc))
                continue
            secrets.update(v for k, v in headers.items() if is_sensitive(k))
        auth = GSPAuth(hooks, self.gsp, env, credentials, gstin=gstin, clock=lambda: _FROZEN_NOW)
        request = self.sample_requests(hooks, gstin, env)[1][1]
        refused = self._http_handler(403, {"status_cd": "0", "error": {"error_cd": "AUTH4033",
                                                                        "message": "Invalid Session"}})
        try:
            with httpx.Client(transport=httpx.MockTransport(refused)) as c:
                response = c.send(request, auth=auth)
                response.read()
        except GSPAuthError as exc:
            errors.append(str(exc))
        else:
            mapped = hooks.map_error(self.gsp, response)
            if mapped is not None:
                texts.append(str(mapped))
        live = auth.gsp_session
        if live is not None:
            secrets.update([*live.headers.values(), *live.data.values()])
            texts.append(repr(live))
        texts.append(repr(auth))
        texts.extend(errors)
        texts.extend(r.getMessage() for r in caplog.records)
        traced = [r for r in caplog.records if r.name == "gspauth.plugins" and "gspauth_sign_headers" in r.getMessage()]
        assert traced, "GSPAUTH_TRACE_HOOKS=1 produced no trace of gspauth_sign_headers (is tracing broken?)"
        secrets = {s for s in secrets if len(s) >= 6}  # shorter values match by accident
        leaks = sorted({f"{secret[:3]}… (len {len(secret)}) in: {text[:160]!r}"
                        for text in texts for secret in secrets if secret in text})
        assert not leaks, "secrets leaked into reprs, errors or log lines:\n  " + "\n  ".join(leaks)

    # -- 6. errors -----------------------------------------------------------------------------------
    def test_map_error_leaves_gstn_replies_to_the_core(self, hooks: Hooks) -> None:
        request = httpx.Request("GET", hooks.endpoint_url(self.gsp, Api.RETURNS, self.emulator_environment,
                                                          self.api_version, "gstr1"))
        for status, body in ((200, {"status_cd": "1", "data": "x", "rek": "y", "hmac": "z"}),
                             (200, {"status_cd": "0",
                                    "error": {"error_cd": "AUTH4033", "message": "Invalid Session"}}),
                             (403, {"status_cd": "0",
                                    "error": {"error_cd": "AUT4033", "message": "Invalid Client ID"}})):
            response = httpx.Response(status, json=body, request=request)
            result = hooks.map_error(self.gsp, response)
            assert result is None, (
                f"gspauth_map_error turned a GSTN reply (HTTP {status}, {body.get('error', body)}) into "
                f"{type(result).__name__}; return None so the core maps GSTN codes itself"
            )

    # -- 7. round trip --------------------------------------------------------------------------------
    @pytest.fixture
    def emulator(self) -> Iterator[Any]:
        from gspauth.emulator.server import ThreadedEmulator

        config = {"sandbox_otp": True, **self.emulator_config}
        with ThreadedEmulator(**config) as server:
            yield server

    def test_round_trip_against_emulator(self, _entry_name: str, info: GSPInfo,
                                         emulator_credentials: Credentials, emulator: Any,
                                         monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """OTPREQUEST → AUTHTOKEN → RETSAVE → GET (B2B) → REFRESHTOKEN → LOGOUT through your plugin,
        with hook tracing on; then no secret of the run may appear in any client-side log line."""
        if not self.round_trip:
            pytest.skip(f"{type(self).__name__}.round_trip = False")
        from gspauth.client import Client
        from gspauth.emulator.defaults import SANDBOX_OTP, sample_taxpayer
        from gspauth.retry import RetryPolicy
        from gspauth.synthetic import gstr1_chunks

        monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
        caplog.set_level(logging.DEBUG)
        pm = self._load(_entry_name)
        env = self.emulator_environment
        host = f"{emulator.url}/{self.emulator_mount}"
        hooks = Hooks(pm, hosts={(self.gsp, env): host}, config=False)
        auth_url = hooks.endpoint_url(self.gsp, Api.AUTH, env, self.api_version)
        gstn_path = Api.AUTH.path(self.api_version)
        prefix = ""
        if auth_url.startswith(host) and auth_url.endswith(gstn_path):
            prefix = auth_url[len(host):-len(gstn_path)]
        generic = "/generic" if self.emulator_mount == "generic" else None
        taxpayer = sample_taxpayer(0)
        payload = gstr1_chunks(2, seed=7, supplier_gstin=taxpayer.gstin, ret_period=_RET_PERIOD)[0]
        steps = ["OTPREQUEST", "AUTHTOKEN", "RETSAVE", "B2B", *(["REFRESHTOKEN"] if self.supports_refresh else []),
                 "LOGOUT"]
        step = steps[0]
        secrets = set(emulator_credentials.secret_values(hooks.gsp(self.gsp).public_credentials)) | {SANDBOX_OTP}
        client = Client(self.gsp, env, emulator_credentials, gstin=taxpayer.gstin, username=taxpayer.username,
                        certificate=emulator.emulator.certificate_pem, hooks=hooks,
                        transport=_KitTransport(self.gsp_layer, generic, prefix),
                        retry=RetryPolicy(attempts=1))  # the emulator is reliable: fail fast
        try:
            with client:
                client.request_otp()
                step = "AUTHTOKEN"
                client.authenticate(SANDBOX_OTP)
                secrets |= _session_secrets(client)
                step = "RETSAVE"
                saved = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=payload, ret_period=_RET_PERIOD)
                assert saved.get("reference_id"), f"RETSAVE returned no reference_id: {sorted(saved)}"
                step = "B2B"
                got = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=_RET_PERIOD)
                sent = {inv["inum"] for entry in payload["b2b"] for inv in entry["inv"]}
                back = {inv["inum"] for entry in got.get("b2b", []) for inv in entry.get("inv", [])}
                assert sent <= back, f"B2B download lacks saved invoices {sorted(sent - back)}"
                if self.supports_refresh:
                    step = "REFRESHTOKEN"
                    client.refresh()
                    secrets |= _session_secrets(client)
                step = "LOGOUT"
                assert client.logout(), "LOGOUT did not end the session"
        except ConfigurationError as exc:
            pytest.fail(f"round trip through {host} failed at {step}: {type(exc).__name__}: {exc}. The round trip "
                        "signs with the `emulator_credentials` fixture (default: `credentials`); give it every "
                        "field your plugin needs")
        except NetworkError as exc:
            pytest.fail(f"round trip through {host} failed at {step}: could not reach {exc.host or '?'} "
                        f"({type(exc).__name__}: {exc.message}); do your URLs start with the `host` argument?")
        except GSPAuthError as exc:
            pytest.fail(f"round trip through {host} failed at {step}: {type(exc).__name__}: {exc}")
        stats = emulator.emulator.stats
        actions = (stats() if callable(stats) else stats)["actions"]
        missing = [a for a in steps if not actions.get(a)]
        assert not missing, f"the emulator never saw {missing}; it saw {actions}"
        client_side = [r.getMessage() for r in caplog.records if not r.name.startswith("gspauth.emulator")]
        assert any("call gspauth_sign_headers(" in line for line in client_side), "no hook trace was logged"
        leaks = sorted({f"{secret[:3]}… (len {len(secret)}) in: {line[:160]!r}"
                        for line in client_side for secret in secrets if len(secret) >= 6 and secret in line})
        assert not leaks, "secrets of the round trip leaked into log lines (GSPAUTH_TRACE_HOOKS=1):\n  " + \
            "\n  ".join(leaks)


def _session_secrets(client: Any) -> set[str]:
    """Every form in which the client's current GSTN session (and GSP session) could leak."""
    import base64

    out: set[str] = set()
    session = client.session
    if session is not None:
        out.add(session.auth_token)
        for key in (session.sek, session.app_key):
            out.update({key.hex(), base64.b64encode(key).decode()})
    gsp_session = client.gsp_auth.gsp_session
    if gsp_session is not None:
        out.update([*gsp_session.headers.values(), *gsp_session.data.values()])
    return out

