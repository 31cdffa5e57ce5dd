"""Plugin discovery and the typed facade the core uses to call plugins.

* :func:`get_plugin_manager` returns a fresh :class:`pluggy.PluginManager` (no global state):
  entry points in group ``gspauth``, the built-in plugins of :data:`DEFAULT_PLUGINS`, and
  the environment switches below. A misspelt hook name or a duplicate GSP id fails here.
* :class:`Hooks` is what core code calls (never ``pm.hook.*``): typed, validated results,
  host overrides, :class:`~gspauth.errors.ProviderNotFound` with the installed ids.
* :func:`list_plugins` describes what is installed (``gspauth plugins``).

Environment variables:

``GSPAUTH_DISABLE_PLUGIN_AUTOLOAD=1``
    load no entry-point plugins (built-ins still load).
``GSPAUTH_PLUGINS=cleartax,vayana``
    load only these entry points (by entry name); an unknown name is an error.
``GSPAUTH_BLOCKED_PLUGINS=vayana,gspauth.direct``
    never load these (entry names or built-in module names).
``GSPAUTH_TRACE_HOOKS=1``
    log every hook call and result to the ``gspauth.plugins`` logger at DEBUG, with
    credentials, tokens and sensitive header values shown as ``[secure]``.
``GSPAUTH_<GSP>_<ENV>_HOST``
    override a GSP's host for one environment (see :class:`Hooks`).
``GSPAUTH_CONFIG``
    path of the TOML config file holding ``[hosts.<gsp>]`` tables (see :class:`Hooks`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pluggy

from gspauth import hookspecs
from gspauth.errors import ConfigurationError, GSPError, PluginContractError, PluginError, ProviderNotFound
from gspauth.redact import SECURE, redact_value
from gspauth.types import (
    DEFAULT_PATH_VERSIONS,
    Api,
    Credentials,
    Environment,
    GSPInfo,
    GSPSession,
    GSPSessionLogin,
    SessionEvent,
    SigningContext,
    check_base_url,
    version_keys,
)

if TYPE_CHECKING:
    import datetime

    import httpx

__all__ = [
    "DEFAULT_PLUGINS",
    "Hooks",
    "HostOverrides",
    "PluginInfo",
    "check_hooks",
    "collect_gsps",
    "default_hooks",
    "get_plugin_manager",
    "list_plugins",
    "load_entry_point",
    "reset_default_hooks",
]

_logger = logging.getLogger("gspauth.plugins")

#: Built-in plugins, registered through the same hooks as entry-point plugins.
DEFAULT_PLUGINS: tuple[str, ...] = ("gspauth.direct",)

_TRUE = frozenset({"1", "true", "yes", "on"})
# Hooks whose result is itself a secret (an OTP): traced as [secure].
_SECRET_RESULTS = frozenset({"gspauth_provide_otp"})


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _names(name: str) -> list[str]:
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]


def _trace_hooks(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        if _logger.isEnabledFor(logging.DEBUG):
            args = ", ".join(f"{k}={redact_value(v)}" for k, v in kwargs.items())
            impls = ", ".join(impl.plugin_name for impl in hook_impls)
            _logger.debug("call %s(%s) -> [%s]", hook_name, args, impls)

    def after(
        outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        if _logger.isEnabledFor(logging.DEBUG):
            if outcome.exception is not None:
                _logger.debug("%s raised %s", hook_name, type(outcome.exception).__name__)
                return
            result = outcome.get_result()
            shown = SECURE if hook_name in _SECRET_RESULTS and result is not None else redact_value(result)
            _logger.debug("%s returned %s", hook_name, shown)

    pm.add_hookcall_monitoring(before, after)


def get_plugin_manager(*, autoload: bool | None = None) -> pluggy.PluginManager:
    """Return a fresh plugin manager with the hookspecs, entry-point plugins and built-ins loaded.

    :param autoload: load entry points from group ``gspauth``. ``None`` (default): yes unless
        ``GSPAUTH_DISABLE_PLUGIN_AUTOLOAD`` is set. Tests pass ``False`` and register plugins
        themselves (``pm.register(module)``).
    :raises PluginError: ``GSPAUTH_PLUGINS`` names an entry point that is not installed, or a
        plugin fails to import (the message names it).
    :raises PluginContractError: a plugin implements an unknown hook or hook argument, two
        distributions install the same entry name, or a plugin registers an invalid or
        duplicate GSP.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in _names("GSPAUTH_BLOCKED_PLUGINS"):
        pm.set_blocked(name)
    if autoload is None:
        autoload = not _flag("GSPAUTH_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        selected = _names("GSPAUTH_PLUGINS")
        available = _entry_point_names()
        if selected:
            missing = [n for n in selected if n not in available]
            if missing:
                raise PluginError(
                    f"GSPAUTH_PLUGINS names {', '.join(missing)}, which is not installed; "
                    f"installed entry points: {', '.join(sorted(available)) or '(none)'}"
                )
        else:
            selected = sorted(available)
        for name in selected:
            if not pm.is_blocked(name):
                load_entry_point(pm, name)
    for module in DEFAULT_PLUGINS:
        if not pm.is_blocked(module) and pm.get_plugin(module) is None:
            pm.register(importlib.import_module(module), name=module)
    check_hooks(pm)
    if _flag("GSPAUTH_TRACE_HOOKS"):
        _trace_hooks(pm)
    collect_gsps(pm)  # a duplicate or invalid GSP fails now, at load
    return pm


def _entry_point_names() -> set[str]:
    """Installed entry-point names in group ``gspauth``; two distributions claiming one name fail."""
    targets: dict[str, set[str]] = {}
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        targets.setdefault(ep.name, set()).add(ep.value)
    clashes = {name: sorted(values) for name, values in targets.items() if len(values) > 1}
    if clashes:
        name, values = sorted(clashes.items())[0]
        raise PluginContractError(
            f"entry point {name!r} in group {hookspecs.PROJECT!r} is installed twice, pointing at "
            f"{' and '.join(values)}; uninstall one of the distributions"
        )
    return set(targets)


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin) if plugin is not None else None
    return repr(name) if name else repr(plugin)


def load_entry_point(pm: pluggy.PluginManager, name: str) -> None:
    """Load the entry point ``name`` of group ``gspauth`` into ``pm``, failing readably.

    :raises PluginContractError: its hooks do not match gspauth's (a misspelt hook or argument name).
    :raises PluginError: importing it failed.
    """
    try:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginContractError(
            f"plugin {name!r} does not match gspauth's hooks: {_one_line(exc)} "
            "(misspelt hook or argument name? the exact names are in docs/hooks.md)"
        ) from None
    except Exception as exc:
        raise PluginError(
            f"plugin {name!r} (entry point in group {hookspecs.PROJECT!r}) failed to import: "
            f"{type(exc).__name__}: {exc}. Fix or uninstall its distribution, or set "
            f"GSPAUTH_BLOCKED_PLUGINS={name}"
        ) from exc


def check_hooks(pm: pluggy.PluginManager) -> None:
    """Fail if a registered plugin implements a hook gspauth does not define (pluggy ``check_pending``).

    :raises PluginContractError: naming the plugin and the unknown hook.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginContractError(
            f"plugin {_plugin_label(pm, exc.plugin)} implements a hook gspauth does not define: {_one_line(exc)} "
            "(misspelt name? hooks are listed in docs/hooks.md)"
        ) from None


def _each_plugin(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, pluggy.HookCaller]]:
    """``(plugin name, caller)`` for every plugin implementing ``hook_name``, in call order.

    Each caller is pluggy's subset caller for that one plugin, so the call goes through the
    manager's hook execution like any other: ``GSPAUTH_TRACE_HOOKS`` sees it, and the core
    still knows which plugin answered (registration) or failed (observers).
    """
    caller = getattr(pm.hook, hook_name)
    impls = list(reversed(caller.get_hookimpls()))  # pluggy calls the last registered first
    out = []
    for impl in impls:
        others = [i.plugin for i in impls if i.plugin is not impl.plugin]
        out.append((impl.plugin_name, pm.subset_hook_caller(hook_name, remove_plugins=others)))
    return out


# pm -> (the plugins it held, their GSP registry): computed once per manager and set of plugins.
_REGISTRIES: weakref.WeakKeyDictionary[pluggy.PluginManager, tuple[tuple[int, ...], dict[str, tuple[GSPInfo, str]]]]
_REGISTRIES = weakref.WeakKeyDictionary()
_REGISTRIES_GUARD = threading.Lock()


def collect_gsps(pm: pluggy.PluginManager) -> dict[str, tuple[GSPInfo, str]]:
    """Every plugin's registered GSPs: ``{gsp id: (GSPInfo, plugin name)}``.

    Computed once per manager (again only if plugins were registered or removed since).

    :raises PluginContractError: a non-:class:`GSPInfo` or a duplicate id (naming both plugins).
    """
    plugins = tuple(id(p) for p in pm.get_plugins())
    with _REGISTRIES_GUARD:
        cached = _REGISTRIES.get(pm)
    if cached is not None and cached[0] == plugins:
        return cached[1]
    found: dict[str, tuple[GSPInfo, str]] = {}
    for plugin_name, call in _each_plugin(pm, "gspauth_register_gsps"):

        def register(info: GSPInfo, _plugin: str = plugin_name) -> None:
            if not isinstance(info, GSPInfo):
                raise PluginContractError(
                    f"plugin {_plugin!r} passed {type(info).__name__} to register(); expected gspauth.types.GSPInfo"
                )
            if info.id in found:
                other = found[info.id][1]
                raise PluginContractError(
                    f"GSP id {info.id!r} is registered twice: by plugin {other!r} and by plugin {_plugin!r}; "
                    "uninstall one, or block it with GSPAUTH_BLOCKED_PLUGINS"
                )
            found[info.id] = (info, _plugin)

        call(register=register)
    with _REGISTRIES_GUARD:
        _REGISTRIES[pm] = (plugins, found)
    return found


def _host_env_var(gsp: str, environment: Environment) -> str:
    """Name of the variable overriding a host: ``GSPAUTH_<GSP>_<ENV>_HOST`` (non-alphanumerics → ``_``).

    >>> _host_env_var("cleartax", "legacy-sandbox")
    'GSPAUTH_CLEARTAX_LEGACY_SANDBOX_HOST'
    """
    def up(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", s).upper()

    return f"GSPAUTH_{up(gsp)}_{up(environment)}_HOST"


def _default_config_path() -> Path | None:
    # One config file for the whole project: gspauth.config decides where it lives.
    from gspauth.config import config_path

    path = config_path()
    return path if path.is_file() or "GSPAUTH_CONFIG" in os.environ else None


def _read_config_hosts(path: Path) -> dict[tuple[str, str], str]:
    from gspauth.config import load_config

    if not path.exists():
        raise ConfigurationError(f"gspauth config {path} does not exist (GSPAUTH_CONFIG points at it)")
    hosts = load_config(path).get("hosts", {})
    if not isinstance(hosts, dict):
        raise ConfigurationError(f"{path}: [hosts] must be a table of [hosts.<gsp>] tables")
    out: dict[tuple[str, str], str] = {}
    for gsp, envs in hosts.items():
        if not isinstance(envs, dict) or not all(isinstance(v, str) for v in envs.values()):
            raise ConfigurationError(f"{path}: [hosts.{gsp}] must map environment names to URL strings")
        for env, url in envs.items():
            out[(gsp, env)] = url
    return out


_ANY_GSP = "*"
_VERSION_RE = re.compile(r"v\d+\.\d+\Z")


def _read_config_versions(path: Path) -> dict[str, dict[str, str]]:
    """``[versions]`` of config.toml as ``{gsp or "*": {"<api>[/<path>]": version}}``."""
    from gspauth.config import load_config

    table = load_config(path).get("versions", {}) if path.exists() else {}
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [versions] must be a table such as \"returns/gstr1\" = \"v4.1\"")
    out: dict[str, dict[str, str]] = {_ANY_GSP: {}}
    for name, value in table.items():
        if isinstance(value, dict):  # [versions.<gsp>]
            out[name] = {str(k): str(v) for k, v in value.items()}
        else:
            out[_ANY_GSP][name] = str(value)
    for versions in out.values():
        for where, version in versions.items():
            if not _VERSION_RE.match(version):
                raise ConfigurationError(f"{path}: [versions] {where} = {version!r} must look like 'v1.0'")
    return out

#: Key of ``response.extensions`` holding ``(hooks, gsp, Hooks.map_error result)``.
_MAPPED = "gspauth.map_error"


#: Host overrides (see :class:`Hooks`): ``{(gsp, environment): url}``, ``{gsp: {environment: url}}``
#: or ``{environment: url}`` (any GSP).
HostOverrides: TypeAlias = "Mapping[tuple[str, str], str] | Mapping[str, Mapping[str, str]] | Mapping[str, str]"


def _normalise_hosts(hosts: HostOverrides | None) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for key, value in (hosts or {}).items():
        if isinstance(key, tuple) and len(key) == 2 and isinstance(value, str):
            out[(str(key[0]), str(key[1]))] = value
        elif isinstance(key, str) and isinstance(value, Mapping):
            for env, url in value.items():
                out[(key, str(env))] = url
        elif isinstance(key, str) and isinstance(value, str):
            out[(_ANY_GSP, key)] = value  # {environment: URL}: for whichever GSP is used
        else:
            raise ConfigurationError(
                "hosts must map (gsp, environment) to a URL, a GSP id to {environment: URL}, or "
                f"an environment to a URL; got key {key!r}"
            )
    return out


class Hooks:
    """The typed facade over a plugin manager. Core code calls this, never ``pm.hook``.

    **Host overrides** (configuration, not code). For GSP ``g`` and environment ``e`` the host
    is the first of:

    1. ``hosts`` given here: ``{("cleartax", "sandbox"): url}``, ``{"cleartax": {"sandbox": url}}``,
       or ``{"sandbox": url}`` (any GSP, for single-GSP callers such as ``Client(hosts=...)``;
       a GSP-specific entry wins);
    2. environment variable ``GSPAUTH_<G>_<E>_HOST`` (upper case, other characters than letters
       and digits as ``_``), e.g. ``GSPAUTH_CLEARTAX_SANDBOX_HOST=http://127.0.0.1:8000/cleartax``;
    3. the TOML config file ``$GSPAUTH_CONFIG`` (default ``$GSPAUTH_HOME/config.toml``, see :mod:`gspauth.config`,
       read once here, if it exists)::

           [hosts.cleartax]
           sandbox = "http://127.0.0.1:8000/cleartax"

    4. the host the plugin registered in :attr:`GSPInfo.environments`.

    Overrides may only name environments the GSP declares. ``https://`` is required except for
    loopback hosts (a local emulator).

    :param pm: from :func:`get_plugin_manager`.
    :param hosts: overrides, as above.
    :param config: config file path; ``None``: the default lookup; ``False``: read no file.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        *,
        hosts: HostOverrides | None = None,
        config: str | os.PathLike[str] | Literal[False] | None = None,
    ) -> None:
        self.pm = pm
        self._registry = collect_gsps(pm)
        self._hosts = _normalise_hosts(hosts)
        if config is False:
            path = None
        else:
            path = Path(config) if config is not None else _default_config_path()
        self._config_path = path
        self._config_hosts = _read_config_hosts(path) if path is not None else {}
        self._config_versions = _read_config_versions(path) if path is not None else {_ANY_GSP: {}}
        for (gsp, env), url in [*self._hosts.items(), *self._config_hosts.items()]:
            if gsp in self._registry:  # overrides for uninstalled GSPs are harmless
                self._check_env(gsp, env)
            self._check_override(url, gsp, env)

    def __repr__(self) -> str:
        return f"Hooks(gsps={sorted(self._registry)!r})"

    # -- registry -------------------------------------------------------------------------
    def gsps(self) -> dict[str, GSPInfo]:
        """Every registered GSP: id → :class:`GSPInfo`."""
        return {gsp: info for gsp, (info, _) in sorted(self._registry.items())}

    def gsp(self, gsp: str) -> GSPInfo:
        """The :class:`GSPInfo` for ``gsp``.

        :raises ProviderNotFound: naming the installed ids and how to install a plugin.
        """
        try:
            return self._registry[gsp][0]
        except KeyError:
            installed = ", ".join(sorted(self._registry)) or "(none)"
            raise ProviderNotFound(
                f"no plugin serves GSP {gsp!r}; installed GSPs: {installed}. "
                f"Install its plugin (e.g. pip install gspauth-{gsp}) or check GSPAUTH_PLUGINS / "
                "GSPAUTH_BLOCKED_PLUGINS"
            ) from None

    def plugin_of(self, gsp: str) -> str:
        """Name of the plugin that registered ``gsp``."""
        self.gsp(gsp)
        return self._registry[gsp][1]

    def _check_env(self, gsp: str, environment: Environment) -> None:
        info = self.gsp(gsp)
        if environment not in info.environments:
            raise ConfigurationError(
                f"GSP {gsp!r} has no environment {environment!r}; it declares: "
                f"{', '.join(info.environments)}"
            )

    @staticmethod
    def _check_override(url: str, gsp: str, env: str) -> str:
        try:
            return check_base_url(url, what=f"host override for {gsp}/{env}")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    # -- URLs -----------------------------------------------------------------------------
    def host(self, gsp: str, environment: Environment) -> str:
        """The host base URL for ``gsp`` in ``environment``, after overrides (no trailing slash)."""
        self._check_env(gsp, environment)
        key = (gsp, environment)
        for candidate in (key, (_ANY_GSP, environment)):
            if candidate in self._hosts:
                return self._check_override(self._hosts[candidate], gsp, environment)
        from_env = os.environ.get(_host_env_var(gsp, environment))
        if from_env:
            return self._check_override(from_env, gsp, environment)
        if key in self._config_hosts:
            return self._check_override(self._config_hosts[key], gsp, environment)
        return self.gsp(gsp).environments[environment]

    def api_version(self, gsp: str, api: Api, path: str = "") -> str:
        """The GSTN version to call ``api`` (+ ``path``) at through ``gsp``, first match wins:
        ``[versions.<gsp>]`` then ``[versions]`` in config.toml, the plugin's
        :attr:`GSPInfo.api_versions`, the core's defaults (:data:`~gspauth.types.DEFAULT_PATH_VERSIONS`,
        then the API family's) — each looked up as ``"<api>/<path>"`` before ``"<api>"``."""
        api = Api(api)
        keys = version_keys(api, path)
        for table in (self._config_versions.get(gsp, {}), self._config_versions.get(_ANY_GSP, {}),
                      self.gsp(gsp).api_versions, DEFAULT_PATH_VERSIONS):
            for key in keys:
                if key in table:
                    return table[key]
        return api.default_version

    def endpoint_url(self, gsp: str, api: Api, environment: Environment, version: str | None = None,
                     path: str = "", *, action: str | None = None) -> str:
        """The absolute URL of ``api`` at ``version`` (default: :meth:`api_version`), plus ``path``.

        :param path: appended after a ``/`` (e.g. ``"gstr1"`` under :attr:`Api.RETURNS`).
        :param action: the GSTN action, when known (passed to the plugin).
        :raises ProviderNotFound: unknown GSP.
        :raises PluginContractError: the plugin returned no URL or a malformed one.
        """
        api = Api(api)
        version = version or self.api_version(gsp, api, path)
        api.path(version)  # validates the version
        host = self.host(gsp, environment)
        url = self.pm.hook.gspauth_endpoint_url(gsp=gsp, api=api, environment=environment, version=version,
                                                host=host, action=action)
        plugin = self._registry[gsp][1]
        if url is None:
            raise PluginContractError(f"plugin {plugin!r} registered GSP {gsp!r} but returned no URL for "
                                      f"api={api.value!r} environment={environment!r}")
        if not isinstance(url, str):
            raise PluginContractError(f"plugin {plugin!r}: gspauth_endpoint_url returned "
                                      f"{type(url).__name__}, expected str")
        try:
            check_base_url(url, what=f"URL from plugin {plugin!r} for {gsp}/{environment}/{api.value}")
        except ValueError as exc:
            raise PluginContractError(str(exc)) from None
        if path:
            url = url.rstrip("/") + "/" + path.lstrip("/")
        return url

    # -- signing --------------------------------------------------------------------------
    def sign_headers(self, gsp: str, request: httpx.Request, context: SigningContext,
                     credentials: Credentials) -> dict[str, str]:
        """The plugin's headers for ``request``, validated.

        :raises PluginContractError: no plugin answered for a registered GSP, or the result is
            not a mapping of header-safe ``str`` to ``str``.
        """
        self.gsp(gsp)
        result = self.pm.hook.gspauth_sign_headers(gsp=gsp, request=request, context=context,
                                                   credentials=credentials)
        plugin = self._registry[gsp][1]
        if result is None:
            raise PluginContractError(
                f"plugin {plugin!r} registered GSP {gsp!r} but gspauth_sign_headers returned None for it; "
                "return a mapping (empty if the GSP needs no headers)"
            )
        if not isinstance(result, Mapping):
            raise PluginContractError(f"plugin {plugin!r}: gspauth_sign_headers returned "
                                      f"{type(result).__name__}, expected a Mapping[str, str]")
        out: dict[str, str] = {}
        for name, value in result.items():
            if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise PluginContractError(f"plugin {plugin!r}: gspauth_sign_headers returned an invalid "
                                          f"header name {name!r}")
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                # never echo the value: it may be a secret
                raise PluginContractError(f"plugin {plugin!r}: header {name!r} must be a str without CR/LF, "
                                          f"got {type(value).__name__}")
            out[name] = value
        return out

    def map_error(self, gsp: str, response: httpx.Response) -> GSPError | None:
        """The plugin's typed error for a GSP-level error reply, or ``None``.

        Asked once per reply: the answer is kept on ``response.extensions``, so
        :class:`~gspauth.auth.GSPAuth` (which looks for a refused GSP session) and the client
        (which raises it) do not both make the plugin parse a multi-megabyte body.
        """
        self.gsp(gsp)
        cached = response.extensions.get(_MAPPED)
        if cached is not None and cached[0] is self and cached[1] == gsp:
            known: GSPError | None = cached[2]
            return known
        result = self.pm.hook.gspauth_map_error(gsp=gsp, response=response)
        if result is not None and not isinstance(result, GSPError):
            raise PluginContractError(f"plugin {self._registry[gsp][1]!r}: gspauth_map_error returned "
                                      f"{type(result).__name__}, expected a gspauth.errors.GSPError or None")
        if result is not None and result.gsp is None:
            result.gsp = gsp
        response.extensions[_MAPPED] = (self, gsp, result)
        return result if isinstance(result, GSPError) else None

    # -- GSP-level sessions ---------------------------------------------------------------
    def _login_result(self, gsp: str, hook: str, result: object) -> GSPSessionLogin | None:
        if result is not None and not isinstance(result, GSPSessionLogin):
            raise PluginContractError(f"plugin {self._registry[gsp][1]!r}: {hook} returned "
                                      f"{type(result).__name__}, expected GSPSessionLogin or None")
        return result

    def gsp_session_login(self, gsp: str, environment: Environment, credentials: Credentials,
                          now: datetime.datetime, txn: str) -> GSPSessionLogin:
        """The GSP-level login to perform (for GSPs with ``gsp_session=True``)."""
        host = self.host(gsp, environment)
        result = self.pm.hook.gspauth_gsp_session_login(gsp=gsp, environment=environment, host=host,
                                                        credentials=credentials, now=now, txn=txn)
        login = self._login_result(gsp, "gspauth_gsp_session_login", result)
        if login is None:
            raise PluginContractError(f"GSP {gsp!r} is registered with gsp_session=True but plugin "
                                      f"{self._registry[gsp][1]!r} returned no login")
        return login

    def gsp_session_refresh(self, gsp: str, environment: Environment, credentials: Credentials,
                            session: GSPSession, now: datetime.datetime, txn: str) -> GSPSessionLogin | None:
        """The GSP-level refresh, or ``None`` (then log in afresh)."""
        host = self.host(gsp, environment)
        result = self.pm.hook.gspauth_gsp_session_refresh(gsp=gsp, environment=environment, host=host,
                                                          credentials=credentials, session=session, now=now,
                                                          txn=txn)
        return self._login_result(gsp, "gspauth_gsp_session_refresh", result)

    def gsp_session_logout(self, gsp: str, environment: Environment, credentials: Credentials,
                           session: GSPSession) -> httpx.Request | None:
        """The request ending a GSP-level session, or ``None``."""
        import httpx

        host = self.host(gsp, environment)
        result = self.pm.hook.gspauth_gsp_session_logout(gsp=gsp, environment=environment, host=host,
                                                         credentials=credentials, session=session)
        if result is not None and not isinstance(result, httpx.Request):
            raise PluginContractError(f"plugin {self._registry[gsp][1]!r}: gspauth_gsp_session_logout "
                                      f"returned {type(result).__name__}, expected httpx.Request or None")
        return result

    # -- observers and OTP ----------------------------------------------------------------
    def session_event(self, event: SessionEvent) -> None:
        """Tell every observer about ``event``. An observer's exception is logged, not raised."""
        for plugin_name, call in _each_plugin(self.pm, "gspauth_on_session_event"):
            try:
                call(event=event)
            except Exception as exc:  # noqa: BLE001 - an audit plugin must not break the client
                _logger.error("observer %s failed on %s event: %s", plugin_name, event.kind, type(exc).__name__)

    # -- credentials ----------------------------------------------------------------------
    def check_credentials(self, gsp: str, credentials: Credentials) -> Credentials:
        """``credentials`` checked against the fields ``gsp``'s plugin declares, defaults filled in.

        Runs before any request is built, so a typo or a missing value fails before an OTP is
        spent: unknown names, missing required values and values outside ``choices`` raise;
        then the plugin's ``gspauth_check_credentials`` checks what only it understands
        (one of two ids, a parseable key …).

        :raises ConfigurationError: naming the field(s) and how to set them, never a value.
        """
        info = self.gsp(gsp)
        declared = {f.name: f for f in info.credentials}
        unknown = sorted(set(credentials) - set(declared))
        if unknown:
            known = ", ".join(declared) or "(none)"
            raise ConfigurationError(
                f"GSP {gsp!r} does not use credential(s) {', '.join(unknown)}; it reads: {known} "
                "(see `gspauth plugins --json`)"
            )
        values: dict[str, str] = dict(credentials)
        missing = []
        for f in info.credentials:
            value = values.get(f.name)
            if value is None and f.default is not None:
                values[f.name] = value = f.default
            if value is None or value == "":
                if f.required:
                    missing.append(f.name)
                continue
            if f.choices and value not in f.choices:
                raise ConfigurationError(f"credential {f.name!r} for GSP {gsp!r} must be one of "
                                         f"{', '.join(f.choices)}")
        if missing:
            how = ", ".join(f"GSPAUTH_CRED_{m.upper()}" for m in missing)
            raise ConfigurationError(
                f"GSP {gsp!r} needs credential(s) {', '.join(missing)}: pass Credentials({missing[0]}=...), "
                f"or for the CLI set {how} or the profile's [profiles.<name>.credentials] table"
            )
        checked = Credentials(values)
        self.pm.hook.gspauth_check_credentials(gsp=gsp, credentials=checked)
        return checked

    def provide_otp(self, gsp: str, environment: Environment, gstin: str, username: str) -> str | None:
        """An OTP from an OTP-provider plugin, or ``None`` when none can supply it."""
        result = self.pm.hook.gspauth_provide_otp(gsp=gsp, environment=environment, gstin=gstin,
                                                  username=username)
        if result is not None and not isinstance(result, str):
            raise PluginContractError(f"gspauth_provide_otp returned {type(result).__name__}, expected str")
        return result


_DEFAULT: Hooks | None = None
_DEFAULT_GUARD = threading.Lock()


def default_hooks() -> Hooks:
    """The process-wide :class:`Hooks` over every installed plugin (built on first use).

    Clients built without ``hooks=`` share it, so the plugins load and register once per
    process. Environment switches (``GSPAUTH_PLUGINS`` …) are read when it is built; call
    :func:`reset_default_hooks` after changing them (tests do).
    """
    global _DEFAULT
    with _DEFAULT_GUARD:
        if _DEFAULT is None:
            _DEFAULT = Hooks(get_plugin_manager())
        return _DEFAULT


def reset_default_hooks() -> None:
    """Forget the shared :class:`Hooks`; the next :func:`default_hooks` builds a new one."""
    global _DEFAULT
    with _DEFAULT_GUARD:
        _DEFAULT = None


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``gspauth plugins`` shows it.

    :param name: the plugin's registered name (entry-point name or built-in module).
    :param version: its distribution's version (``None`` for built-ins without one).
    :param distribution: the distribution that provided it (``gspauth-cleartax``), if any.
    :param gsps: GSPs it registered.
    :param hooks: hooks it implements.
    :param builtin: shipped inside gspauth itself.
    """

    name: str
    version: str | None
    distribution: str | None
    gsps: tuple[GSPInfo, ...]
    hooks: tuple[str, ...]
    builtin: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "gsps": [
                {
                    "id": g.id,
                    "name": g.name,
                    "environments": dict(g.environments),
                    "supports_refresh": g.supports_refresh,
                    "crypto_mode": g.crypto_mode,
                    "gsp_session": g.gsp_session,
                    "capabilities": sorted(g.capabilities),
                    "description": g.description,
                    "docs_url": g.docs_url,
                    "credentials": [f.to_dict() for f in g.credentials],
                }
                for g in self.gsps
            ],
        }


def list_plugins(pm: pluggy.PluginManager | None = None) -> list[PluginInfo]:
    """Describe every loaded plugin, from pluggy's public API only."""
    from gspauth import __version__

    pm = pm if pm is not None else get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    registry = collect_gsps(pm)
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        dist = dists.get(id(plugin))
        builtin = name in DEFAULT_PLUGINS
        hooks = tuple(sorted(hc.name for hc in (pm.get_hookcallers(plugin) or [])))
        out.append(
            PluginInfo(
                name=name,
                version=dist.version if dist is not None else (__version__ if builtin else None),
                distribution=dist.project_name if dist is not None else ("gspauth" if builtin else None),
                gsps=tuple(info for info, owner in registry.values() if owner == name),
                hooks=hooks,
                builtin=builtin,
            )
        )
    return sorted(out, key=lambda p: (p.builtin, p.name))
