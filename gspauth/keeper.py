"""The session keeper: one OTP consent lasts as long as the taxpayer's API-access setting allows.

A GSTN token lives about six hours and can be refreshed without OTP while the portal's
API-access duration (6 hours … 30 days) runs. :class:`SessionKeeper` walks every session in a
store and refreshes each one that would enter its margin before the next pass — single-flight
with every client sharing the store (under the session's lock, after re-loading it), with
bounded concurrency overall and per GSP — and reports, per session::

    refreshed   a REFRESHTOKEN extended it
    not-due     it outlives the next pass (or another worker just refreshed it)
    needs-otp   a person must consent again; ``reason`` says why:
                  6-hour-setting   GSTN refused the first refresh of a consent (AUTH4037): the
                                   API-access duration is 6 hours (or API access is off)
                  duration-over    GSTN refused a later refresh (AUTH4037): the duration chosen
                                   on the portal has run out
                  refresh-refused  refused in an earlier pass (not retried: no GSTN call)
                  revoked          GSTN no longer knows the token (AUTH4033: revoked on the portal,
                                   access disabled, logged out elsewhere)
                  refresh-lost     an earlier refresh's answer was never saved
                  expired          it expired before a pass reached it
    failed      something else went wrong (``reason``: the error code or type); retried next pass

Run it from cron or a systemd timer (``gspauth session keep-alive``, a pass every few hours;
``--every`` must be at least the interval between passes), or in a loop (``--watch``). The
30-day lifetime is INFERRED from GSTN's portal setting; AUTH4037's two causes are told apart
by whether the refused refresh was the consent's first (GSTN's message is the same for both).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gspauth.errors import ApiAccessDenied, GSPAuthError, GSPError, OtpRequired
from gspauth.session import SessionKey, SessionTarget

if TYPE_CHECKING:
    from gspauth.client import Client
    from gspauth.store import SessionStore, SessionSummary

__all__ = ["KeeperResult", "KeeperState", "SessionClientFor", "SessionKeeper"]

_logger = logging.getLogger("gspauth.keeper")

#: What a pass did with a session: :attr:`KeeperResult.state`.
KeeperState = Literal["refreshed", "not-due", "needs-otp", "failed"]
#: Builds the client of one stored session from its key and recorded target (``None`` for
#: sessions stored before targets were recorded). The keeper closes it after use.
SessionClientFor = Callable[[SessionKey, "SessionTarget | None"], "Client"]


@dataclass(frozen=True)
class KeeperResult:
    """What one pass did with one session."""

    key: SessionKey
    state: KeeperState
    reason: str | None = None
    detail: str = ""
    expires_at: _dt.datetime | None = None

    def to_dict(self) -> dict[str, object]:
        return {"id": self.key.id, "gsp": self.key.gsp, "environment": self.key.environment,
                "gstin": self.key.gstin, "username": self.key.username, "state": self.state,
                "reason": self.reason, "detail": self.detail,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


class SessionKeeper:
    """Keep every session of a store alive.

    :param store: the sessions to keep (shared with the clients that use them).
    :param client_for: builds a session's client (:data:`SessionClientFor`).
    :param every: the time until the next pass: a session is refreshed now when its margin
        would begin before then.
    :param concurrency: sessions handled at once.
    :param per_gsp: at most this many at once per GSP (GSPs rate-limit); ``None``: no extra limit.
    :param only: keep only these session keys (default: all in the store).
    """

    def __init__(self, store: SessionStore, client_for: SessionClientFor, *,
                 every: _dt.timedelta = _dt.timedelta(hours=1), concurrency: int = 4, per_gsp: int | None = 2,
                 only: Iterable[SessionKey] | None = None) -> None:
        if concurrency < 1 or (per_gsp is not None and per_gsp < 1):
            raise ValueError("concurrency and per_gsp must be at least 1")
        self.store = store
        self.client_for = client_for
        self.every = every
        self.concurrency = concurrency
        self.per_gsp = per_gsp
        self.only = None if only is None else frozenset(only)
        self._gsp_slots: dict[str, threading.BoundedSemaphore] = {}
        self._guard = threading.Lock()

    def _slot(self, gsp: str) -> threading.BoundedSemaphore | None:
        if self.per_gsp is None:
            return None
        with self._guard:
            slot = self._gsp_slots.get(gsp)
            if slot is None:
                slot = self._gsp_slots[gsp] = threading.BoundedSemaphore(self.per_gsp)
            return slot

    def run_once(self) -> list[KeeperResult]:
        """One pass over the store; results in session-id order."""
        summaries = [s for s in self.store.list() if self.only is None or s.key in self.only]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="gspauth-keeper") as pool:
            results = list(pool.map(self._keep, summaries))
        for r in results:
            _logger.info("keep-alive %s: %s%s", r.key.id, r.state, f" ({r.reason})" if r.reason else "")
        return results

    def watch(self, interval: _dt.timedelta, stop: threading.Event,
              report: Callable[[list[KeeperResult]], None] | None = None) -> None:
        """Run a pass every ``interval`` until ``stop`` is set."""
        while not stop.is_set():
            results = self.run_once()
            if report is not None:
                report(results)
            stop.wait(interval.total_seconds())

    def _keep(self, summary: SessionSummary) -> KeeperResult:
        key = summary.key
        if not summary.refreshable:  # refused before: report it, never ask GSTN again
            return KeeperResult(key, "needs-otp", "refresh-refused",
                                "GSTN refused to refresh this session in an earlier pass (AUTH4037); "
                                f"a new OTP consent is needed: gspauth login --gstin {key.gstin}",
                                summary.effective_expires_at)
        slot = self._slot(key.gsp)
        if slot is not None:
            slot.acquire()
        try:
            return self._refresh(key, summary)
        finally:
            if slot is not None:
                slot.release()

    def _refresh(self, key: SessionKey, summary: SessionSummary) -> KeeperResult:
        try:
            client = self.client_for(key, self.store.load_target(key))
        except GSPAuthError as exc:
            return KeeperResult(key, "failed", type(exc).__name__, f"cannot build its client: {exc}",
                                summary.effective_expires_at)
        try:
            with client:
                session, refreshed = client.refresh_if_due(self.every)
        except OtpRequired as exc:
            reason = exc.reason or "needs-otp"
            if isinstance(exc.__cause__, ApiAccessDenied):
                reason = "6-hour-setting" if summary.refresh_count == 0 else "duration-over"
            return KeeperResult(key, "needs-otp", reason, str(exc), summary.effective_expires_at)
        except GSPAuthError as exc:
            code = (exc.error_code if isinstance(exc, GSPError) else None) or type(exc).__name__
            return KeeperResult(key, "failed", code, str(exc), summary.effective_expires_at)
        expires = session.effective_expires_at if session is not None else None
        if refreshed:
            return KeeperResult(key, "refreshed", None, "refreshed without OTP", expires)
        return KeeperResult(key, "not-due", None, "outlives the next pass", expires)
