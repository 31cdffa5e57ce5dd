"""Benchmark the client's ingest path per invoice: read, validate, group, serialise, envelope, body.

Usage::

    python benchmarks/bench_ingest.py [--count 20000] [--python-count 2000] [--quick] [--json PATH]

For JSONL and CSV inputs of synthetic ~2 KiB GSTR-1 B2B invoices (``gspauth.synthetic``,
fixed seed), in one run:

* ``rust``: ``gspauth._native``'s ``IngestParser`` fed the file in 8 MiB blocks, an
  ``IngestChunker`` with the default 2 MiB limit, and ``Chunk.body(sek, "RETSAVE")`` for
  every chunk — the whole client path up to the request body;
* ``python``: the same with the pure-Python reference (``gspauth.ingest._python``), on the
  first ``--python-count`` invoices (it is slow; the figure is per invoice);
* ``today``: what the client does today with the same invoices as Python dicts, grouped
  into chunks of the same invoices as the Rust chunks — ``gspauth.filing.chunk_content``
  (``json.dumps(sort_keys=True)``) and ``protocol.wrap_payload_content`` (no file reading,
  no validation); for JSONL also ``today-from-jsonl``, which adds ``json.loads`` per line;
* ``envelope``: the envelope alone on the same records — the Rust chunk payloads sealed by
  ``gspauth.crypto.encrypt_request_many`` on one thread (the target's yardstick), and
  ``envelope-per-record``: each invoice's canonical JSON sealed on its own, as in
  ``bench_envelope.py``.

Every row's output is checked before timing: the Rust bodies equal the reference's byte for
byte (on the reference's subset), every invoice is in a chunk, and no record is rejected.
Memory (``--memory``): in this VM a page touched for the first time costs microseconds, and
every row allocates its output (the envelope ~3.7 KB of body per invoice), so a row's cost
depends on whether its buffers are fresh pages or reused ones — which, with glibc's default
(a threshold that adapts to what was freed before), depends on the process's history.
``reuse`` (the default) sets glibc's mmap threshold to 32 MiB and never trims the heap, so
every row reuses memory as a long-running client does and the figures are compute;
``fresh`` sets a fixed 128 KiB threshold, so every large buffer is new pages on every run;
``default`` leaves glibc alone. The regime is recorded in the results.

Timed runs are interleaved round-robin, the garbage collector is off during a run; the best
run is the headline, the median shows the noise, and the foreign CPU load is recorded
(``bench_envelope.LoadMeter``). Target (issue 10): the Rust path costs at most 3× the
envelope alone. Every timed row runs on one thread, so its cost is its CPU time: the
target is judged on the best CPU time per invoice (wall time is shown beside it; on a
shared machine it also counts the time spent waiting for a core).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import gspauth  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

from bench_envelope import LoadMeter, QuietGate, _native_module, _timed, environment

from gspauth import filing, protocol, synthetic
from gspauth.ingest import _backend

SCHEMA = 1
TARGET = 3.0  # the Rust path at most 3× the envelope alone
SEK = bytes(range(32))
BLOCK = 8 << 20
MAX_CHUNK = 2 << 20
MAX_BUFFER = 64 << 20
SEED = 20170701


@dataclass
class Row:
    fmt: str
    impl: str
    label: str
    invoices: int
    correct: bool = False
    error: str | None = None
    runs_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    foreign_load: list[float | None] = field(default_factory=list)
    best_s: float | None = None
    median_s: float | None = None
    us_per_invoice: float | None = None
    median_us_per_invoice: float | None = None
    cpu_us_per_invoice: float | None = None
    foreign_load_of_best: float | None = None


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MEMORY = {
    "reuse": {"mmap_threshold": 32 << 20, "trim_threshold": 1 << 30},
    "fresh": {"mmap_threshold": 128 << 10, "trim_threshold": 128 << 10},
}


def set_memory(regime: str) -> dict[str, Any]:
    """Apply a ``--memory`` regime through glibc's ``mallopt``; what was applied, for the results."""
    if regime == "default":
        return {"regime": "default"}
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {"regime": "default", "requested": regime, "note": "mallopt is not available (not glibc)"}
    want = MEMORY[regime]
    ok = mallopt(M_MMAP_THRESHOLD, want["mmap_threshold"]) == 1
    ok &= mallopt(M_TRIM_THRESHOLD, want["trim_threshold"]) == 1
    if not ok:
        return {"regime": "default", "requested": regime, "note": "mallopt refused the settings"}
    return {"regime": regime, **want}


def ingest_path(backend: Any, fmt: str, data: bytes, gstin: str | None, fp: str | None) -> list[bytes]:
    """The client path: parse in blocks, chunk, seal each chunk into its request body."""
    section = "b2b" if fmt == "csv" else None
    parser = backend.Parser(fmt, "bench", section, gstin if fmt == "csv" else None, fp if fmt == "csv" else None)
    chunker = backend.Chunker(MAX_CHUNK, MAX_BUFFER)
    bodies = []
    for start in range(0, len(data), BLOCK):
        batch = parser.feed(data[start : start + BLOCK])
        if batch.errors():
            raise AssertionError(f"rejected records: {batch.errors()[:3]}")
        bodies += [c.body(SEK, "RETSAVE") for c in chunker.add(batch, None)]
    bodies += [c.body(SEK, "RETSAVE") for c in chunker.add(parser.finish(), None)]
    bodies += [c.body(SEK, "RETSAVE") for c in chunker.flush()]
    return bodies


def chunk_layout(backend: Any, fmt: str, data: bytes, gstin: str, fp: str) -> tuple[list[bytes], list[list[str]]]:
    """The Rust path's chunk payloads and, per chunk, the invoice numbers in it."""
    parser = backend.Parser(fmt, "bench", "b2b" if fmt == "csv" else None, gstin if fmt == "csv" else None,
                            fp if fmt == "csv" else None)
    chunker = backend.Chunker(MAX_CHUNK, MAX_BUFFER)
    chunks = chunker.add(parser.feed(data), None) + chunker.add(parser.finish(), None) + chunker.flush()
    return [c.payload for c in chunks], [[r[0].split("|", 1)[1] for r in c.records] for c in chunks]


def today_chunks(invoices: dict[str, dict[str, Any]], groups: list[list[str]], gstin: str,
                 fp: str) -> list[dict[str, Any]]:
    """The same invoices, as the dict chunks the client takes today (grouped by ctin)."""
    out = []
    for inums in groups:
        by_ctin: dict[str, list[dict[str, Any]]] = {}
        for inum in inums:
            ctin, inv = invoices[inum]["ctin"], invoices[inum]["inv"]
            by_ctin.setdefault(ctin, []).append(inv)
        out.append({"gstin": gstin, "fp": fp, "b2b": [{"ctin": c, "inv": v} for c, v in by_ctin.items()]})
    return out


def today_path(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [protocol.wrap_payload_content(SEK, "RETSAVE", filing.chunk_content(c)) for c in chunks]


def today_from_jsonl(lines: list[bytes], groups: list[list[str]], gstin: str, fp: str) -> list[bytes]:
    invoices: dict[str, dict[str, Any]] = {}
    for line in lines:
        d = json.loads(line)
        ctin = d.pop("ctin")
        for k in ("gstin", "fp", "section"):
            del d[k]
        invoices[d["inum"]] = {"ctin": ctin, "inv": d}
    return today_path(today_chunks(invoices, groups, gstin, fp))


def run_rows(rows: list[tuple[Row, Callable[[], Any]]], repeat: int, gate: QuietGate | None,
             progress: Callable[[str], None]) -> None:
    for i in range(repeat):
        order = rows[i % len(rows):] + rows[: i % len(rows)]  # rotate: load bursts hit every row alike
        for row, fn in order:
            if not row.correct:
                continue
            if gate is not None:
                gate.wait()
            wall, cpu, foreign = _timed(fn)
            row.runs_s.append(wall)
            row.cpu_s.append(cpu)
            row.foreign_load.append(foreign)
        progress(f"round {i + 1}/{repeat} done")
    for row, _ in rows:
        if row.runs_s:
            best = min(row.runs_s)
            row.best_s, row.median_s = best, statistics.median(row.runs_s)
            row.us_per_invoice = best / row.invoices * 1e6
            row.median_us_per_invoice = row.median_s / row.invoices * 1e6
            row.cpu_us_per_invoice = min(row.cpu_s) / row.invoices * 1e6
            row.foreign_load_of_best = row.foreign_load[row.runs_s.index(best)]


def build(fmt: str, count: int, python_count: int, native: Any, progress: Callable[[str], None]
          ) -> tuple[list[tuple[Row, Callable[[], Any]]], dict[str, Any]]:
    gstin, fp = synthetic.supplier_gstin_for(SEED), synthetic.DEFAULT_RET_PERIOD
    gen = synthetic.b2b_jsonl if fmt == "jsonl" else synthetic.b2b_csv
    data = b"".join(gen(count, seed=SEED))
    small = b"".join(gen(python_count, seed=SEED))
    lines = list(synthetic.b2b_jsonl(count, seed=SEED))
    rust, ref = _backend.load("native"), _backend.load("python")
    rows: list[tuple[Row, Callable[[], Any]]] = []
    info: dict[str, Any] = {"bytes": len(data), "bytes_per_invoice": len(data) / count}

    r = Row(fmt, "rust", "rust: parse+validate+chunk+body (1 thread)", count)
    try:
        bodies = ingest_path(rust, fmt, data, gstin, fp)
        payloads, groups = chunk_layout(rust, fmt, data, gstin, fp)
        assert sum(len(g) for g in groups) == count, "invoices missing from the chunks"
        assert ingest_path(rust, fmt, small, gstin, fp) == ingest_path(ref, fmt, small, gstin, fp), \
            "the Rust bodies differ from the reference's"
        r.correct = True
        info["chunks"] = len(bodies)
        info["payload_bytes"] = sum(len(p) for p in payloads)
    except AssertionError as exc:
        r.error = str(exc)
        payloads, groups = [], []
    rows.append((r, lambda: ingest_path(rust, fmt, data, gstin, fp)))

    p = Row(fmt, "python", "python reference: the same path", python_count, correct=r.correct)
    rows.append((p, lambda: ingest_path(ref, fmt, small, gstin, fp)))

    invoices = {}
    for line in lines:
        d = json.loads(line)
        ctin = d.pop("ctin")
        for k in ("gstin", "fp", "section"):
            del d[k]
        invoices[d["inum"]] = {"ctin": ctin, "inv": d}
    dict_chunks = today_chunks(invoices, groups, gstin, fp)
    t = Row(fmt, "today", "today: chunk_content + wrap_payload_content (from dicts)", count, correct=bool(groups))
    if groups:
        contents = [filing.chunk_content(c) for c in dict_chunks]
        t.correct = sum(len(g["inv"]) for c in map(json.loads, contents) for g in c["b2b"]) == count
    rows.append((t, lambda: today_path(dict_chunks)))
    if fmt == "jsonl":
        tj = Row(fmt, "today-from-jsonl", "today from JSONL: json.loads + chunk_content + wrap", count,
                 correct=t.correct)
        rows.append((tj, lambda: today_from_jsonl(lines, groups, gstin, fp)))

    e = Row(fmt, "envelope", "envelope alone: the same chunk payloads (Rust, 1 thread)", count,
            correct=bool(payloads))
    rows.append((e, lambda: native.encrypt_request_many(SEK, payloads, 1)))
    records = [json.dumps(v["inv"], sort_keys=True, separators=(",", ":")).encode() for v in invoices.values()]
    er = Row(fmt, "envelope-per-record", "envelope alone, each invoice on its own (Rust, 1 thread)", count,
             correct=True)
    rows.append((er, lambda: native.encrypt_request_many(SEK, records, 1)))
    progress(f"{fmt}: {count} invoices, {len(data) / count:.0f} bytes each; outputs checked")
    return rows, info


def render(result: dict[str, Any]) -> str:
    lines = [f"gspauth ingest benchmark — {result['environment']['timestamp']}",
             f"cpu: {result['environment']['cpu']['model']}; python {result['environment']['python']}; "
             f"{result['count']} invoices (python rows: {result['python_count']}); "
             f"memory: {result['memory']['regime']}", ""]
    for fmt in ("jsonl", "csv"):
        rows = [r for r in result["rows"] if r["fmt"] == fmt]
        if not rows:
            continue
        info = result["inputs"][fmt]
        lines.append(f"{fmt}: {info['bytes_per_invoice']:.0f} bytes per invoice, {info.get('chunks', '?')} chunks")
        env = next((r for r in rows if r["impl"] == "envelope"), None)
        rust = next((r for r in rows if r["impl"] == "rust"), None)
        lines.append(f"  {'row':<62} {'µs/invoice':>11} {'median':>9} {'CPU µs':>8} {'× envelope':>11} {'load':>6}")
        for r in rows:
            if not r["correct"]:
                lines.append(f"  {r['label']:<62} {'NOT CORRECT: ' + str(r['error']):>40}")
                continue
            env_cpu = env["cpu_us_per_invoice"] if env else 0.0
            x = r["cpu_us_per_invoice"] / env_cpu if env_cpu else float("nan")
            load = r["foreign_load_of_best"]
            lines.append(f"  {r['label']:<62} {r['us_per_invoice']:>11.2f} {r['median_us_per_invoice']:>9.2f} "
                         f"{r['cpu_us_per_invoice']:>8.2f} {x:>10.2f}× {'' if load is None else f'{load:.0%}':>6}")
        ratios = result["ratios"][fmt]
        if rust and env:
            met = "MET" if ratios["rust_vs_envelope"] <= TARGET else "NOT MET"
            lines.append(f"  target: rust ≤ {TARGET:g}× envelope alone (CPU time) — {ratios['rust_vs_envelope']:.2f}× "
                         f"({met}; wall time {ratios['rust_vs_envelope_wall']:.2f}×); "
                         f"python reference / rust {ratios['python_vs_rust']:.0f}×; "
                         f"today / rust {ratios['today_vs_rust']:.1f}×")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=20_000, help="invoices per input (default 20000)")
    ap.add_argument("--python-count", type=int, default=2_000, help="invoices for the reference row (default 2000)")
    ap.add_argument("--formats", nargs="+", default=["jsonl", "csv"], choices=["jsonl", "csv"])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row (default 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 500 invoices, 100 for python, 1 repeat")
    ap.add_argument("--quiet-gate", type=float, default=None, metavar="SHARE",
                    help="before every timed run wait (up to --gate-wait s) until other processes use < SHARE")
    ap.add_argument("--gate-wait", type=float, default=30.0)
    ap.add_argument("--memory", choices=["reuse", "fresh", "default"], default="reuse",
                    help="glibc allocator regime for every row (default reuse; see the module docstring)")
    ap.add_argument("--json", type=Path, help="result file (default benchmarks/results/ingest-<UTC time>.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.count, args.python_count, args.repeat = 500, 100, 1
    args.python_count = min(args.python_count, args.count)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    native, error = _native_module()
    if native is None:
        print(f"gspauth._native is not importable ({error}); the benchmark needs the Rust build", file=sys.stderr)
        return 2
    gate = QuietGate(args.quiet_gate, args.gate_wait) if args.quiet_gate is not None else None
    memory = set_memory(args.memory)
    result: dict[str, Any] = {"schema": SCHEMA, "environment": environment(native, error), "count": args.count,
                              "python_count": args.python_count, "repeat": args.repeat, "target": TARGET,
                              "memory": memory, "rows": [], "inputs": {}, "ratios": {}}
    meter = LoadMeter()
    started = time.perf_counter()
    ok = True
    for fmt in args.formats:
        rows, info = build(fmt, args.count, args.python_count, native, progress)
        run_rows(rows, args.repeat, gate, progress)
        result["inputs"][fmt] = info
        by = {row.impl: row for row, _ in rows}
        ok &= all(row.correct for row, _ in rows)
        us = {k: v.cpu_us_per_invoice for k, v in by.items()}
        wall = {k: v.us_per_invoice for k, v in by.items()}
        if all(us.get(k) for k in ("rust", "envelope", "python", "today")):
            result["ratios"][fmt] = {
                "rust_vs_envelope_wall": wall["rust"] / wall["envelope"],  # type: ignore[operator]
                "rust_vs_envelope": us["rust"] / us["envelope"],  # type: ignore[operator]
                "rust_vs_envelope_per_record": us["rust"] / us["envelope-per-record"],  # type: ignore[operator]
                "python_vs_rust": us["python"] / us["rust"],  # type: ignore[operator]
                "today_vs_rust": us["today"] / us["rust"],  # type: ignore[operator]
                "today_vs_envelope": us["today"] / us["envelope"],  # type: ignore[operator]
                "target_met": us["rust"] / us["envelope"] <= TARGET,  # type: ignore[operator]
            }
        result["rows"] += [asdict(row) for row, _ in rows]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["foreign_load"] = meter.foreign()
    if gate is not None:
        result["quiet_gate"] = gate.summary()
    print(render(result))
    path = args.json
    if path is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = HERE / "results" / f"ingest-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    progress(f"results: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
