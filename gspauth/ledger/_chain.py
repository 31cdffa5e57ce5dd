"""What every consent ledger backend shares: the row's values and the hash chain over them.

A row's hash is SHA-256 over the JSON of ``[previous hash, *values]``, values in
:data:`COLUMNS` order with times as ISO-8601 UTC text, so the SQLite and PostgreSQL ledgers
chain (and verify) identically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from typing import Any

from gspauth.types import SessionEvent

__all__ = ["COLUMNS", "GENESIS", "event_of", "event_values", "iso", "row_hash", "scrub", "where"]

GENESIS = "0" * 64
COLUMNS = ("kind", "gsp", "environment", "gstin", "username", "at", "txn", "ip_usr", "outcome", "detail", "expires_at")
# Long runs of Base64/hex look like tokens or keys: a ledger note must never carry one.
_SECRETISH = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(_dt.timezone.utc).isoformat()


def scrub(text: str | None) -> str | None:
    """A free-text note with token-like runs replaced by ``[secure]`` (at most 500 characters)."""
    if text is None:
        return None
    return _SECRETISH.sub("[secure]", str(text))[:500]


def event_values(event: SessionEvent) -> tuple[Any, ...]:
    """The row values of ``event`` in :data:`COLUMNS` order (the note scrubbed)."""
    return (
        event.kind, event.gsp, str(getattr(event.environment, "value", event.environment)),
        event.gstin, event.username, iso(event.at), event.txn, event.ip_usr,
        str(event.outcome), scrub(event.detail), iso(event.expires_at),
    )  # fmt: skip


def row_hash(prev: str, values: tuple[Any, ...]) -> str:
    body = json.dumps([prev, *values], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def event_of(row: tuple[Any, ...]) -> SessionEvent:
    """The event of a row's :data:`COLUMNS` values."""
    kwargs = dict(zip(COLUMNS, row, strict=True))
    kwargs["at"] = _dt.datetime.fromisoformat(kwargs["at"])
    if kwargs["expires_at"] is not None:
        kwargs["expires_at"] = _dt.datetime.fromisoformat(kwargs["expires_at"])
    return SessionEvent(**kwargs)


def where(gstin: str | None, gsp: str | None, kind: str | None, since: _dt.datetime | None,
          mark: str = "?") -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (or ``""``) and its parameters; ``mark`` is the driver's placeholder."""
    clauses: list[str] = []
    params: list[Any] = []
    if gstin:
        clauses.append(f"gstin = {mark}")
        params.append(gstin.strip().upper())
    if gsp:
        clauses.append(f"gsp = {mark}")
        params.append(gsp)
    if kind:
        clauses.append(f"kind = {mark}")
        params.append(kind)
    if since is not None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        clauses.append(f"at >= {mark}")
        params.append(iso(since))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
