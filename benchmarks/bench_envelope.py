"""Benchmark the GSTN envelope pipeline (spec §4) on synthetic GSTR-1 B2B invoices.

Usage::

    python benchmarks/bench_envelope.py [--sizes 10000 100000] [--quick] [--json PATH]

Both directions, every implementation in one run:

* encrypt: JSON bytes → ``(data, hmac)`` under one session key EK;
* decrypt: ``(data, rek, hmac)`` → JSON bytes, every response with its own REK
  (as GSTN sends them).

Implementations: the Rust extension ``gspauth._native`` as a batch on one thread,
on every available core and with ``threads=0`` (auto), and called once per record
from a Python loop; the pure-Python backend ``gspauth.crypto._python`` (batch); and
``naive_client`` (per record, the way typical GST client code is written).

With ``--native-before PATH`` (another build of the extension, e.g. a copy of
``gspauth/_native.abi3.so`` saved before a change) its Rust rows run too, in the
same run, as ``before-…`` rows: before/after ratios without the drift between runs.

Each implementation runs once untimed and its output is checked — encrypt output
must equal the Python reference byte for byte, decrypt output must equal the
original JSON — before any timing counts; a wrong implementation is never timed.
Timed runs are interleaved (round-robin, rotating the order) so that a burst of
load from other processes hits every row alike; the best run is the headline,
the median shows the noise. The garbage collector is off during a timed run
(as :mod:`timeit` does). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import gspauth  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

import naive_client

import gspauth.crypto as api
from gspauth import synthetic
from gspauth.crypto import _python

SCHEMA = 1
DEFAULT_SIZES = (10_000, 100_000)
QUICK_SIZES = (1_000,)
#: Targets from issue 2 (2-core development machine).
TARGETS = {
    ("encrypt", "rust-batch-1t"): 4.0,
    ("encrypt", "rust-batch-all"): 7.0,
    ("decrypt", "rust-batch-1t"): 5.0,
    ("decrypt", "rust-batch-all"): 9.0,
}
LATENCY_TARGET_US = 1.5
# ~100 bytes: a RETSTATUS-style request body.
SMALL_PAYLOAD = (
    b'{"gstin":"27AAAAA0000A1Z5","ret_period":"072017","action":"RETSTATUS","trans_id":"LAPN24235325555"}'
)


# --- environment ---------------------------------------------------------------


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {"model": platform.processor() or platform.machine(), "flags": {}}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["model"] in ("", platform.processor(), platform.machine()):
            info["model"] = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    wanted = ("aes", "sha_ni", "pclmulqdq", "avx", "avx2", "avx512f", "avx512bw", "vaes", "ssse3", "sse4_1")
    info["flags"] = {f: f in flags for f in wanted}
    info["aes_ni"] = "aes" in flags
    info["sha_ni"] = "sha_ni" in flags
    return info


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _native_module() -> tuple[ModuleType | None, str | None]:
    try:
        import gspauth._native as native
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return native, None


def load_native_file(path: Path) -> ModuleType:
    """Load another build of the extension (a ``.so`` file) beside ``gspauth._native``.

    It is imported as the top-level module ``_native`` (the name its init
    function carries) without entering ``sys.modules``; it raises the same
    ``gspauth.errors`` exceptions as the installed build.
    """
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.ExtensionFileLoader("_native", str(path))
    spec = importlib.util.spec_from_file_location("_native", path, loader=loader)
    if spec is None:
        raise SystemExit(f"--native-before: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _native_info(native: ModuleType | None, error: str | None) -> dict[str, Any]:
    if native is None:
        return {"available": False, "error": error}
    info: dict[str, Any] = {"available": True, "file": getattr(native, "__file__", None)}
    for attr in ("__version__", "BUILD_INFO", "build_info", "BUILD_PROFILE", "__build__"):
        if hasattr(native, attr):
            value = getattr(native, attr)
            info[attr] = value() if callable(value) else value
            if not isinstance(info[attr], (str, int, float, bool, dict, list, type(None))):
                info[attr] = repr(info[attr])
    path = info["file"]
    if path and os.path.exists(path):
        data = Path(path).read_bytes()
        info["sha256"] = hashlib.sha256(data).hexdigest()
        info["bytes"] = len(data)
        info["mtime"] = _dt.datetime.fromtimestamp(os.path.getmtime(path), _dt.timezone.utc).isoformat()
        # Which cargo profile produced it: maturin copies target/<profile>/lib_native.so.
        info["build_profile"] = "unknown"
        for profile in ("release", "debug"):
            built = ROOT / "target" / profile / "lib_native.so"
            if built.exists() and hashlib.sha256(built.read_bytes()).hexdigest() == info["sha256"]:
                info["build_profile"] = profile
    info["rust_last_commit"] = _git("log", "-1", "--format=%h %s", "--", "rust/")
    info["rust_dirty"] = bool(_git("status", "--porcelain", "--", "rust/"))
    return info


def _file_info(module: ModuleType) -> dict[str, Any]:
    path = Path(module.__file__ or "")
    data = path.read_bytes()
    mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).isoformat()
    return {"file": str(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "mtime": mtime}


def environment(
    native: ModuleType | None, native_error: str | None, before: ModuleType | None = None
) -> dict[str, Any]:
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend as ossl

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpuinfo(),
        "cpu_count": os.cpu_count(),
        "cores_available": affinity,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "gspauth": getattr(sys.modules["gspauth"], "__version__", None),
        "gspauth_path": str(Path(sys.modules["gspauth"].__file__ or "").parent),
        "cryptography": cryptography.__version__,
        "openssl": ossl.openssl_version_text(),
        "active_backend": api.BACKEND,
        "active_backend_reason": api.BACKEND_REASON,
        "native": _native_info(native, native_error),
        "native_before": _file_info(before) if before is not None else None,
        "git_head": _git("rev-parse", "--short", "HEAD"),
    }


# --- implementations -----------------------------------------------------------

Encrypt = Callable[[bytes, Sequence[bytes]], list[tuple[str, str]]]
Decrypt = Callable[[bytes, Sequence[tuple[str, str, str | None]]], list[bytes]]


@dataclass
class Impl:
    name: str
    label: str
    encrypt: Encrypt
    decrypt: Decrypt


def implementations(native: ModuleType | None, all_threads: int, before: ModuleType | None = None) -> list[Impl]:
    """The rows of the benchmark; the Python backend first (it is the reference)."""
    rows = [
        Impl(
            "python-batch",
            "python backend, batch",
            lambda k, p: _python.encrypt_request_many(k, p, 0),
            lambda k, it: _python.decrypt_response_many(k, it, False, 0),
        ),
        Impl("naive", "naive per-record", naive_client.encrypt_request_many, naive_client.decrypt_response_many),
    ]
    if native is not None:
        rows += _rust_rows(native, all_threads)
    if before is not None:
        rows += _rust_rows(before, all_threads, "before-", "before: ")
    return rows


def _rust_rows(native: ModuleType, all_threads: int, name: str = "", label: str = "") -> list[Impl]:
    """The Rust rows of one build of the extension (names and labels prefixed)."""
    enc_many, dec_many = native.encrypt_request_many, native.decrypt_response_many
    enc_one, dec_one = native.encrypt_request, native.decrypt_response

    def per_record_encrypt(k: bytes, payloads: Sequence[bytes]) -> list[tuple[str, str]]:
        return [enc_one(k, p) for p in payloads]

    def per_record_decrypt(k: bytes, items: Sequence[tuple[str, str, str | None]]) -> list[bytes]:
        return [dec_one(k, d, r, h, False) for d, r, h in items]

    return [
        Impl(
            f"{name}rust-batch-1t",
            f"{label}rust batch, 1 thread",
            lambda k, p: enc_many(k, p, 1),
            lambda k, it: dec_many(k, it, False, 1),
        ),
        Impl(
            f"{name}rust-batch-all",
            f"{label}rust batch, {all_threads} threads",
            lambda k, p: enc_many(k, p, all_threads),
            lambda k, it: dec_many(k, it, False, all_threads),
        ),
        Impl(
            f"{name}rust-batch-auto",
            f"{label}rust batch, threads=0 (auto)",
            lambda k, p: enc_many(k, p, 0),
            lambda k, it: dec_many(k, it, False, 0),
        ),
        Impl(f"{name}rust-per-record", f"{label}rust per-record calls", per_record_encrypt, per_record_decrypt),
    ]


# --- measurement ---------------------------------------------------------------


@dataclass
class Row:
    direction: str
    size: int
    impl: str
    label: str
    correct: bool
    error: str | None = None
    runs_s: list[float] = field(default_factory=list)
    #: per run: share of the machine's CPU used by other processes (see LoadMeter)
    foreign_load: list[float | None] = field(default_factory=list)
    cpu_s_of_best: float | None = None
    foreign_load_of_best: float | None = None
    best_s: float | None = None
    median_s: float | None = None
    records_per_s: float | None = None
    mb_per_s: float | None = None
    vs_python: float | None = None
    vs_naive: float | None = None
    target_vs_python: float | None = None
    target_met: bool | None = None


def _first_mismatch(got: Sequence[Any], want: Sequence[Any]) -> str:
    if len(got) != len(want):
        return f"{len(got)} results for {len(want)} records"
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"record {i} differs from the reference"
    return "outputs differ"  # pragma: no cover - equal element-wise means equal lists


class LoadMeter:
    """CPU used by *other* processes while we run: the noise indicator.

    ``(Δ busy CPU of the whole machine − Δ our own CPU) / (Δ wall × cores)``, from
    ``/proc/stat`` and ``getrusage``; 0.0 is a quiet machine, 0.5 means other
    processes kept one of two cores busy. ``None`` where ``/proc/stat`` is missing.
    Jiffy resolution (10 ms) makes single short runs coarse; averages are fine.
    """

    _HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat", "rb") as f:
                fields = f.readline().split()
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / LoadMeter._HZ

    @classmethod
    def _sample(cls) -> tuple[float, float | None, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), cls._busy(), ru.ru_utime + ru.ru_stime

    def foreign(self) -> float | None:
        """Foreign load since construction (or the last call), 0.0–1.0."""
        (w0, b0, s0), (w1, b1, s1) = self._start, self._sample()
        self._start = (w1, b1, s1)
        if b0 is None or b1 is None or w1 <= w0:
            return None
        cores = os.cpu_count() or 1
        return min(1.0, max(0.0, ((b1 - b0) - (s1 - s0)) / ((w1 - w0) * cores)))


def wait_for_quiet(threshold: float, timeout: float, progress: Callable[[str], None]) -> float | None:
    """Sleep until other processes use less than ``threshold`` of the CPUs (2 s windows)."""
    deadline = time.monotonic() + timeout
    while True:
        meter = LoadMeter()
        time.sleep(2.0)
        load = meter.foreign()
        if load is None or load < threshold:
            progress(f"machine quiet enough (foreign load {load})")
            return load
        if time.monotonic() > deadline:
            progress(f"still busy after {timeout:.0f}s (foreign load {load:.2f}); running anyway")
            return load
        progress(f"waiting for a quiet machine: foreign load {load:.2f} ≥ {threshold}")


class QuietGate:
    """Before each timed run, wait (up to ``max_wait`` s) until other processes use
    less than ``threshold`` of the CPUs over a short window. Counts how often it
    gave up, so a report can say how many runs were taken under load anyway."""

    def __init__(self, threshold: float, max_wait: float, window: float = 0.25) -> None:
        self.threshold, self.max_wait, self.window = threshold, max_wait, window
        self.waited_s = 0.0
        self.gave_up = 0
        self.passed = 0

    def wait(self) -> None:
        start = time.monotonic()
        while True:
            meter = LoadMeter()
            time.sleep(self.window)
            load = meter.foreign()
            if load is None or load < self.threshold:
                self.passed += 1
                break
            if time.monotonic() - start > self.max_wait:
                self.gave_up += 1
                break
        self.waited_s += time.monotonic() - start

    def summary(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "max_wait_s": self.max_wait,
            "waited_s": round(self.waited_s, 1),
            "runs_after_quiet_window": self.passed,
            "runs_started_under_load": self.gave_up,
        }


def _timed(fn: Callable[[], Any]) -> tuple[float, float, float | None]:
    gc.collect()
    gc.disable()
    try:
        meter = LoadMeter()
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        t1, c1 = time.perf_counter(), time.process_time()
        foreign = meter.foreign()
    finally:
        gc.enable()
    del out
    return t1 - t0, c1 - c0, foreign


def run_direction(
    direction: str,
    impls: list[Impl],
    key: bytes,
    inputs: Sequence[Any],
    expected: Sequence[Any],
    json_bytes: int,
    repeat: int,
    warmup: int,
    progress: Callable[[str], None],
    gate: QuietGate | None = None,
) -> list[Row]:
    """Check every implementation's output, then time the correct ones round-robin."""
    n = len(inputs)
    rows: dict[str, Row] = {}
    calls: dict[str, Callable[[], Any]] = {}
    for impl in impls:
        fn = impl.encrypt if direction == "encrypt" else impl.decrypt
        call = (lambda f=fn: f(key, inputs))
        row = Row(direction, n, impl.name, impl.label, correct=False)
        rows[impl.name] = row
        try:
            out = call()
        except Exception as exc:  # noqa: BLE001 - reported in the row, never hidden
            row.error = f"{type(exc).__name__}: {exc}"
            progress(f"  {direction} {impl.name}: FAILED ({row.error})")
            continue
        row.correct = out == expected
        if not row.correct:
            row.error = _first_mismatch(out, expected)
            progress(f"  {direction} {impl.name}: WRONG OUTPUT ({row.error}); not timed")
        del out
        if row.correct:
            calls[impl.name] = call
            for _ in range(warmup):
                _timed(call)
    names = list(calls)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)] if names else []
        for name in order:
            if gate is not None:
                gate.wait()
            wall, cpu_s, foreign = _timed(calls[name])
            rows[name].runs_s.append(wall)
            rows[name].foreign_load.append(foreign)
            cpu[name].append(cpu_s)
        progress(f"  {direction} n={n}: round {r + 1}/{repeat} done")
    for name in names:
        row = rows[name]
        row.best_s = min(row.runs_s)
        row.median_s = statistics.median(row.runs_s)
        row.cpu_s_of_best = cpu[name][row.runs_s.index(row.best_s)]
        row.foreign_load_of_best = row.foreign_load[row.runs_s.index(row.best_s)]
        row.records_per_s = n / row.best_s
        row.mb_per_s = json_bytes / row.best_s / 1e6
    base = rows.get("python-batch")
    naive = rows.get("naive")
    for row in rows.values():
        if row.best_s is None:
            continue
        if base is not None and base.best_s:
            row.vs_python = base.best_s / row.best_s
        if naive is not None and naive.best_s:
            row.vs_naive = naive.best_s / row.best_s
        target = TARGETS.get((direction, row.impl))
        if target is not None:
            row.target_vs_python = target
            row.target_met = row.vs_python is not None and row.vs_python >= target
    return list(rows.values())


def _median_foreign(rows: Sequence[Row]) -> float | None:
    loads = [x for r in rows for x in r.foreign_load if x is not None]
    return statistics.median(loads) if loads else None


def response_items(key: bytes, payloads: Sequence[bytes], seed: int) -> list[tuple[str, str, str | None]]:
    """What GSTN sends back: each response encrypted under its own random REK (seeded)."""
    rng = random.Random(f"rek:{seed}")
    enc = _python.encrypt_response
    return [enc(key, rng.randbytes(32), p) for p in payloads]


@dataclass
class Latency:
    op: str
    impl: str
    payload_bytes: int
    number: int
    repeat: int
    best_us: float
    median_us: float
    target_us: float | None = None
    target_met: bool | None = None


def measure_latency(
    native: ModuleType | None, quick: bool, progress: Callable[[str], None], before: ModuleType | None = None
) -> list[Latency]:
    """Single-call latency of ``encrypt_request``/``decrypt_response`` on a ~100-byte payload."""
    key = bytes(range(32, 64))
    rek = bytes(range(64, 96))
    data, rek_wire, mac = _python.encrypt_response(key, rek, SMALL_PAYLOAD)
    req = _python.encrypt_request(key, SMALL_PAYLOAD)
    cases: list[tuple[str, str, str, dict[str, Any], Any]] = []

    def add(op: str, impl: str, stmt: str, env: dict[str, Any], want: Any) -> None:
        cases.append((op, impl, stmt, env, want))

    enc_env = {"k": key, "p": SMALL_PAYLOAD}
    dec_env = {"k": key, "d": data, "r": rek_wire, "h": mac}
    if native is not None:
        add("encrypt_request", "rust", "f(k, p)", {"f": native.encrypt_request, **enc_env}, req)
        add("decrypt_response", "rust", "f(k, d, r, h, False)", {"f": native.decrypt_response, **dec_env},
            SMALL_PAYLOAD)
    if before is not None:
        add("encrypt_request", "rust (before)", "f(k, p)", {"f": before.encrypt_request, **enc_env}, req)
        add(
            "decrypt_response", "rust (before)", "f(k, d, r, h, False)", {"f": before.decrypt_response, **dec_env},
            SMALL_PAYLOAD,
        )
    add(
        "encrypt_request",
        f"gspauth.crypto ({api.BACKEND})",
        "f(k, p)",
        {"f": api.encrypt_request, **enc_env},
        req,
    )
    add(
        "decrypt_response",
        f"gspauth.crypto ({api.BACKEND})",
        "f(k, d, r, h)",
        {"f": api.decrypt_response, **dec_env},
        SMALL_PAYLOAD,
    )
    add("encrypt_request", "python", "f(k, p)", {"f": _python.encrypt_request, **enc_env}, req)
    add("decrypt_response", "python", "f(k, d, r, h, False)", {"f": _python.decrypt_response, **dec_env}, SMALL_PAYLOAD)
    add("encrypt_request", "naive", "f(k, p)", {"f": naive_client.encrypt_request, **enc_env}, req)
    add("decrypt_response", "naive", "f(k, d, r, h)", {"f": naive_client.decrypt_response, **dec_env}, SMALL_PAYLOAD)

    out = []
    repeat = 3 if quick else 9
    for op, impl, stmt, env, want in cases:
        got = eval(stmt, dict(env))
        if got != want:
            raise SystemExit(f"latency check: {op} via {impl} returned a wrong result; refusing to time it")
        timer = timeit.Timer(stmt, globals=env)
        if quick:
            number = 500
        else:
            number, _ = timer.autorange()  # ≥ 0.2 s per repeat
            number *= 2
        times = timer.repeat(repeat=repeat, number=number)
        best = min(times) / number * 1e6
        entry = Latency(op, impl, len(SMALL_PAYLOAD), number, repeat, best, statistics.median(times) / number * 1e6)
        if impl.startswith("rust"):
            entry.target_us = LATENCY_TARGET_US
            entry.target_met = best <= LATENCY_TARGET_US
        out.append(entry)
        progress(f"  latency {op} {impl}: {best:.2f} µs")
    return out


# --- report --------------------------------------------------------------------


def _gate_note(gate: dict[str, Any] | None) -> str:
    if not gate:
        return ""
    return (
        f" · quiet gate <{gate['threshold']:.0%}: {gate['runs_after_quiet_window']} runs after a quiet window, "
        f"{gate['runs_started_under_load']} under load anyway, waited {gate['waited_s']:.0f}s"
    )


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def render(result: dict[str, Any]) -> str:
    env = result["environment"]
    cpu = env["cpu"]
    nat = env["native"]
    lines = [
        f"gspauth envelope benchmark · {env['timestamp']} · {env['host']}",
        f"CPU {cpu['model']} · {env['cores_available']} cores available · "
        f"AES-NI {'yes' if cpu.get('aes_ni') else 'no'} · SHA-NI {'yes' if cpu.get('sha_ni') else 'no'} · "
        f"load avg {result['load']['before'][0]:.2f} → {result['load']['after'][0]:.2f} · "
        f"other processes used {_pct(result['load']['foreign_during_run'])} of the CPUs during the run "
        f"(median over timed runs {_pct(result['load']['foreign_median_timed_runs'])})",
        f"Python {env['python']} · cryptography {env['cryptography']} ({env['openssl']}) · "
        f"active backend {env['active_backend']}",
        "native: "
        + (
            f"{Path(nat['file']).name} ({nat.get('build_profile', '?')} build) sha256 {nat.get('sha256', '?')[:12]} · "
            f"built {nat.get('mtime', '?')} · "
            f"rust at {nat.get('rust_last_commit')}{' + uncommitted changes' if nat.get('rust_dirty') else ''}"
            if nat["available"]
            else f"NOT AVAILABLE ({nat['error']})"
        ),
        *(
            [f"before: {Path(env['native_before']['file']).name} sha256 {env['native_before']['sha256'][:12]} · "
             f"built {env['native_before']['mtime']} (rows 'before: …')"]
            if env.get("native_before")
            else []
        ),
        f"seed {result['config']['seed']} · best of {result['config']['repeat']} interleaved runs "
        f"(+ correctness run) · GC off while timing"
        + (" · glibc heap retained (--malloc-retain)" if result["config"]["malloc_retain"] else "")
        + _gate_note(result["load"]["quiet_gate"]),
        "",
    ]
    width = max([30, *(len(r["label"]) for r in result["throughput"])])
    header = (
        f"{'implementation':<{width}} {'best ms':>9} {'median ms':>10} {'records/s':>11} {'MB/s':>8} "
        f"{'×python':>8} {'×naive':>7} {'target':>7} {'load':>5}  ok"
    )
    for size in result["config"]["sizes"]:
        for direction in ("encrypt", "decrypt"):
            rows = [r for r in result["throughput"] if r["size"] == size and r["direction"] == direction]
            mb = result["json_bytes"][str(size)] / 1e6
            lines.append(f"{direction} · {size:,} records · {mb:.1f} MB of JSON")
            lines.append(header)
            for r in rows:
                target = ""
                if r["target_vs_python"] is not None:
                    target = f"≥{r['target_vs_python']:.0f}× {'✓' if r['target_met'] else '✗'}"
                ok = "yes" if r["correct"] else f"NO: {r['error']}"
                lines.append(
                    f"{r['label']:<{width}} {_fmt(r['best_s'] and r['best_s'] * 1e3, '9.1f')} "
                    f"{_fmt(r['median_s'] and r['median_s'] * 1e3, '10.1f')} "
                    f"{_fmt(r['records_per_s'], '11,.0f')} {_fmt(r['mb_per_s'], '8.1f')} "
                    f"{_fmt(r['vs_python'], '8.2f')} {_fmt(r['vs_naive'], '7.2f')} {target:>7} "
                    f"{_pct(r['foreign_load_of_best']) if r['best_s'] else '—':>5}  {ok}"
                )
            lines.append("")
    if not result["latency"]:
        return "\n".join(lines).rstrip()
    lines.append(f"single call, {len(SMALL_PAYLOAD)}-byte payload (best of N, µs per call)")
    lines.append(f"{'operation':<18} {'implementation':<26} {'best µs':>8} {'median µs':>10} {'target':>9}")
    for lat in result["latency"]:
        target = ""
        if lat["target_us"] is not None:
            target = f"≤{lat['target_us']} {'✓' if lat['target_met'] else '✗'}"
        lines.append(
            f"{lat['op']:<18} {lat['impl']:<26} {lat['best_us']:8.2f} {lat['median_us']:10.2f} {target:>9}"
        )
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------


def _malloc_retain() -> None:
    """glibc: never trim the heap, never mmap small blocks (so freed output memory is reused)."""
    import ctypes

    libc = ctypes.CDLL(None)
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = (
        libc.mallopt(m_trim_threshold, 2**31 - 1)
        and libc.mallopt(m_top_pad, 256 * 2**20)
        and libc.mallopt(m_mmap_threshold, 32 * 2**20)
    )
    if not ok:
        raise SystemExit("--malloc-retain: mallopt failed (not glibc?)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        help=f"batch sizes (default {' '.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--quick", action="store_true", help="smoke test: small batches, few repeats")
    parser.add_argument("--repeat", type=int, help="timed runs per implementation (default 5; 2 with --quick)")
    parser.add_argument("--warmup", type=int, default=0, help="extra untimed runs after the correctness run")
    parser.add_argument("--seed", type=int, default=20170701, help="synthetic data seed (default 20170701)")
    parser.add_argument("--threads", type=int, help="thread count of the 'all cores' row (default: cores available)")
    parser.add_argument("--impls", nargs="+", metavar="ROW",
                        help="run only these rows (e.g. python-batch rust-batch-1t)")
    parser.add_argument(
        "--native-before",
        type=Path,
        metavar="PATH",
        help="also time this other build of the extension (.so), as 'before: …' rows in the same run",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the single-call latency measurement")
    parser.add_argument(
        "--require-native",
        action="store_true",
        default=os.environ.get("GSPAUTH_REQUIRE_NATIVE") == "1",
        help="fail if gspauth._native is not importable (default when GSPAUTH_REQUIRE_NATIVE=1)",
    )
    parser.add_argument("--json", type=Path,
                        help="where to write the results (default benchmarks/results/envelope-<UTC time>.json)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="SECONDS",
        help="before starting, wait up to SECONDS for other processes to use < 10%% of the CPUs",
    )
    parser.add_argument(
        "--malloc-retain",
        action="store_true",
        help="diagnostic: tell glibc malloc to keep freed memory (no trimming), so outputs reuse "
        "already-faulted pages; shows how much of a row is page faults for fresh output memory",
    )
    parser.add_argument(
        "--quiet-gate",
        type=float,
        metavar="SHARE",
        help="before every timed run wait until other processes use < SHARE of the CPUs "
        "(e.g. 0.1; up to --gate-wait seconds per run); for quotable numbers on a shared machine",
    )
    parser.add_argument("--gate-wait", type=float, default=20.0, help="longest wait per run for --quiet-gate (s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    if any(s < 1 for s in args.sizes) or args.repeat < 1:
        parser.error("--sizes and --repeat must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    if args.malloc_retain:
        _malloc_retain()
    native, native_error = _native_module()
    if native is None:
        if args.require_native:
            print(f"gspauth._native is required but not importable: {native_error}", file=sys.stderr)
            return 2
        progress(f"WARNING: gspauth._native not importable ({native_error}); Rust rows are left out")
    before = load_native_file(args.native_before) if args.native_before else None
    quiet_at_start = None
    if args.wait_quiet:
        quiet_at_start = wait_for_quiet(0.10, args.wait_quiet, progress)
    gate = QuietGate(args.quiet_gate, args.gate_wait) if args.quiet_gate else None
    load_before = os.getloadavg()
    whole_run = LoadMeter()
    env = environment(native, native_error, before)
    all_threads = args.threads or env["cores_available"]
    impls = implementations(native, all_threads, before)
    if args.impls:
        unknown = set(args.impls) - {i.name for i in impls}
        if unknown:
            print(f"unknown or unavailable rows: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        impls = [i for i in impls if i.name in args.impls]
    key = random.Random(f"ek:{args.seed}").randbytes(32)

    throughput: list[Row] = []
    generation_s: dict[str, float] = {}
    json_bytes: dict[str, int] = {}
    for size in args.sizes:
        t0 = time.perf_counter()
        payloads = synthetic.invoice_payloads(size, args.seed)
        generation_s[str(size)] = time.perf_counter() - t0
        nbytes = sum(map(len, payloads))
        json_bytes[str(size)] = nbytes
        progress(f"n={size}: {nbytes / 1e6:.1f} MB of JSON generated in {generation_s[str(size)]:.2f}s")

        reference = _python.encrypt_request_many(key, payloads, 0)
        # The reference must itself round-trip (spec §4) before it judges anyone.
        for p, (data, mac) in list(zip(payloads, reference))[:200]:
            if _python.decrypt_request(key, data, mac, False) != p:
                raise SystemExit("python reference failed its own round trip; aborting")
        throughput += run_direction(
            "encrypt", impls, key, payloads, reference, nbytes, args.repeat, args.warmup, progress, gate
        )
        del reference
        items = response_items(key, payloads, args.seed)
        throughput += run_direction(
            "decrypt", impls, key, items, payloads, nbytes, args.repeat, args.warmup, progress, gate
        )
        del items, payloads
        gc.collect()

    latency = [] if args.no_latency else measure_latency(native, args.quick, progress, before)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "environment": env,
        "config": {
            "sizes": args.sizes,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "seed": args.seed,
            "quick": args.quick,
            "all_threads": all_threads,
            "impls": [i.name for i in impls],
            "native_before": str(args.native_before) if args.native_before else None,
            "gc_disabled_while_timing": True,
            "malloc_retain": args.malloc_retain,
        },
        "load": {
            "before": list(load_before),
            "after": list(os.getloadavg()),
            "foreign_at_start": quiet_at_start,
            "foreign_during_run": whole_run.foreign(),
            "foreign_median_timed_runs": _median_foreign(throughput),
            "quiet_gate": gate.summary() if gate else None,
        },
        "generation_s": generation_s,
        "json_bytes": json_bytes,
        "throughput": [asdict(r) for r in throughput],
        "latency": [asdict(lat) for lat in latency],
    }
    result["all_correct"] = all(r.correct for r in throughput)
    print(render(result))
    path = args.json
    if path is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = HERE / "results" / f"envelope-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nresults written to {path}")
    return 0 if result["all_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
