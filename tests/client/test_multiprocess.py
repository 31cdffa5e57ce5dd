"""Several processes sharing one SQLiteStore file refresh a session exactly once."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os

from gspauth.store import SQLiteStore
from gspauth.types import Api
from tests.client.client_support import Env, refresh_worker
from tests.processes import gather

WORKERS = 4


def test_concurrent_refresh_from_processes(env: Env, tmp_path: object) -> None:
    store_path = os.path.join(str(tmp_path), "sessions.db")
    store_key = os.urandom(32)
    first = env.client("cleartax", store=SQLiteStore(store_path, key=store_key))
    env.login(first)
    first.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
    env.advance(minutes=350)  # every worker now finds the token inside the margin
    env.emu.reset_stats()
    offset = (env.now() - dt.datetime.now(dt.timezone.utc)).total_seconds()
    args = (env.url, env.certificate, store_path, store_key, offset, first.gstin, first.username)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=refresh_worker, args=(args, barrier, results)) for _ in range(WORKERS)]
    outcomes = gather(procs, results, timeout=60)
    results.close()
    results.join_thread()
    assert [o[0] for o in outcomes] == ["ok"] * WORKERS, outcomes
    assert len({o[1] for o in outcomes}) == 1  # all use the one refreshed token
    actions = env.actions()
    assert actions.get("REFRESHTOKEN", 0) == 1
    assert actions.get("B2B", 0) == WORKERS
    assert "AUTHTOKEN" not in actions
    stored = SQLiteStore(store_path, key=store_key).load(first.key)
    assert stored is not None and stored.refresh_count == 1
