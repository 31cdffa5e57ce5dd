"""``gspauth session list|show|refresh|logout``: the sessions in the local store.

``list`` and ``show`` read only non-secret columns (no store key needed). ``refresh``
and ``logout`` talk to GSTN through the configured GSP, so they need the same settings
as ``gspauth login``. A session is named by its id (``gsp/environment/GSTIN/username``,
as ``list`` prints it) or by the target flags / profile.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from typing import Any

from gspauth.cli.login import add_target_arguments, build_client, describe_session, open_store, profile_from_args
from gspauth.errors import ConfigurationError
from gspauth.session import SessionKey

__all__ = ["register"]


def _store_only(args: argparse.Namespace) -> Any:
    from gspauth.store import SQLiteStore

    path = getattr(args, "store", None)
    if not path:
        try:
            path = profile_from_args(args).store
        except ConfigurationError:
            path = None
    return SQLiteStore(path) if path else SQLiteStore()


def _fmt_left(expires: _dt.datetime, now: _dt.datetime) -> str:
    seconds = int((expires - now).total_seconds())
    if seconds <= 0:
        return "expired"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store_only(args)
    now = _dt.datetime.now(_dt.timezone.utc)
    items = store.list()
    if args.gstin:
        items = [s for s in items if s.key.gstin == args.gstin.strip().upper()]
    if args.json:
        print(json.dumps([dict(s.to_dict(), remaining_seconds=int((s.effective_expires_at - now).total_seconds()))
                          for s in items], indent=2))
        return 0
    if not items:
        print(f"No sessions in {store.path}. Log in with `gspauth login`.")
        return 0
    rows = [("SESSION", "EXPIRES (UTC)", "LEFT", "REFRESHES", "REFRESHABLE", "CONSENT (UTC)")]
    for s in items:
        rows.append((
            s.key.id,
            s.effective_expires_at.strftime("%Y-%m-%d %H:%M"),
            _fmt_left(s.effective_expires_at, now),
            str(s.refresh_count),
            "yes" if s.refreshable else "no",
            s.consent_at.strftime("%Y-%m-%d %H:%M"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _target_key(args: argparse.Namespace) -> SessionKey:
    if args.session_id:
        try:
            return SessionKey.from_id(args.session_id)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    p = profile_from_args(args)
    p.require("gsp", "gstin", "username")
    return SessionKey(str(p.gsp), p.environment, str(p.gstin), str(p.username))


def _apply_id(args: argparse.Namespace) -> None:
    # A positional id fills the target flags that were not given.
    if args.session_id:
        key = _target_key(args)
        for name in ("gsp", "environment", "gstin", "username"):
            if getattr(args, name, None) is None:
                setattr(args, name, getattr(key, name))


def _cmd_show(args: argparse.Namespace) -> int:
    key = _target_key(args)
    store = _store_only(args)
    found = [s for s in store.list() if s.key == key]
    if not found:
        print(f"No stored session {key.id}.")
        return 1
    s = found[0]
    now = _dt.datetime.now(_dt.timezone.utc)
    data = dict(s.to_dict(), remaining_seconds=int((s.effective_expires_at - now).total_seconds()))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(len(k) for k in data)
        for k, v in data.items():
            print(f"{k.ljust(width)}  {'' if v is None else v}")
    return 0


def _cmd_refresh(args: argparse.Namespace) -> int:
    _apply_id(args)
    client = build_client(profile_from_args(args))
    with client:
        session = client.refresh()
    print(f"Refreshed {session.key.id}; {describe_session(session)}.")
    return 0


def _cmd_logout(args: argparse.Namespace) -> int:
    _apply_id(args)
    if args.forget:
        key = _target_key(args)
        profile = profile_from_args(args)
        open_store(profile).delete(key)
        print(f"Forgot {key.id} locally (GSTN was not told; the token lapses on its own).")
        return 0
    client = build_client(profile_from_args(args))
    with client:
        ended = client.logout()
    print(f"Logged out {client.key.id}." if ended else f"No stored session {client.key.id}; nothing to log out.")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("session", help="list, show, refresh or log out stored taxpayer sessions",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    sub = p.add_subparsers(dest="session_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="stored sessions (no secrets shown)")
    ls.add_argument("--store", help="session store file")
    ls.add_argument("--profile", help="profile name in config.toml")
    ls.add_argument("--gstin", help="only this GSTIN")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_list)

    for name, func, text in (
        ("show", _cmd_show, "one stored session's details (no secrets)"),
        ("refresh", _cmd_refresh, "refresh now (REFRESHTOKEN), without an OTP"),
        ("logout", _cmd_logout, "log out at GSTN (LOGOUT) and forget the session"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("session_id", nargs="?", help="gsp/environment/GSTIN/username as `session list` prints it")
        add_target_arguments(sp)
        if name == "show":
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "logout":
            sp.add_argument("--forget", action="store_true",
                            help="only delete the local copy (e.g. a damaged row); do not call GSTN")
        sp.set_defaults(func=func)
