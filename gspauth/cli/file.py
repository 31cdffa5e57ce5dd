"""``gspauth file INPUT…``: file invoice files to GSTN, from JSONL, GSTR-1 JSON or the offline
tool's CSV templates, to GSTN's final status.

Every record is validated (bad ones are reported with file, line and reason and skipped);
valid ones are journalled invoice by invoice, chunked per GSTIN, period and section, sent with
bounded concurrency, retried with their original ``txn``, and followed with RETSTATUS to
GSTN's verdict per invoice. Run it again at any time — after a crash, Ctrl-C, an outage, an
OTP delivered, or with a corrected file: what GSTN has is not sent again, what changed is.

With ``--scheduler tcp://host:8786`` (an existing Dask cluster) or ``--workers N`` (a local
cluster of N processes) the run is partitioned by GSTIN over the workers
(:mod:`gspauth.filer.distributed`; ``docs/deploying.md``).

Exit codes: 0 every record accepted (or already filed); 1 some records rejected (by
validation or by GSTN) or another error (also: a partition could not run); 69 a GSP stayed
unreachable; 70 a partition hit a bug; 75 run again later — some GSTINs wait for OTP consent
(the report names the command delivering each OTP) or some chunks got no answer (also: a
worker died too often); 130 interrupted (in-flight chunks were journalled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gspauth.cli import Exit
from gspauth.cli._common import add_target_arguments, open_store, print_json, profile_from_args
from gspauth.errors import ConfigurationError

if TYPE_CHECKING:
    from gspauth.filer import FilerOptions, FilingProgress, FilingReport

__all__ = ["register"]

_EXIT = {"complete": Exit.OK, "dry-run": Exit.OK, "rejected": Exit.ERROR, "parked": Exit.NEEDS_OTP,
         "in-doubt": Exit.NEEDS_OTP, "unreachable": Exit.UNREACHABLE, "interrupted": Exit.INTERRUPTED,
         "failed": Exit.ERROR, "internal": Exit.INTERNAL}


class _Progress(Protocol):
    """What the display reads: :class:`~gspauth.filer.FilingProgress` on one machine,
    :class:`~gspauth.filer.distributed.JournalProgress` (which adds ``partitions``) on many."""

    def snapshot(self) -> dict[str, Any]: ...


def _read_note(s: dict[str, Any]) -> str:
    if "partitions" in s:  # a distributed run: each partition reads on its worker
        done, total = s["partitions"]
        return f"{done}/{total} partitions done"
    return f"read {s['bytes_read'] / 1e6:.1f}/{s['bytes_total'] / 1e6:.1f} MB"


def _display(progress: _Progress, done: threading.Event, quiet: bool) -> None:
    """Live progress on a terminal (rich); a line every 10 s otherwise; nothing with --quiet."""
    if quiet:
        return
    snap_interval = 0.25
    if not sys.stderr.isatty():
        while not done.wait(10):
            s = progress.snapshot()
            t = s["totals"]
            print(f"gspauth file: {_read_note(s)}, "
                  f"{s['records_read']} records; {t['saved']} saved, {t['accepted']} accepted, {t['rejected']} "
                  f"rejected, {t['in_doubt']} in doubt ({s['rate']:.0f} invoices/s)", file=sys.stderr, flush=True)
        return
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console(stderr=True)
    bars = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeRemainingColumn(), console=console)
    read = bars.add_task("read", total=None, note="")
    filed = bars.add_task("filed", total=None, note="")

    def frame() -> Group:
        s = progress.snapshot()
        t = s["totals"]
        total, completed = s["partitions"] if "partitions" in s else (s["bytes_total"], s["bytes_read"])
        bars.update(read, total=max(1, total), completed=completed,
                    note=f"{s['records_read']} records, {sum(s['record_errors'].values())} invalid, "
                         f"{s['unchanged']} already filed")
        bars.update(filed, total=max(1, t["planned"]), completed=t["saved"] + t["in_doubt"],
                    note=f"{t['accepted']} accepted, {t['rejected']} rejected, {s['rate']:.0f}/s")
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("GSTIN", "invoices", "chunks", "saved", "accepted", "rejected", "state"):
            table.add_column(col, justify="left" if col in ("GSTIN", "state") else "right")
        busy = sorted(s["gstins"].items(), key=lambda kv: (kv[1]["parked"] is None, kv[1]["saved"] - kv[1]["planned"]))
        for gstin, g in busy[:8]:
            state = f"parked: {g['parked'][:40]}" if g["parked"] else (
                "done" if g["saved"] + g["in_doubt"] >= g["planned"] and s["reading_done"] else "filing")
            table.add_row(gstin, str(g["planned"]), f"{g['chunks_saved']}/{g['chunks_planned']}", str(g["saved"]),
                          str(g["accepted"]), str(g["rejected"]), state)
        if len(busy) > 8:
            table.add_row(f"… {len(busy) - 8} more GSTINs", "", "", "", "", "", "")
        return Group(bars, table)

    with Live(frame(), console=console, refresh_per_second=1 / snap_interval, transient=False) as live:
        while not done.wait(snap_interval):
            live.update(frame())
        live.update(frame())

def _report(args: argparse.Namespace, report: FilingReport) -> int:
    """Print the report (text or ``--json``) and return the exit code.

    A dry run exits 1 when it found invalid or repeated records, so a validation step in a
    script fails on the records a real run would not send."""
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.text())
    if report.outcome == "dry-run" and (report.record_errors or report.duplicates):
        return Exit.ERROR
    return _EXIT.get(report.outcome, Exit.ERROR)


def _filer_options(args: argparse.Namespace) -> FilerOptions:
    """The filing options the command line sets (the same for one machine and for a cluster)."""
    from gspauth.filer import FilerOptions

    return FilerOptions(
        max_chunk_bytes=args.max_chunk_bytes, concurrency=args.concurrency, per_gstin=args.per_gstin,
        per_gsp=args.per_gsp, rate=args.rate, attempts=args.attempts, wait_status=not args.no_wait,
        status_timeout=args.status_timeout, retry_rejected=args.retry_rejected, dry_run=args.dry_run,
        give_up_after=args.give_up_after,
    )  # fmt: skip



def _inputs(args: argparse.Namespace, *, local: bool = True) -> list[Any]:
    from gspauth.filer import FilingInput

    inputs = []
    for path in args.inputs:
        # a URL, or a path on remote workers, is checked where it is read
        if local and "://" not in path and not Path(path).is_file():
            missing = ConfigurationError(f"input file {path} not found")
            missing.hint = f"check the path (relative paths start in {os.getcwd()})"
            raise missing
        inputs.append(FilingInput(path, format=args.format, section=args.section, gstin=args.gstin, fp=args.fp))
    return inputs


async def _file(args: argparse.Namespace, progress: FilingProgress) -> FilingReport:
    import httpx

    from gspauth.cli._taxpayers import TaxpayerClients, read_taxpayers
    from gspauth.filer import Filer
    from gspauth.journal import open_journal
    from gspauth.otp import ChainOtp, FileOtp, default_otp_provider

    profile = profile_from_args(args)
    store = open_store(profile)
    taxpayers = read_taxpayers(args.taxpayers) if args.taxpayers else {}
    provider = default_otp_provider(interactive=False) if args.request_otp else None
    if provider is not None and args.otp_dir:
        provider = ChainOtp([FileOtp(args.otp_dir), provider])
    options = _filer_options(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if stop.is_set():  # a second Ctrl-C: leave now (what is in flight stays in doubt, safely)
            print("\ngspauth file: interrupted; chunks in flight stay in doubt and are re-sent with their txn",
                  file=sys.stderr)
            os._exit(Exit.INTERRUPTED)
        print("\ngspauth file: stopping after the chunks in flight (Ctrl-C again to leave now)", file=sys.stderr)
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, not off the main thread
        loop.add_signal_handler(signal.SIGINT, interrupt)
        loop.add_signal_handler(signal.SIGTERM, interrupt)
    limits = httpx.Limits(max_connections=max(8, args.concurrency * 2), max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as http:
        clients = TaxpayerClients(profile, store, taxpayers, provider, http)
        with contextlib.closing(open_journal(args.journal)) as journal:
            filer = Filer(journal, clients, options=options, progress=progress, login_hint=clients.login_hint)
            return await filer.run(_inputs(args), stop=stop)


def _run(args: argparse.Namespace) -> int:
    from gspauth._malloc import bound_large_allocations
    from gspauth.filer import FilingProgress

    bound_large_allocations()  # megabyte buffers all run long: keep them from fragmenting the heap
    if args.scheduler or args.workers is not None:
        return _run_distributed(args)
    for flag, value in (("--wait-for-consent", args.wait_for_consent), ("--partitions", args.partitions),
                        ("--shared-storage", args.shared_storage)):
        if value:
            raise ConfigurationError(f"{flag} is for distributed runs; add --workers N (this machine) or "
                                     "--scheduler tcp://host:8786")
    progress = FilingProgress()
    done = threading.Event()
    display = threading.Thread(target=_display, args=(progress, done, args.quiet or args.json), daemon=True)
    display.start()
    try:
        report = asyncio.run(_file(args, progress))
    finally:
        done.set()
        display.join(2)
    return _report(args, report)


def _run_distributed(args: argparse.Namespace) -> int:
    """``--scheduler``/``--workers``: the same run, partitioned by GSTIN over Dask workers."""
    import logging

    from gspauth.filer.distributed import JournalProgress, WorkerTarget, file_distributed
    from gspauth.journal import default_journal_path, open_journal
    from gspauth.store import default_store_path

    # Dask logs through its own loggers at INFO (set when it is imported); on the command line
    # they follow -v like ours.
    with contextlib.suppress(ImportError):  # without Dask, file_distributed says what to install
        import distributed  # noqa: F401 - only probing that the dask extra is installed
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
    if args.scheduler and args.workers is not None:
        raise ConfigurationError("--scheduler and --workers exclude each other: use an existing cluster, or start one "
                                 "here")
    profile = profile_from_args(args)  # on this machine: only where the shared store is
    store = profile.store or str(default_store_path())
    journal = args.journal or str(default_journal_path())
    target = WorkerTarget(profile=args.profile, gsp=args.gsp, environment=args.environment, host=args.host,
                          certificate=args.certificate, ip_usr=args.ip_usr, gstin=args.gstin, username=args.username)
    options = _filer_options(args)
    local = args.workers is not None
    # The live view reads the journal here when this machine sees the same one as the workers.
    journal_here = local or ("://" in journal and not journal.startswith("sqlite:"))
    progress = JournalProgress((lambda: open_journal(journal)) if journal_here else None)
    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now (what is in flight stays in doubt, safely)
            raise KeyboardInterrupt
        print("\ngspauth file: stopping every worker after its chunks in flight (Ctrl-C again to leave now)",
              file=sys.stderr)
        stop.set()

    done = threading.Event()
    display = threading.Thread(target=_display, args=(progress, done, args.quiet or args.json), daemon=True)
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    display.start()
    try:
        report = file_distributed(
            _inputs(args, local=local), store=store, journal=journal, scheduler=args.scheduler, workers=args.workers,
            options=options, target=target, taxpayers=args.taxpayers, partitions=args.partitions,
            request_otp=args.request_otp, otp_dir=args.otp_dir, wait_for_consent=args.wait_for_consent,
            claim_wait=args.claim_wait, shared_storage=args.shared_storage, http_timeout=args.timeout,
            progress=progress, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        done.set()
        display.join(2)
        progress.close()
    return _report(args, report)


def _seconds(text: str) -> float:
    """A span: ``90``, ``90s``, ``15m``, ``2h``, ``1d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a span such as 90s, 15m or 2h") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a span cannot be negative")
    return value


def register(subparsers: Any) -> None:
    """Add ``gspauth file`` to the command line."""
    p = subparsers.add_parser("file", help="file invoice files (JSONL, GSTR-1 JSON, offline-tool CSV) to GSTN",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
                              epilog="exit codes: 0 all accepted (--dry-run: all valid), 1 records rejected "
                                     "(--dry-run: invalid), 69 unreachable, 75 run again later (OTP needed / in "
                                     "doubt), 130 interrupted")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="invoice files (.jsonl, .json, .csv)")
    g = p.add_argument_group("input")
    g.add_argument("--format", choices=("jsonl", "gstr1-json", "csv"), help="input format (default: from extension)")
    g.add_argument("--section", help="CSV section: b2b, b2cl, b2cs, cdnr, hsn (default: from the file name)")
    g.add_argument("--fp", help="return period MMYYYY (needed for CSV)")
    g.add_argument("--taxpayers", metavar="FILE", help="gstin,username[,gsp,environment] per taxpayer (CSV or JSONL)")
    add_target_arguments(p)
    f = p.add_argument_group("filing")
    f.add_argument("--journal", help="filing journal (default: $GSPAUTH_HOME/filing.journal); keep it for the returns")
    f.add_argument("--dry-run", action="store_true", help="validate and chunk only: send and record nothing")
    f.add_argument("--no-wait", action="store_true", help="stop at GSTN's acknowledgement; do not poll RETSTATUS")
    f.add_argument("--status-timeout", type=float, default=900.0, help="seconds to follow a save's status (900)")
    f.add_argument("--retry-rejected", action="store_true", help="re-send records GSTN rejected before, unchanged")
    f.add_argument("--max-chunk-bytes", type=int, default=2 << 20, help="JSON bytes per RETSAVE (2 MiB)")
    f.add_argument("--concurrency", type=int, default=16, help="chunks in flight overall (16)")
    f.add_argument("--per-gstin", type=int, default=1, help="chunks in flight per GSTIN (1)")
    f.add_argument("--per-gsp", type=int, default=8, help="requests in flight per GSP (8)")
    f.add_argument("--rate", type=float, help="requests per second per GSP (default: no limit; 429s pause the GSP)")
    f.add_argument("--attempts", type=int, default=6, help="tries per chunk on transient failures (6)")
    f.add_argument("--give-up-after", type=float, default=1800.0, help="seconds a GSP may stay down (1800)")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (60)")
    o = p.add_argument_group("OTP for GSTINs without a session")
    o.add_argument("--no-request-otp", dest="request_otp", action="store_false",
                   help="do not send OTPREQUEST for GSTINs without a session; just park them")
    o.add_argument("--otp-dir", help="take OTPs from DIR/<GSTIN>.otp (besides GSPAUTH_OTP_*, the OTP command, plugins)")
    d = p.add_argument_group("distributed (Dask; pip install 'gspauth[distributed]'; see docs/deploying.md)")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="file on this Dask cluster (tcp://host:8786), partitioned by GSTIN over its workers")
    d.add_argument("--workers", type=int, metavar="N", help="start a local Dask cluster of N worker processes")
    d.add_argument("--partitions", type=int, metavar="P", help="tasks, by GSTIN (default: 2 per worker thread)")
    d.add_argument("--shared-storage", action="store_true",
                   help="with --scheduler: the file store/journal path is on storage every worker mounts")
    d.add_argument("--wait-for-consent", type=_seconds, metavar="SPAN", default=0.0,
                   help="a GSTIN that needs OTP waits this long (e.g. 15m) for `gspauth login --otp` anywhere, "
                        "instead of being parked at once")
    d.add_argument("--claim-wait", type=_seconds, metavar="SPAN", default=120.0,
                   help="wait this long for a GSTIN another filer is filing (default 2m)")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="the report as JSON on stdout (no progress display)")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_run)
