"""Functions run in spawned processes by the PostgreSQL tests (importable by module name)."""

from __future__ import annotations

from typing import Any


def ensure_component(url: str, barrier: Any, results: Any) -> None:
    from gspauth._pg import Database
    from tests.postgres.test_db import THINGS

    try:
        db = Database(url)
        barrier.wait(30)
        before, after = db.migrate(THINGS)
        results.put(("ok", before, after))
        db.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}", 0))


def _client(url: str, store_key: bytes, emulator_url: str, certificate: bytes, clock_offset: float, gstin: str,
            username: str) -> Any:
    import datetime as dt

    from gspauth.client import Client
    from gspauth.store import open_store
    from tests.client.client_support import FAST_RETRY, EventRecorder, credentials_for, make_hooks

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=clock_offset)

    return Client("cleartax", "sandbox", credentials_for("cleartax"), gstin=gstin, username=username,
                  certificate=certificate, hooks=make_hooks(emulator_url, EventRecorder()), clock=clock,
                  retry=FAST_RETRY, store=open_store(url, key=store_key), ip_usr="203.0.113.7", timeout=20.0)


def refresh_worker(args: tuple[Any, ...], barrier: Any, results: Any) -> None:
    """Wait for the others, then make a data call that needs a refresh; report the token's digest."""
    import hashlib

    from gspauth.types import Api

    try:
        client = _client(*args)
        barrier.wait(60)
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
        assert client.session is not None
        results.put(("ok", hashlib.sha256(client.session.auth_token.encode()).hexdigest()))
        client.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))
