"""What the session commands share: the target flags, building a client from them or from a
stored session's target, credentials per GSP, the store and ledger, and printing.

Where a setting comes from, first match wins (README "Settings" lists them all):

* the GSP, environment, GSTIN, username, ``ip-usr``, host, certificate and store: a flag,
  then ``GSPAUTH_<NAME>``, then the profile in ``config.toml`` (``--profile`` /
  ``GSPAUTH_PROFILE`` / ``default_profile``); for a stored session named by its id, its
  recorded target fills in what no flag gives;
* credentials, for each field the GSP's plugin declares (``gspauth plugins --json``):
  ``GSPAUTH_CRED_<FIELD>``, then the profile's ``[profiles.<name>.credentials]`` (when the
  profile is for that GSP), then ``[credentials.<gsp>]`` in ``config.toml``; secrets there as
  ``<field>_env = "VAR"`` or ``<field>_file = "path"``, never on the command line.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gspauth.config import Profile, config_path, load_config, load_profile, resolve_secrets
from gspauth.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

    from gspauth.client import AsyncClient, Client
    from gspauth.otp import OtpProvider
    from gspauth.plugins import Hooks
    from gspauth.session import Session, SessionKey, SessionTarget
    from gspauth.store import SessionStore
    from gspauth.types import Credentials

__all__ = [
    "add_target_arguments", "async_client", "build_client", "client_for_session", "describe_session", "open_store",
    "print_json", "profile_from_args", "session_dict",
]

_TARGET_FIELDS = ("gsp", "environment", "gstin", "username", "ip_usr", "host", "certificate", "store")


def add_target_arguments(parser: argparse.ArgumentParser, *, store_only: bool = False) -> None:
    """Flags selecting the taxpayer session and how to reach it (all optional; see config.toml)."""
    g = parser.add_argument_group("session target (flags > GSPAUTH_* env > config profile)")
    g.add_argument("--profile", help="profile name in config.toml (env GSPAUTH_PROFILE)")
    g.add_argument("--store", help="session store: a file or a postgresql:// URL (env GSPAUTH_STORE; default "
                                   "$GSPAUTH_HOME/sessions.db)")
    if store_only:
        return
    g.add_argument("--gsp", help="GSP id, e.g. cleartax or vayana (env GSPAUTH_GSP)")
    g.add_argument("--environment", "--env", dest="environment", help="sandbox (default) or production")
    g.add_argument("--gstin", help="taxpayer GSTIN (env GSPAUTH_GSTIN)")
    g.add_argument("--username", help="taxpayer's GST portal username (env GSPAUTH_USERNAME)")
    g.add_argument("--ip-usr", dest="ip_usr", help="end user's public IPv4 for the ip-usr header")
    g.add_argument("--host", help="override the GSP host base URL (e.g. a local emulator)")
    g.add_argument("--certificate", help="GSTN public certificate (.cer/.pem) for this environment")


def profile_from_args(args: argparse.Namespace) -> Profile:
    overrides = {name: getattr(args, name, None) for name in _TARGET_FIELDS}
    return load_profile(getattr(args, "profile", None), overrides)


def open_store(profile: Profile, *, existing: bool = False) -> SessionStore:
    """The profile's session store.

    :param existing: for commands that only read or renew stored sessions: a store file that
        is not there is reported (a wrong ``--store`` in a cron line), not created empty.
    """
    from gspauth.store import default_store_path
    from gspauth.store import open_store as open_spec

    spec = profile.store
    if existing and not (spec == "memory:" or (spec or "").lower().startswith(("postgresql://", "postgres://"))):
        path = Path(spec.removeprefix("sqlite://")) if spec else default_store_path()
        if not path.exists():
            missing = ConfigurationError(f"no session store at {path}")
            missing.hint = ("`gspauth login` creates it; pass --store (or GSPAUTH_STORE) to use another "
                            f"(relative paths start in {os.getcwd()})")
            raise missing
    return open_spec(spec)


def _hooks_for(gsp: str, environment: str, host: str | None) -> Hooks:
    from gspauth.plugins import Hooks, default_hooks

    if host is None:
        return default_hooks()
    return Hooks(default_hooks().pm, hosts={(gsp, environment): host})


def _credentials_for(gsp: str, hooks: Hooks, profile: Profile | None = None) -> Credentials:
    """The credentials of ``gsp``: each field it declares from ``GSPAUTH_CRED_<FIELD>``, the
    profile (if it is for this GSP) or ``[credentials.<gsp>]`` in config.toml.

    Unknown or missing fields are reported by :meth:`Hooks.check_credentials` when the client
    is built, naming the variable to set.
    """
    from gspauth.types import Credentials

    table = (load_config().get("credentials") or {}).get(gsp) or {}
    if not isinstance(table, dict):
        raise ConfigurationError(f"{config_path()}: [credentials.{gsp}] must be a table of credential fields")
    values: dict[str, str] = resolve_secrets(table, f"[credentials.{gsp}]")
    if profile is not None and profile.gsp == gsp:
        values.update(profile.credentials)
    for f in hooks.gsp(gsp).credentials:
        env = os.environ.get(f"GSPAUTH_CRED_{f.name.upper()}")
        if env:
            values[f.name] = env
    return Credentials(values)


def _certificate(path: str | None, environment: str) -> Path:
    if not path:
        raise ConfigurationError(f"missing setting certificate: pass --certificate (GSTN's public certificate for "
                                 f"the {environment} environment) or set it in {config_path()}")
    certificate = Path(path).expanduser()
    if not certificate.is_file():
        raise ConfigurationError(f"GSTN certificate {certificate} not found; download the certificate for the "
                                 f"{environment} environment and pass --certificate (or set it in {config_path()})")
    return certificate


def build_client(profile: Profile, *, otp_provider: OtpProvider | None = None,
                 store: SessionStore | None = None) -> Client:
    """A :class:`gspauth.Client` for ``profile`` (store: the profile's; ledger: the store's)."""
    from gspauth.client import Client

    profile.require("gsp", "gstin", "username")
    gsp = str(profile.gsp)
    hooks = _hooks_for(gsp, profile.environment, profile.host)
    return Client(
        gsp, profile.environment, _credentials_for(gsp, hooks, profile), gstin=str(profile.gstin),
        username=str(profile.username), certificate=_certificate(profile.certificate, profile.environment),
        store=store if store is not None else open_store(profile), otp_provider=otp_provider, hooks=hooks,
        ip_usr=profile.ip_usr or "127.0.0.1",
    )  # fmt: skip


def client_for_session(key: SessionKey, target: SessionTarget | None, store: SessionStore, *,
                       profile: Profile | None = None, flags: argparse.Namespace | None = None) -> Client:
    """The client of a stored session named by its id: its recorded target (host, certificate,
    ``ip-usr``); explicit ``--host``/``--certificate``/``--ip-usr`` flags override it, and the
    profile fills in only what a session stored without a target lacks."""
    from gspauth.client import Client

    def pick(name: str, recorded: str | None) -> str | None:
        explicit = getattr(flags, name, None) if flags is not None else None
        if explicit:
            return str(explicit)
        if recorded:
            return recorded
        return getattr(profile, name, None) if profile is not None and profile.gsp == key.gsp else None

    host = pick("host", target.host if target else None)
    hooks = _hooks_for(key.gsp, key.environment, host)
    certificate = _certificate(pick("certificate", target.certificate if target else None), key.environment)
    return Client(key.gsp, key.environment, _credentials_for(key.gsp, hooks, profile), gstin=key.gstin,
                  username=key.username, certificate=certificate, store=store, hooks=hooks,
                  ip_usr=pick("ip_usr", target.ip_usr if target else None) or "127.0.0.1",
                  auth_version=target.auth_version if target else None)


def async_client(profile: Profile, *, gsp: str, environment: str, gstin: str, username: str, store: SessionStore,
                 otp_provider: OtpProvider | None, http: httpx.AsyncClient) -> AsyncClient:
    """An :class:`~gspauth.client.AsyncClient` for a bulk run: the profile's host, certificate,
    ``ip-usr`` and credentials for ``gsp``, one shared connection pool, and no retries of its own
    (the filer retries, pausing the whole GSP on 429)."""
    from gspauth.client import AsyncClient
    from gspauth.retry import RetryPolicy

    host = profile.host if profile.gsp in (None, gsp) else None
    hooks = _hooks_for(gsp, environment, host)
    return AsyncClient(gsp, environment, _credentials_for(gsp, hooks, profile), gstin=gstin, username=username,
                       certificate=_certificate(profile.certificate, environment), store=store, hooks=hooks,
                       otp_provider=otp_provider, ip_usr=profile.ip_usr or "127.0.0.1",
                       retry=RetryPolicy(attempts=1), http_client=http)


def describe_session(session: Session, now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    minutes = int((session.effective_expires_at - now).total_seconds() // 60)
    when = session.effective_expires_at.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    state = "refreshable" if session.refreshable else "not refreshable (next step: OTP)"
    return f"valid until {when} ({minutes // 60}h{minutes % 60:02d}m left), {state}, refreshes: {session.refresh_count}"


def session_dict(session: Session, now: _dt.datetime | None = None) -> dict[str, Any]:
    from gspauth.store import SessionSummary

    now = now or _dt.datetime.now(_dt.timezone.utc)
    return dict(SessionSummary.of(session).to_dict(),
                remaining_seconds=int((session.effective_expires_at - now).total_seconds()))


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (a closed pipe is handled by the CLI's main)."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()
