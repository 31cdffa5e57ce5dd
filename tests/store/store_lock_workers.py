"""Worker functions for the multi-process lock tests (importable by spawned children)."""

from __future__ import annotations

import os
import time
from typing import Any

from gspauth.errors import LockTimeout
from gspauth.session import Session, SessionKey
from gspauth.store import open_store


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def hold_repeatedly(db: str, key_id: str, log: str, rounds: int, barrier: Any) -> None:
    store = open_store(db)
    key = SessionKey.from_id(key_id)
    barrier.wait()
    for _ in range(rounds):
        with store.lock(key, timeout=30):
            _append(log, f"{os.getpid()} in\n")
            time.sleep(0.005)
            _append(log, f"{os.getpid()} out\n")


def refresh_single_flight(db: str, key_id: str, counter: str, barrier: Any, results: Any) -> None:
    """What a client does: lock, re-load, act only if still needed, save."""
    store = open_store(db)
    key = SessionKey.from_id(key_id)
    barrier.wait()
    with store.lock(key, timeout=30):
        session = store.load(key)
        if session is None or session.needs_refresh():
            _append(counter, f"{os.getpid()}\n")  # stands for the one REFRESHTOKEN call
            time.sleep(0.2)
            session = Session.new(key, auth_token=os.urandom(16).hex(), app_key=os.urandom(32), sek=os.urandom(32), expiry_minutes=360)
            store.save(session)
    results.put(session.auth_token)


def try_lock(db: str, key_id: str, timeout: float, results: Any) -> None:
    store = open_store(db)
    try:
        with store.lock(SessionKey.from_id(key_id), timeout=timeout):
            results.put("acquired")
    except LockTimeout:
        results.put("timeout")


def die_holding(db: str, key_id: str, ready: Any) -> None:
    store = open_store(db)
    cm = store.lock(SessionKey.from_id(key_id))
    cm.__enter__()
    ready.set()
    time.sleep(0.2)
    os._exit(3)  # no cleanup: the OS must release the lock
