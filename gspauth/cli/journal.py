"""``gspauth journal status|retry|export``: what the filing journal knows.

``status`` counts invoices and chunks per state (per GSTIN with ``--gstin``) and lists parked
GSTINs; ``retry`` makes rejected invoices and refused chunks eligible for the next
``gspauth file`` run (after you fixed the cause without changing the records); ``export`` writes
every invoice's state — with GSTN's error code and message for rejected ones — as JSONL or CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from typing import Any

from gspauth.cli import Exit
from gspauth.cli._common import print_json

__all__ = ["register"]


def _spec(args: argparse.Namespace) -> str:
    from gspauth.journal import default_journal_path

    return str(args.journal or default_journal_path())


def _journal(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from gspauth.errors import ConfigurationError
    from gspauth.journal import open_journal

    spec = _spec(args)
    if "://" not in spec or spec.startswith("sqlite://"):
        path = Path(spec.removeprefix("sqlite://"))
        if not path.exists():
            raise ConfigurationError(f"no filing journal at {path}; `gspauth file` creates it (or pass --journal)")
    return contextlib.closing(open_journal(spec))


def _status(args: argparse.Namespace) -> int:
    from gspauth.journal import ChunkState

    with _journal(args) as journal:
        counts = journal.counts(gstin=args.gstin)
        parked = journal.parked()
        waiting = [c.to_dict() for c in journal.chunks(states=[ChunkState.SAVED], gstin=args.gstin)]
        doubt = [c.to_dict() for c in journal.chunks(states=[ChunkState.SENT], gstin=args.gstin)]
    if args.json:
        print_json({"journal": _spec(args), "counts": counts, "parked": parked,
                    "awaiting_status": waiting, "in_doubt": doubt})
        return Exit.OK
    inv, ch = counts["invoices"], counts["chunks"]
    print(f"journal {_spec(args)}")
    print("invoices: " + (", ".join(f"{n} {s}" for s, n in sorted(inv.items())) or "none"))
    print("chunks:   " + (", ".join(f"{n} {s}" for s, n in sorted(ch.items())) or "none"))
    for gstin, reason in parked.items():
        print(f"parked {gstin}: {reason}")
    if waiting:
        print(f"{len(waiting)} chunk(s) saved, status not yet known: the next `gspauth file` asks GSTN")
    if doubt:
        print(f"{len(doubt)} chunk(s) in doubt: the next `gspauth file` re-sends them with their txn")
    return Exit.OK


def _retry(args: argparse.Namespace) -> int:
    with _journal(args) as journal:
        n = journal.reset_for_retry(gstin=args.gstin, rejected=True)
    if args.json:
        print_json({"reset_invoices": n})
    else:
        print(f"{n} rejected invoice(s) will be re-sent by the next `gspauth file` run on the same input.")
    return Exit.OK


def _export(args: argparse.Namespace) -> int:
    from gspauth.journal import InvoiceState

    states = [InvoiceState(s) for s in args.state] if args.state else None
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        with _journal(args) as journal:
            rows = journal.invoices(states=states, gstin=args.gstin, fp=args.fp)
            if args.format == "csv":
                writer: Any = None
                for row in rows:
                    d = row.to_dict()
                    if writer is None:
                        writer = csv.DictWriter(out, fieldnames=list(d))
                        writer.writeheader()
                    writer.writerow(d)
            else:
                import json

                for row in rows:
                    out.write(json.dumps(row.to_dict()) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return Exit.OK


def register(subparsers: Any) -> None:
    """Add ``gspauth journal`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser("journal", help="the filing journal: status, retry rejected invoices, export",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    sub = p.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    for name, func, text in (("status", _status, "invoices and chunks per state, parked GSTINs"),
                             ("retry", _retry, "make rejected invoices eligible for the next run"),
                             ("export", _export, "every invoice's state (and GSTN's error) as JSONL or CSV")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--journal", help="filing journal (default: $GSPAUTH_HOME/filing.journal)")
        sp.add_argument("--gstin", help="only this GSTIN")
        if name == "export":
            sp.add_argument("--state", action="append", choices=("pending", "sent", "saved", "accepted", "rejected"),
                            help="only invoices in this state (repeatable)")
            sp.add_argument("--fp", help="only this return period")
            sp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (jsonl)")
            sp.add_argument("--out", help="write to this file (default: stdout)")
        else:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        sp.set_defaults(func=func)
