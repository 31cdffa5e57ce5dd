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
