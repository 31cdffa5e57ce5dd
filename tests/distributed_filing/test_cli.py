"""``gspauth file --workers N`` / ``--scheduler`` as a separate OS process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gspauth.errors import ConfigurationError
from tests.distributed_filing.support import consent
from tests.filer.support import World, assert_exactly_once
from tests.filer.test_file_cli import env_for, target


def gspauth(world: World, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gspauth", *args], env=env_for(world), capture_output=True, text=True,
                          timeout=timeout)


def test_file_with_a_local_cluster_of_two_workers(dworld: World) -> None:
    gstins = dworld.taxpayers(6)
    consent(dworld, gstins)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 15 for g in gstins})
    broken = dworld.tmp / "more.jsonl"
    broken.write_bytes(b"not json\n")
    r = gspauth(dworld, "file", str(path), str(broken), *target(dworld), "--taxpayers", str(dworld.taxpayers_file()),
                "--journal", str(dworld.tmp / "j.db"), "--workers", "2", "--max-chunk-bytes", "20000", "--json")
    assert r.returncode == 1, r.stdout + r.stderr  # the broken line: "rejected", as on one machine
    assert "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    assert report["outcome"] == "rejected" and report["workers"] == 2 and len(report["partitions"]) == 4
    assert report["record_error_counts"] == {"json": 1}  # reported once, not once per partition
    assert report["totals"]["accepted"] == len(lines) and report["parked"] == {}
    assert {e["source"] for e in report["record_errors"]} == {str(broken)}
    assert_exactly_once(dworld, lines)


def test_a_file_store_with_a_remote_scheduler_is_refused_before_connecting(dworld: World) -> None:
    path, _ = dworld.write_jsonl("in.jsonl", {})
    r = gspauth(dworld, "file", str(path), *target(dworld), "--scheduler", "tcp://192.0.2.1:8786", timeout=60)
    assert r.returncode == 1, r.stderr
    assert "cannot share it" in r.stderr and "--shared-storage" in r.stderr and "Traceback" not in r.stderr


def test_a_password_in_a_url_never_goes_to_a_cluster_we_did_not_start(dworld: World) -> None:
    from gspauth.filer.distributed import file_distributed

    path, _ = dworld.write_jsonl("in.jsonl", {})
    url = "postgresql://filer:hunter2-not-for-workers@db.internal:5432/gspauth"
    with pytest.raises(ConfigurationError, match="PGPASSWORD") as caught:
        file_distributed([path], store=url, journal=url, scheduler="tcp://192.0.2.1:8786")
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)


def test_distributed_options_need_a_cluster(dworld: World, capsys: pytest.CaptureFixture[str]) -> None:
    from gspauth.cli import main

    path, _ = dworld.write_jsonl("in.jsonl", {})
    assert main(["file", str(path), *target(dworld), "--wait-for-consent", "15m"]) == 1
    assert "--workers N" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["file", str(path), *target(dworld), "--wait-for-consent", "soon"])
    assert exited.value.code == 2 and "90s, 15m or 2h" in capsys.readouterr().err


def test_local_workers_start_with_megabyte_buffers_mapped_on_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from gspauth._malloc import THRESHOLD
    from gspauth.filer.distributed._client import _connect

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with _connect(None, 1, {}) as (client, started):
        seen = client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    assert started and list(seen.values()) == [str(THRESHOLD)]
