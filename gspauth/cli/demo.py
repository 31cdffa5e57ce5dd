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
import base64
import datetime as _dt
import hashlib
import io
import json
import os
import secrets
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gspauth.errors import GSPAuthError

__all__ = ["Progress", "register", "run_demo"]

_GSPS = ("cleartax", "vayana")
_RET_PERIOD = "072017"
_EARLY_REFRESH = _dt.timedelta(hours=5, minutes=50)


class Progress:
    """A stdlib progress bar: redrawn in place on a TTY, one summary line otherwise."""

    def __init__(self, label: str, total: int, *, unit: str = "", stream: IO[str] | None = None, width: int = 28) -> None:
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
class GspRun:
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


def _expected(chunks: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for chunk in chunks:
        for group in chunk["b2b"]:
            for inv in group["inv"]:
                out[(group["ctin"], inv["inum"])] = inv
    return out


def _read_back(client: Any, hooks: Any, gsp: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """GET B2B; when GSTN answers with a token, follow FILEDET and fetch every part."""
    import httpx

    from gspauth import crypto
    from gspauth.types import Api

    reply = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=_RET_PERIOD)
    if "token" not in reply:
        return list(reply.get("b2b", [])), {"path": "direct", "files": 0, "bytes": 0}
    det = client.get(Api.RETURNS, "", action="FILEDET", ret_period=_RET_PERIOD, params={"token": reply["token"]})
    file_key = base64.b64decode(det["ek"])
    base = hooks.endpoint_url(gsp, Api.FILES, "sandbox")
    groups: list[dict[str, Any]] = []
    total = 0
    with httpx.Client(timeout=30.0) as http:
        for part in det["urls"]:
            ul = part["ul"] if part["ul"].startswith(("http://", "https://")) else base + part["ul"]
            blob = http.get(ul).raise_for_status().content
            total += len(blob)
            if hashlib.sha256(blob).hexdigest() != part["hash"]:
                raise GSPAuthError(f"FILEDET part {ul.rsplit('/', 1)[-1]} failed its SHA-256 check")
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.name.endswith(".json"):
                        fh = tar.extractfile(member)
                        assert fh is not None
                        text = fh.read().decode("ascii").strip()
                        data = json.loads(base64.b64decode(crypto.decrypt_field(file_key, text, field="file")))
                        groups.extend(data.get("b2b", []))
    return groups, {"path": "FILEDET", "files": len(det["urls"]), "bytes": total}


def _verify(expected: dict[tuple[str, str], Any], groups: list[dict[str, Any]]) -> dict[str, int]:
    got: dict[tuple[str, str], Any] = {}
    duplicates = 0
    for group in groups:
        for inv in group.get("inv", []):
            k = (group.get("ctin"), inv.get("inum"))
            duplicates += k in got
            got[k] = inv  # type: ignore[index]
    missing = sum(1 for k in expected if k not in got)
    extra = sum(1 for k in got if k not in expected)
    same = sum(1 for k, v in expected.items() if k in got and _same(v, got[k]))
    different = len(expected) - missing - same
    return {"identical": same, "missing": missing, "extra": extra, "different": different, "duplicates": duplicates}


def _stage(out: IO[str], name: str, text: str, seconds: float) -> None:
    print(f"  {name:<22} {text} ({seconds * 1000:.0f} ms)", file=out)


def _run_gsp(gsp: str, ctx: dict[str, Any], out: IO[str]) -> GspRun:
    from gspauth import synthetic
    from gspauth.client import Client
    from gspauth.filing import BatchFiler, ChunkResult
    from gspauth.otp import EmulatorOtp

    server, hooks, store, ledger = ctx["server"], ctx["hooks"], ctx["store"], ctx["ledger"]
    emu = server.emulator
    tp = ctx["taxpayers"][gsp]
    n = ctx["split"][gsp]
    chunks = synthetic.gstr1_chunks(
        n, seed=ctx["seed"] + _GSPS.index(gsp), supplier_gstin=tp["gstin"],
        ret_period=_RET_PERIOD, invoices_per_chunk=ctx["chunk"],
    )  # fmt: skip
    run = GspRun(gsp, tp["gstin"], tp["username"], n, len(chunks))
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

        # 2. file the invoices in chunks (resumable journal, idempotent txn per chunk)
        bar = Progress("filing", n, unit=" inv", stream=out)
        filed = [0]
        sizes = [sum(len(g["inv"]) for g in c["b2b"]) for c in chunks]

        payload = [0]

        def progress(result: ChunkResult) -> None:
            filed[0] += sizes[result.seq] if result.seq < len(sizes) else 0
            payload[0] += result.size
            bar.update(filed[0], result.state)

        t = time.perf_counter()
        with BatchFiler(client, journal=ctx["tmp"] / f"journal-{gsp}.db", progress=progress) as filer:
            summary = filer.file(chunks)
        run.timings["file"] = time.perf_counter() - t
        bar.close(f"({summary})")
        run.checks["every chunk acknowledged"] = summary.complete and summary.acked == len(chunks)
        run.notes["filing"] = str(summary)
        run.notes["payload_bytes"] = payload[0]
        if not summary.complete:
            run.notes["filing_problems"] = summary.report()

        # 3. read back and compare invoice by invoice (every field, JSON types included)
        t = time.perf_counter()
        groups, how = _read_back(client, hooks, gsp)
        result = _verify(_expected(chunks), groups)
        run.timings["read back + verify"] = time.perf_counter() - t
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
        ref = next(iter(summary.reference_ids.values()), None)
        from gspauth.types import Api

        status = client.get(Api.RETURNS, "", action="RETSTATUS", ret_period=_RET_PERIOD, params={"trans_id": ref})
        run.timings["auto refresh"] = time.perf_counter() - t
        refreshed = client.session
        run.checks["refreshed without OTP"] = (
            refreshed is not None and refreshed.refresh_count == 1 and refreshed.consent_at == session.consent_at
        )
        run.notes["retstatus"] = status.get("status_cd")
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


def run_demo(invoices: int, seed: int, chunk: int, *, out: IO[str], keep: str | None = None) -> dict[str, Any]:
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
    report: dict[str, Any] = {"invoices": invoices, "seed": seed, "chunk": chunk, "gsps": {}, "timings": {}}
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
                "certificate": certificate, "taxpayers": taxpayers, "seed": seed, "chunk": chunk,
                "split": {"cleartax": first, "vayana": invoices - first},
            }  # fmt: skip
            runs = []
            for gsp in _GSPS:
                print(f"\n{gsp}:", file=out)
                try:
                    runs.append(_run_gsp(gsp, ctx, out))
                except Exception as exc:  # noqa: BLE001 - reported as a failed step, demo goes on
                    failed = GspRun(gsp, taxpayers[gsp]["gstin"], taxpayers[gsp]["username"], ctx["split"][gsp], 0)
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
                  f"read back {t.get('read back + verify', 0):.2f} s · refresh {t.get('auto refresh', 0) * 1000:.0f} ms · "
                  f"logout {t.get('logout', 0) * 1000:.0f} ms", file=out)
        if "verify" in r["notes"]:
            v, how = r["notes"]["verify"], r["notes"]["read_back"]
            print(f"  verified {v['identical']}/{r['invoices']} invoices identical (every field and JSON type) via {how['path']} "
                  f"({how['files']} files); missing {v['missing']}, extra {v['extra']}, different {v['different']}",
                  file=out)
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
    print(f"total {report['timings']['total']:.2f} s (emulator start {report['timings'].get('emulator start', 0):.2f} s)",
          file=out)
    print(f"RESULT: {'PASS' if report['ok'] else 'FAIL'}", file=out)


def _run(args: argparse.Namespace) -> int:
    import logging

    if args.invoices < 1:
        print("gspauth demo: --invoices must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    progress_stream: IO[str] = sys.stderr
    report = run_demo(args.invoices, args.seed, args.chunk, out=progress_stream if args.json else sys.stdout,
                      keep=args.keep)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report, sys.stdout)
    return 0 if report["ok"] else 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole lifecycle against a local emulator (consent, filing, read-back, refresh, logout)",
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
    )
    p.add_argument("--invoices", type=int, default=3000, help="synthetic invoices to file, split over both GSPs (default 3000)")
    p.add_argument("--seed", type=int, default=7, help="seed for the emulator and the invoices (default 7)")
    p.add_argument("--chunk", type=int, default=500, help="invoices per RETSAVE chunk (default 500)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout (progress on stderr)")
    p.add_argument("--keep", metavar="DIR", help="keep the store, ledger and journals in DIR instead of a temp dir")
    p.set_defaults(func=_run)
