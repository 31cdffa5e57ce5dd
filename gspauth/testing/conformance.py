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
from gspauth.errors import GSPAuthError, GSPError, PluginError
from gspauth.hookspecs import PROJECT
from gspauth.plugins import Hooks, collect_gsps, get_plugin_manager, is_sensitive_header
from gspauth.types import Api, Credentials, GSPInfo, GSPSession, SigningContext, is_loopback_host

__all__ = ["ProviderConformance"]

_ENV_SWITCHES = ("GSPAUTH_PLUGINS", "GSPAUTH_BLOCKED_PLUGINS", "GSPAUTH_DISABLE_PLUGIN_AUTOLOAD",
                 "GSPAUTH_TRACE_HOOKS", "GSPAUTH_CONFIG")
_FROZEN_NOW = _dt.datetime(2024, 7, 15, 6, 30, 5, tzinfo=_dt.timezone.utc)
_TXN = "GSPAUTHCONF0000001"
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


class ProviderConformance:
    """Base class of a GSP plugin's conformance tests. Subclass it as ``Test<YourGSP>``.

    **Required:** the class attribute :attr:`gsp` and the fixture ``credentials``.

    **Optional fixtures:** ``emulator_credentials`` (what the gspauth emulator accepts for your
    GSP; default: ``credentials``), ``gstin``.

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
    #: The emulator mount serving your GSP: ``"cleartax"``, ``"vayana"``, or ``"generic"`` (a
    #: pass-through that forwards any GSP prefix to GSTN with the emulator's own GSP credentials).
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
            pm.load_setuptools_entrypoints(PROJECT, name=entry_name)
        except Exception as exc:
            pytest.fail(f"importing entry point {entry_name!r} (group {PROJECT!r}) failed: "
                        f"{type(exc).__name__}: {exc}")
        if pm.get_plugin(entry_name) is None:
            pytest.fail(
                f"no entry point named {entry_name!r} in group {PROJECT!r}. Is your distribution installed "
                f"(pip install -e .)? Its pyproject.toml needs:\n"
                f"    [project.entry-points.{PROJECT}]\n    {entry_name} = \"<your module>\""
            )
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            pytest.fail(f"plugin {entry_name!r} implements a hook gspauth does not define "
                        f"(misspelt? see docs/hooks.md): {exc}")
        try:
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

    def _context(self, info: GSPInfo, environment: str, action: str, gstin: str, api: Api) -> SigningContext:
        return SigningContext(gsp=info.id, environment=environment, action=action, gstin=gstin, txn=_TXN,
                              now=_FROZEN_NOW, api=api, username="conformance.user",
                              gsp_session=GSPSession() if info.gsp_session else None)

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
            "gstin": gstin, "username": "conformance.user",
            "context": SigningContext(gsp=other, environment="sandbox", action="OTPREQUEST", gstin=gstin,
                                      txn=_TXN, now=_FROZEN_NOW),
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
                except Exception as exc:
                    problems.append(f"{caller.name} raised {type(exc).__name__} for GSP id {other!r}; "
                                    "return None for ids you did not register")
                    continue
                if result is not None:
                    problems.append(f"{caller.name} returned {type(result).__name__} for GSP id {other!r}; "
                                    "it must return None for ids you did not register")
        assert not problems, "plugin does not decline other GSPs:\n  " + "\n  ".join(problems)

    # -- 4. pure, repeatable signing --------------------------------------------------------------
    def test_signing_is_pure_and_repeatable(self, hooks: Hooks, info: GSPInfo, credentials: Credentials,
                                            gstin: str, monkeypatch: pytest.MonkeyPatch) -> None:
        env = self.emulator_environment
        for action, request, api in self.sample_requests(hooks, gstin, env):
            before = dict(request.headers)
            context = self._context(info, env, action, gstin, api)
            with _forbid_io(monkeypatch, f"gspauth_sign_headers({action})"):
                try:
                    first = hooks.sign_headers(self.gsp, request, context, credentials)
                    second = hooks.sign_headers(self.gsp, request, context, credentials)
                except _ForbiddenIO as exc:
                    pytest.fail(str(exc))
            assert first == second, (
                f"signing {action} twice with the same request, context.now and context.txn gave different "
                f"headers {sorted(k for k in first if first.get(k) != second.get(k))}: use context.now and "
                "context.txn instead of the system clock or random values"
            )
            assert dict(request.headers) == before, f"gspauth_sign_headers mutated the {action} request's headers"
            if self.signs_requests:
                assert first, (f"gspauth_sign_headers returned no headers for {action} "
                               "(set signs_requests = False if your GSP needs none)")

    def test_signing_runs_in_sync_and_async_httpx(self, hooks: Hooks, info: GSPInfo, credentials: Credentials,
                                                  gstin: str) -> None:
        if info.gsp_session:
            pytest.skip("GSP-level sessions are exercised by the emulator round trip")
        env = self.emulator_environment
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"status_cd": "1"})

        action, request, api = self.sample_requests(hooks, gstin, env)[0]
        expected = hooks.sign_headers(self.gsp, request, self._context(info, env, action, gstin, api),
                                      credentials)
        auth = GSPAuth(hooks, self.gsp, env, credentials, gstin=gstin, clock=lambda: _FROZEN_NOW)
        with httpx.Client(transport=httpx.MockTransport(handler)) as client:
            fresh = self.sample_requests(hooks, gstin, env)[0][1]
            fresh.extensions["gspauth"] = {"action": action, "api": api}
            client.send(fresh, auth=auth)

        async def run_async() -> None:
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as aclient:
                fresh = self.sample_requests(hooks, gstin, env)[0][1]
                fresh.extensions["gspauth"] = {"action": action, "api": api}
                await aclient.send(fresh, auth=auth)

        asyncio.run(run_async())
        assert len(seen) == 2
        for kind, sent in zip(("sync", "async"), seen):
            got = {k: sent.headers.get(k) for k in expected}
            assert got == expected, f"the {kind} httpx client did not send the plugin's headers: " \
                                    f"missing or different {sorted(k for k in expected if got[k] != expected[k])}"

    # -- 5. secrets --------------------------------------------------------------------------------
    def test_no_secret_in_reprs_or_logs(self, _entry_name: str, credentials: Credentials, gstin: str,
                                        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        for name in _ENV_SWITCHES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
        caplog.set_level(logging.DEBUG, logger="gspauth")
        pm = self._load(_entry_name)
        hooks = Hooks(pm, config=False)
        info = hooks.gsp(self.gsp)
        env = self.emulator_environment
        secrets = {s for s in credentials.secret_values() if len(s) >= 6}
        texts = [repr(credentials), str(credentials), repr(info), repr(hooks)]
        errors: list[str] = []
        for action, request, api in self.sample_requests(hooks, gstin, env):
            context = self._context(info, env, action, gstin, api)
            texts.append(repr(context))
            try:
                headers = hooks.sign_headers(self.gsp, request, context, credentials)
            except GSPAuthError as exc:
                errors.append(str(exc))
                continue
            secrets.update(v for k, v in headers.items() if is_sensitive_header(k) and len(v) >= 8)
        if not info.gsp_session:
            auth = GSPAuth(hooks, self.gsp, env, credentials, gstin=gstin, clock=lambda: _FROZEN_NOW)
            texts.append(repr(auth))
            request = self.sample_requests(hooks, gstin, env)[1][1]
            with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(
                    403, json={"status_cd": "0", "error": {"error_cd": "AUTH4033", "message": "Invalid Session"}}))) as c:
                response = c.send(request, auth=auth)
                response.read()
            mapped = hooks.map_error(self.gsp, response)
            if mapped is not None:
                texts.append(str(mapped))
        texts.extend(errors)
        texts.extend(r.getMessage() for r in caplog.records)
        traced = [r for r in caplog.records if r.name == "gspauth.plugins" and "gspauth_sign_headers" in r.getMessage()]
        assert traced, "GSPAUTH_TRACE_HOOKS=1 produced no trace of gspauth_sign_headers (is tracing broken?)"
        leaks = sorted({f"{secret[:3]}… (len {len(secret)}) in: {text[:160]!r}"
                        for text in texts for secret in secrets if secret in text})
        assert not leaks, "secrets leaked into reprs, errors or log lines:\n  " + "\n  ".join(leaks)

    # -- 6. errors -----------------------------------------------------------------------------------
    def test_map_error_leaves_gstn_replies_to_the_core(self, hooks: Hooks) -> None:
        request = httpx.Request("GET", hooks.endpoint_url(self.gsp, Api.RETURNS, self.emulator_environment,
                                                          self.api_version, "gstr1"))
        for status, body in ((200, {"status_cd": "1", "data": "x", "rek": "y", "hmac": "z"}),
                             (200, {"status_cd": "0", "error": {"error_cd": "AUTH4033", "message": "Invalid Session"}}),
                             (403, {"status_cd": "0", "error": {"error_cd": "AUT4033", "message": "Invalid Client ID"}})):
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

    def test_round_trip_against_emulator(self, pm: pluggy.PluginManager, info: GSPInfo,
                                         emulator_credentials: Credentials, emulator: Any) -> None:
        """OTPREQUEST → AUTHTOKEN → RETSAVE → GET (B2B) → REFRESHTOKEN → LOGOUT through your plugin."""
        if not self.round_trip:
            pytest.skip(f"{type(self).__name__}.round_trip = False")
        from gspauth.client import Client, RetryPolicy
        from gspauth.emulator.defaults import SANDBOX_OTP, sample_taxpayer
        from gspauth.synthetic import gstr1_chunks

        env = self.emulator_environment
        host = f"{emulator.url}/{self.emulator_mount}"
        hooks = Hooks(pm, hosts={(self.gsp, env): host}, config=False)
        taxpayer = sample_taxpayer(0)
        payload = gstr1_chunks(2, seed=7, supplier_gstin=taxpayer.gstin, ret_period=_RET_PERIOD)[0]
        steps = ["OTPREQUEST", "AUTHTOKEN", "RETSAVE", "B2B", *(["REFRESHTOKEN"] if self.supports_refresh else []),
                 "LOGOUT"]
        step = steps[0]
        client = Client(self.gsp, env, emulator_credentials, gstin=taxpayer.gstin, username=taxpayer.username,
                        certificate=emulator.emulator.certificate_pem, hooks=hooks,
                        retry=RetryPolicy(attempts=1))  # the emulator is reliable: fail fast
        try:
            with client:
                client.request_otp()
                step = "AUTHTOKEN"
                client.authenticate(SANDBOX_OTP)
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
                step = "LOGOUT"
                assert client.logout(), "LOGOUT did not end the session"
        except GSPError as exc:
            pytest.fail(f"round trip through {host} failed at {step}: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            try:
                url: object = exc.request.url
            except RuntimeError:  # no request attached
                url = "?"
            pytest.fail(f"round trip through {host} failed at {step}: could not reach {url} "
                        f"({type(exc).__name__}: {exc}); do your URLs start with the `host` argument?")
        stats = emulator.emulator.stats
        actions = (stats() if callable(stats) else stats)["actions"]
        missing = [a for a in steps if not actions.get(a)]
        assert not missing, f"the emulator never saw {missing}; it saw {actions}"

