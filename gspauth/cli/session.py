"""``gspauth session list|show|refresh|logout|keep-alive``: the sessions in a store.

``list`` and ``show`` read only non-secret columns (no store key needed). ``refresh``,
``logout`` and ``keep-alive`` talk to GSTN through the session's GSP; a session named by its id
(``gsp/environment/GSTIN/username``, as ``list`` prints it) needs nothing else: the store
recorded its host and certificate, and credentials come from ``GSPAUTH_CRED_<FIELD>`` or
``config.toml`` (see README "Settings"). Flags override the recorded target.

``keep-alive`` is the session keeper (:mod:`gspauth.keeper`): one pass refreshes every session
whose margin begins before the next pass; run it from cron or a systemd timer with ``--every``
set to at least the timer's interval, or with ``--watch`` to loop.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import threading
from typing import TYPE_CHECKING, Any

from gspauth.cli import Exit
from gspauth.cli._common import (
    add_target_arguments,
    client_for_session,
    describe_session,
    open_store,
    print_json,
    profile_from_args,
    session_dict,
)
from gspauth.config import Profile
from gspauth.errors import ConfigurationError
from gspauth.session import SessionKey

if TYPE_CHECKING:
    from gspauth.client import Client
    from gspauth.keeper import KeeperResult
    from gspauth.store import SessionStore

__all__ = ["register"]


def _span(text: str) -> _dt.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return _dt.timedelta(seconds=float(text[:-1]) * units[text[-1]])
    raise argparse.ArgumentTypeError(f"{text!r}: use a span such as 90s, 45m, 5h or 1d")


def _fmt_left(expires: _dt.datetime, now: _dt.datetime) -> str:
    seconds = int((expires - now).total_seconds())
    if seconds <= 0:
        return "expired"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _store_of(args: argparse.Namespace) -> tuple[Profile, SessionStore]:
    profile = profile_from_args(args)
    return profile, open_store(profile, existing=True)


def _cmd_list(args: argparse.Namespace) -> int:
    _, store = _store_of(args)
    now = _dt.datetime.now(_dt.timezone.utc)
    items = store.list()
    if args.gstin:
        items = [s for s in items if s.key.gstin == args.gstin.strip().upper()]
    if args.json:
        print_json([dict(s.to_dict(), remaining_seconds=int((s.effective_expires_at - now).total_seconds()))
                    for s in items])
        return Exit.OK
    if not items:
        print(f"No sessions in {store}. Log in with `gspauth login`.")
        return Exit.OK
    rows = [("SESSION", "EXPIRES (UTC)", "LEFT", "REFRESHES", "REFRESHABLE", "CONSENT (UTC)")]
    for s in items:
        rows.append((s.key.id, s.effective_expires_at.strftime("%Y-%m-%d %H:%M"),
                     _fmt_left(s.effective_expires_at, now), str(s.refresh_count), "yes" if s.refreshable else "no",
                     s.consent_at.strftime("%Y-%m-%d %H:%M")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return Exit.OK


def _target_key(args: argparse.Namespace, profile: Profile) -> SessionKey:
    if args.session_id:
        try:
            return SessionKey.from_id(args.session_id)
        except ValueError as exc:
            raise ConfigurationError(f"{exc}; `gspauth session list` prints the ids") from None
    profile.require("gsp", "gstin", "username")
    return SessionKey(str(profile.gsp), profile.environment, str(profile.gstin), str(profile.username))


def _cmd_show(args: argparse.Namespace) -> int:
    profile, store = _store_of(args)
    key = _target_key(args, profile)
    found = [s for s in store.list() if s.key == key]
    if not found:
        raise ConfigurationError(f"no stored session {key.id}; `gspauth session list` shows what is stored")
    now = _dt.datetime.now(_dt.timezone.utc)
    data = dict(found[0].to_dict(), remaining_seconds=int((found[0].effective_expires_at - now).total_seconds()))
    if args.json:
        print_json(data)
    else:
        width = max(len(k) for k in data)
        for k, v in data.items():
            print(f"{k.ljust(width)}  {'' if v is None else v}")
    return Exit.OK


def _client(args: argparse.Namespace) -> tuple[Client, SessionKey]:
    profile, store = _store_of(args)
    key = _target_key(args, profile)
    return client_for_session(key, store.load_target(key), store, profile=profile, flags=args), key


def _cmd_refresh(args: argparse.Namespace) -> int:
    client, key = _client(args)
    with client:
        session = client.refresh()
    if args.json:
        print_json({"state": "refreshed", "session": session_dict(session, client.now())})
    else:
        print(f"Refreshed {key.id}; {describe_session(session, client.now())}.")
    return Exit.OK


def _cmd_logout(args: argparse.Namespace) -> int:
    if args.forget:
        profile, store = _store_of(args)
        key = _target_key(args, profile)
        store.delete(key)
        store.delete_pending_otp(key)
        if args.json:
            print_json({"state": "forgotten", "session": key.id})
        else:
            print(f"Forgot {key.id} locally (GSTN was not told; the token lapses on its own).")
        return Exit.OK
    client, key = _client(args)
    with client:
        ended = client.logout()
    if args.json:
        print_json({"state": "logged-out" if ended else "no-session", "session": key.id})
    else:
        print(f"Logged out {key.id}." if ended else f"No stored session {key.id}; nothing to log out.")
    return Exit.OK


def _report(results: list[KeeperResult], as_json: bool) -> None:
    if as_json:
        print_json({"at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "sessions": [r.to_dict() for r in results]})
        return
    if not results:
        print("No sessions to keep alive.")
        return
    for r in results:
        until = f" until {r.expires_at:%Y-%m-%d %H:%M} UTC" if r.expires_at else ""
        why = f" ({r.reason})" if r.reason else ""
        print(f"{r.state:<10} {r.key.id}{why}{until}")
        if r.state in ("needs-otp", "failed"):
            print(f"           {r.detail}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.state] = counts.get(r.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def _cmd_keep_alive(args: argparse.Namespace) -> int:
    from gspauth.keeper import SessionKeeper

    profile, store = _store_of(args)
    only = None
    if args.gstin:
        wanted = {g.strip().upper() for g in args.gstin}
        only = [s.key for s in store.list() if s.key.gstin in wanted]

    def client_for(key: SessionKey, target: Any) -> Client:
        return client_for_session(key, target, store, profile=profile)

    keeper = SessionKeeper(store, client_for, every=args.every, concurrency=args.concurrency, per_gsp=args.per_gsp,
                           only=only)
    if args.watch:
        stop = threading.Event()
        try:
            keeper.watch(args.interval or args.every, stop, lambda results: _report(results, args.json))
        except KeyboardInterrupt:
            stop.set()
        return Exit.OK
    results = keeper.run_once()
    _report(results, args.json)
    if any(r.state == "failed" for r in results):
        return Exit.ERROR
    return Exit.NEEDS_OTP if any(r.state == "needs-otp" for r in results) else Exit.OK


def register(subparsers: Any) -> None:
    """Add ``gspauth session`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser("session", help="list, show, refresh, log out or keep alive stored taxpayer sessions",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    sub = p.add_subparsers(dest="session_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="stored sessions (no secrets shown)")
    add_target_arguments(ls, store_only=True)
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
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "logout":
            sp.add_argument("--forget", action="store_true",
                            help="only delete the local copy (e.g. a damaged row); do not call GSTN")
        sp.set_defaults(func=func)

    keep = sub.add_parser("keep-alive", help="refresh every stored session before it expires (one pass, or --watch)",
                          description="Refresh every stored session whose margin begins before the next pass. "
                          "Exit 0 when all are fine, 75 when some need a new OTP, 1 when some failed.")
    add_target_arguments(keep, store_only=True)
    keep.add_argument("--every", type=_span, default=_dt.timedelta(hours=1),
                      help="time until the next pass, e.g. 5h for a 5-hourly timer (default 1h)")
    keep.add_argument("--watch", action="store_true", help="keep running: a pass every --interval")
    keep.add_argument("--interval", type=_span, help="with --watch: time between passes (default: --every)")
    keep.add_argument("--concurrency", type=int, default=4, help="sessions refreshed at once (default 4)")
    keep.add_argument("--per-gsp", type=int, default=2, help="at most this many at once per GSP (default 2)")
    keep.add_argument("--gstin", action="append", help="only this GSTIN (repeatable)")
    keep.add_argument("--json", action="store_true", help="machine-readable output")
    keep.set_defaults(func=_cmd_keep_alive)
