"""Distributed filing on a local Dask cluster against the emulator in its own process: 1 vs 2
vs 4 worker processes filing the same invoices, in one run.

    .venv/bin/python benchmarks/bench_distributed.py                  # 100,000 invoices, 100 GSTINs, 1/2/4 workers
    .venv/bin/python benchmarks/bench_distributed.py --quick          # a smoke run: 1,000 invoices, 1/2 workers
    .venv/bin/python benchmarks/bench_distributed.py --profile 2      # py-spy samples one worker of the 2-worker run
    .venv/bin/python benchmarks/bench_distributed.py --postgres       # store and journal in a throw-away PostgreSQL

What is measured, per worker count (each on a fresh emulator process, store and journal, the
same input file):

* wall time of :func:`gspauth.filer.distributed.file_distributed` (every invoice read by its
  partition, validated, journalled, chunked, encrypted, sent, acknowledged and followed with
  RETSTATUS to its final status), invoices/s, and the speed-up over one worker;
* CPU seconds of the client (this process: the Dask client *and* the scheduler of the local
  cluster), of the workers (each worker's own ``getrusage``), of the emulator (``/proc``) and,
  with ``--postgres``, of the database server (the postmaster and its backends, ``/proc``);
* where a worker's CPU goes (``--profile N``): `py-spy <https://github.com/benfred/py-spy>`_
  (``pip install py-spy``) samples one worker process of the N-worker run, all its threads, and
  the samples are grouped by the part of gspauth (or of its dependencies) they are in.

The cluster is started and its workers import gspauth before the clock starts (its start-up is
reported apart); consent (OTP) for every GSTIN is given before, too. Every run must end
``complete`` with every invoice accepted and no chunk sent twice (the emulator's RETSAVE count
equals the chunks planned), or the benchmark fails. Results: a table on stdout and
``--json PATH`` (default ``benchmarks/results/distributed-<UTC time>.json``).
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PERIOD = "072017"

from bench_filing import Emulator  # the same emulator process and CPU reading as bench_filing


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _tree_cpu(pid: int) -> float:
    """CPU of a process, its waited-for children and its live children (a PostgreSQL server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) == pid:
            total += sum(int(f) for f in fields[11:15]) / tick
        elif int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _worker_cpu() -> float:  # runs on each worker
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _warm_up() -> None:  # runs on each worker
    import gspauth.filer.distributed  # noqa: F401


def write_input(tmp: Path, invoices: int, gstins: int) -> tuple[Path, list[str]]:
    """One JSONL file, GSTINs of different sizes (as real filers have), interleaved in blocks."""
    from gspauth import synthetic
    from gspauth.emulator import defaults

    names = [defaults.make_gstin("27", f"AAACD{i:04d}K") for i in range(gstins)]
    weights = [1 + (i % 7) for i in range(gstins)]  # 1..7: some GSTINs file seven times more than others
    counts = [invoices * w // sum(weights) for w in weights]
    counts[0] += invoices - sum(counts)
    path = tmp / "invoices.jsonl"
    with path.open("wb") as out:
        for i, (gstin, n) in enumerate(zip(names, counts)):
            for line in synthetic.b2b_jsonl(n, seed=i, supplier_gstin=gstin, ret_period=PERIOD):
                out.write(line)
    return path, names


def consent(emu: Emulator, tmp: Path, gstins: list[str], store_key: bytes, store_url: str) -> Path:
    from gspauth.client import Client
    from gspauth.emulator import defaults
    from gspauth.otp import EmulatorOtp
    from gspauth.store import open_store
    from gspauth.types import Credentials

    rows = ["gstin,username"]
    store = open_store(store_url, key=store_key)
    with httpx.Client(timeout=30) as http:
        for i, gstin in enumerate(gstins):
            username = f"bench.{i}"
            http.post(emu.url + "/_emulator/taxpayers", json={"gstin": gstin, "username": username}).raise_for_status()
            rows.append(f"{gstin},{username}")
            with Client("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN), gstin=gstin,
                        username=username, certificate=emu.certificate, hosts={"sandbox": emu.url + "/cleartax"},
                        store=store, otp_provider=EmulatorOtp(emu.url), http_client=http) as client:
                client.authenticate()
    close = getattr(store, "close", None)  # SQLite and PostgreSQL stores hold connections
    if close is not None:
        close()
    taxpayers = tmp / "taxpayers.csv"
    taxpayers.write_text("\n".join(rows) + "\n")
    return taxpayers


class Database:
    """A throw-away PostgreSQL server for ``--postgres`` (gspauth.testing.postgres), and its pid."""

    def __enter__(self) -> Any:
        from gspauth.testing.postgres import throwaway_cluster

        self._cm = throwaway_cluster()
        self.cluster = self._cm.__enter__()
        self.password = self.cluster.password
        self.pid = int((self.cluster.directory / "data" / "postmaster.pid").read_text().splitlines()[0])
        os.environ["PGPASSWORD"] = self.password  # this process: consent and checks
        return self

    def url(self, *, schema: str, password: bool) -> str:
        return str(self.cluster.url(schema=schema, password=password))

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class Profiler:
    """py-spy sampling one worker process (every thread, 100 Hz) while the run goes."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise SystemExit("--profile needs py-spy: pip install py-spy (a sampling profiler, run as the same user)")
        self.out = out
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                                      "--output", str(out), "--nonblocking", "--threads"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, Any]:
        import signal

        time.sleep(0.2)
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = self.proc.communicate(timeout=60)
        if not self.out.exists():
            return {"error": f"py-spy wrote nothing: {err.strip()[-300:]}"}
        return summarize(self.out.read_text())


# (category, substrings of a frame's "function (file:line)"). A sample goes to the part of gspauth
# it is in (the first tier, searched from the innermost frame out: a journal call waiting on
# psycopg is the journal's), else to the library doing the work (the second tier).
CATEGORIES = (
    ("ingest: parse, validate, chunk (Rust)", ("gspauth/ingest", "_plan.py", "_partition.py")),
    ("journal (SQLite or PostgreSQL, client side)", ("gspauth/journal",)),
    ("session store", ("gspauth/store",)),
    ("payload crypto (Rust) and request bodies", ("gspauth/crypto", "body (", "encrypt")),
    ("RETSTATUS reports", ("_status.py",)),
)
LIBRARIES = (
    ("database client (psycopg, sqlite3)", ("psycopg", "gspauth/_pg", "gspauth/_sqlite", "sqlite3")),
    ("HTTP client (httpx, httpcore, h11, TLS)", ("httpx/", "httpcore/", "h11/", "anyio/", "ssl.py")),
    ("gspauth client, filer, asyncio", ("gspauth/", "asyncio/")),
    ("Dask worker (comms, heartbeats, profiler)", ("distributed/", "tornado/", "msgpack", "dask/")),
)


# A sample whose innermost frame is one of these is a thread waiting, not working.
IDLE = ("select (", "EpollSelector.select", "poll (", "wait (", "Condition.wait", "Event.wait", "_worker (",
        "sleep (", "acquire (", "get (", "accept (", "recv_into (", "recv (")
WAITING = "waiting (threads blocked in select, a lock, a queue)"


def summarize(raw: str) -> dict[str, Any]:
    """Group py-spy's collapsed stacks by category; returns shares of the samples."""
    counts: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        frames = [f for f in frames if not f.startswith(("thread (", "process "))]
        category = "other (interpreter, stdlib)"
        if frames and frames[-1].startswith(IDLE):
            category = WAITING
        for tier in (CATEGORIES, LIBRARIES):
            if category != "other (interpreter, stdlib)":
                break
            for frame in reversed(frames if category != WAITING else ()):
                hit = next((name for name, keys in tier if any(k in frame for k in keys)), None)
                if hit is not None:
                    category = hit
                    break
        counts[category] += int(n)
        if frames:
            fn, _, where = frames[-1].partition(" (")
            functions[f"{fn} ({where.rsplit('/', 1)[-1]}"] += int(n)
    total = sum(counts.values()) or 1
    busy = total - counts[WAITING] or 1
    return {"samples": total, "waiting": round(counts[WAITING] / total, 3),
            "categories": {k: round(v / busy, 3) for k, v in counts.most_common() if k != WAITING},
            "top_functions": [[k, round(v / busy, 3)] for k, v in functions.most_common(14)
                              if not k.startswith(IDLE)][:10]}


def run_one(workers: int, path: Path, gstins: list[str], invoices: int, seed: int, profile: bool,
            db: Any) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from gspauth.emulator import defaults
    from gspauth.filer import FilerOptions
    from gspauth.filer.distributed import WorkerTarget, file_distributed

    with tempfile.TemporaryDirectory(prefix=f"gspauth-bench-dist-{workers}-") as name:
        tmp = Path(name)
        emu = Emulator(tmp, seed)
        try:
            store_key = os.urandom(32)
            url = str(tmp / "sessions.db") if db is None else db.url(schema=f"bench{workers}", password=False)
            journal = str(tmp / "journal.db") if db is None else url
            t = time.perf_counter()
            taxpayers = consent(emu, tmp, gstins, store_key, url)
            consent_s = time.perf_counter() - t
            env = {"GSPAUTH_STORE_KEY": base64.b64encode(store_key).decode(), "PYTHONPATH": str(ROOT),
                   "GSPAUTH_CRED_GSP_TOKEN": defaults.CLEARTAX_AUTH_TOKEN, "GSPAUTH_HOME": str(tmp / "home")}
            if db is not None:
                env["PGPASSWORD"] = db.password
            t = time.perf_counter()
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address="127.0.0.1:0", env=env, silence_logs=logging.CRITICAL) as cluster, \
                    Client(cluster, set_as_default=False) as client:
                client.wait_for_workers(workers, timeout=120)
                client.run(_warm_up)  # the workers import gspauth before the clock starts
                pids: dict[str, int] = client.run(os.getpid)
                start_s = time.perf_counter() - t
                profiler = Profiler(next(iter(pids.values())), tmp / "profile.txt") if profile else None
                cpu0 = (_self_cpu(), client.run(_worker_cpu), emu.cpu(), _tree_cpu(db.pid) if db else 0.0)
                t = time.perf_counter()
                report = file_distributed(
                    [str(path)], scheduler=client, store=url, journal=journal,
                    target=WorkerTarget(gsp="cleartax", host=emu.url + "/cleartax", certificate=str(emu.certificate)),
                    taxpayers=taxpayers, request_otp=False, options=FilerOptions())
                wall = time.perf_counter() - t
                cpu1 = (_self_cpu(), client.run(_worker_cpu), emu.cpu(), _tree_cpu(db.pid) if db else 0.0)
                where = profiler.stop() if profiler else None
            saves = emu.stats()["actions"].get("RETSAVE", 0)
        finally:
            emu.close()
    t = report.totals
    if report.outcome != "complete" or t["accepted"] != invoices or saves != t["chunks_planned"]:
        raise SystemExit(f"{workers} worker(s): {report.outcome}, {t['accepted']}/{invoices} accepted, {saves} "
                         f"RETSAVEs for {t['chunks_planned']} chunks\n{report.text()}")
    per_worker = {addr: round(cpu1[1][addr] - cpu0[1].get(addr, 0.0), 2) for addr in cpu1[1]}
    return {"workers": workers, "partitions": len(report.partitions), "wall_s": round(wall, 2),
            "invoices_per_s": round(invoices / wall), "client_cpu_s": round(cpu1[0] - cpu0[0], 2),
            "workers_cpu_s": round(sum(per_worker.values()), 2), "worker_cpu_s": per_worker,
            "emulator_cpu_s": round(cpu1[2] - cpu0[2], 2),
            "database_cpu_s": round(cpu1[3] - cpu0[3], 2) if db else None, "cluster_start_s": round(start_s, 1),
            "consent_s": round(consent_s, 1), "chunks": t["chunks_planned"],
            "partition_seconds": sorted(p["elapsed_seconds"] for p in report.partitions), "profile": where}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--gstins", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--profile", type=int, metavar="N", help="sample one worker of the N-worker run with py-spy")
    parser.add_argument("--postgres", action="store_true",
                        help="store and journal in a throw-away PostgreSQL server (default: SQLite files)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 invoices, 6 GSTINs, 1 and 2 workers")
    args = parser.parse_args()
    if args.quick:
        args.invoices, args.gstins, args.workers = 1_000, 6, [1, 2]
    from gspauth import crypto, ingest

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="gspauth-bench-dist-") as name, contextlib.ExitStack() as stack:
        db = stack.enter_context(Database()) if args.postgres else None
        t = time.perf_counter()
        path, gstins = write_input(Path(name), args.invoices, args.gstins)
        print(f"input: {args.invoices:,} invoices of {args.gstins} GSTINs, {path.stat().st_size / 1e6:.0f} MB "
              f"(written in {time.perf_counter() - t:.0f} s)", flush=True)
        rows = []
        for n in args.workers:
            rows.append(run_one(n, path, gstins, args.invoices, args.seed, args.profile == n, db))
            r = rows[-1]
            print(f"  {n} worker(s): {r['wall_s']} s, {r['invoices_per_s']} invoices/s", flush=True)
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup"] = round(base / r["wall_s"], 2)
    print(f"\ngspauth file on Dask, {args.invoices:,} invoices, {args.gstins} GSTINs, store and journal in "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}; backend {crypto.BACKEND}/{ingest.BACKEND}; "
          f"{os.cpu_count()} cores; Python {platform.python_version()}; load average before: {load}")
    print(f"{'workers':>7} {'wall s':>7} {'inv/s':>7} {'speed-up':>8} {'client+sched CPU s':>18} {'workers CPU s':>13} "
          f"{'emulator CPU s':>14} {'database CPU s':>14} {'partitions (s)':>16}")
    for r in rows:
        spread = f"{r['partition_seconds'][0]:.0f}-{r['partition_seconds'][-1]:.0f}"
        database = r["database_cpu_s"] if r["database_cpu_s"] is not None else "-"
        print(f"{r['workers']:>7} {r['wall_s']:>7} {r['invoices_per_s']:>7} {r['speedup']:>7}x "
              f"{r['client_cpu_s']:>18} {r['workers_cpu_s']:>13} {r['emulator_cpu_s']:>14} "
              f"{database:>14} {r['partitions']:>3} × {spread:>9}")
    for r in rows:
        if r["profile"]:
            p = r["profile"]
            print(f"\nwhere one worker's CPU goes ({r['workers']}-worker run; {p.get('samples', 0)} samples of its "
                  f"threads, {p.get('waiting', 0):.0%} of them waiting; shares of the rest):")
            for k, v in p.get("categories", {}).items():
                print(f"  {v:6.1%}  {k}")
            print("  top functions: " + ", ".join(f"{f} {v:.0%}" for f, v in p.get("top_functions", [])[:6]))
    cores = os.cpu_count() or 1
    if any(r["workers"] > cores for r in rows):
        print(f"\nnote: {cores} cores: with more worker processes than cores, and the emulator in a process of its "
              "own, workers take turns on the CPU; the speed-up then measures contention, not scale-out")
    stamp = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    out = args.json or ROOT / "benchmarks" / "results" / f"distributed-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"invoices": args.invoices, "gstins": args.gstins, "rows": rows,
                               "database": "postgresql" if args.postgres else "sqlite",
                               "machine": {"cores": cores, "python": platform.python_version(),
                                           "backend": crypto.BACKEND, "load_average_before": load}}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
