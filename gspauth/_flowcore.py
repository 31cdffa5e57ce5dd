"""What every lifecycle flow shares: a client's configuration and state, session events, and
sending with retries. The flows themselves are in :mod:`gspauth._consent` (OTP, AUTHTOKEN,
REFRESHTOKEN, LOGOUT) and :mod:`gspauth._lifecycle` (choosing a session, data calls).

Nothing here touches the network, the disk or a lock directly: it yields
:mod:`gspauth._effects` that the clients perform.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from gspauth import crypto, protocol
from gspauth._effects import Call, Flow, Send, Sleep
from gspauth.errors import OtpRequired, RetryableError
from gspauth.retry import RetryPolicy, network_error, retry_after
from gspauth.session import PendingOtp, Session, SessionKey, SessionTarget
from gspauth.types import SessionEvent, SessionEventKind

if TYPE_CHECKING:
    from gspauth._requests import RequestBuilder
    from gspauth.ledger import ConsentLedger
    from gspauth.otp import OtpProvider
    from gspauth.store import SessionStore

__all__ = ["FlowCore"]

_logger = logging.getLogger("gspauth.client")

_OTP_REASONS = {
    "no-session": "no GSTN session for GSTIN {gstin}: taxpayer OTP consent is needed",
    "refresh-refused": "GSTN refused to refresh the session of GSTIN {gstin} (AUTH4037: API access is off, "
                       "set to 6 hours, or its duration is over)",
    "expired": "the session of GSTIN {gstin} expired beyond refresh",
    "revoked": "the session of GSTIN {gstin} was revoked on the GST portal, logged out elsewhere or replaced "
               "(AUTH4033)",
    "refresh-lost": "a refresh of the session of GSTIN {gstin} was interrupted after GSTN answered and before "
                    "the new token was saved (the process stopped); GSTN replaced the token, so the stored one "
                    "is dead",
    "logged-out": "the session of GSTIN {gstin} was logged out",
    "not-refreshable": "the session of GSTIN {gstin} cannot be refreshed",
    "session-cap": "GSTN refused a new session for GSTIN {gstin}: too many sessions (AUTH403)",
}


class FlowCore:
    """One taxpayer session's configuration and state, shared by every flow."""

    def __init__(
        self,
        *,
        key: SessionKey,
        requests: RequestBuilder,
        certificate: crypto.GSTNCertificate,
        target: SessionTarget,
        store: SessionStore,
        otp_provider: OtpProvider | None,
        ledger: ConsentLedger | None,
        margin: _dt.timedelta,
        auto_refresh: bool,
        retry: RetryPolicy,
        clock: Callable[[], _dt.datetime],
        allow_expired_certificate: bool,
        lock_timeout: float | None,
        end_gsp_session: Callable[[], httpx.Request | None],
    ) -> None:
        self.key = key
        self.requests = requests
        self.certificate = certificate
        self.target = target
        self.store = store
        self.otp_provider = otp_provider
        self.ledger = ledger
        self.margin = margin
        self.auto_refresh = auto_refresh
        self.retry = retry
        self.clock = clock
        self.allow_expired_certificate = allow_expired_certificate
        self.lock_timeout = lock_timeout
        self._end_gsp_session = end_gsp_session
        self.session: Session | None = None
        self._logged_out = False

    @property
    def gsp(self) -> str:
        return self.key.gsp

    @property
    def gstin(self) -> str:
        return self.key.gstin

    @property
    def username(self) -> str:
        return self.key.username

    # -- events ------------------------------------------------------------------------------

    def _event(self, kind: SessionEventKind, *, txn: str | None = None, outcome: str = "ok",
               detail: str | None = None, expires_at: _dt.datetime | None = None) -> SessionEvent:
        return SessionEvent(kind=kind, gsp=self.gsp, environment=self.key.environment, gstin=self.gstin,
                            username=self.username, at=self.clock(), txn=txn, ip_usr=self.requests.ip_usr,
                            outcome=outcome, detail=detail, expires_at=expires_at)

    def emit(self, event: SessionEvent) -> None:
        """Tell the plugins' observers and the ledger. Blocking; never raises."""
        # Observers and the ledger must not turn a successful auth into a failure.
        _logger.info("session %s: %s %s (%s)", event.kind, self.key.id, event.outcome, event.detail or "")
        self.requests.hooks.session_event(event)
        if self.ledger is not None:
            try:
                self.ledger.record(event)
            except Exception:
                _logger.error("could not write %s to the consent ledger", event.kind, exc_info=True)

    def _fire(self, kind: SessionEventKind, **kw: Any) -> Flow[None]:
        yield Call(self.emit, (self._event(kind, **kw),))

    # -- sending with retries ------------------------------------------------------------------

    def _send(self, make: Callable[[], httpx.Request], what: str) -> Flow[dict[str, Any]]:
        """Send ``make()`` until a non-transient answer; every attempt carries the same txn.

        :raises NetworkError: no reply after the last attempt (typed, with host and hint).
        """
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            request = make()
            response: httpx.Response | None = None
            try:
                response = yield Send(request)
                assert response is not None
                _logger.debug("%s %s txn=%s -> HTTP %s (attempt %d)", request.method, what,
                          request.headers.get("txn"), response.status_code, attempt)
                return protocol.parse_reply(response.status_code, response.content, gsp=self.gsp,
                                            map_error=functools.partial(self.requests.hooks.map_error, self.gsp,
                                                                        response))
            except (httpx.TransportError, RetryableError) as exc:
                wait: float | None = None
                if isinstance(exc, RetryableError):
                    ra = retry_after(response)
                    if ra is not None:
                        exc.retry_after = ra
                    wait = exc.retry_after
                    reason = exc.error_code or f"HTTP {exc.status_code}"
                else:
                    reason = type(exc).__name__
                if attempt >= policy.attempts or (wait is not None and wait > policy.max_retry_after):
                    if isinstance(exc, httpx.TransportError):  # a typed gspauth error, host and hint
                        raise network_error(exc, gsp=self.gsp, attempts=attempt) from exc
                    raise
                delay = policy.delay(attempt, wait)
                _logger.warning("%s txn=%s failed transiently (%s); retry %d/%d in %.2fs with the same txn",
                            what, request.headers.get("txn"), reason, attempt, policy.attempts - 1, delay)
                yield Sleep(delay)

    # -- why an OTP is needed ----------------------------------------------------------------------

    def otp_required(self, reason: str, message: str | None = None, *,
                     pending: PendingOtp | None = None) -> OtpRequired:
        """The :class:`OtpRequired` for ``reason``, saying how to deliver the OTP."""
        text = _OTP_REASONS.get(reason, "a new OTP consent is needed for GSTIN {gstin}").format(gstin=self.gstin)
        if message:
            text = f"{text}: {message}"
        login = f"gspauth login --gsp {self.gsp} --gstin {self.gstin} --username {self.username}"
        if pending is not None:
            until = pending.expires_at.strftime("%H:%M UTC")
            how = (f"an OTP was requested at {pending.requested_at:%H:%M UTC} and stays valid until {until}: "
                   f"deliver it with `{login} --otp <OTP>` (from any process sharing this session store), "
                   "or through your OTP provider")
        else:
            how = (f"request an OTP and deliver it: `{login}` (or `--no-prompt` now and `--otp <OTP>` later), "
                   "authenticate(otp=...) in code, or configure an OTP provider")
        return OtpRequired(f"{text}; {how}", gstin=self.gstin, reason=reason)
