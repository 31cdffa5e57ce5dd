"""Smoke test of benchmarks/bench_envelope.py: it runs, and every implementation is correct.

Speed is measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_envelope.py"
SIZES = (37, 160)  # 37: not a multiple of anything the Rust side might chunk by
PYTHON_ROWS = {"python-batch", "naive"}
NATIVE_ROWS = {"rust-batch-1t", "rust-batch-all", "rust-batch-auto", "rust-per-record"}


def _run(tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--sizes", *map(str, SIZES), "--repeat", "1", "--json", str(out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, f"benchmark failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(out.read_text())


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _, data = _run(tmp_path_factory.mktemp("bench"))
    return data


def _rows(result: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["direction"], r["size"], r["impl"]): r for r in result["throughput"]}


def _check_rows(result: dict[str, Any], names: set[str]) -> None:
    rows = _rows(result)
    for direction in ("encrypt", "decrypt"):
        for size in SIZES:
            for name in names:
                row = rows.get((direction, size, name))
                assert row is not None, f"no {direction} row for {name} at n={size}"
                assert row["correct"] is True, f"{direction} {name} n={size}: {row['error']}"
                assert row["error"] is None
                assert len(row["runs_s"]) == 1 and row["best_s"] > 0
                assert row["records_per_s"] == pytest.approx(size / row["best_s"])


def test_python_and_naive_rows_correct(result: dict[str, Any]) -> None:
    _check_rows(result, PYTHON_ROWS)
    assert result["config"]["sizes"] == list(SIZES)
    assert result["json_bytes"][str(SIZES[0])] > 1000 * SIZES[0]
    ops = {(lat["op"], lat["impl"]) for lat in result["latency"]}
    assert ("encrypt_request", "naive") in ops and ("decrypt_response", "python") in ops
    assert all(lat["best_us"] > 0 for lat in result["latency"])
    env = result["environment"]
    assert env["cores_available"] >= 1 and env["python"] and "flags" in env["cpu"]


def test_native_rows_correct(result: dict[str, Any], native: ModuleType) -> None:
    # `native` skips when the extension is not built (fails under GSPAUTH_REQUIRE_NATIVE=1).
    assert result["environment"]["native"]["available"] is True
    assert result["environment"]["native"]["file"] == native.__file__
    _check_rows(result, NATIVE_ROWS)
    assert result["all_correct"] is True
    ops = {(lat["op"], lat["impl"]) for lat in result["latency"]}
    assert {("encrypt_request", "rust"), ("decrypt_response", "rust")} <= ops


def test_wrong_output_is_reported_not_timed(tmp_path: Path) -> None:
    """A broken implementation must come out correct=False, untimed, with a failing exit code."""
    shim = tmp_path / "sitecustomize.py"
    shim.write_text(
        "import naive_client\n"
        "_real = naive_client.encrypt_request\n"
        "def _broken(ek, payload):\n"
        "    data, mac = _real(ek, payload)\n"
        "    return data, mac[::-1]\n"
        "naive_client.encrypt_request = _broken\n"
    )
    out = tmp_path / "broken.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--sizes", "5", "--repeat", "1", "--no-latency", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "benchmarks"), str(ROOT)])},
    )
    assert proc.returncode == 1, proc.stderr
    rows = _rows(json.loads(out.read_text()))
    broken = rows[("encrypt", 5, "naive")]
    assert broken["correct"] is False and broken["best_s"] is None and broken["runs_s"] == []
    assert "record 0" in broken["error"]
    assert rows[("encrypt", 5, "python-batch")]["correct"] is True
    assert rows[("decrypt", 5, "naive")]["correct"] is True
