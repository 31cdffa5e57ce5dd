"""A real Dask cluster for the distributed-filing tests: a scheduler and two worker processes on
loopback, shared by the package's tests and torn down (processes gone) at the end, and the
shared PostgreSQL database (the session's throw-away cluster, a schema per test) that holds
the session store and the filing journal, as on a fleet of machines.

The workers get what every worker of a real deployment gets from its own environment: the
store key, the GSP credentials and the database password (never through the scheduler)."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gspauth.emulator import ThreadedEmulator
from gspauth.emulator.config import EmulatorConfig, FaultConfig
from tests.distributed_filing.support import STORE_KEY, SharedDb, worker_env
from tests.filer.support import World

if TYPE_CHECKING:
    from gspauth.testing.postgres import Cluster

distributed = pytest.importorskip("distributed", reason="pip install -e '.[test]' brings dask[distributed]")


@pytest.fixture(scope="package")
def cluster(postgres_cluster: Cluster) -> Iterator[distributed.Client]:
    from distributed import Client, LocalCluster

    env = worker_env(PGPASSWORD=postgres_cluster.password)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env=env, silence_logs=logging.CRITICAL) as lc, \
            Client(lc, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
    # every worker process is gone with the cluster (the nannies wait for them)


@pytest.fixture
def dworld(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    """An emulator server and a World whose store key is the one the workers hold."""
    overrides = dict(getattr(request, "param", {}))
    if "faults" in overrides:
        overrides["faults"] = FaultConfig(**overrides["faults"])
    server = ThreadedEmulator(config=EmulatorConfig(seed=13, **overrides)).start()
    try:
        yield World(server, tmp_path, STORE_KEY)
    finally:
        server.stop()


@pytest.fixture
def shared_db(postgres_cluster: Cluster, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SharedDb:
    """The test's schema in the shared PostgreSQL database, by a URL without its password (the
    workers have PGPASSWORD; so does this process, for the test's own checks)."""
    monkeypatch.setenv("PGPASSWORD", postgres_cluster.password)
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return SharedDb(postgres_cluster.url(schema=f"t_{name}_{uuid.uuid4().hex[:8]}", password=False))


@pytest.fixture
def pids(cluster: distributed.Client) -> dict[str, int]:
    """Worker address -> the pid of its process."""
    return dict(cluster.run(os.getpid))
