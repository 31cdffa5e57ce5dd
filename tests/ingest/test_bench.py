"""Smoke test of benchmarks/bench_ingest.py: it runs and every row is correct. Speed is not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.native
def test_the_ingest_benchmark_runs_and_checks_its_rows(native: object, tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ingest.py"), "--count", "60", "--python-count", "20",
         "--repeat", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    rows = {(r["fmt"], r["impl"]): r for r in result["rows"]}
    assert set(rows) == {(f, i) for f in ("jsonl", "csv") for i in ("rust", "python", "today", "envelope",
                                                                     "envelope-per-record")} | {
        ("jsonl", "today-from-jsonl")}
    assert all(r["correct"] and r["us_per_invoice"] > 0 for r in rows.values())
    assert set(result["ratios"]) == {"jsonl", "csv"}
    assert result["memory"]["regime"] in ("reuse", "default")  # default where glibc's mallopt is missing
    assert "target: rust ≤ 3× envelope alone (CPU time)" in proc.stdout
