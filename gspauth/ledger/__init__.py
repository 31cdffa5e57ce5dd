"""The consent ledger: an append-only record of every session event.

Each OTP request, consent, refresh, logout, revocation and failure a client
reports (:class:`~gspauth.types.SessionEvent`) becomes one row: GSTIN, GSP,
environment, username, time, ``txn``, ``ip-usr``, outcome and a short note.
Never a token, key or OTP.

Append-only is enforced by the database: triggers refuse any ``UPDATE`` or
``DELETE``. Each row also carries a SHA-256 hash chained to the previous row,
so ``verify()`` detects rows edited or removed by someone who bypassed the
triggers (they only bind honest writers).

Backends: :class:`Ledger` (SQLite, the default: ``ledger.db`` beside the session
store) and :class:`~gspauth.ledger.postgres.PostgresLedger` (the PostgreSQL store's
``ledger()``; appends serialised so the chain stays linear across machines). Both
hash the same values the same way (:mod:`gspauth.ledger._chain`).

Feed it from clients directly (``Client(..., ledger=Ledger())``) or from the
observer hook: ``ledger.register(pm)`` adds :class:`LedgerObserver`, which
implements ``gspauth_on_session_event``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from gspauth.hookspecs import hookimpl
from gspauth.types import SessionEvent

__all__ = ["NO_LEDGER", "ConsentLedger", "Ledger", "LedgerObserver", "NullLedger", "default_ledger_path"]


@runtime_checkable
class ConsentLedger(Protocol):
    """Where a client writes its session events (:class:`Ledger` is the default)."""

    def record(self, event: SessionEvent, /) -> object:
        """Append ``event``. May block; an exception is logged by the client, never raised."""
        ...


class NullLedger:
    """A ledger that records nothing: for callers whose own system keeps the audit trail."""

    def record(self, event: SessionEvent, /) -> None:
        return None

    def __repr__(self) -> str:
        return "NO_LEDGER"


#: Pass as ``Client(ledger=NO_LEDGER)`` to record no session events.
NO_LEDGER = NullLedger()


def default_ledger_path() -> Path:
    """``<gspauth home>/ledger.db``, beside the default session store."""
    from gspauth.config import gspauth_home

    return gspauth_home() / "ledger.db"


class LedgerObserver:
    """A pluggy plugin that writes every ``gspauth_on_session_event`` into a ledger."""

    def __init__(self, ledger: ConsentLedger) -> None:
        self.ledger = ledger

    @hookimpl
    def gspauth_on_session_event(self, event: SessionEvent) -> None:
        self.ledger.record(event)


# The SQLite ledger builds on the definitions above.
from gspauth.ledger.sqlite import Ledger  # noqa: E402 - it imports the definitions above
