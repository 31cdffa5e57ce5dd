"""``gspauth fetch``: download a taxpayer's GSTR-1 sections, GSTR-2A or GSTR-2B to JSONL.

Large returns come as encrypted ``.tar.gz`` parts (FILEDET): each is streamed to disk, its
SHA-256 checked, then decrypted and written one part at a time (memory stays bounded by a
part). Files are ``<out>/<GSTIN>_<period>_<form>_<section>.jsonl``, one record per line in the
shape ``gspauth file`` reads. Exit codes as ``gspauth login`` (75: the GSTIN needs OTP consent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from gspauth.cli import Exit
from gspauth.cli._common import add_target_arguments, open_store, print_json, profile_from_args

if TYPE_CHECKING:
    from gspauth.fetch import FetchResult

__all__ = ["register"]


async def _fetch(args: argparse.Namespace) -> list[FetchResult]:
    import httpx

    from gspauth.cli._common import async_client
    from gspauth.fetch import GSTR1_SECTIONS, Fetcher
    from gspauth.otp import default_otp_provider

    profile = profile_from_args(args)
    profile.require("gsp", "gstin", "username")
    store = open_store(profile)
    downloaded = [0]
    tty = sys.stderr.isatty() and not args.json

    def progress(what: str, n: int) -> None:
        downloaded[0] += n
        if tty:
            print(f"\r  downloaded {downloaded[0] / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)

    async with httpx.AsyncClient(timeout=args.timeout) as http:
        client = async_client(profile, gsp=str(profile.gsp), environment=profile.environment, gstin=str(profile.gstin),
                              username=str(profile.username), store=store,
                              otp_provider=default_otp_provider(interactive=False), http=http)
        fetcher = Fetcher(client, args.out, http=http, progress=progress)
        results = []
        for form in args.form or ["gstr1"]:
            if form == "gstr1":
                sections = tuple(args.section) if args.section else GSTR1_SECTIONS
                results += await fetcher.gstr1(args.fp, sections)
            elif form == "gstr2a":
                results += await fetcher.gstr2a(args.fp)
            else:
                results += await fetcher.gstr2b(args.fp)
    if tty:
        print(file=sys.stderr)
    return results


def _run(args: argparse.Namespace) -> int:
    results = asyncio.run(_fetch(args))
    if args.json:
        print_json({"gstin": args.gstin, "fp": args.fp, "files": [r.to_dict() for r in results]})
    else:
        for r in results:
            what = "no documents" if r.empty else f"{r.records} record(s)"
            parts = f", {r.files} file part(s), {r.bytes_downloaded / 1e6:.1f} MB" if r.files else ""
            print(f"{r.form} {r.section}: {what}{parts} → {r.path}")
    return Exit.OK


def register(subparsers: Any) -> None:
    """Add ``gspauth fetch`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser("fetch", help="download GSTR-1 sections, GSTR-2A or GSTR-2B to JSONL",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    add_target_arguments(p)
    p.add_argument("--fp", required=True, help="return period MMYYYY")
    p.add_argument("--form", action="append", choices=("gstr1", "gstr2a", "gstr2b"),
                   help="what to fetch (repeatable; default gstr1)")
    p.add_argument("--section", action="append", choices=("b2b", "b2cl", "b2cs", "cdnr", "hsn"),
                   help="GSTR-1 sections (repeatable; default all)")
    p.add_argument("--out", default=".", help="directory for the JSONL files (default: here)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request (120)")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=_run)

