"""End-to-end filing against the emulator server on loopback: ``gspauth file`` as its own process.

    .venv/bin/python benchmarks/bench_filing.py                      # 100,000 invoices, 50 GSTINs
    .venv/bin/python benchmarks/bench_filing.py --memory 1000000     # also 1,000,000: peak RSS compared
    .venv/bin/python benchmarks/bench_filing.py --invoices 20000 --gstins 10 --quick

What is measured, in one run:

* invoices/s from the filer's start to its exit (every invoice validated, journalled, chunked,
  encrypted, sent, acknowledged and followed with RETSTATUS to its final status);
* CPU seconds of the client (``gspauth file``: its rusage) and of the emulator (its own
  process, from ``/proc/<pid>/stat``) separately;
* the client's peak RSS; with ``--memory N`` a second run of N invoices and the difference
  of the peaks (the issue's target: 1,000,000 within 50 MB of 100,000).

Consent (OTP) for every GSTIN is given before the timed run. Results go to stdout (a table)
and ``--json PATH`` (default ``benchmarks/results/filing-<UTC time>.json``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PERIOD = "072017"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RssTrace:
    """The client's resident set every ``every`` seconds while it runs: whether a peak is a
    plateau (buffers) or a climb (something that grows with the input)."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._pid, self._every, self._stop = pid, every, threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            mb = _rss_mb(self._pid)
            if mb is not None:
                self.samples.append((round(time.perf_counter() - self._t0, 1), round(mb, 1)))

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def _quartiles(samples: list[tuple[float, float]]) -> str:
    """RSS at a quarter, half, three quarters and the end of the run, in MB."""
    if not samples:
        return "-"
    n = len(samples)
    return "/".join(f"{samples[min(n - 1, int(n * q))][1]:.0f}" for q in (0.25, 0.5, 0.75, 1.0))


class Emulator:
    """``gspauth emulator serve`` in its own process, on loopback."""

    def __init__(self, tmp: Path, seed: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gspauth", "emulator", "serve", "--seed", str(seed),
                                      "--log-level", "error"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        self.url = first.split()[-1].strip()
        self.certificate = tmp / "gstn.pem"
        self.certificate.write_bytes(httpx.get(self.url + "/_emulator/certificate.pem", timeout=30).content)

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/_emulator/stats", timeout=30).json()
        return data

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _prepare(emu: Emulator, tmp: Path, invoices: int, gstins: int, store_key: bytes) -> tuple[Path, Path]:
    from gspauth import synthetic
    from gspauth.client import Client
    from gspauth.emulator import defaults
    from gspauth.otp import EmulatorOtp
    from gspauth.store import SQLiteStore
    from gspauth.types import Credentials

    rows = ["gstin,username"]
    per = invoices // gstins
    path = tmp / "invoices.jsonl"
    store = SQLiteStore(tmp / "sessions.db", key=store_key)
    with path.open("wb") as out:
        for i in range(gstins):
            gstin = defaults.make_gstin("27", f"AAACB{i:04d}K")
            username = f"bench.{i}"
            httpx.post(emu.url + "/_emulator/taxpayers", json={"gstin": gstin, "username": username},
                       timeout=30).raise_for_status()
            rows.append(f"{gstin},{username}")
            for line in synthetic.b2b_jsonl(per + (invoices - per * gstins if i == 0 else 0), seed=i,
                                            supplier_gstin=gstin, ret_period=PERIOD):
                out.write(line)
            with Client("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN), gstin=gstin,
                        username=username, certificate=emu.certificate, hosts={"sandbox": emu.url + "/cleartax"},
                        store=store, otp_provider=EmulatorOtp(emu.url)) as client:
                client.authenticate()
    store.close()
    taxpayers = tmp / "taxpayers.csv"
    taxpayers.write_text("\n".join(rows) + "\n")
    return path, taxpayers


def run(invoices: int, gstins: int, seed: int, extra: list[str], profile: Path | None = None) -> dict[str, Any]:
    from gspauth.emulator import defaults

    with tempfile.TemporaryDirectory(prefix="gspauth-bench-filing-") as name:
        tmp = Path(name)
        emu = Emulator(tmp, seed)
        try:
            store_key = os.urandom(32)
            t = time.perf_counter()
            path, taxpayers = _prepare(emu, tmp, invoices, gstins, store_key)
            prepare = time.perf_counter() - t
            env = dict(os.environ, PYTHONPATH=str(ROOT), GSPAUTH_HOME=str(tmp / "home"),
                       GSPAUTH_STORE_KEY=base64.b64encode(store_key).decode(),
                       GSPAUTH_CRED_GSP_TOKEN=defaults.CLEARTAX_AUTH_TOKEN)
            # --profile: sampled by py-spy (every thread, native frames too; for where the time
            # goes — the figures of a profiled run are not the benchmark's)
            prof = ["py-spy", "record", "--native", "--threads", "--rate", "100", "--format",
                    "raw", "-o", str(profile), "--"] if profile else []
            cmd = [*prof, sys.executable, "-m", "gspauth", "file", str(path), "--gsp", "cleartax", "--host",
                   emu.url + "/cleartax", "--certificate", str(emu.certificate), "--store", str(tmp / "sessions.db"),
                   "--taxpayers", str(taxpayers), "--journal", str(tmp / "journal.db"), "--json", "--quiet", *extra]
            emu_cpu0 = emu.cpu()
            with (tmp / "out.json").open("w+") as out, (tmp / "err.txt").open("w+") as err:
                t = time.perf_counter()
                proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
                trace = RssTrace(proc.pid)
                # wait4: this child's own CPU time and peak RSS (not the emulator's, not ours)
                _, status, usage = os.wait4(proc.pid, 0)
                rss = trace.stop()
                wall = time.perf_counter() - t
                proc.returncode = os.waitstatus_to_exitcode(status)
                emu_cpu = emu.cpu() - emu_cpu0
                out.seek(0)
                err.seek(0)
                stdout, stderr = out.read(), err.read()
        finally:
            emu.close()
        if proc.returncode != 0:
            raise SystemExit(f"gspauth file exited {proc.returncode}: {stderr[-3000:]}")
        if profile:  # py-spy talks on stdout too: the report is the JSON object in the middle
            report, _ = json.JSONDecoder().raw_decode(stdout[stdout.index("{"):])
        else:
            report = json.loads(stdout)
        return {"invoices": invoices, "gstins": gstins, "input_mb": round(path.stat().st_size / 1e6, 1),
                "wall_s": round(wall, 2), "invoices_per_s": round(invoices / wall), "prepare_s": round(prepare, 1),
                "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "client_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
                "client_rss_trace": rss, "client_rss_quartiles_mb": _quartiles(rss),
                "emulator_cpu_s": round(emu_cpu, 2), "report": {k: report[k] for k in ("outcome", "totals")}}


_IDLE = ("PyThread_acquire_lock_timed", "take_gil", "epoll", "poll (", "select (", "_wait_for_tstate_lock",
         "pthread_cond", "futex", "sem_timedwait", "sem_clockwait")


def _summarise_profile(path: Path, top: int = 25) -> None:
    """Own-time per function and per thread from py-spy's collapsed stacks (idle waits excluded)."""
    own: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1]
        # Waiting threads (a lock, a queue, the GIL, a poll) are sampled too: not CPU time.
        if any(idle in f for f in frames[-4:] for idle in _IDLE):
            continue
        n = int(count)
        total += n
        own[leaf] = own.get(leaf, 0) + n
        threads[frames[0]] = threads.get(frames[0], 0) + n
    print(f"client CPU samples (busy): {total}; by thread:")
    for name, n in sorted(threads.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"top {top} functions by own time:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / total:5.1f} %  {name[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--gstins", type=int, default=50)
    parser.add_argument("--memory", type=int, metavar="N", help="also file N invoices and compare peak RSS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5,000 invoices, 5 GSTINs")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="sample the client with py-spy (pip install py-spy), write collapsed stacks to PATH "
                             "and print where its CPU time goes")
    parser.add_argument("filer_args", nargs="*", help="extra `gspauth file` flags (after --)")
    args = parser.parse_args()
    if args.quick:
        args.invoices, args.gstins = 5_000, 5
    rows = [run(args.invoices, args.gstins, args.seed, args.filer_args, args.profile)]
    if args.memory:
        rows.append(run(args.memory, args.gstins, args.seed, args.filer_args))
    from gspauth import crypto, ingest

    print(f"gspauth file end to end; backend {crypto.BACKEND}/{ingest.BACKEND}; {os.cpu_count()} cores; "
          f"{platform.python_version()}")
    print(f"{'invoices':>9} {'GSTINs':>6} {'MB':>6} {'wall s':>7} {'inv/s':>7} {'client CPU s':>12} "
          f"{'emulator CPU s':>14} {'client peak RSS MB':>18} {'RSS at 1/4,1/2,3/4,end':>22}  outcome")
    for r in rows:
        print(f"{r['invoices']:>9} {r['gstins']:>6} {r['input_mb']:>6} {r['wall_s']:>7} {r['invoices_per_s']:>7} "
              f"{r['client_cpu_s']:>12} {r['emulator_cpu_s']:>14} {r['client_peak_rss_mb']:>18} "
              f"{r['client_rss_quartiles_mb']:>22}  "
              f"{r['report']['outcome']} ({r['report']['totals']['accepted']} accepted)")
    if len(rows) == 2:
        print(f"peak RSS difference {rows[1]['invoices']:,} vs {rows[0]['invoices']:,}: "
              f"{rows[1]['client_peak_rss_mb'] - rows[0]['client_peak_rss_mb']:+.1f} MB (target: within 50 MB)")
    if args.profile:
        _summarise_profile(args.profile)
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    out = args.json or ROOT / "benchmarks" / "results" / f"filing-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "machine": {"cores": os.cpu_count(), "python": platform.python_version()}},
                              indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
