"""``gspauth demo``: the whole lifecycle against a local emulator, in one command.

Starts the emulator on loopback, registers two sample taxpayers, and for each of the
ClearTax and the Vayana plugin: OTP consent (the OTP is read from the emulator's outbox,
as a webhook or an operator would deliver it), a batch of synthetic GSTR-1 B2B invoices
filed in chunks with the resumable filer, a read-back through GSTN's large-download path
(FILEDET: token → encrypted ``.tar.gz`` parts, SHA-256 checked) verified invoice by
invoice, an automatic refresh when the token nears expiry (the emulator clock jumps
5 h 50 m), and a logout. Sessions live in an encrypted session store and every step in
the consent ledger, both in a temporary directory with a store key generated for the
demo only. Exits 1 if any check fails.

Needs no configuration and no network beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gspauth.errors import GSPAuthError

__all__ = ["register"]

_GSPS = ("cleartax", "vayana")
_RET_PERIOD = "072017"
_EARLY_REFRESH = _dt.timedelta(hours=5, minutes=50)


class _Progress:
    """A stdlib progress bar: redrawn in place on a TTY, one summary line otherwise."""

    def __init__(self, label: str, total: int, *, unit: str = "", stream: IO[str] | None = None,
                 width: int = 28) -> None:
        self.label, self.total, self.unit, self.width = label, max(0, total), unit, width
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._closed = False
        if self.tty:
            self._draw()

    def update(self, done: int, note: str = "") -> None:
        self.done = min(done, self.total) if self.total else done
        now = time.perf_counter()
        if self.tty and (now - self._last > 0.05 or self.done >= self.total):
            self._last = now
            self._draw(note)

    def _draw(self, note: str = "") -> None:
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"\r  {self.label:<22} [{bar}] {self.done}/{self.total}{self.unit} {note}"
        self.stream.write(text[:120].ljust(80))
        self.stream.flush()

    def close(self, note: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = time.perf_counter() - self.start
        if self.tty:
            self._draw(note)
            self.stream.write("\n")
        else:
            self.stream.write(f"  {self.label:<22} {self.done}/{self.total}{self.unit} in {elapsed:.2f}s {note}\n")
        self.stream.flush()


@dataclass
class _GspRun:
    gsp: str
    gstin: str
    username: str
    invoices: int
    chunks: int
    timings: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def _find_hooks(url: str) -> Any:
    """Plugins for both GSPs, pointed at the emulator; from a source checkout if not installed."""
    from gspauth.plugins import Hooks, get_plugin_manager

    pm = get_plugin_manager()
    hosts = {(g, "sandbox"): f"{url}/{g}" for g in _GSPS}
    registered = set(Hooks(pm, config=False).gsps())
    missing = [g for g in _GSPS if g not in registered]
    if missing:
        import importlib

        repo = Path(__file__).resolve().parents[2] / "plugins"
        for gsp in missing:
            src = repo / gsp / "src"
            if src.is_dir() and str(src) not in sys.path:
                sys.path.insert(0, str(src))
            try:
                module = importlib.import_module(f"gspauth_{gsp}")
            except ImportError:
                raise GSPAuthError(
                    f"the demo needs the {gsp} plugin: pip install gspauth-{gsp} (or run from a source checkout)"
                ) from None
            pm.register(module, name=gsp)
    return Hooks(pm, hosts=hosts, config=False)


def _credentials(gsp: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    from gspauth.emulator import defaults
    from gspauth.types import Credentials

    if gsp == "cleartax":
        return Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN)
    pem = defaults.vayana_demo_private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credentials(
        client_id=defaults.VAYANA_ASP_CLIENTID,
        client_secret=defaults.VAYANA_ASP_CLIENT_SECRET,
        asp_cust_id=defaults.VAYANA_ASP_CUST_ID,
        private_key_pem=pem,
    )


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (``1`` ≠ ``1.0`` ≠ ``true``), every field, any key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _normal_number(text: str) -> int | float:
    """A JSON number as the filer's canonical form writes it (``18.0`` → ``18``, ``7.50`` → ``7.5``)."""
    from decimal import Decimal

    d = Decimal(text).normalize()
    return int(d) if d == d.to_integral_value() else float(d)


def _expected(lines: list[bytes]) -> dict[tuple[str, str], Any]:
    """The invoices of the demo's input file, by (ctin, inum), as GSTN should hold them: the
    canonical form the filer sends (numbers in normal form; see docs/ingest.md)."""
    out: dict[tuple[str, str], Any] = {}
    for line in lines:
        inv = json.loads(line, parse_float=_normal_number, parse_int=_normal_number)
        ctin = inv.pop("ctin")
        for meta in ("gstin", "fp", "section"):
            inv.pop(meta)
        out[(ctin, inv["inum"])] = inv
    return out


async def _read_back(client: Any, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """GSTR-1 B2B through the fetcher: GSTN answers with a token and FILEDET parts (SHA-256 checked)."""
    import httpx

    from gspauth.fetch import Fetcher

    async with httpx.AsyncClient(timeout=30.0) as http:
        (result,) = await Fetcher(client, tmp / "fetched", http=http).gstr1(_RET_PERIOD, ("b2b",))
    records = [json.loads(line) for line in Path(result.path).read_text(encoding="utf-8").splitlines()]
    how = {"path": "FILEDET" if result.files else "direct", "files": result.files, "bytes": result.bytes_downloaded}
    return records, how


def _verify(expected: dict[tuple[str, str], Any], records: list[dict[str, Any]]) -> dict[str, int]:
    got: dict[tuple[str, str], Any] = {}
    duplicates = 0
    for rec in records:
        inv = {k: v for k, v in rec.items() if k not in ("gstin", "fp", "section", "ctin")}
        k = (rec.get("ctin"), inv.get("inum"))
        duplicates += k in got
        got[k] = inv  # type: ignore[index]
    missing = sum(1 for k in expected if k not in got)
    extra = sum(1 for k in got if k not in expected)
    same = sum(1 for k, v in expected.items() if k in got and _same(v, got[k]))
    different = len(expected) - missing - same
    return {"identical": same, "missing": missing, "extra": extra, "different": different, "duplicates": duplicates}


def _stage(out: IO[str], name: str, text: str, seconds: float) -> None:
    print(f"  {name:<22} {text} ({seconds * 1000:.0f} ms)", file=out)


async def _file(ctx: dict[str, Any], gsp: str, tp: dict[str, str], source: Path, bar: _Progress) -> Any:
    """File ``source`` through the filing pipeline (``gspauth file``), with the demo's bar."""
    import threading

    import httpx

    from gspauth.client import AsyncClient
    from gspauth.filer import Filer, FilerOptions, FilingInput, FilingProgress
    from gspauth.journal.sqlite import SQLiteJournal
    from gspauth.retry import RetryPolicy

    progress = FilingProgress()
    done = threading.Event()

    def draw() -> None:
        while not done.wait(0.05):
            bar.update(progress.snapshot()["totals"]["saved"], "filing")

    painter = threading.Thread(target=draw, daemon=True)
    painter.start()
    try:
        async with httpx.AsyncClient(timeout=60.0) as http:
            client = AsyncClient(
                gsp, "sandbox", _credentials(gsp), gstin=tp["gstin"], username=tp["username"],
                certificate=ctx["certificate"], store=ctx["store"], ledger=ctx["ledger"], hooks=ctx["hooks"],
                clock=ctx["server"].emulator.clock.now, ip_usr="203.0.113.7", retry=RetryPolicy(attempts=1),
                http_client=http,
            )  # fmt: skip
            options = FilerOptions(max_chunk_bytes=ctx["chunk_kib"] * 1024, status_poll=0.05)
            with SQLiteJournal(ctx["tmp"] / f"journal-{gsp}.db") as journal:
                report = await Filer(journal, lambda gstin: client, options=options, progress=progress).run(
                    [FilingInput(str(source))])
            read_back = await _read_back(client, ctx["tmp"] / gsp)
        return report, read_back
    finally:
        done.set()
        painter.join(1)
        bar.update(progress.snapshot()["totals"]["saved"])


def _run_gsp(gsp: str, ctx: dict[str, Any], out: IO[str]) -> _GspRun:
    import asyncio

    from gspauth import synthetic
    from gspauth.client import Client
    from gspauth.otp import EmulatorOtp

    server, hooks, store, ledger = ctx["server"], ctx["hooks"], ctx["store"], ctx["ledger"]
    emu = server.emulator
    tp = ctx["taxpayers"][gsp]
    n = ctx["split"][gsp]
    source = ctx["tmp"] / f"invoices-{gsp}.jsonl"
    lines = list(synthetic.b2b_jsonl(n, seed=ctx["seed"] + _GSPS.index(gsp), supplier_gstin=tp["gstin"],
                                     ret_period=_RET_PERIOD))
    source.write_bytes(b"".join(lines))
    run = _GspRun(gsp, tp["gstin"], tp["username"], n, 0)
    client = Client(
        gsp, "sandbox", _credentials(gsp), gstin=tp["gstin"], username=tp["username"],
        certificate=ctx["certificate"], store=store, ledger=ledger, hooks=hooks,
        otp_provider=EmulatorOtp(server.url), clock=emu.clock.now, ip_usr="203.0.113.7", timeout=60.0,
    )  # fmt: skip
    with client:
        # 1. consent: OTPREQUEST → OTP (out of band: the emulator's outbox) → AUTHTOKEN
        t = time.perf_counter()
        session = client.authenticate()
        run.timings["consent"] = time.perf_counter() - t
        run.checks["consent"] = session.usable(client.now())
        stored = store.load(client.key)
        run.checks["session stored (encrypted)"] = stored == session
        until = session.effective_expires_at.strftime("%H:%M UTC")
        _stage(out, "consent", f"OTP read from the emulator outbox; session until {until}", run.timings["consent"])

        # 2. file the JSONL file through the filing pipeline (what `gspauth file` runs): validated,
        #    journalled invoice by invoice, chunked, sent, followed to GSTN's final status;
        # 3. read it back through FILEDET (what `gspauth fetch` runs) and compare invoice by invoice
        bar = _Progress("filing", n, unit=" inv", stream=out)
        t = time.perf_counter()
        report, (records, how) = asyncio.run(_file(ctx, gsp, tp, source, bar))
        totals = report.totals
        run.timings["file"] = report.elapsed
        run.chunks = totals["chunks_planned"]
        bar.close(f"({totals['accepted']} accepted in {run.chunks} chunks, status {report.outcome})")
        run.checks["every invoice accepted"] = report.outcome == "complete" and totals["accepted"] == n
        run.notes["filing"] = report.text().splitlines()[0]
        run.notes["payload_bytes"] = source.stat().st_size
        if report.outcome != "complete":
            run.notes["filing_problems"] = report.text()
        result = _verify(_expected(lines), records)
        run.timings["read back + verify"] = time.perf_counter() - t - report.elapsed
        run.notes["read_back"] = how
        run.notes["verify"] = result
        _stage(out, "read back", f"{how['path']} ({how['files']} files), {result['identical']}/{n} identical",
               run.timings["read back + verify"])
        run.checks["read back identical"] = (
            result["identical"] == n and not (result["missing"] or result["extra"] or result["different"])
        )

        # 4. near expiry: the next call refreshes on its own (no OTP)
        emu.clock.advance(_EARLY_REFRESH.total_seconds())
        t = time.perf_counter()
        from gspauth.types import Api

        status = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=_RET_PERIOD, params={"ctin": "none"})
        run.timings["auto refresh"] = time.perf_counter() - t
        refreshed = client.session
        run.checks["refreshed without OTP"] = (
            refreshed is not None and refreshed.refresh_count == 1 and refreshed.consent_at == session.consent_at
        )
        run.notes["after_refresh"] = sorted(status) if isinstance(status, dict) else None
        _stage(out, "refresh", f"automatic at +5h50m (token inside its 15 min margin), no OTP; "
               f"refreshes: {refreshed.refresh_count if refreshed else 0}", run.timings["auto refresh"])

        # 5. logout
        t = time.perf_counter()
        ended = client.logout()
        run.timings["logout"] = time.perf_counter() - t
        live = [s for s in emu.sessions_of(tp["gstin"]) if s.get("gsp", gsp) == gsp]
        run.checks["logged out"] = ended and store.load(client.key) is None and not live
        _stage(out, "logout", f"LOGOUT sent; {len(live)} live session(s) left at GSTN", run.timings["logout"])
    return run


def _run_demo(invoices: int, seed: int, chunk_kib: int, *, out: IO[str], keep: str | None = None) -> dict[str, Any]:
    """Run the demo; return the report (see ``--json``)."""
    import httpx

    from gspauth.emulator import defaults
    from gspauth.emulator.config import EmulatorConfig
    from gspauth.emulator.server import ThreadedEmulator
    from gspauth.ledger import Ledger
    from gspauth.store import SQLiteStore

    started = time.perf_counter()
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="gspauth-demo-"))
    tmp.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o700)
    report: dict[str, Any] = {"invoices": invoices, "seed": seed, "chunk_kib": chunk_kib, "gsps": {}, "timings": {}}
    try:
        t = time.perf_counter()
        server = ThreadedEmulator(config=EmulatorConfig(seed=seed)).start()
        report["timings"]["emulator start"] = time.perf_counter() - t
        try:
            url = server.url
            print(f"emulator: {url} (loopback only)", file=out)
            certificate = httpx.get(f"{url}/_emulator/certificate.pem", timeout=10).raise_for_status().content
            taxpayers = {}
            for i, gsp in enumerate(_GSPS):
                gstin = defaults.make_gstin(("27", "29")[i], ("AAPCD", "AABCV")[i] + f"{seed % 10000:04d}" + "K")
                username = f"demo.{gsp}"
                server.emulator.register_taxpayer(gstin, username, access_duration=_dt.timedelta(days=30))
                taxpayers[gsp] = {"gstin": gstin, "username": username}
                print(f"taxpayer: {gstin} ({username}), API access 30 days, via {gsp}", file=out)
            # A key for this demo only: never printed, never written, gone with the process.
            store = SQLiteStore(tmp / "sessions.db", key=secrets.token_bytes(32))
            ledger = Ledger(tmp / "ledger.db")
            first = (invoices + 1) // 2
            ctx = {
                "server": server, "hooks": _find_hooks(url), "store": store, "ledger": ledger, "tmp": tmp,
                "certificate": certificate, "taxpayers": taxpayers, "seed": seed, "chunk_kib": chunk_kib,
                "split": {"cleartax": first, "vayana": invoices - first},
            }  # fmt: skip
            runs = []
            for gsp in _GSPS:
                print(f"\n{gsp}:", file=out)
                try:
                    runs.append(_run_gsp(gsp, ctx, out))
                except Exception as exc:  # noqa: BLE001 - reported as a failed step, demo goes on
                    failed = _GspRun(gsp, taxpayers[gsp]["gstin"], taxpayers[gsp]["username"], ctx["split"][gsp], 0)
                    failed.checks["completed"] = False
                    failed.notes["error"] = f"{type(exc).__name__}: {exc}"
                    runs.append(failed)
                    print(f"  {gsp}: FAILED: {type(exc).__name__}: {exc}", file=out)
            stats = server.emulator.stats
            report["emulator_actions"] = dict(sorted(stats.get("actions", {}).items()))
            kinds: dict[str, int] = {}
            for e in ledger.query():
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
            report["ledger"] = {"events": kinds, "verified_rows": ledger.verify()}
            report["store"] = {"path": str(store.path), "sessions_left": len(store.list())}
            store.close()
            ledger.close()
        finally:
            server.stop()
        for run in runs:
            report["gsps"][run.gsp] = {
                "gstin": run.gstin, "username": run.username, "invoices": run.invoices, "chunks": run.chunks,
                "ok": run.ok, "checks": run.checks, "timings": {k: round(v, 4) for k, v in run.timings.items()},
                "notes": run.notes,
            }  # fmt: skip
        report["ok"] = bool(runs) and all(r.ok for r in runs)
        report["timings"]["total"] = time.perf_counter() - started
        report["timings"] = {k: round(v, 4) for k, v in report["timings"].items()}
        return report
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _print_report(report: dict[str, Any], out: IO[str]) -> None:
    print("\ngspauth demo report", file=out)
    print("=" * 19, file=out)
    for gsp, r in report["gsps"].items():
        print(f"{gsp:<9} GSTIN {r['gstin']}  {r['invoices']} invoices in {r['chunks']} chunks", file=out)
        for name, ok in r["checks"].items():
            print(f"  [{'PASS' if ok else 'FAIL'}] {name}", file=out)
        t = r["timings"]
        if "file" in t and t["file"] > 0:
            mb = r["notes"].get("payload_bytes", 0) / 1e6
            print(f"  consent {t.get('consent', 0) * 1000:.0f} ms · filing {t['file']:.2f} s "
                  f"({r['invoices'] / t['file']:.0f} invoices/s, {mb / t['file']:.1f} MB/s) · "
                  f"read back {t.get('read back + verify', 0):.2f} s · "
                  f"refresh {t.get('auto refresh', 0) * 1000:.0f} ms · "
                  f"logout {t.get('logout', 0) * 1000:.0f} ms", file=out)
        if "verify" in r["notes"]:
            v, how = r["notes"]["verify"], r["notes"]["read_back"]
            print(f"  verified {v['identical']}/{r['invoices']} invoices identical (every field and JSON type) "
                  f"via {how['path']} ({how['files']} files); missing {v['missing']}, extra {v['extra']}, "
                  f"different {v['different']}", file=out)
        if "filing_problems" in r["notes"]:
            print("  " + r["notes"]["filing_problems"].replace("\n", "\n  "), file=out)
        if "error" in r["notes"]:
            print(f"  error: {r['notes']['error']}", file=out)
    if "ledger" in report:
        events = ", ".join(f"{k} {v}" for k, v in sorted(report["ledger"]["events"].items()))
        print(f"consent ledger: {events} (hash chain of {report['ledger']['verified_rows']} rows verified)", file=out)
    if "emulator_actions" in report:
        acts = report["emulator_actions"]
        shown = ", ".join(f"{k} {acts[k]}" for k in ("OTPREQUEST", "AUTHTOKEN", "RETSAVE", "FILEDET", "REFRESHTOKEN",
                                                      "LOGOUT") if k in acts)
        print(f"GSTN calls seen by the emulator: {shown}", file=out)
    timings = report["timings"]
    print(f"total {timings['total']:.2f} s (emulator start {timings.get('emulator start', 0):.2f} s)", file=out)
    print(f"RESULT: {'PASS' if report['ok'] else 'FAIL'}", file=out)


def _run(args: argparse.Namespace) -> int:
    import logging

    if args.invoices < 1:
        print("gspauth demo: --invoices must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    progress_stream: IO[str] = sys.stderr
    report = _run_demo(args.invoices, args.seed, args.chunk_kib, out=progress_stream if args.json else sys.stdout,
                      keep=args.keep)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, sys.stdout)
    return 0 if report["ok"] else 1


def register(subparsers: Any) -> None:
    """Add ``gspauth demo`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole lifecycle against a local emulator (consent, filing, read-back, refresh, logout)",
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
    )
    p.add_argument("--invoices", type=int, default=3000,
                   help="synthetic invoices to file, split over both GSPs (default 3000)")
    p.add_argument("--seed", type=int, default=7, help="seed for the emulator and the invoices (default 7)")
    p.add_argument("--chunk-kib", type=int, default=1024,
                   help="KiB of invoice JSON per RETSAVE chunk (default 1024, ~500 invoices)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout (progress on stderr)")
    p.add_argument("--keep", metavar="DIR", help="keep the store, ledger and journals in DIR instead of a temp dir")
    p.set_defaults(func=_run)
