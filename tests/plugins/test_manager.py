"""get_plugin_manager(): discovery, selection, blocking, loud failures, tracing; the Hooks facade."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gspauth.errors import ConfigurationError, PluginContractError, PluginError, ProviderNotFound
from gspauth.hookspecs import hookimpl
from gspauth.plugins import Hooks, _host_env_var, get_plugin_manager
from gspauth.types import Api, Credentials, GSPInfo, SigningContext

NOW = _dt.datetime(2024, 7, 15, 6, 30, tzinfo=_dt.timezone.utc)
DUP = '''
from gspauth.hookspecs import hookimpl
from gspauth.types import GSPInfo
@hookimpl
def gspauth_register_gsps(register):
    register(GSPInfo(id="cleartax", name="Impostor", environments={"sandbox": "https://x.example"}))
'''
TYPO = '''
from gspauth.hookspecs import hookimpl
@hookimpl
def gspauth_sign_header(gsp):
    return None
'''


def names(pm: object) -> set[str]:
    return {name for name, plugin in pm.list_name_plugin() if plugin is not None}  # type: ignore[attr-defined]


def test_each_call_returns_a_fresh_manager() -> None:
    a, b = get_plugin_manager(), get_plugin_manager()
    assert a is not b and a.get_plugin("cleartax") is not None and b.get_plugin("cleartax") is not None


def test_autoload_false_keeps_only_builtins() -> None:
    assert names(get_plugin_manager(autoload=False)) == {"gspauth.direct"}


def test_disable_autoload_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert names(get_plugin_manager()) == {"gspauth.direct"}
    monkeypatch.setenv("GSPAUTH_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert {"cleartax", "vayana"} <= names(get_plugin_manager())


def test_select_plugins_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_PLUGINS", "vayana")
    assert names(get_plugin_manager()) == {"vayana", "gspauth.direct"}


def test_selecting_an_unknown_plugin_fails_listing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_PLUGINS", "vayana,cleartx")
    with pytest.raises(PluginError, match=r"cleartx.*installed entry points: .*cleartax.*vayana"):
        get_plugin_manager()


def test_blocked_plugins_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_BLOCKED_PLUGINS", "vayana, gspauth.direct")
    pm = get_plugin_manager()
    assert "vayana" not in names(pm) and "gspauth.direct" not in names(pm) and "cleartax" in names(pm)
    with pytest.raises(ProviderNotFound, match="installed GSPs: cleartax"):
        Hooks(pm, config=False).gsp("vayana")


def test_duplicate_gsp_id_fails_at_load_naming_both(fake_dist: Callable[..., Path]) -> None:
    fake_dist("gspauth-impostor", {"impostor": "impostor_mod"}, {"impostor_mod": DUP})
    with pytest.raises(PluginContractError, match="'cleartax' is registered twice: by plugin '.*' and by plugin '.*'"):
        get_plugin_manager()


def test_misspelt_hook_fails_at_load(fake_dist: Callable[..., Path]) -> None:
    fake_dist("gspauth-typo", {"typo": "typo_mod"}, {"typo_mod": TYPO})
    with pytest.raises(PluginContractError, match="gspauth_sign_header"):
        get_plugin_manager()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"id": "Bad_Id"}, "lowercase"),
    ({"environments": {}}, "at least one environment"),
    ({"environments": {"sandbox": "http://gsp.example"}}, "https is required"),
    ({"environments": {"sandbox": "https://gsp.example?x=1"}}, "query"),
    ({"environments": {"sandbox": "ftp://gsp.example"}}, "absolute http"),
    ({"crypto_mode": "magic"}, "crypto_mode"),
])
def test_gspinfo_validation(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"id": "acme", "name": "Acme", "environments": {"sandbox": "https://gsp.example"}}
    with pytest.raises(ValueError, match=message):
        GSPInfo(**{**base, **kwargs})  # type: ignore[arg-type]


def test_gspinfo_accepts_loopback_http_and_strips_slash() -> None:
    info = GSPInfo(id="emu", name="Emu", environments={"sandbox": "http://127.0.0.1:8000/x/", "b": "http://[::1]:1"})
    assert info.environments["sandbox"] == "http://127.0.0.1:8000/x"


def test_trace_hooks_logs_calls_with_secrets_redacted(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture, hooks: Hooks) -> None:
    monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="gspauth.plugins")
    traced = Hooks(get_plugin_manager(), config=False)
    request = httpx.Request("GET", "https://api.clear.in/x", headers={"auth-token": "TOKEN-abcdef-123"})
    context = SigningContext(gsp="cleartax", environment="sandbox", action="B2B", gstin=None, txn="t", now=NOW)
    traced.sign_headers("cleartax", request, context, Credentials(gsp_token="CT-SECRET-987654", client_secret="CS-0000001"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "call gspauth_sign_headers(" in text and "gspauth_sign_headers returned" in text
    assert "X-CT-Auth-Token': '[secure]'" in text
    for secret in ("CT-SECRET-987654", "CS-0000001", "TOKEN-abcdef-123"):
        assert secret not in text


def test_no_tracing_without_the_switch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gspauth.plugins")
    Hooks(get_plugin_manager(), config=False).endpoint_url("cleartax", Api.AUTH, "sandbox")
    assert not [r for r in caplog.records if "call gspauth_" in r.getMessage()]


# -- Hooks facade ------------------------------------------------------------------------------
def test_provider_not_found_lists_installed(hooks: Hooks) -> None:
    with pytest.raises(ProviderNotFound, match=r"'acme'.*cleartax, gstn-direct, vayana.*pip install gspauth-acme"):
        hooks.endpoint_url("acme", Api.AUTH, "sandbox")


def test_unknown_environment_lists_declared(hooks: Hooks) -> None:
    with pytest.raises(ConfigurationError, match="declares: sandbox, production, legacy-sandbox"):
        hooks.host("cleartax", "staging")


def test_host_override_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: Hooks) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hosts.cleartax]\nsandbox = "https://from-file.example"\nproduction = "https://prod-file.example"\n')
    monkeypatch.setenv("GSPAUTH_CONFIG", str(config))
    h = Hooks(hooks.pm)
    assert h.host("cleartax", "sandbox") == "https://from-file.example"
    monkeypatch.setenv(_host_env_var("cleartax", "sandbox"), "http://127.0.0.1:9/cleartax")
    assert h.host("cleartax", "sandbox") == "http://127.0.0.1:9/cleartax"
    h2 = Hooks(hooks.pm, hosts={"sandbox": "https://any-gsp.example", ("cleartax", "sandbox"): "https://ctor.example/"})
    assert h2.host("cleartax", "sandbox") == "https://ctor.example"
    assert h2.host("vayana", "sandbox") == "https://any-gsp.example"
    assert h2.host("cleartax", "production") == "https://prod-file.example"
    assert h2.endpoint_url("cleartax", Api.AUTH, "sandbox", "v0.2") == "https://ctor.example/gsp/api/taxpayerapi/v0.2/authenticate"
    assert Hooks(hooks.pm, config=False).host("cleartax", "production") == "https://api.clear.in"


def test_host_env_var_name() -> None:
    assert _host_env_var("gstn-direct", "legacy-sandbox") == "GSPAUTH_GSTN_DIRECT_LEGACY_SANDBOX_HOST"


@pytest.mark.parametrize(("hosts", "message"), [
    ({("cleartax", "sandbox"): "http://evil.example"}, "https is required"),
    ({("cleartax", "staging"): "https://x.example"}, "no environment 'staging'"),
    ({"cleartax": {"sandbox": "https://u:p@x.example"}}, "credentials"),
    ({42: "x"}, "hosts must map"),
])
def test_bad_overrides_fail_early(hooks: Hooks, hosts: dict[object, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Hooks(hooks.pm, hosts=hosts, config=False)


def test_bad_env_override_fails_on_use(hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSPAUTH_VAYANA_SANDBOX_HOST", "http://10.0.0.1")
    with pytest.raises(ConfigurationError, match="GSPAUTH|https is required"):
        hooks.endpoint_url("vayana", Api.AUTH, "sandbox")


def test_bad_config_file(tmp_path: Path, hooks: Hooks) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[hosts\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        Hooks(hooks.pm, config=bad)


def test_endpoint_url_validates_version_and_appends_path(hooks: Hooks) -> None:
    assert hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", "v4.1", "/gstr1") == \
        "https://yoda.api.vayanagsp.in/gus/taxpayerapi/v4.1/returns/gstr1"
    with pytest.raises(ValueError, match="v1.0"):
        hooks.endpoint_url("vayana", Api.RETURNS, "sandbox", "4.1")


class Sloppy:
    def __init__(self, headers: object = None, url: object = "https://s.example/x", error: object = None) -> None:
        self.headers, self.url, self.error = headers, url, error

    @hookimpl
    def gspauth_register_gsps(self, register: Callable[[GSPInfo], None]) -> None:
        register(GSPInfo(id="sloppy", name="Sloppy", environments={"sandbox": "https://s.example"}))

    @hookimpl
    def gspauth_endpoint_url(self, gsp: str) -> object:
        return self.url if gsp == "sloppy" else None

    @hookimpl
    def gspauth_sign_headers(self, gsp: str) -> object:
        return self.headers if gsp == "sloppy" else None

    @hookimpl
    def gspauth_map_error(self, gsp: str) -> object:
        return self.error if gsp == "sloppy" else None


def sloppy(**kwargs: object) -> Hooks:
    pm = get_plugin_manager(autoload=False)
    pm.register(Sloppy(**kwargs), name="sloppy")
    return Hooks(pm, config=False)


@pytest.mark.parametrize(("headers", "message"), [
    (None, "returned None"),
    ([("a", "b")], "expected a Mapping"),
    ({"bad header": "x"}, "invalid header name"),
    ({"x-ok": "line\r\nInjected: 1"}, "without CR/LF"),
    ({"x-ok": b"bytes"}, "must be a str"),
])
def test_sign_headers_contract(headers: object, message: str) -> None:
    context = SigningContext(gsp="sloppy", environment="sandbox", action="B2B", gstin=None, txn="t", now=NOW)
    with pytest.raises(PluginContractError, match=message) as info:
        sloppy(headers=headers).sign_headers("sloppy", httpx.Request("GET", "https://s.example"), context, Credentials())
    assert "line" not in str(info.value)  # never echo header values


@pytest.mark.parametrize(("url", "message"), [(None, "returned no URL"), (42, "expected str"),
                                              ("http://s.example/x", "https is required")])
def test_endpoint_url_contract(url: object, message: str) -> None:
    with pytest.raises(PluginContractError, match=message):
        sloppy(url=url).endpoint_url("sloppy", Api.AUTH, "sandbox")


def test_map_error_contract() -> None:
    response = httpx.Response(500, request=httpx.Request("GET", "https://s.example"))
    with pytest.raises(PluginContractError, match="expected a gspauth.errors.GSPError"):
        sloppy(error="oops").map_error("sloppy", response)


def test_trace_redacts_query_secrets_and_supplied_otps(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    class Mailbox:
        @hookimpl
        def gspauth_provide_otp(self) -> str:
            return "918273"

    monkeypatch.setenv("GSPAUTH_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="gspauth.plugins")
    pm = get_plugin_manager(autoload=False)
    pm.register(Mailbox())
    hooks = Hooks(pm, config=False)
    assert hooks.provide_otp("gstn-direct", "sandbox", "27AAAPZ1234C1ZV", "u") == "918273"
    # TaxPro's "dec" mode sends the ASP password and the OTP in the query string
    request = httpx.Request("GET", "https://gstapi.example/taxpayerapi/dec/v1.0/authenticate",
                            params={"action": "AUTHTOKEN", "aspid": "A1", "password": "pw-in-query-77", "OTP": "918273"})
    context = SigningContext(gsp="gstn-direct", environment="sandbox", action="AUTHTOKEN", gstin=None, txn="t", now=NOW)
    hooks.sign_headers("gstn-direct", request, context, Credentials(client_id="c", client_secret="cs-secret-1"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "gspauth_provide_otp returned [secure]" in text and "aspid=A1" in text and "password=[secure]" in text
    for secret in ("918273", "pw-in-query-77", "cs-secret-1"):
        assert secret not in text


def test_two_distributions_with_one_entry_name_fail(fake_dist: Callable[..., Path]) -> None:
    fake_dist("gspauth-vayana-fork", {"vayana": "vayana_fork"}, {"vayana_fork": DUP})
    with pytest.raises(PluginContractError, match=r"entry point 'vayana'.*installed twice.*gspauth_vayana and vayana_fork"):
        get_plugin_manager()


def test_plugin_that_fails_to_import_is_named(fake_dist: Callable[..., Path]) -> None:
    fake_dist("gspauth-crashy", {"crashy": "crashy_mod"}, {"crashy_mod": "raise RuntimeError('boom at import')\n"})
    with pytest.raises(PluginError, match=r"plugin 'crashy'.*failed to import: RuntimeError: boom.*GSPAUTH_BLOCKED_PLUGINS=crashy"):
        get_plugin_manager()


def test_misspelt_hook_argument_fails_at_load(fake_dist: Callable[..., Path]) -> None:
    source = TYPO.replace("gspauth_sign_header(gsp)", "gspauth_sign_headers(gsp, credential)")
    fake_dist("gspauth-argtypo", {"argtypo": "argtypo_mod"}, {"argtypo_mod": source})
    with pytest.raises(PluginContractError, match=r"plugin 'argtypo' does not match gspauth's hooks:.*credential"):
        get_plugin_manager()
