"""``gspauth login``: taxpayer OTP consent from the terminal (or an unattended OTP source).

Which GSP, environment, GSTIN, username, credentials and GSTN certificate to use comes
from flags, ``GSPAUTH_*`` environment variables or a profile in ``config.toml`` (see
:mod:`gspauth.config`). Credentials may also come from ``GSPAUTH_CRED_<FIELD>``
variables (``GSPAUTH_CRED_CLIENT_SECRET``, ``GSPAUTH_CRED_GSP_TOKEN`` …), never from flags,
so they stay out of shell history and ``ps``.

The OTP comes from, in order: ``GSPAUTH_OTP_<GSTIN>`` / ``GSPAUTH_OTP``; ``--otp-dir``
(or ``GSPAUTH_OTP_DIR``) files, waiting ``--wait`` seconds; ``GSPAUTH_OTP_COMMAND``;
plugins; then a prompt when stdin is a terminal. The session is saved in the session
store and every step is written to the consent ledger.

This module also holds the helpers the other session commands share.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gspauth.config import Profile, config_path, load_profile
from gspauth.errors import ConfigurationError, OtpRequired

if TYPE_CHECKING:
    from gspauth.client import Client
    from gspauth.ledger import ConsentLedger
    from gspauth.otp import OtpProvider
    from gspauth.plugins import Hooks
    from gspauth.store import SessionStore
    from gspauth.types import Credentials

__all__ = [
    "add_target_arguments", "build_client", "credentials_for", "open_ledger", "open_store", "profile_from_args",
    "register",
]

_TARGET_FIELDS = ("gsp", "environment", "gstin", "username", "ip_usr", "host", "certificate", "store")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags selecting the taxpayer session and how to reach it (all optional; see config.toml)."""
    g = parser.add_argument_group("session target (flags > GSPAUTH_* env > config profile)")
    g.add_argument("--profile", help="profile name in config.toml (env GSPAUTH_PROFILE)")
    g.add_argument("--gsp", help="GSP id, e.g. cleartax or vayana (env GSPAUTH_GSP)")
    g.add_argument("--environment", "--env", dest="environment", help="sandbox (default) or production")
    g.add_argument("--gstin", help="taxpayer GSTIN (env GSPAUTH_GSTIN)")
    g.add_argument("--username", help="taxpayer's GST portal username (env GSPAUTH_USERNAME)")
    g.add_argument("--ip-usr", dest="ip_usr", help="end user's public IPv4 for the ip-usr header")
    g.add_argument("--host", help="override the GSP host base URL (e.g. a local emulator)")
    g.add_argument("--certificate", help="GSTN public certificate (.cer/.pem) for this environment")
    g.add_argument("--store", help="session store file (default: $GSPAUTH_HOME/sessions.db)")


def profile_from_args(args: argparse.Namespace) -> Profile:
    overrides = {name: getattr(args, name, None) for name in _TARGET_FIELDS}
    return load_profile(getattr(args, "profile", None), overrides)


def open_store(profile: Profile) -> Any:
    from gspauth.store import SQLiteStore

    return SQLiteStore(profile.store) if profile.store else SQLiteStore()


def open_ledger(profile: Profile) -> Any:
    """The ledger beside the store in use."""
    from gspauth.ledger import Ledger

    if profile.store:
        return Ledger(Path(profile.store).expanduser().with_name("ledger.db"))
    return Ledger()


def credentials_for(profile: Profile, hooks: Hooks) -> Credentials:
    """The profile's credentials, each field the GSP declares overridable by ``GSPAUTH_CRED_<NAME>``.

    Unknown or missing fields are reported by :meth:`Hooks.check_credentials` when the client
    is built, naming the variable to set.
    """
    from gspauth.types import Credentials

    values: dict[str, str] = {k: str(v) for k, v in profile.credentials.items()}
    for f in hooks.gsp(str(profile.gsp)).credentials:
        env = os.environ.get(f"GSPAUTH_CRED_{f.name.upper()}")
        if env:
            values[f.name] = env
    return Credentials(values)


def build_client(profile: Profile, *, otp_provider: OtpProvider | None = None, store: SessionStore | None = None,
                 ledger: ConsentLedger | None = None) -> Client:
    """A :class:`gspauth.Client` for ``profile`` (store and ledger default to the profile's)."""
    from gspauth.client import Client
    from gspauth.plugins import Hooks, get_plugin_manager

    profile.require("gsp", "gstin", "username", "certificate")
    hosts = {(str(profile.gsp), profile.environment): profile.host} if profile.host else None
    cfg = config_path()
    hooks = Hooks(get_plugin_manager(), hosts=hosts, config=cfg if cfg.is_file() else None)
    certificate = Path(str(profile.certificate)).expanduser()
    if not certificate.is_file():
        raise ConfigurationError(
            f"GSTN certificate {certificate} not found; download the certificate for the "
            f"{profile.environment} environment and pass --certificate (or set it in {cfg})"
        )
    return Client(
        str(profile.gsp),
        profile.environment,
        credentials_for(profile, hooks),
        gstin=str(profile.gstin),
        username=str(profile.username),
        certificate=certificate,
        store=store if store is not None else open_store(profile),
        ledger=ledger if ledger is not None else open_ledger(profile),
        otp_provider=otp_provider,
        hooks=hooks,
        ip_usr=profile.ip_usr or "127.0.0.1",
    )


def describe_session(session: Any, now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    left = session.effective_expires_at - now
    minutes = int(left.total_seconds() // 60)
    when = session.effective_expires_at.astimezone().strftime("%Y-%m-%d %H:%M %Z")
    state = "refreshable" if session.refreshable else "not refreshable (next step: OTP)"
    return f"valid until {when} ({minutes // 60}h{minutes % 60:02d}m left), {state}, refreshes: {session.refresh_count}"


def _run(args: argparse.Namespace) -> int:
    from gspauth.otp import ChainOtp, FileOtp, default_otp_provider

    profile = profile_from_args(args)
    provider: Any = default_otp_provider(interactive=not args.no_prompt)
    if args.otp_dir:
        provider = ChainOtp([FileOtp(args.otp_dir, wait=args.wait), provider])
    client = build_client(profile, otp_provider=provider)
    with client:
        if not args.force:
            current = client.store.load(client.key)
            if current is not None and current.usable(client.now(), client.margin):
                print(f"Already logged in: {client.key.id}; {describe_session(current)}. Use --force for a new consent.")
                return 0
        client.request_otp()
        print(f"OTP requested for GSTIN {client.gstin} (user {client.username}) via {client.gsp}/{client.environment}.",
              file=sys.stderr)
        try:
            session = client.authenticate()
        except OtpRequired as exc:
            print(f"gspauth: needs OTP for GSTIN {client.gstin}: {exc}", file=sys.stderr)
            return 75  # EX_TEMPFAIL: parked, run again once the OTP is available
    print(f"Logged in: {session.key.id}; {describe_session(session)}.")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "login",
        help="OTP consent for a taxpayer: request an OTP and exchange it for a session",
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
    )
    add_target_arguments(p)
    p.add_argument("--otp-dir", help="take the OTP from DIR/<GSTIN>.otp (writes DIR/<GSTIN>.needed meanwhile)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the OTP file (default 0)")
    p.add_argument("--no-prompt", action="store_true", help="never prompt; exit 75 if no OTP source has one")
    p.add_argument("--force", action="store_true", help="new consent even if a usable session exists")
    p.set_defaults(func=_run)
