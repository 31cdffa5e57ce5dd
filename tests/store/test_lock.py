"""Per-key locks: exclusive across threads and processes; single flight for refresh — for
every shared backend (SQLite file locks, PostgreSQL advisory locks) and the memory store."""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

import pytest

# Spawned children import the workers by module name: put their directory on sys.path
# (also under --import-mode=importlib, which does not).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import store_lock_workers as workers

from gspauth.errors import LockTimeout
from gspauth.session import SessionKey
from gspauth.store import SessionStore
from tests.processes import worker, worker_processes
from tests.store.conftest import StoreFactory

ctx = worker_processes()  # forked from a clean server: no inherited locks or connections


def _run(procs: list) -> None:  # type: ignore[type-arg]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, p.exitcode


def test_exactly_one_holder_across_processes(shared_stores: StoreFactory, tmp_path: Path, key: SessionKey) -> None:
    db, log = shared_stores.spec, str(tmp_path / "log")
    shared_stores()
    n, rounds = 4, 10
    barrier = ctx.Barrier(n)
    _run([worker(workers.hold_repeatedly, db, key.id, log, rounds, barrier) for _ in range(n)])
    lines = Path(log).read_text().splitlines()
    assert len(lines) == 2 * n * rounds
    pids = set()
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        pid, what = enter.split()
        assert what == "in" and leave == f"{pid} out", (enter, leave)
        pids.add(pid)
    assert len(pids) == n


def test_single_flight_refresh_across_processes(shared_stores: StoreFactory, tmp_path: Path, key: SessionKey) -> None:
    db, counter = shared_stores.spec, str(tmp_path / "refreshes")
    shared_stores()
    n = 5
    barrier, results = ctx.Barrier(n), ctx.Queue()
    _run([worker(workers.refresh_single_flight, db, key.id, counter, barrier, results) for _ in range(n)])
    assert len(Path(counter).read_text().splitlines()) == 1  # one refresh in flight, the others reused it
    tokens = {results.get(timeout=5) for _ in range(n)}
    assert len(tokens) == 1
    stored = shared_stores().load(key)
    assert stored is not None and tokens == {stored.auth_token}


def test_timeout_when_another_process_holds_it(shared_stores: StoreFactory, key: SessionKey) -> None:
    db = shared_stores.spec
    store = shared_stores()
    results = ctx.Queue()
    with store.lock(key):
        p = worker(workers.try_lock, db, key.id, 0.3, results)
        _run([p])
        assert results.get(timeout=5) == "timeout"
    p = worker(workers.try_lock, db, key.id, 5.0, results)
    _run([p])
    assert results.get(timeout=5) == "acquired"


def test_lock_of_a_dead_process_is_released(shared_stores: StoreFactory, key: SessionKey) -> None:
    db = shared_stores.spec
    store = shared_stores()
    ready = ctx.Event()
    p = worker(workers.die_holding, db, key.id, ready)
    p.start()
    assert ready.wait(30)
    with pytest.raises(LockTimeout):
        with store.lock(key, timeout=0.05):
            pass
    p.join(30)
    assert p.exitcode == 3
    start = time.monotonic()
    with store.lock(key, timeout=5):
        assert time.monotonic() - start < 2


@pytest.mark.parametrize("two_stores", [False, True])
def test_threads_exclude_each_other(stores: StoreFactory, key: SessionKey, two_stores: bool) -> None:
    a = stores()
    b = stores() if two_stores else a
    inside, peak, errors = [0], [0], []
    guard = threading.Lock()

    def work(store: SessionStore) -> None:
        try:
            for _ in range(20):
                with store.lock(key, timeout=10):
                    with guard:
                        inside[0] += 1
                        peak[0] = max(peak[0], inside[0])
                    time.sleep(0.001)
                    with guard:
                        inside[0] -= 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and peak[0] == 1


def test_lock_is_reentrant_and_per_key(stores: StoreFactory, key: SessionKey) -> None:
    store = stores()
    other = SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "someone-else")
    got: queue.Queue[str] = queue.Queue()
    with store.lock(key):
        with store.lock(key, timeout=0.1):  # same thread: re-entrant
            pass

        def elsewhere() -> None:
            with store.lock(other, timeout=1):
                got.put("other key free")
            try:
                with store.lock(key, timeout=0.1):
                    got.put("same key acquired?!")
            except LockTimeout:
                got.put("same key busy")

        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
    assert [got.get_nowait(), got.get_nowait()] == ["other key free", "same key busy"]
