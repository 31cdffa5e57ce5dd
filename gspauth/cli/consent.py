"""``gspauth consent log``: the local, append-only record of consents, refreshes and logouts."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from gspauth.errors import ConfigurationError

__all__ = ["register"]


def _since(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--since {text!r}: use ISO-8601 (2025-07-01T09:00+05:30) or 30m / 12h / 7d") from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _cmd_log(args: argparse.Namespace) -> int:
    from gspauth._pg import is_postgres_url
    from gspauth.ledger import Ledger
    from gspauth.ledger.postgres import PostgresLedger

    ledger: Ledger | PostgresLedger
    if (args.ledger or args.store) and is_postgres_url(args.ledger or args.store):
        ledger = PostgresLedger(args.ledger or args.store)  # the shared store's ledger, same URL and schema
    elif args.ledger:
        ledger = Ledger(args.ledger)
    elif args.store:
        ledger = Ledger(Path(args.store).expanduser().with_name("ledger.db"))
    else:
        ledger = Ledger()
    events = ledger.query(gstin=args.gstin, gsp=args.gsp, kind=args.kind, since=_since(args.since), limit=args.limit)
    verified = ledger.verify() if args.verify else None
    if args.json:
        out = []
        for e in events:
            out.append({
                "kind": e.kind, "gsp": e.gsp, "environment": e.environment, "gstin": e.gstin,
                "username": e.username, "at": e.at.isoformat(), "txn": e.txn, "ip_usr": e.ip_usr,
                "outcome": e.outcome, "detail": e.detail,
                "expires_at": None if e.expires_at is None else e.expires_at.isoformat(),
            })  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    if not events:
        print(f"No consent events in {ledger.path}.")
        return 0
    rows = [("TIME (UTC)", "EVENT", "GSTIN", "GSP/ENV", "USER", "OUTCOME", "TXN", "IP-USR", "DETAIL")]
    for e in events:
        rows.append((
            e.at.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.gstin or "",
            f"{e.gsp}/{e.environment}", e.username or "", e.outcome, e.txn or "", e.ip_usr or "", e.detail or "",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if verified is not None:
        print(f"hash chain verified ({verified} events)")
    return 0


def register(subparsers: Any) -> None:
    """Add ``gspauth consent`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser("consent", help="the consent ledger (every OTP consent, refresh, logout)")
    sub = p.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    log = sub.add_parser("log", help="show recorded session events, oldest first")
    log.add_argument("--gstin", help="only this GSTIN")
    log.add_argument("--gsp", help="only this GSP id")
    log.add_argument("--kind", help="only this event kind (consent, refreshed, ended, revoked, needs-otp …)")
    log.add_argument("--since", help="ISO-8601 time, or a span such as 30m, 12h, 7d")
    log.add_argument("--limit", type=int, help="only the most recent N")
    log.add_argument("--json", action="store_true", help="machine-readable output")
    log.add_argument("--verify", action="store_true", help="also check the ledger's hash chain")
    log.add_argument("--ledger", help="ledger file or postgresql:// URL (default: $GSPAUTH_HOME/ledger.db)")
    log.add_argument("--store", help="session store file (its ledger.db sibling is read) or postgresql:// URL")
    log.set_defaults(func=_cmd_log)
