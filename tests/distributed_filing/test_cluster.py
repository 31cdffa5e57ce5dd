"""Distributed filing on a real Dask cluster (a scheduler and two worker processes) against the
emulator as a real server: exactly once, proved from the emulator's stored state."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import cloudpickle
import pytest
from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin

from gspauth.emulator import defaults
from gspauth.errors import ConfigurationError
from gspauth.filer import FilerOptions
from gspauth.filer.distributed import DistributedReport, JournalProgress, partition_of
from tests.distributed_filing.support import STORE_KEY, SharedDb, close_store, consent, run
from tests.filer.support import World, assert_exactly_once

if TYPE_CHECKING:
    from gspauth.testing.postgres import Cluster


def _in_background(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["report"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


def _finish(thread: threading.Thread, out: dict[str, Any], timeout: float = 120) -> DistributedReport:
    thread.join(timeout)
    assert not thread.is_alive(), "the run did not finish"
    if "error" in out:
        raise out["error"]
    report: DistributedReport = out["report"]
    return report


def _wait_for(condition: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_many_gstins_filed_exactly_once_by_disjoint_partitions(cluster: Client, dworld: World,
                                                                shared_db: SharedDb) -> None:
    gstins = dworld.taxpayers(24)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 10 + (i % 4) * 10 for i, g in enumerate(gstins)})
    progress = JournalProgress(shared_db.journal)  # what the live display reads, from the shared journal
    report = run(dworld, cluster, [path], shared_db, partitions=5, progress=progress)
    assert report.outcome == "complete", report.text()
    assert_exactly_once(dworld, lines)
    seen = progress.snapshot()
    progress.close()
    assert seen["partitions"] == (5, 5) and seen["reading_done"] and seen["records_read"] == len(lines)
    assert seen["totals"]["saved"] == seen["totals"]["accepted"] == len(lines)
    assert "5 partition(s) on 2 worker(s), 2 thread(s); 5 finished" in report.text()
    # partitions: complete (every GSTIN), disjoint (their GSTIN counts add up), each GSTIN where
    # partition_of puts it, and both worker processes took part
    assert set(report.gstins) == set(gstins)
    assert sum(p["gstins"] for p in report.partitions) == len(gstins)
    assert all(info["partition"] == partition_of(g, 5) for g, info in report.gstins.items())
    assert sorted(p["index"] for p in report.partitions) == list(range(5))
    assert len({p["worker"] for p in report.partitions}) == 2
    t = report.totals
    assert t["accepted"] == len(lines) and report.records_read == len(lines)
    assert dworld.emu.stats["actions"]["RETSAVE"] == t["chunks_planned"]  # no chunk sent twice
    saves = dworld.emu.stats["actions"]["RETSAVE"]
    again = run(dworld, cluster, [path], shared_db, partitions=3)  # other partitions: the journal decides
    assert again.outcome == "complete" and again.unchanged == len(lines) and again.totals["planned"] == 0
    assert dworld.emu.stats["actions"]["RETSAVE"] == saves
    with contextlib.closing(shared_db.journal()) as j:
        assert j.counts()["invoices"] == {"accepted": len(lines)}


@pytest.mark.parametrize("dworld", [{"faults": {"latency_ms": 120, "actions": ("RETSAVE",)}}], indirect=True)
def test_a_worker_killed_mid_run_loses_and_doubles_nothing(cluster: Client, dworld: World, shared_db: SharedDb,
                                                           pids: dict[str, int]) -> None:
    gstins = dworld.taxpayers(16)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 40 for g in gstins})
    options = FilerOptions(status_poll=0.05, max_chunk_bytes=16_000)
    thread, out = _in_background(run, dworld, cluster, [path], shared_db, options=options, partitions=4)
    _wait_for(lambda: dworld.emu.stats["actions"].get("RETSAVE", 0) >= 12, what="some RETSAVEs")
    victim = sorted(pids.items())[0]
    os.kill(victim[1], signal.SIGKILL)  # mid-chunk, most likely: RETSAVEs take 120 ms
    saved_at_kill = sum(len(dworld.stored(g)) for g in gstins)
    report = _finish(thread, out)
    runs = 1
    while report.outcome != "complete":  # a chunk the dead worker left in doubt is settled by a re-run
        assert report.outcome == "in-doubt" and runs < 3, report.text()
        report = run(dworld, cluster, [path], shared_db, options=options, partitions=4)
        runs += 1
    assert 0 < saved_at_kill < len(lines), "the kill did not land mid-run"
    assert_exactly_once(dworld, lines)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker as a new process
    assert victim[1] not in dict(cluster.run(os.getpid)).values()
    assert victim[1] not in {p["pid"] for p in report.partitions}
    with contextlib.closing(shared_db.journal()) as j:
        assert j.counts()["invoices"] == {"accepted": len(lines)}


class _GraphCapture(SchedulerPlugin):
    """Keeps the pickled run spec of every task submitted to the scheduler."""

    name = "gspauth-test-graph-capture"

    def __init__(self) -> None:
        self.specs: list[bytes] = []

    def update_graph(self, scheduler: Any, *, keys: Any, **kwargs: Any) -> None:
        for key in keys:
            ts = scheduler.tasks.get(key)
            if ts is not None and ts.run_spec is not None:
                self.specs.append(cloudpickle.dumps(ts.run_spec))


def test_no_secret_travels_in_the_task_graph(cluster: Client, dworld: World, shared_db: SharedDb,
                                             postgres_cluster: Cluster) -> None:
    gstins = dworld.taxpayers(3)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 5 for g in gstins})
    cluster.register_plugin(_GraphCapture())
    try:
        report = run(dworld, cluster, [path], shared_db, partitions=2)
        specs: list[bytes] = cluster.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.plugins[_GraphCapture.name].specs))
    finally:
        cluster.unregister_scheduler_plugin(_GraphCapture.name)
    assert report.outcome == "complete"
    assert_exactly_once(dworld, lines)
    graph = b"".join(specs)
    assert len(specs) == 2
    # it is the filing tasks we looked at: their arguments are there …
    assert str(dworld.certificate).encode() in graph and shared_db.url.encode() in graph
    assert dworld.usernames[gstins[0]].encode() in graph  # (usernames are not secret)
    # … and no secret is: not the store key, in any spelling, nor the GSP credential, nor the
    # database password (the workers have all three from their own environment)
    for secret in (STORE_KEY, base64.b64encode(STORE_KEY), STORE_KEY.hex().encode(),
                   defaults.CLEARTAX_AUTH_TOKEN.encode(), postgres_cluster.password.encode()):
        assert secret not in graph


def test_inputs_the_workers_cannot_read_are_a_typed_error(cluster: Client, dworld: World,
                                                          shared_db: SharedDb) -> None:
    dworld.taxpayers(1)
    with pytest.raises(ConfigurationError, match="not found on worker") as caught:
        run(dworld, cluster, [dworld.tmp / "missing.jsonl"], shared_db, partitions=2)
    assert "shared storage" in str(caught.value)


def test_a_gstin_another_filer_holds_is_filed_once_it_lets_go(cluster: Client, dworld: World,
                                                              shared_db: SharedDb) -> None:
    """One filer per GSTIN: a zombie (here: this test) holding two GSTINs' claims in the
    journal keeps the run off them; when it lets go, the run files them, once."""
    gstins = dworld.taxpayers(6)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 10 for g in gstins})
    held, free = gstins[:2], gstins[2:]
    zombie = shared_db.journal()
    try:
        assert all(zombie.claim(g) for g in held)
        thread, out = _in_background(run, dworld, cluster, [path], shared_db, partitions=3, claim_wait=60)
        _wait_for(lambda: all(len(dworld.stored(g)) == 10 for g in free), what="the free GSTINs")
        time.sleep(1.0)
        assert thread.is_alive() and all(dworld.stored(g) == {} for g in held)  # waiting, not filing
    finally:
        zombie.close()  # lets go of the claims
    report = _finish(thread, out)
    assert report.outcome == "complete", report.text()
    assert_exactly_once(dworld, lines)
    owners = {partition_of(g, 3) for g in held}
    assert all(p["passes"] > 1 for p in report.partitions if p["index"] in owners)


def test_a_worker_waits_for_consent_given_anywhere(cluster: Client, dworld: World, shared_db: SharedDb) -> None:
    """--wait-for-consent: the worker asks for the OTP, waits on the shared store, and files as
    soon as an operator completes the consent from another process (here: this one)."""
    from gspauth.client import Client as GspClient
    from gspauth.types import Credentials

    waiting, ready = dworld.taxpayers(2)
    consent(dworld, [ready], shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {waiting: 12, ready: 12})
    url = path.as_uri()  # inputs may be URLs fsspec reads (s3://… on a fleet; file:// here)
    thread, out = _in_background(run, dworld, cluster, [url], shared_db, partitions=2, request_otp=True,
                                 wait_for_consent=90)
    _wait_for(lambda: len(dworld.stored(ready)) == 12 and dworld.emu.outbox.latest_otp(waiting) is not None,
              what="the worker's OTP request")
    time.sleep(0.5)
    assert thread.is_alive() and dworld.stored(waiting) == {}
    store = shared_db.store()
    with GspClient("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN), gstin=waiting,
                   username=dworld.usernames[waiting], certificate=dworld.emu.certificate_pem,
                   hosts={"sandbox": dworld.url + "/cleartax"}, store=store) as operator:
        operator.authenticate(dworld.emu.outbox.latest_otp(waiting))  # answers the worker's pending request
    close_store(store)
    report = _finish(thread, out)
    assert report.outcome == "complete", report.text()
    assert_exactly_once(dworld, lines)
    assert dworld.emu.stats["actions"]["OTPREQUEST"] == 2  # one by consent(), one by the worker: no second one


@pytest.mark.parametrize("dworld", [{"faults": {"latency_ms": 250, "actions": ("RETSAVE",)}}], indirect=True)
def test_a_worker_closing_mid_run_stops_its_filer_cleanly_and_hands_its_task_back(
        dworld: World, shared_db: SharedDb, postgres_cluster: Cluster) -> None:
    """What SIGTERM does to `dask worker` (a pod being replaced): the worker closes; its filer
    starts no new chunk, journals those in flight, and the task runs again on another worker."""
    from distributed import LocalCluster

    from tests.distributed_filing.support import worker_env

    gstins = dworld.taxpayers(12)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 40 for g in gstins})
    options = FilerOptions(status_poll=0.05, max_chunk_bytes=16_000)
    # a cluster of its own: this test takes a worker away for good
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env=worker_env(PGPASSWORD=postgres_cluster.password),
                      silence_logs=logging.CRITICAL) as lc, Client(lc, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        thread, out = _in_background(run, dworld, client, [path], shared_db, options=options, partitions=4)
        _wait_for(lambda: dworld.emu.stats["actions"].get("RETSAVE", 0) >= 6, what="some RETSAVEs")
        victim = sorted(client.scheduler_info()["workers"])[0]
        client.retire_workers(workers=[victim], close_workers=True)  # RETSAVEs take 250 ms: mid-chunk
        report = _finish(thread, out)
    assert report.outcome == "complete", report.text()
    assert_exactly_once(dworld, lines)
    assert all(p["worker"] != victim for p in report.partitions)
    schema = parse_qs(urlsplit(shared_db.url).query)["schema"][0]
    with postgres_cluster.connect() as conn:
        runs = conn.execute(f"SELECT outcome, description->>'partition' FROM {schema}.journal_runs").fetchall()
    stopped = [p for outcome, p in runs if outcome == "interrupted"]
    assert stopped, runs  # the closing worker's filer ended its run cleanly …
    assert all(any(o == "complete" and p == s for o, p in runs) for s in stopped)  # … and another finished it


@pytest.mark.parametrize("dworld", [{"faults": {"latency_ms": 200, "actions": ("RETSAVE",)}}], indirect=True)
def test_a_partition_whose_worker_dies_too_often_is_in_doubt_and_a_rerun_settles_it(
        cluster: Client, dworld: World, shared_db: SharedDb, postgres_cluster: Cluster) -> None:
    """The scheduler gives up on a task whose workers keep dying (here at once: allowed-failures
    0). The run says so — outcome in-doubt, exit 75 — and the next run files what is left, once."""
    import dask
    from distributed import LocalCluster

    from tests.distributed_filing.support import worker_env

    gstins = dworld.taxpayers(12)
    consent(dworld, gstins, shared_db)
    path, lines = dworld.write_jsonl("in.jsonl", {g: 40 for g in gstins})
    options = FilerOptions(status_poll=0.05, max_chunk_bytes=16_000)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0", env=worker_env(PGPASSWORD=postgres_cluster.password),
                         silence_logs=logging.CRITICAL) as lc, Client(lc, set_as_default=False) as fragile:
        fragile.wait_for_workers(2, timeout=60)
        victim = sorted(dict(fragile.run(os.getpid)).items())[0]
        thread, out = _in_background(run, dworld, fragile, [path], shared_db, options=options, partitions=4)
        _wait_for(lambda: dworld.emu.stats["actions"].get("RETSAVE", 0) >= 6, what="some RETSAVEs")
        os.kill(victim[1], signal.SIGKILL)
        report = _finish(thread, out)
    assert report.outcome == "in-doubt", report.text()  # gspauth file exits 75: run again
    lost = [p for p in report.partitions if p["error"]]
    assert lost and all(p["error"].startswith("lost: ") for p in lost)
    assert "run again" in report.text()
    again = run(dworld, cluster, [path], shared_db, options=options, partitions=4)
    assert again.outcome == "complete", again.text()
    assert_exactly_once(dworld, lines)
