"""wait_for_session: a worker blocked on someone else's consent or refresh wakes when it is saved."""

from __future__ import annotations

import threading
import time

from gspauth.session import SessionKey
from tests.store.conftest import StoreFactory


def test_returns_at_once_when_a_session_is_there(stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store = stores()
    s = make_session(key)
    store.save(s)
    start = time.monotonic()
    assert store.wait_for_session(key, after=None, timeout=5) == s
    assert time.monotonic() - start < 1


def test_times_out_with_none(stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    store = stores()
    s = make_session(key)
    store.save(s)
    start = time.monotonic()
    assert store.wait_for_session(key, after=s, timeout=0.3) is None  # the same token is not news
    assert 0.25 <= time.monotonic() - start < 3
    assert store.wait_for_session(SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "nobody"),
                                  after=None, timeout=0.1) is None


def test_wakes_when_another_store_object_saves(stores: StoreFactory, key: SessionKey, make_session) -> None:  # type: ignore[no-untyped-def]
    waiter, writer = stores(), stores()
    old = make_session(key)
    writer.save(old)
    new = make_session(key)
    assert new.auth_token != old.auth_token
    got: list[object] = []
    woke: list[float] = []

    def wait() -> None:
        got.append(waiter.wait_for_session(key, after=old, timeout=10))
        woke.append(time.monotonic())

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.3)
    writer.save(old.with_observed_lifetime(100))  # same token: not what the waiter wants
    time.sleep(0.2)
    assert t.is_alive()
    saved_at = time.monotonic()
    writer.save(new)
    t.join(10)
    assert got == [new]
    assert woke[0] - saved_at < 1.0
