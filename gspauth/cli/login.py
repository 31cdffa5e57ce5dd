"""``gspauth login``: taxpayer OTP consent, in one step or in two (across processes).

One step, at a terminal: ``gspauth login --gstin … `` requests the OTP and prompts for it
(re-asking within the OTP's attempts).

Two steps, from cron, a queue worker or two terminals: ``gspauth login --no-prompt …``
requests the OTP, records the pending request in the session store and exits 75 naming the
command that finishes it; later, any process sharing the store runs ``gspauth login --otp
123456 …`` (or delivers the OTP through ``--otp-dir``, ``GSPAUTH_OTP``, ``GSPAUTH_OTP_COMMAND``
or a plugin) and goes straight to AUTHTOKEN. A new OTPREQUEST is sent only when none is
pending, it lapsed (10 minutes) or used its attempts, or ``--resend`` asks for one: a new
OTPREQUEST would void the OTP the taxpayer holds.

Where the OTP comes from, first match wins: ``--otp``; ``GSPAUTH_OTP_<GSTIN>`` /
``GSPAUTH_OTP``; ``--otp-dir`` (or ``GSPAUTH_OTP_DIR``) files ``<GSTIN>.otp`` written after the
request, waiting ``--wait`` seconds; ``GSPAUTH_OTP_COMMAND`` (its stdout); plugins; then a
prompt when stdin is a terminal (never with ``--no-prompt``). Against the local emulator the
OTP is in its outbox: ``curl "$EMULATOR/_emulator/outbox/otp?gstin=<GSTIN>"``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from typing import TYPE_CHECKING, Any

from gspauth.cli import Exit
from gspauth.cli._common import (
    add_target_arguments,
    build_client,
    describe_session,
    print_json,
    profile_from_args,
    session_dict,
)
from gspauth.errors import InvalidOtp, OtpRequired

if TYPE_CHECKING:
    from gspauth.client import Client
    from gspauth.otp import OtpProvider
    from gspauth.session import PendingOtp

__all__ = ["register"]


def _utc(value: _dt.datetime) -> str:
    return value.astimezone(_dt.timezone.utc).strftime("%H:%M UTC")


def _finish_command(client: Client) -> str:
    return (f"gspauth login --gsp {client.gsp} --environment {client.environment} --gstin {client.gstin} "
            f"--username {client.username} --otp <OTP>")


def _providers(args: argparse.Namespace) -> OtpProvider:
    from gspauth.otp import ChainOtp, FileOtp, default_otp_provider

    provider = default_otp_provider(interactive=not args.no_prompt)
    if args.otp_dir:
        provider = ChainOtp([FileOtp(args.otp_dir, wait=args.wait), provider])
    return provider


def _needs_otp(client: Client, pending: PendingOtp | None, args: argparse.Namespace, why: str) -> int:
    finish = _finish_command(client)
    if args.json:
        print_json({"state": "needs-otp", "session": client.key.id, "gstin": client.gstin, "reason": why,
                    "requested_at": pending.requested_at.isoformat() if pending else None,
                    "valid_until": pending.expires_at.isoformat() if pending else None,
                    "attempts_left": pending.attempts_left if pending else None, "finish": finish})
    else:
        until = f" (requested {_utc(pending.requested_at)}, valid until {_utc(pending.expires_at)})" if pending else ""
        print(f"gspauth: needs OTP for GSTIN {client.gstin}{until}: {why}", file=sys.stderr)
        print(f"  hint: deliver the OTP the taxpayer received: `{finish}` (from any process using this session "
              "store)", file=sys.stderr)
    return Exit.NEEDS_OTP


def _run(args: argparse.Namespace) -> int:
    from gspauth.otp import PromptOtp

    client = build_client(profile_from_args(args))
    with client:
        if not args.force and args.otp is None:
            current = client.store.load(client.key)
            if current is not None and current.usable(client.now(), client.margin):
                if args.json:
                    print_json({"state": "already-logged-in", "session": session_dict(current, client.now())})
                else:
                    print(f"Already logged in: {client.key.id}; {describe_session(current, client.now())}. "
                          "Use --force for a new consent.")
                return Exit.OK
        if args.otp is not None:
            session = client.authenticate(args.otp)
        else:
            pending = client.pending_otp()
            if pending is None or args.resend:
                pending = client.request_otp()
                print(f"OTP requested for GSTIN {client.gstin} (user {client.username}) via "
                      f"{client.gsp}/{client.environment}; valid until {_utc(pending.expires_at)}.", file=sys.stderr)
            else:
                print(f"An OTP requested at {_utc(pending.requested_at)} is pending for GSTIN {client.gstin} (valid "
                      f"until {_utc(pending.expires_at)}, {pending.attempts_left} attempt(s) left); not requesting "
                      "another (--resend would void it).", file=sys.stderr)
            if args.otp_dir:
                print(f"Waiting up to {args.wait:.0f} s for {args.otp_dir.rstrip('/')}/{client.gstin}.otp "
                      "(write the OTP there; an older file is ignored).", file=sys.stderr)
            client.otp_provider = _providers(args)
            interactive = not args.no_prompt and sys.stdin is not None and sys.stdin.isatty()
            while True:
                try:
                    session = client.authenticate()
                    break
                except OtpRequired as exc:
                    return _needs_otp(client, client.pending_otp(), args, exc.reason or "no OTP available yet")
                except InvalidOtp as exc:
                    if not (interactive and exc.attempts_left):
                        raise
                    print(f"gspauth: {exc.message}; {exc.hint}", file=sys.stderr)
                    client.otp_provider = PromptOtp()  # re-ask only the person at the terminal
    if args.json:
        print_json({"state": "logged-in", "session": session_dict(session, client.now())})
    else:
        print(f"Logged in: {session.key.id}; {describe_session(session, client.now())}.")
    return Exit.OK


def register(subparsers: Any) -> None:
    """Add ``gspauth login`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser(
        "login", help="OTP consent for a taxpayer, in one step or two (across processes)",
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
    )
    add_target_arguments(p)
    p.add_argument("--otp", metavar="OTP", help="the OTP the taxpayer received: finishes the pending request")
    p.add_argument("--resend", action="store_true", help="request a new OTP even if one is pending (voids it)")
    p.add_argument("--otp-dir", metavar="DIR",
                   help="take the OTP from DIR/<GSTIN>.otp (writes DIR/<GSTIN>.needed meanwhile)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the OTP file (default 0)")
    p.add_argument("--no-prompt", action="store_true",
                   help="never prompt: request the OTP if none is pending, and exit 75 if no OTP source has it")
    p.add_argument("--force", action="store_true", help="new consent even if a usable session exists")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.set_defaults(func=_run)
