"""Smoke test of benchmarks/bench_distributed.py: it runs, every configuration files every invoice
exactly once (the script fails otherwise), and it reports what it promises. Speed is not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_distributed_benchmark_runs_and_checks_its_runs(tmp_path: Path) -> None:
    out = tmp_path / "distributed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_distributed.py"), "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert [r["workers"] for r in result["rows"]] == [1, 2] and result["invoices"] == 1_000
    for r in result["rows"]:
        assert r["partitions"] == 2 * r["workers"] and r["chunks"] >= 6
        assert r["wall_s"] > 0 and r["workers_cpu_s"] > 0 and r["emulator_cpu_s"] > 0
        assert len(r["worker_cpu_s"]) == r["workers"]
    assert result["rows"][0]["speedup"] == 1.0
    assert "speed-up" in proc.stdout and "results:" in proc.stdout
