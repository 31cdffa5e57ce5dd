"""Transient failures are retried with the same txn; GSTN stores a retried RETSAVE once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gspauth import synthetic
from gspauth.errors import RateLimited, ServerError
from gspauth.retry import RetryPolicy
from gspauth.types import Api
from tests.client.client_support import FAST_RETRY, Env, TxnRecorder

PERIOD = "072017"


def _chunk(gstin: str, seed: int = 3) -> dict[str, Any]:
    return synthetic.gstr1_chunks(2, seed=seed, supplier_gstin=gstin, ret_period=PERIOD)[0]


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=6, backoff=1.0, cap=5.0, jitter=0.5)
    delays = [policy.delay(n) for n in range(1, 7)]
    assert all(0.5 <= d <= 5.0 for d in delays)
    assert delays[-1] <= 5.0 and max(policy.delay(5) for _ in range(20)) <= 5.0
    assert len({policy.delay(2) for _ in range(20)}) > 1  # jitter spreads retries
    # a server's Retry-After is honoured as it is, not cut to the backoff cap
    assert policy.delay(1, retry_after=3.0) == 3.0 and policy.delay(1, retry_after=60) == 60.0


@pytest.mark.parametrize("fault", ["5xx", "drop"])
def test_injected_faults_retried_with_same_txn(env: Env, gsp: str, fault: str) -> None:
    recorder = TxnRecorder()
    http = httpx.Client(event_hooks={"request": [recorder]}, timeout=10)
    client = env.client(gsp, http_client=http, retry=RetryPolicy(attempts=12, backoff=0.005, cap=0.02))
    env.login(client)
    if fault == "5xx":
        env.emu.set_faults(error_5xx_rate=0.6)
    else:
        env.emu.set_faults(drop_rate=0.6)
    refs = [client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=_chunk(client.gstin, seed), ret_period=PERIOD)
            ["reference_id"] for seed in (1, 2, 3)]
    env.emu.set_faults(error_5xx_rate=0.0, drop_rate=0.0)
    saves = [txn for action, txn in recorder.sent if action == "RETSAVE"]
    assert len(saves) > 3, "no fault was injected on RETSAVE"
    assert sum(env.emu.stats["faults"].values()) >= len(saves) - 3
    assert len(set(saves)) == 3  # each save kept its one txn through all retries
    assert len(set(refs)) == 3
    assert env.events()["retsave_stored"] == 3
    http.close()


def test_lost_response_is_replayed_not_refiled(env: Env) -> None:
    """The server stored the save but the reply was lost: the retry (same txn) gets the same reference."""

    class LoseFirstReply(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()
            self.lost = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.method == "PUT" and self.lost == 0:
                response.read()
                response.close()
                self.lost += 1
                raise httpx.ReadError("connection reset while reading the reply", request=request)
            return response

        def close(self) -> None:
            self.inner.close()

    transport = LoseFirstReply()
    client = env.client("cleartax", transport=transport)
    env.login(client)
    ref = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=_chunk(client.gstin), ret_period=PERIOD)
    assert transport.lost == 1
    events = env.events()
    assert events["retsave_stored"] == 1 and events["retsave_replayed"] == 1
    # a caller-driven replay with the same idempotency key gives the same reference again
    txn = "filing-key-0001"
    first = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=_chunk(client.gstin, 9), ret_period=PERIOD,
                       txn=txn)
    again = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=_chunk(client.gstin, 9), ret_period=PERIOD,
                       txn=txn)
    assert first == again and first != ref
    assert env.events()["retsave_stored"] == 2


def test_gives_up_after_the_cap(env: Env) -> None:
    recorder = TxnRecorder()
    http = httpx.Client(event_hooks={"request": [recorder]}, timeout=10)
    client = env.client("vayana", http_client=http)
    env.login(client)
    env.emu.set_faults(error_5xx_rate=1.0)
    with pytest.raises(ServerError) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.status_code == 503
    gets = [txn for action, txn in recorder.sent if action == "B2B"]
    assert len(gets) == FAST_RETRY.attempts and len(set(gets)) == 1
    http.close()


def test_429_waits_the_full_retry_after(env: Env) -> None:
    recorder = TxnRecorder()
    http = httpx.Client(event_hooks={"request": [recorder]}, timeout=10)
    client = env.client("cleartax", http_client=http, retry=RetryPolicy(attempts=2, backoff=0.001, cap=0.01))
    env.login(client)
    env.emu.set_faults(rate_429=1.0, retry_after_seconds=1)
    started = time.monotonic()
    with pytest.raises(RateLimited) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert time.monotonic() - started >= 1.0  # waited Retry-After, not the 0.01 s backoff cap
    assert info.value.retry_after == 1.0
    assert len([t for a, t in recorder.sent if a == "B2B"]) == 2
    http.close()


def test_429_with_a_long_retry_after_gives_up_at_once(env: Env) -> None:
    recorder = TxnRecorder()
    http = httpx.Client(event_hooks={"request": [recorder]}, timeout=10)
    client = env.client("cleartax", http_client=http,
                        retry=RetryPolicy(attempts=5, backoff=0.001, cap=0.01, max_retry_after=2.0))
    env.login(client)
    env.emu.set_faults(rate_429=1.0, retry_after_seconds=7)
    with pytest.raises(RateLimited) as info:
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period=PERIOD)
    assert info.value.retry_after == 7.0 and info.value.hint  # the caller can reschedule
    assert len([t for a, t in recorder.sent if a == "B2B"]) == 1  # no attempt burnt inside the window
    http.close()


def test_async_retries_dropped_connections(env: Env) -> None:
    seed = env.client("cleartax")
    env.login(seed)
    env.emu.set_faults(drop_rate=0.5)

    async def main() -> list[str]:
        async with env.aclient("cleartax", store=seed.store,
                               retry=RetryPolicy(attempts=12, backoff=0.005, cap=0.02)) as client:
            return [(await client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=_chunk(seed.gstin, s),
                                      ret_period=PERIOD))["reference_id"] for s in (4, 5, 6)]

    refs = asyncio.run(main())
    env.emu.set_faults(drop_rate=0.0)
    assert len(set(refs)) == 3 and env.events()["retsave_stored"] == 3
    assert env.emu.stats["faults"].get("drop", 0) >= 1
